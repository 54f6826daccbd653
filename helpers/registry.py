"""The registry of trainable models: each name's dataset, the report's (or the book's) settings, and
how to build its network and :mod:`helpers.objectives` objective. ``python -m helpers.train --model NAME``
and every chapter look models up here, with :func:`spec`.
"""
from dataclasses import dataclass
from typing import Callable

from . import conv_models, data, flows, models
from .objectives import GANObjective, StabilizedGANObjective, VAEObjective

@dataclass(frozen=True)
class ModelSpec:
    """A trainable model: its dataset, the report's hyperparameters and how to build it."""

    dataset: str
    defaults: dict
    build: Callable  # (config) -> Objective
    image_size: int = None  # the square side the data is loaded at; None: the dataset's default


def _mnist_gan(generator_loss: str, spectral_norm: bool = False, small_d: bool = False,
               betas=(0.5, 0.999), noisy_labels: bool = False) -> ModelSpec:
    """The report's MNIST GAN settings (80 epochs, batch 100, lr 2e-4) with one generator loss.

    Adam's betas (0.5, 0.999) are the book's choice: the report does not state them. The options
    are chapter 6's variations, none of them the report's: ``spectral_norm`` in D, the standard
    smaller-D recipe (``small_d``, :func:`helpers.models.mnist_gan_small_d`), other ``betas``,
    and noisy target labels for D (the report's improvement, whose form it does not give).
    """
    if small_d and spectral_norm:
        raise ValueError("The small-D recipe has no spectral-norm variant.")

    def build(c):
        gan = models.mnist_gan_small_d(c.latent_dim) if small_d else models.mnist_gan(c.latent_dim, spectral_norm)
        return GANObjective(gan, c.lr, generator_loss, betas, noisy_labels)

    return ModelSpec("mnist", {"epochs": 80, "batch_size": 100, "lr": 2e-4}, build)


PYTORCH_ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults

# The report's Imagenette settings, which it ran at 160 px. At 64 px they fit a 2-core CPU: on one
# thread, with another run on the other core, the GAN's 150 epochs of steps take about 40 min and the
# VAE's 50 about 9, while at 160 px they take about 3.4 hours and 50 min (bench/imagenette_step.py,
# 16 and 81 s per GAN epoch). So 64 px is the default, and the ``-160`` entries are the report's size,
# for readers with a GPU.
IMAGENETTE_VAE_SETTINGS = {"epochs": 50, "batch_size": 80, "lr": 1e-4}
IMAGENETTE_GAN_SETTINGS = {"epochs": 150, "batch_size": 50, "lr": 5e-5}
IMAGENETTE_REPORT_SIZE = 160


def imagenette_name(model: str, size: int) -> str:
    """The registry's name of Imagenette model ``model`` at ``size`` px: ``model`` itself at the book's
    64 px, ``<model>-160`` at the report's size (see :func:`_imagenette_models`)."""
    if size not in (data.IMAGENETTE_DEFAULT_SIZE, IMAGENETTE_REPORT_SIZE):
        raise ValueError(f"size={size!r}: the registry has Imagenette models at {data.IMAGENETTE_DEFAULT_SIZE} px "
                         f"(the book's) and {IMAGENETTE_REPORT_SIZE} px (the report's) only.")
    return model if size == data.IMAGENETTE_DEFAULT_SIZE else f"{model}-{size}"


def _imagenette_vae(size: int, report_tail: bool, cdf: str = None) -> ModelSpec:
    """The report's conv VAE (:func:`helpers.conv_models.imagenette_vae`) at ``size`` px; ``report_tail``
    keeps the report's ReLU before the decoder's Sigmoid (no pixel darker than mid-grey). ``cdf``
    replaces the report's Bernoulli likelihood with a discretized "logistic" or "normal" one, with a
    learned scale per colour channel (:class:`helpers.models.DiscretizedLikelihood`)."""
    def build(c):
        likelihood = None if cdf is None else models.DiscretizedLikelihood(conv_models.IMAGE_CHANNELS, cdf)
        vae = conv_models.imagenette_vae(size, c.latent_dim, report_tail=report_tail, likelihood=likelihood)
        return VAEObjective(vae, c.lr, c.samples)

    return ModelSpec("imagenette", IMAGENETTE_VAE_SETTINGS, build, image_size=size)


def _imagenette_gan(size: int, generator_loss: str, report_tail: bool = False, *, batch_norm: bool = False,
                    spectral_norm: bool = False, ema_decay: float = None, augment: bool = False,
                    channels=conv_models.REPORT_CHANNELS, noisy_labels: bool = False) -> ModelSpec:
    """The report's conv GAN (:func:`helpers.conv_models.imagenette_gan`, one-logit D) at ``size`` px
    with one generator loss; ``report_tail`` keeps the report's ReLU before G's Sigmoid. Adam's
    betas (0.5, 0.999) as on MNIST: the report does not state them. The report's improvements:
    wider ``channels`` and ``noisy_labels`` for D. The stabilizers, none of them the report's:
    ``batch_norm`` in G, ``spectral_norm`` in D, an average of G's weights with ``ema_decay``,
    DiffAugment with ``augment`` (see :class:`StabilizedGANObjective`)."""
    def build(c):
        gan = conv_models.imagenette_gan(size, c.latent_dim, channels, report_tail=report_tail,
                                         batch_norm=batch_norm, spectral_norm=spectral_norm)
        if ema_decay is None and not augment:
            return GANObjective(gan, c.lr, generator_loss, noisy_labels=noisy_labels)
        return StabilizedGANObjective(gan, c.lr, generator_loss, augment=augment, ema_decay=ema_decay)

    return ModelSpec("imagenette", IMAGENETTE_GAN_SETTINGS, build, image_size=size)


# The report's improvements to its GAN, on the corrected minimax GAN (imagenette-gan-minimax): "we increase
# the features' dimension" (by how much it does not say: the book doubles every width) and "add noises in
# the target label" (the form of helpers.losses.discriminator_loss_noisy_labels, as on MNIST).
IMAGENETTE_WIDE_CHANNELS = tuple(2 * c for c in conv_models.REPORT_CHANNELS)
IMAGENETTE_REPORT_IMPROVEMENTS = {
    "imagenette-gan-minimax-wide": dict(channels=IMAGENETTE_WIDE_CHANNELS),
    "imagenette-gan-minimax-noisy": dict(noisy_labels=True),
    "imagenette-gan-minimax-wide-noisy": dict(channels=IMAGENETTE_WIDE_CHANNELS, noisy_labels=True),
}

# The average's decay: a horizon of about 1,000 generator steps, some 6 epochs of Imagenette at batch 50.
IMAGENETTE_EMA_DECAY = 0.999

# The Imagenette chapter's ablation ladder: each rung adds one stabilizer to the one before, starting
# from the corrected GAN with the non-saturating loss (imagenette-gan-ns).
IMAGENETTE_GAN_LADDER = {
    "imagenette-gan-ns-dcgan": dict(generator_loss="ns", batch_norm=True),
    "imagenette-gan-ns-dcgan-sn": dict(generator_loss="ns", batch_norm=True, spectral_norm=True),
    "imagenette-gan-hinge-dcgan-sn": dict(generator_loss="hinge", batch_norm=True, spectral_norm=True),
    "imagenette-gan-hinge-dcgan-sn-ema": dict(generator_loss="hinge", batch_norm=True, spectral_norm=True,
                                              ema_decay=IMAGENETTE_EMA_DECAY),
    "imagenette-gan-hinge-dcgan-sn-ema-diffaug": dict(generator_loss="hinge", batch_norm=True, spectral_norm=True,
                                                      ema_decay=IMAGENETTE_EMA_DECAY, augment=True),
}


def _imagenette_models() -> dict:
    """Each Imagenette model at 64 px (``imagenette-...``) and at the report's 160 px (``...-160``).

    ``-report``: the report's layers, read as a VAE and a GAN as chapters 4 and 6 read its MLPs
    (two heads for mu and log sigma^2, one logit for D), keeping its ReLU before the final Sigmoid;
    the GAN trains with the report's minimax loss. Without ``-report``: that ReLU removed.
    Then the rungs of :data:`IMAGENETTE_GAN_LADDER`.
    """
    variants = {"imagenette-vae-report": lambda size: _imagenette_vae(size, report_tail=True),
                "imagenette-vae": lambda size: _imagenette_vae(size, report_tail=False),
                "imagenette-vae-normal": lambda size: _imagenette_vae(size, report_tail=False, cdf="normal"),
                "imagenette-vae-logistic": lambda size: _imagenette_vae(size, report_tail=False, cdf="logistic"),
                "imagenette-gan-report": lambda size: _imagenette_gan(size, "minimax", report_tail=True),
                "imagenette-gan-minimax": lambda size: _imagenette_gan(size, "minimax", report_tail=False),
                "imagenette-gan-ns": lambda size: _imagenette_gan(size, "ns", report_tail=False),
                **{name: (lambda size, options=options: _imagenette_gan(size, "minimax", **options))
                   for name, options in IMAGENETTE_REPORT_IMPROVEMENTS.items()},
                **{name: (lambda size, options=options: _imagenette_gan(size, **options))
                   for name, options in IMAGENETTE_GAN_LADDER.items()}}
    entries = {}
    for name, make in variants.items():
        entries[name] = make(data.IMAGENETTE_DEFAULT_SIZE)
        entries[f"{name}-{IMAGENETTE_REPORT_SIZE}"] = make(IMAGENETTE_REPORT_SIZE)
    return entries


# The stronger MNIST models (not the report's): convolutional, at 32 px. Adam's settings are the usual
# ones for these architectures (DCGAN: lr 2e-4, betas (0.5, 0.999)); a 16-d latent as in Ghosh et al.
# (2020) for MNIST. The average of G's weights has a horizon of about 1,000 steps, 1.3 epochs at batch 64.
MNIST_CONV_VAE_SETTINGS = {"epochs": 50, "batch_size": 64, "lr": 1e-3, "latent_dim": 16}
MNIST_DCGAN_SETTINGS = {"epochs": 20, "batch_size": 64, "lr": 2e-4}
MNIST_EMA_DECAY = 0.999


def _mnist_dcgan(generator_loss: str) -> ModelSpec:
    """:func:`helpers.conv_models.mnist_dcgan` (batch norm in G, spectral norm in D) with one
    generator loss, sampled from an exponential moving average of G's weights."""
    def build(c):
        return StabilizedGANObjective(conv_models.mnist_dcgan(c.latent_dim), c.lr, generator_loss,
                                      ema_decay=MNIST_EMA_DECAY)

    return ModelSpec("mnist", MNIST_DCGAN_SETTINGS, build)


MODELS = {
    "mnist-vae": ModelSpec(
        "mnist", {"epochs": 50, "batch_size": 64, "lr": 1e-4},
        lambda c: VAEObjective(models.mnist_vae(c.latent_dim), c.lr, c.samples)),
    "mnist-flow-vae": ModelSpec(  # the report's bonus: the same VAE with a RealNVP prior trained jointly
        "mnist", {"epochs": 50, "batch_size": 64, "lr": 1e-4},
        lambda c: VAEObjective(models.mnist_vae(c.latent_dim, flows.RealNVPPrior(c.latent_dim)), c.lr, c.samples)),
    "mnist-gan-minimax": _mnist_gan("minimax"),
    "mnist-gan-ns": _mnist_gan("ns"),
    "mnist-gan-ns-sn": _mnist_gan("ns", spectral_norm=True),  # not the report's: chapter 6's fix
    "mnist-gan-minimax-sn": _mnist_gan("minimax", spectral_norm=True),
    "mnist-gan-minimax-beta09": _mnist_gan("minimax", betas=PYTORCH_ADAM_BETAS),
    "mnist-gan-ns-beta09": _mnist_gan("ns", betas=PYTORCH_ADAM_BETAS),
    "mnist-gan-minimax-noisy": _mnist_gan("minimax", noisy_labels=True),
    "mnist-gan-ns-noisy": _mnist_gan("ns", noisy_labels=True),  # the report's improvement, as a control for SN
    "mnist-gan-ns-small-d": _mnist_gan("ns", small_d=True),  # the architecture control: same loop and loss
    "mnist-conv-vae": ModelSpec(
        "mnist", MNIST_CONV_VAE_SETTINGS,
        lambda c: VAEObjective(conv_models.mnist_conv_vae(c.latent_dim), c.lr, c.samples)),
    "mnist-conv-flow-vae": ModelSpec(  # the same conv VAE with chapter 8's RealNVP prior, trained jointly
        "mnist", MNIST_CONV_VAE_SETTINGS,
        lambda c: VAEObjective(conv_models.mnist_conv_vae(c.latent_dim, prior=flows.RealNVPPrior(c.latent_dim)),
                               c.lr, c.samples)),
    "mnist-dcgan-ns": _mnist_dcgan("ns"),
    "mnist-dcgan-hinge": _mnist_dcgan("hinge"),
    **_imagenette_models(),
}


def spec(name: str) -> ModelSpec:
    """The registry entry of a model name, with a clear error for unknown names."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; trainable models are: {', '.join(MODELS)}.")
    return MODELS[name]
