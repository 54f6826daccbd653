"""The networks of the book: priors, the report's MLP VAE and MLP GAN.

Every prior has ``sample(n)`` and ``log_prob(z)``, so one :class:`VAE` class takes
any prior (a standard Gaussian here, a normalizing flow later). Decoders and
generators return *logits*; images are ``sigmoid(logits)``. The report puts a
sigmoid at the end of its decoder; computing the Bernoulli likelihood from
logits is the same model, but numerically safe (no log(0)).

Shapes: N batch, D latent dimension, P = C*H*W pixels.
"""
import math

import torch
from torch import nn

from . import losses

IMAGE_SHAPE = (1, 32, 32)  # MNIST padded to 32 x 32, as in the report


# ---------------------------------------------------------------- priors

class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I) in D dimensions."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("origin", torch.zeros(dim))  # follows the module to its device

    def sample(self, n: int) -> torch.Tensor:
        """n x D draws."""
        return torch.randn(n, self.dim, device=self.origin.device)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z of shape ... x D; returns ...."""
        return losses.normal_log_prob(z, self.origin, torch.zeros_like(self.origin))

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q || p) in closed form for q = N(mu, diag(exp(logvar))); mu, logvar: N x D -> N."""
        return losses.kl_standard_normal(mu, logvar)


class GaussianMixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(z; m_k, S_k), a mixture with full covariances.

    Used as an *ex-post* prior (Ghosh et al., 2020): fitted after training to the posterior
    means of the training images, then used only to draw latent codes for the decoder.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor):
        """weights: K, means: K x D, covariances: K x D x D."""
        super().__init__()
        self.register_buffer("weights", weights)
        self.register_buffer("means", means)
        self.register_buffer("scale_tril", torch.linalg.cholesky(covariances))
        self.dim = means.shape[1]

    @classmethod
    def fit(cls, codes: torch.Tensor, components: int = 10, seed: int = 0) -> "GaussianMixturePrior":
        """Maximum-likelihood mixture (EM, scikit-learn) of N x D codes."""
        from sklearn.mixture import GaussianMixture

        gmm = GaussianMixture(components, covariance_type="full", random_state=seed).fit(codes.double().cpu().numpy())
        weights, means, covariances = (torch.as_tensor(a, dtype=codes.dtype, device=codes.device)
                                       for a in (gmm.weights_, gmm.means_, gmm.covariances_))
        return cls(weights, means, covariances)

    def _mixture(self) -> torch.distributions.MixtureSameFamily:
        components = torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(self.weights), components)

    def sample(self, n: int) -> torch.Tensor:
        """n x D draws."""
        return self._mixture().sample((n,))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z of shape ... x D; returns ...."""
        return self._mixture().log_prob(z)


# ---------------------------------------------------------------- the report's MLPs

def mlp(sizes, activation) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation()`` after every layer but the last."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def leaky_relu():
    return nn.LeakyReLU(0.2)


class MLPEncoder(nn.Module):
    """q(z|x): the report's encoder trunk 1024 -> 1024 -> 512 -> 256 (LeakyReLU 0.2), then two
    linear heads for mu and log sigma^2 of a D-dimensional Gaussian.

    The report ends in Linear(256, 100) followed by Tanh, which yields one 100-d vector and
    cannot give both a mean and a (positive) variance; two heads is the standard reading.
    """

    def __init__(self, latent_dim: int = 100, pixels: int = 1024):
        super().__init__()
        self.trunk = nn.Sequential(mlp([pixels, 1024, 512, 256], leaky_relu), leaky_relu())
        self.mu = nn.Linear(256, latent_dim)
        self.logvar = nn.Linear(256, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple:
        """x: N x C x H x W in [0, 1] -> (mu, logvar), each N x D."""
        h = self.trunk(x.flatten(1))
        return self.mu(h), self.logvar(h)


class MLPDecoder(nn.Module):
    """p(x|z) (and the GAN's generator): the report's 100 -> 256 -> 512 -> 1024 -> 1024 with ReLU.

    Returns logits N x C x H x W; the report's final Sigmoid is applied by the caller
    (``torch.sigmoid``) or folded into the loss.
    """

    def __init__(self, latent_dim: int = 100, image_shape=IMAGE_SHAPE):
        super().__init__()
        self.image_shape = image_shape
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = mlp([latent_dim, 256, 512, 1024, pixels], nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: ... x D -> logits ... x C x H x W."""
        return self.net(z).unflatten(-1, self.image_shape)


class MLPDiscriminator(nn.Module):
    """D(x) as a logit: the report's trunk 1024 -> 1024 -> 512 -> 256 (LeakyReLU 0.2), then one logit.

    The report ends in Linear(256, 100) and Tanh: 100 numbers in [-1, 1] are not a probability
    that x is real. A single logit, D = sigmoid(logit), is what the GAN objective needs.
    """

    def __init__(self, pixels: int = 1024, spectral_norm: bool = False, hidden=(1024, 512, 256)):
        """``hidden``: the widths of the hidden layers; the report's by default, (512, 256) for the
        smaller discriminator of :func:`mnist_gan_small_d`."""
        super().__init__()
        self.net = nn.Sequential(mlp([pixels, *hidden], leaky_relu), leaky_relu(), nn.Linear(hidden[-1], 1))
        if spectral_norm:
            # Divide every weight matrix by its largest singular value (Miyato et al., 2018): D becomes
            # 1-Lipschitz, so it cannot grow arbitrarily confident; not in the report.
            for layer in self.net.modules():
                for name, child in layer.named_children():
                    if isinstance(child, nn.Linear):
                        setattr(layer, name, nn.utils.parametrizations.spectral_norm(child))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x C x H x W in [0, 1] -> logits N."""
        return self.net(x.flatten(1)).squeeze(-1)


# ---------------------------------------------------------------- the decoder's likelihood

class BernoulliLikelihood(nn.Module):
    """p(x|z) = prod_p Bernoulli(x_p; sigmoid(logit_p)): the report's choice. On grey levels it is a
    cross-entropy with soft targets, not a probability of the images (chapter 3)."""

    def log_prob(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """x: N x C x H x W in [0, 1]; logits: ... x N x C x H x W. Returns ... x N."""
        return losses.bernoulli_log_likelihood(x.flatten(1), logits.flatten(-3))


class DiscretizedLikelihood(nn.Module):
    """p(x|z) for 8-bit images: each pixel's level drawn from a logistic or normal distribution,
    discretized to the 256 levels (:func:`helpers.losses.discretized_log_likelihood`), with mean
    sigmoid(logit) as the Bernoulli's and one learned scale per channel (initially ``scale``), so a
    decoder needs no extra outputs. A probability of the images: comparable in bits per dimension.
    """

    # Below a thousandth of a level the bin's probability is 1 or 0 in float32: nothing left to learn.
    MIN_LOG_SCALE = math.log(1e-3 / 255)

    def __init__(self, channels: int, cdf: str = "logistic", scale: float = 0.1):
        super().__init__()
        self.cdf = losses.check_cdf(cdf)  # at construction, before any training
        self.log_scale = nn.Parameter(torch.full((channels,), math.log(scale)))

    def log_prob(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """x: N x C x H x W on the 256 levels of [0, 1]; logits: ... x N x C x H x W. Returns ... x N."""
        log_scale = self.log_scale.clamp(min=self.MIN_LOG_SCALE)[:, None, None].expand(logits.shape[-3:])
        return losses.discretized_log_likelihood(x.flatten(1), torch.sigmoid(logits).flatten(-3),
                                                 log_scale.flatten(), self.cdf)


# ---------------------------------------------------------------- the VAE

class VAE(nn.Module):
    """A VAE with any prior that has ``sample`` and ``log_prob`` and a decoder likelihood: Bernoulli
    by default, or a :class:`DiscretizedLikelihood`. Either way the decoder returns logits and the
    images it shows are sigmoid(logits), the likelihood's mean.

    ``forward(x)`` returns the per-batch loss terms, so a DistributedDataParallel wrapper
    (which synchronizes gradients through ``forward``) sees the whole computation.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module, likelihood: nn.Module = None):
        super().__init__()
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        self.likelihood = BernoulliLikelihood() if likelihood is None else likelihood

    def forward(self, x: torch.Tensor, samples: int = 1) -> dict:
        """Negative ELBO of a batch, in nats per image, with L = ``samples`` reparameterized draws.

        x: N x C x H x W in [0, 1]. Returns scalars ``loss`` = ``rec`` + ``kl`` where
        rec = -1/L sum_l log p(x | z_l) and kl = KL(q(z|x) || p(z)), both averaged over N.
        """
        mu, logvar = self.encoder(x)
        z = losses.reparameterize(mu, logvar, samples)                          # L x N x D
        log_px = self.likelihood.log_prob(x, self.decoder(z))                  # L x N
        if hasattr(self.prior, "kl"):
            kl = self.prior.kl(mu, logvar)                                      # closed form
        else:
            kl = losses.kl_monte_carlo(z, mu, logvar, self.prior.log_prob)      # any prior
        rec = -log_px.mean(0)
        return {"loss": (rec + kl).mean(), "rec": rec.mean(), "kl": kl.mean()}

    @torch.no_grad()
    def importance_log_likelihood(self, x: torch.Tensor, samples: int = 100) -> torch.Tensor:
        """The importance-weighted bound on log p(x) (Burda et al., 2016), in nats per image.

            log p(x) >= log 1/K sum_k p(x | z_k) p(z_k) / q(z_k | x),   z_k ~ q(z | x)

        K = 1 is the ELBO; the bound tightens as K grows. x: N x C x H x W. Returns N.
        """
        mu, logvar = self.encoder(x)
        z = losses.reparameterize(mu, logvar, samples)                                   # K x N x D
        log_px = self.likelihood.log_prob(x, self.decoder(z))                            # K x N
        log_w = log_px + self.prior.log_prob(z) - losses.normal_log_prob(z, mu, logvar)
        return torch.logsumexp(log_w, 0) - math.log(samples)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images from p(z) p(x|z), shown as sigmoid(logits) (see :meth:`decode`): n x C x H x W in [0, 1]."""
        return self.decode(self.prior.sample(n))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """sigmoid(decoder(z)), the Bernoulli's mean and a discretized likelihood's location:
        ... x D -> ... x C x H x W in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior means mu(x): N x C x H x W -> N x D (used for reconstructions, interpolation)."""
        return self.encoder(x)[0]


def mnist_vae(latent_dim: int = 100, prior: nn.Module = None) -> VAE:
    """The report's MNIST VAE (eq. 3.1) with a standard Gaussian prior, or with ``prior``
    (anything with ``sample`` and ``log_prob``, e.g. :class:`helpers.flows.RealNVPPrior`)."""
    prior = StandardNormalPrior(latent_dim) if prior is None else prior
    return VAE(MLPEncoder(latent_dim), MLPDecoder(latent_dim), prior)


# ---------------------------------------------------------------- the GAN

class GAN(nn.Module):
    """A generator G(z) (logits, like a decoder) and a discriminator D(x) (a logit)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_dim: int):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.prior = StandardNormalPrior(latent_dim)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) as images: N x D -> N x C x H x W in [0, 1] (the report's final Sigmoid)."""
        return torch.sigmoid(self.generator(z))

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n generated images, n x C x H x W in [0, 1]."""
        return self.generate(self.prior.sample(n))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Alias of ``generate`` without gradients, so latent-space tools treat VAEs and GANs alike."""
        return self.generate(z)


def mnist_gan(latent_dim: int = 100, spectral_norm: bool = False) -> GAN:
    """The report's MNIST GAN (eqs. 3.3-3.4) with a single-logit discriminator;
    ``spectral_norm`` normalizes the discriminator's layers (not in the report)."""
    return GAN(MLPDecoder(latent_dim), MLPDiscriminator(spectral_norm=spectral_norm), latent_dim)


class BatchNormGenerator(nn.Module):
    """G(z) of the standard MLP GAN recipe: the report's sizes 100 -> 256 -> 512 -> 1024 -> 1024, but each
    hidden layer followed by batch norm and LeakyReLU(0.2) instead of ReLU. Returns logits like
    :class:`MLPDecoder`. Batch norm rescales each hidden unit to unit variance across the batch (then
    a learned scale and shift), so differences between latents are not shrunk away layer by layer.
    The layout is that of common MLP GAN code, e.g. the PyTorch-GAN collection's ``gan.py``.

    In training mode batch norm normalizes with the batch's own statistics (so a batch needs at least
    2 latents); in eval mode with running averages, as for sampling after training.
    """

    def __init__(self, latent_dim: int = 100, image_shape=IMAGE_SHAPE):
        super().__init__()
        self.image_shape = image_shape
        sizes = [latent_dim, 256, 512, 1024]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), leaky_relu()]
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], pixels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: ... x D -> logits ... x C x H x W (batch norm sees all leading axes as one batch)."""
        logits = self.net(z.reshape(-1, z.shape[-1]))
        return logits.reshape(*z.shape[:-1], *self.image_shape)


def mnist_gan_small_d(latent_dim: int = 100) -> GAN:
    """A standard MLP GAN recipe, not the report's: :class:`BatchNormGenerator` and a smaller
    discriminator 1024 -> 512 -> 256 -> 1 (LeakyReLU 0.2). Chapter 6's control that separates the
    report's architecture from the book's objective and training loop."""
    return GAN(BatchNormGenerator(latent_dim), MLPDiscriminator(hidden=(512, 256)), latent_dim)
