"""How each model family takes one training step.

The training loop (:mod:`helpers.train`) is the same for every model; what differs
is the step. A VAE has one optimizer and one loss. A GAN has two players: a
discriminator step, then a generator step. Both are :class:`Objective` subclasses
with ``train_step(x)`` and ``eval_step(x)``, so one loop drives both. Which model
trains with which objective and settings is :mod:`helpers.registry`.
"""
from typing import Callable

import torch
from torch import nn
from torch.optim import swa_utils

from . import augment, gan_diagnostics, losses, models


def adam(parameters, lr: float, betas=(0.9, 0.999)) -> torch.optim.Adam:
    """Adam with the fused kernel: one pass over each parameter instead of a dozen elementwise
    ops. Same algorithm; on this CPU it cuts the MNIST VAE's optimizer step from ~9 to ~2 ms."""
    return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=True)


class Objective:
    """A model, its optimizers and its step. ``model`` is the plain module (saved, sampled);
    ``wrap`` lets the loop swap in DistributedDataParallel copies for the steps."""

    model: nn.Module
    optimizers: dict

    def wrap(self, wrapper: Callable) -> None:
        raise NotImplementedError

    def train_step(self, x: torch.Tensor) -> dict:
        """One update on a batch x (N x C x H x W in [0, 1]); returns detached scalar loss terms."""
        raise NotImplementedError

    def eval_step(self, x: torch.Tensor) -> dict:
        """The same loss terms without any update."""
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:
        """n generated images, n x C x H x W in [0, 1]."""
        return self.model.sample(n)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(),
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.load_sampling_weights(state)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])

    def load_sampling_weights(self, weights: dict) -> None:
        """Load the weights that sampling uses (``weights["model"]``), e.g. from ``pretrained/``, which
        ships no optimizer state."""
        self.model.load_state_dict(weights["model"])

    def sampling_model(self) -> nn.Module:
        """The network :meth:`sample` draws from, as one module with a decoder or a generator (what the
        latent explorer and the ONNX export take): the model itself."""
        return self.model


# Adam moves each weight by about its learning rate per step, whatever the gradient's size. A decoder's
# log-scale must travel a few units (from log 0.1 to about log 0.02 on Imagenette), which at the report's
# 1e-4 would take tens of thousands of steps: the likelihood's few parameters get this rate instead.
LIKELIHOOD_LR = 1e-2


class VAEObjective(Objective):
    """Minimize the negative ELBO with Adam; terms ``loss`` = ``rec`` + ``kl`` in nats per image.
    The decoder likelihood's parameters, where it has any, learn at :data:`LIKELIHOOD_LR`."""

    def __init__(self, vae: models.VAE, lr: float, samples: int = 1):
        self.model = self.net = vae
        self.samples = samples
        scales = list(vae.likelihood.parameters())
        networks = [p for name, p in vae.named_parameters() if not name.startswith("likelihood.")]
        groups = [{"params": networks}] + ([{"params": scales, "lr": LIKELIHOOD_LR}] if scales else [])
        self.optimizers = {"vae": adam(groups, lr)}

    def wrap(self, wrapper):
        self.net = wrapper(self.model)

    def train_step(self, x):
        terms = self.net(x, self.samples)
        optimizer = self.optimizers["vae"]
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        return {name: value.detach() for name, value in terms.items()}

    @torch.no_grad()
    def eval_step(self, x):
        return self.model(x, self.samples)


# The cross-entropy game's two generator losses; G's gradient is measured under both in every GAN.
GENERATOR_LOSSES = {"minimax": losses.generator_loss_minimax, "ns": losses.generator_loss_nonsaturating}
# Every loss a GAN trains with, as (D's loss, G's loss): minimax and ns share D's cross-entropy.
GAN_LOSSES = {"minimax": (losses.discriminator_loss, losses.generator_loss_minimax),
              "ns": (losses.discriminator_loss, losses.generator_loss_nonsaturating),
              "hinge": (losses.discriminator_loss_hinge, losses.generator_loss_hinge)}

# The generator's diagnostics use the first 100 latents of each evaluation batch: the MNIST GANs'
# training batch, so a gradient norm is that of a training step's batch; and a fraction of the cost
# (on full batches of 500 they added about 4 s to a 30-35 s epoch on one thread; on 100, under 2 s).
DIAGNOSTIC_LATENTS = 100


class GANObjective(Objective):
    """Alternate one discriminator step and one generator step per batch (Goodfellow et al., Alg. 1, k=1).

    Terms: ``d_loss``, ``g_loss`` (the generator's own loss: minimax, non-saturating or hinge),
    and ``d_real`` / ``d_fake``, the mean sigmoid(D(x)) on real and generated images (D's probability
    that an image is real under the cross-entropy; under the hinge loss only a monotone reading of
    the logit). ``eval_step`` adds the generator's diagnostics
    (:func:`helpers.gan_diagnostics.generator_diagnostics`).

    ``generator_loss="hinge"`` trains D with the hinge loss too (:func:`helpers.losses.discriminator_loss_hinge`);
    minimax and ns train D with the cross-entropy. ``noisy_labels``: train D against noisy target labels
    (:func:`helpers.losses.discriminator_loss_noisy_labels`); its reported ``d_loss`` is then the noisy
    one in training and the plain one in evaluation.
    """

    def __init__(self, gan: models.GAN, lr: float, generator_loss: str, betas=(0.5, 0.999),
                 noisy_labels: bool = False):
        if generator_loss not in GAN_LOSSES:
            raise ValueError(f"Unknown generator loss {generator_loss!r}; use one of {list(GAN_LOSSES)}.")
        if noisy_labels and generator_loss == "hinge":
            raise ValueError("noisy_labels are targets of the cross-entropy; the hinge loss has none. "
                             "Use noisy_labels with the minimax or ns loss.")
        self.model = gan
        self.G, self.D = gan.generator, gan.discriminator
        self.generator_loss_name = generator_loss
        plain_discriminator_loss, self.generator_loss = GAN_LOSSES[generator_loss]
        self.discriminator_loss = losses.discriminator_loss_noisy_labels if noisy_labels else plain_discriminator_loss
        self.optimizers = {"generator": adam(self.G.parameters(), lr, betas),
                           "discriminator": adam(self.D.parameters(), lr, betas)}

    def wrap(self, wrapper):
        self.G, self.D = wrapper(self.model.generator), wrapper(self.model.discriminator)

    def _losses(self, real, discriminator_loss=losses.discriminator_loss):
        n = len(real)
        z = self.model.prior.sample(n)
        fake = torch.sigmoid(self.G(z))
        # detach(): the discriminator's loss must not push gradients into G.
        # Real and fake go through D in one call, so a DDP wrapper sees one forward per backward.
        logits = self.D(torch.cat([real, fake.detach()]))
        d_loss = discriminator_loss(logits[:n], logits[n:])
        return z, fake, logits, d_loss

    def train_step(self, real):
        _, fake, logits, d_loss = self._losses(real, self.discriminator_loss)
        self._update("discriminator", d_loss)
        g_loss = self.generator_loss(self.D(fake))  # through the freshly updated D
        self._update("generator", g_loss)
        return self._terms(d_loss, g_loss, logits)

    @torch.no_grad()
    def eval_step(self, real):
        z, fake, logits, d_loss = self._losses(real, GAN_LOSSES[self.generator_loss_name][0])
        terms = self._terms(d_loss, self.generator_loss(self.model.discriminator(fake)), logits)
        return {**terms, **self.diagnostics(z[:DIAGNOSTIC_LATENTS])}

    def diagnostics(self, z):
        """The generator's saturation, gradients and last Adam step on the latents z (N x D), with no
        side effects (see :mod:`helpers.gan_diagnostics`): the gradients of the minimax and ns losses,
        and of the loss that trains G if it is another, on the same batch."""
        diagnosed = {**GENERATOR_LOSSES, self.generator_loss_name: self.generator_loss}
        return gan_diagnostics.generator_diagnostics(self.model.generator, self.model.discriminator, z,
                                                     diagnosed, self.generator_loss_name,
                                                     self.optimizers["generator"])

    def _update(self, player, loss):
        optimizer = self.optimizers[player]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @staticmethod
    def _terms(d_loss, g_loss, logits):
        d = torch.sigmoid(logits.detach())
        half = len(d) // 2
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "d_real": d[:half].mean(), "d_fake": d[half:].mean()}


def exponential_moving_average(module: nn.Module, decay: float) -> swa_utils.AveragedModel:
    """A copy of ``module`` whose weights average its weights over training: each
    ``update_parameters(module)`` sets W_ema <- decay W_ema + (1 - decay) W (the first one copies W).

    Batch norm's running statistics are buffers, not weights: they are copied from ``module`` at each
    update (``use_buffers=False``), not averaged. They describe the activations of the current weights,
    not of the average, whose activations can have quite another scale (on MNIST the copied statistics
    turned the average of a collapsed DCGAN into a generator of black images); :func:`standing_statistics` recomputes
    them before the average samples. The copy is kept in eval mode: it is never trained.
    """
    return swa_utils.AveragedModel(module, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(decay)).eval()


# Latents for the average's batch-norm statistics: fixed (seeded apart from the global generator, so
# that sampling draws the same images whether or not statistics were recomputed first) and plentiful.
STANDING_BATCHES, STANDING_BATCH_SIZE, STANDING_SEED = 10, 256, 0


def standing_statistics(generator: nn.Module, latent_dim: int, device) -> None:
    """Recompute the batch-norm running statistics of ``generator`` (latents N x D -> images) for its
    own weights: the mean and variance of each layer's inputs over STANDING_BATCHES fixed batches of
    N(0, I) latents (``torch.optim.swa_utils.update_bn``; BigGAN's "standing statistics")."""
    g = torch.Generator().manual_seed(STANDING_SEED)
    latents = [torch.randn(STANDING_BATCH_SIZE, latent_dim, generator=g) for _ in range(STANDING_BATCHES)]
    swa_utils.update_bn(latents, generator, device=device)


class StabilizedGANObjective(GANObjective):
    """:class:`GANObjective` with two stabilizers of the training step, each optional:

    - ``augment``: D sees only randomly transformed images, real and generated alike, in both players'
      steps (DiffAugment, :func:`helpers.augment.diff_augment`, Zhao et al., 2020); the real images are
      also mirrored at random first (:func:`helpers.augment.random_flip`). Evaluation is unaugmented.
    - ``ema_decay``: an exponential moving average of G's weights (Yazici et al., 2019; BigGAN, StyleGAN),
      updated after every generator step and saved with the checkpoint. ``sample`` (and so the loop's
      FID) draws from the average, which smooths out the oscillation of G's weights around the game's
      equilibrium; the loss terms are those of G itself.

    With neither, a step is :class:`GANObjective`'s, draw for draw.
    """

    def __init__(self, gan: models.GAN, lr: float, generator_loss: str, betas=(0.5, 0.999),
                 augment: bool = False, ema_decay: float = None):
        super().__init__(gan, lr, generator_loss, betas)
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ValueError(f"ema_decay={ema_decay!r} must lie strictly between 0 and 1, e.g. 0.999 "
                             "(an average over about the last 1,000 steps); None turns the average off.")
        self.augment = augment
        self.generator_ema = None if ema_decay is None else exponential_moving_average(gan.generator, ema_decay)
        self._statistics_for = None  # the update count of the average whose batch-norm statistics are current

    def train_step(self, real):
        n = len(real)
        fake = torch.sigmoid(self.G(self.model.prior.sample(n)))
        if self.augment:
            real = augment.random_flip(real)
        # detach(): D's loss must not reach G. Each call to seen_by_D draws fresh transformations.
        logits = self.D(self.seen_by_D(torch.cat([real, fake.detach()])))
        d_loss = self.discriminator_loss(logits[:n], logits[n:])
        self._update("discriminator", d_loss)
        g_loss = self.generator_loss(self.D(self.seen_by_D(fake)))  # the gradient flows back through T to G
        self._update("generator", g_loss)
        if self.generator_ema is not None:
            self._ema().update_parameters(self.model.generator)
        return self._terms(d_loss, g_loss, logits)

    def seen_by_D(self, images):
        """What D is shown of N x 3 x S x S ``images``: T(images) with DiffAugment, else the images."""
        return augment.diff_augment(images) if self.augment else images

    def _ema(self) -> swa_utils.AveragedModel:
        """The average, moved to the model's device (the loop moves ``model``, which does not hold it,
        so that its parameters are neither counted nor trained as the model's)."""
        return self.generator_ema.to(self.model.prior.origin.device)

    def averaged_generator(self) -> nn.Module:
        """The average of G's weights as a generator (latents N x D -> logits), in eval mode, with batch-norm
        statistics recomputed for its weights whenever it changed since they last were."""
        ema = self._ema()
        if self._statistics_for != int(ema.n_averaged):
            standing_statistics(ema.module, self.model.prior.dim, self.model.prior.origin.device)
            self._statistics_for = int(ema.n_averaged)
        return ema.eval()

    def sampling_model(self) -> models.GAN:
        """A GAN whose generator is :meth:`averaged_generator` (D is the model's), in eval mode; the model
        itself without an average."""
        if self.generator_ema is None or self.generator_ema.n_averaged == 0:
            return self.model
        return models.GAN(self.averaged_generator().module, self.model.discriminator, self.model.prior.dim).eval()

    @torch.no_grad()
    def sample(self, n: int, average: bool = True) -> torch.Tensor:
        """n images from the averaged generator, n x C x S x S in [0, 1]; from G itself with
        ``average=False`` (to measure what the average buys), without an average, or before its
        first update (weights loaded into ``model`` alone carry no average)."""
        if not average or self.generator_ema is None or self.generator_ema.n_averaged == 0:
            return super().sample(n)
        return torch.sigmoid(self.averaged_generator()(self.model.prior.sample(n)))

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.generator_ema is not None:
            state["generator_ema"] = self.generator_ema.state_dict()
        return state

    def load_sampling_weights(self, weights: dict) -> None:
        """G and D, and the average of G's weights that ``sample`` draws from, where one is kept."""
        super().load_sampling_weights(weights)
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(weights["generator_ema"])
            self._statistics_for = None
