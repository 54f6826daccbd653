"""Convolutional networks: the report's Imagenette VAE and GAN, their corrections, and the same layers
for MNIST at 32 px (one channel, wider), the book's stronger MNIST models.

The report lists five layers per network (its eqs. 3.5-3.8) and their widths, but no kernel
sizes or strides. The book's choice takes an S x S image to a 1 x 1 x D latent and back:

- four 4 x 4 convolutions with stride 2 and padding 1, each halving the side (DCGAN's layers,
  Radford et al., 2016: a kernel twice the stride covers every input pixel equally often,
  so the transposed version paints no checkerboard, Odena et al., 2016);
- a fifth convolution whose kernel is as large as the S/16 x S/16 map that is left, stride 1,
  no padding: a fully connected layer written as a convolution, down to 1 x 1.

The decoder mirrors this with transposed convolutions. So every side S that is a multiple of
16 works, and the size changes only the fifth layer's kernel. (In general there is one halving
per width in ``channels``; the MNIST DCGAN uses three, see :data:`MNIST_DCGAN_CHANNELS`.)

    S     sides through the encoder        fifth kernel
    32    32 -> 16 -> 8 -> 4 -> 2 -> 1      2 x 2    (MNIST, padded)
    64    64 -> 32 -> 16 -> 8 -> 4 -> 1     4 x 4    (the book's CPU default)
    128   128 -> 64 -> 32 -> 16 -> 8 -> 1   8 x 8
    160   160 -> 80 -> 40 -> 20 -> 10 -> 1  10 x 10  (the report's size)

The report's two errors, both kept as options here so a chapter can show them:

- its encoder and discriminator end in LeakyReLU then Tanh (:class:`ReportConvEncoder`):
  one vector in (-1, 1)^D, neither a mean and variance for q(z|x) nor one logit for D.
  :class:`ConvEncoder` has two heads (mu, log sigma^2); :class:`ConvDiscriminator` one logit.
- its decoder and generator put a ReLU before the final Sigmoid (``report_tail=True``):
  sigmoid(t) >= 0.5 for every t >= 0, so no pixel can be darker than mid-grey.

Two stabilizers of the GAN, neither the report's, are options here too: batch norm in the generator
(``batch_norm=True``, DCGAN's generator, Radford et al., 2016) and spectral normalization in the
discriminator (``spectral_norm=True``, Miyato et al., 2018). The others act on the training step
(:mod:`helpers.objectives`, :mod:`helpers.augment`).

As in :mod:`helpers.models`, decoders and generators return logits; images are sigmoid(logits).
Shapes: N batch, D latent dimension, S image side, C image channels (3 for Imagenette, 1 for MNIST).
"""
import torch
from torch import nn

from . import models

REPORT_CHANNELS = (16, 32, 32, 64)  # the report's hidden widths, from the image inwards (eqs. 3.5-3.8)
IMAGE_CHANNELS = 3                  # RGB; Imagenette's grayscale photos are repeated to 3 channels
MNIST_CHANNELS = (32, 64, 128, 256)  # the MNIST conv VAE's widths: DCGAN's doubling, at a CPU's budget
# The MNIST DCGAN's: three halvings, so its generator starts from a 4 x 4 map as DCGAN's does. From a
# 2 x 2 map (four halvings at 32 px) its batch-normalized generator collapsed to one image within 200
# steps in every variant tried (with or without spectral norm in D, DCGAN's initialization, another
# D), while the same layers from 4 x 4 trained.
MNIST_DCGAN_CHANNELS = (64, 128, 256)
MNIST_SIZE = 32                      # MNIST as the book loads it, padded from 28 px


def check_channels(channels) -> tuple:
    """``channels`` if it gives a positive width to each halving layer (at least one); a clear error otherwise."""
    channels = tuple(channels)
    if not channels or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
        raise ValueError(f"channels={channels} must list one positive width per halving layer, from the image "
                         f"inwards, e.g. the report's {REPORT_CHANNELS}.")
    return channels


def check_image_size(size, halvings: int = len(REPORT_CHANNELS)) -> int:
    """``size`` if ``halvings`` halvings and one full-size kernel take it to 1 x 1; a clear error otherwise."""
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 2**halvings
            and size % 2**halvings == 0):
        raise ValueError(f"Image size {size!r} is not supported: these conv networks halve the side "
                         f"{halvings} times, so it must be a multiple of {2**halvings}. Use 64 (the book's "
                         f"CPU default) or 160 (the report's).")
    return size


def last_kernel(size: int, halvings: int = len(REPORT_CHANNELS)) -> int:
    """The last layer's kernel side: what is left of ``size`` after the halvings (4 at 64 px, 10 at 160)."""
    return check_image_size(size, halvings) // 2**halvings


def normalized(conv: nn.Conv2d, spectral_norm: bool) -> nn.Module:
    """``conv``, its weight divided by its largest singular value if ``spectral_norm`` (Miyato et al.,
    2018, as :class:`helpers.models.MLPDiscriminator` does on MNIST). Each layer is then 1-Lipschitz
    (for the weight read as a C_out x C_in*k*k matrix, the approximation SNGAN makes), so D cannot sharpen
    its logits without bound; one power iteration per training forward pass estimates the value."""
    return nn.utils.parametrizations.spectral_norm(conv) if spectral_norm else conv


def halving_convs(channels, spectral_norm: bool = False) -> nn.Sequential:
    """4 x 4 stride-2 convolutions between consecutive ``channels``, each followed by LeakyReLU(0.2)."""
    layers = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [normalized(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), spectral_norm), models.leaky_relu()]
    return nn.Sequential(*layers)


class ConvReader(nn.Module):
    """What every network that reads images shares: the size it was built for and the halvings, one
    per width in ``channels`` (four for the report's networks).

    ``features(x)``: N x C x S x S -> N x W x S/2^h x S/2^h (W = ``channels[-1]``, h halvings);
    ``head(k)`` makes a last layer with ``k`` outputs, each a 1 x 1 map. ``spectral_norm`` normalizes
    every layer.
    """

    def __init__(self, size: int, channels, spectral_norm: bool = False, image_channels: int = IMAGE_CHANNELS):
        super().__init__()
        channels = check_channels(channels)
        self.size, self.width, self.halvings = check_image_size(size, len(channels)), channels[-1], len(channels)
        self.spectral_norm, self.image_channels = spectral_norm, image_channels
        self.trunk = halving_convs((image_channels, *channels), spectral_norm)

    def head(self, outputs: int) -> nn.Module:
        return normalized(nn.Conv2d(self.width, outputs, last_kernel(self.size, self.halvings)), self.spectral_norm)

    def features(self, x):
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.image_channels, self.size, self.size):
            raise ValueError(f"{type(self).__name__} was built for N x {self.image_channels} x {self.size} x {self.size} "
                             f"images, got {tuple(x.shape)}. Load the data at size={self.size}, or build the "
                             "network for the images' size.")
        return self.trunk(x)


class ReportConvEncoder(ConvReader):
    """The report's encoder (eq. 3.5) as written, which is also, layer for layer, its discriminator
    (eq. 3.7): Conv2d 3 -> 16 -> 32 -> 32 -> 64 -> D, LeakyReLU(0.2) after each, then Tanh.

    N x 3 x S x S -> N x D, every entry in (-1, 1). One vector per image: not the two (a mean and a
    positive variance) that q(z|x) needs, nor the one logit that D needs. Shown, not trained.
    """

    def __init__(self, size: int = 64, latent_dim: int = 100, channels=REPORT_CHANNELS):
        super().__init__(size, channels)
        self.tail = nn.Sequential(self.head(latent_dim), models.leaky_relu(), nn.Tanh())

    def forward(self, x):
        return self.tail(self.features(x)).flatten(1)


class ConvEncoder(ConvReader):
    """q(z|x) = N(mu, diag(sigma^2)): the report's four halving layers, then two fifth layers, one
    for mu and one for log sigma^2 (the reading :class:`helpers.models.MLPEncoder` uses on MNIST)."""

    def __init__(self, size: int = 64, latent_dim: int = 100, channels=REPORT_CHANNELS,
                 image_channels: int = IMAGE_CHANNELS):
        super().__init__(size, channels, image_channels=image_channels)
        self.mu, self.logvar = self.head(latent_dim), self.head(latent_dim)

    def forward(self, x) -> tuple:
        """x: N x C x S x S in [0, 1] -> (mu, logvar), each N x D."""
        h = self.features(x)
        return self.mu(h).flatten(1), self.logvar(h).flatten(1)


class ConvDiscriminator(ConvReader):
    """D(x) as a logit: the report's four halving layers, then a fifth layer with one output.
    ``spectral_norm=True`` normalizes all five (SNGAN's discriminator, Miyato et al., 2018)."""

    def __init__(self, size: int = 64, channels=REPORT_CHANNELS, spectral_norm: bool = False,
                 image_channels: int = IMAGE_CHANNELS):
        super().__init__(size, channels, spectral_norm, image_channels)
        self.logit = self.head(1)

    def forward(self, x):
        """x: N x C x S x S in [0, 1] -> logits N."""
        return self.logit(self.features(x)).flatten()


def doubling(c_in: int, c_out: int, bias: bool = True) -> nn.ConvTranspose2d:
    """A 4 x 4 stride-2 transposed convolution: the mirror of a halving layer, doubling the side."""
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)


class ConvDecoder(nn.Module):
    """p(x|z), and the GAN's generator (eqs. 3.6 and 3.8 are the same network): ConvTranspose2d
    D -> 64 -> 32 -> 32 -> 16 -> 3, a ReLU after each but the last. Returns logits.

    The first layer spreads the 1 x 1 latent over an S/16 x S/16 map; the other four double the side.
    ``report_tail=True`` keeps the report's ReLU after the last layer too: the logits are then
    >= 0 and the images sigmoid(logits) lie in [0.5, 1), never darker than mid-grey.

    ``batch_norm=True`` is DCGAN's generator (Radford et al., 2016) with the report's widths: batch
    norm between each transposed convolution but the last and its ReLU: each channel is rescaled to
    zero mean and unit variance over the batch (then a learned scale and shift), whatever the weights
    did to it, so differences between latents are neither shrunk away nor blown up layer by layer.
    Those convolutions lose their bias, which the mean subtraction would cancel. The last layer is
    left alone: its logits must be free to reach any brightness. In training mode a batch needs at
    least 2 latents (all leading axes count as one batch); in eval mode batch norm uses its running
    statistics, as for sampling after training.
    """

    def __init__(self, size: int = 64, latent_dim: int = 100, channels=REPORT_CHANNELS, report_tail: bool = False,
                 batch_norm: bool = False, image_channels: int = IMAGE_CHANNELS):
        super().__init__()
        channels = check_channels(channels)
        self.size = check_image_size(size, len(channels))
        widths = (*reversed(channels), image_channels)
        convs = [nn.ConvTranspose2d(latent_dim, widths[0], last_kernel(size, len(channels)), bias=not batch_norm),
                 *(doubling(c_in, c_out, bias=not batch_norm) for c_in, c_out in zip(widths[:-2], widths[1:-1])),
                 doubling(widths[-2], widths[-1])]
        layers = []
        for conv in convs[:-1]:
            layers += [conv, *([nn.BatchNorm2d(conv.out_channels)] if batch_norm else []), nn.ReLU()]
        self.net = nn.Sequential(*layers, convs[-1], *([nn.ReLU()] if report_tail else []))

    def forward(self, z):
        """z: ... x D (any leading axes, e.g. L samples x N) -> logits ... x C x S x S."""
        logits = self.net(z.reshape(-1, z.shape[-1], 1, 1))
        return logits.reshape(*z.shape[:-1], *logits.shape[1:])


# The Imagenette networks keep their weights in channels_last (NHWC) memory: oneDNN's convolutions run
# faster in it on this CPU. bench/imagenette_step.py measured, on one thread at 64 px, 1.20x the images/s
# of contiguous weights for the report's GAN and 1.18x for its VAE (1.27x and 1.06x at 160 px); converting
# the weights alone gave the GAN the same 1.20x, so the batches stay as they are. The arithmetic is the same.
IMAGENETTE_MEMORY_FORMAT = torch.channels_last


def imagenette_vae(size: int = 64, latent_dim: int = 100, channels=REPORT_CHANNELS,
                   report_tail: bool = False, likelihood: nn.Module = None) -> models.VAE:
    """The report's conv VAE (eqs. 3.5-3.6) read as a VAE: :class:`ConvEncoder` (mu, log sigma^2),
    :class:`ConvDecoder` (with the report's final ReLU if ``report_tail``), a standard Gaussian prior,
    and the report's Bernoulli likelihood unless ``likelihood`` is given (e.g.
    :class:`helpers.models.DiscretizedLikelihood`). Weights in :data:`IMAGENETTE_MEMORY_FORMAT`."""
    decoder = ConvDecoder(size, latent_dim, channels, report_tail)
    vae = models.VAE(ConvEncoder(size, latent_dim, channels), decoder, models.StandardNormalPrior(latent_dim),
                     likelihood)
    return vae.to(memory_format=IMAGENETTE_MEMORY_FORMAT)


def imagenette_gan(size: int = 64, latent_dim: int = 100, channels=REPORT_CHANNELS,
                   report_tail: bool = False, batch_norm: bool = False, spectral_norm: bool = False) -> models.GAN:
    """The report's conv GAN (eqs. 3.7-3.8) with a one-logit :class:`ConvDiscriminator` and the
    :class:`ConvDecoder` as generator (with the report's final ReLU if ``report_tail``); options:
    ``batch_norm`` in the generator (DCGAN's), ``spectral_norm`` in the discriminator (SNGAN's).
    Weights in :data:`IMAGENETTE_MEMORY_FORMAT`."""
    generator = ConvDecoder(size, latent_dim, channels, report_tail, batch_norm)
    gan = models.GAN(generator, ConvDiscriminator(size, channels, spectral_norm), latent_dim)
    return gan.to(memory_format=IMAGENETTE_MEMORY_FORMAT)


def mnist_conv_vae(latent_dim: int = 16, channels=MNIST_CHANNELS, prior: nn.Module = None) -> models.VAE:
    """A convolutional VAE for 1 x 32 x 32 digits, not the report's: :class:`ConvEncoder` and
    :class:`ConvDecoder` with ``channels`` (wider than the report's Imagenette widths), a Bernoulli
    decoder as in chapter 4 and a standard Gaussian prior, or ``prior`` (e.g.
    :class:`helpers.flows.RealNVPPrior`, as :func:`helpers.models.mnist_vae` takes one)."""
    encoder = ConvEncoder(MNIST_SIZE, latent_dim, channels, image_channels=1)
    decoder = ConvDecoder(MNIST_SIZE, latent_dim, channels, image_channels=1)
    return models.VAE(encoder, decoder, models.StandardNormalPrior(latent_dim) if prior is None else prior)


def mnist_dcgan(latent_dim: int = 100, channels=MNIST_DCGAN_CHANNELS, spectral_norm: bool = True) -> models.GAN:
    """A DCGAN for 1 x 32 x 32 digits, not the report's: batch norm in the generator (Radford et al.,
    2016) and, by default, spectral normalization in the discriminator (Miyato et al., 2018). With its
    three widths G grows 1 -> 4 -> 8 -> 16 -> 32 and D reads 32 -> 16 -> 8 -> 4 -> 1, as DCGAN's do."""
    generator = ConvDecoder(MNIST_SIZE, latent_dim, channels, batch_norm=True, image_channels=1)
    return models.GAN(generator, ConvDiscriminator(MNIST_SIZE, channels, spectral_norm, image_channels=1), latent_dim)
