"""The objectives of the book: ELBO terms for VAEs and the GAN losses (cross-entropy and hinge).

Shapes: N is the batch, D the latent dimension, L the number of Monte Carlo
samples per data point, P the number of pixels.
"""
import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------- Gaussians and the KL

def kl_normal(mu_q, logvar_q, mu_p=0.0, logvar_p=0.0) -> torch.Tensor:
    """KL( N(mu_q, var_q) || N(mu_p, var_p) ) per dimension, in closed form.

        KL = 1/2 [ log(var_p / var_q) + (var_q + (mu_q - mu_p)^2) / var_p - 1 ]

    All arguments broadcast (tensors of any shape, or floats for the prior); the
    result has their broadcast shape. Sum over the last axis for a diagonal Gaussian.
    """
    mu_p, logvar_p = torch.as_tensor(mu_p), torch.as_tensor(logvar_p)
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).square()) / logvar_p.exp() - 1)


def kl_standard_normal(mu, logvar) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ), summed over the latent axis.

    mu, logvar: N x D. Returns N. This is -1/2 sum_j (1 + log var_j - var_j - mu_j^2).
    """
    return -0.5 * (1 + logvar - logvar.exp() - mu.square()).sum(-1)


def reparameterize(mu, logvar, samples: int = 1) -> torch.Tensor:
    """Draw z = mu + sigma * eps with eps ~ N(0, I), differentiable in mu and logvar.

    mu, logvar: N x D. Returns L x N x D with L = ``samples``.
    """
    eps = torch.randn((samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    return mu + (0.5 * logvar).exp() * eps


def normal_log_prob(z, mu, logvar) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last axis. Shapes broadcast; returns z.shape[:-1]."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).square() / logvar.exp()).sum(-1)


def kl_monte_carlo(z, mu, logvar, log_prior) -> torch.Tensor:
    """Single-sample-per-row estimate of KL(q || p): mean over L of log q(z) - log p(z).

    z: L x N x D samples of q = N(mu, diag(exp(logvar))) (mu, logvar: N x D);
    log_prior: function mapping ... x D to ... (log p(z)). Returns N.
    Unbiased for any prior, which is why a flow prior can use it where no closed form exists.
    """
    return (normal_log_prob(z, mu, logvar) - log_prior(z)).mean(0)


def gaussian_entropy(logvar) -> torch.Tensor:
    """H[N(mu, diag(exp(logvar)))] = 1/2 sum_j (log 2 pi + 1 + logvar_j). logvar: N x D -> N."""
    return 0.5 * (LOG_2PI + 1 + logvar).sum(-1)


def kl_entropy_cross(z, logvar, log_prior) -> torch.Tensor:
    """KL(q || p) = -H[q] - E_q[log p(z)]: the entropy in closed form, only the cross-entropy by Monte Carlo.

    z: L x N x D samples of q = N(mu, diag(exp(logvar))) (logvar: N x D); log_prior maps
    ... x D to .... Returns N. Unbiased like :func:`kl_monte_carlo`, but not always less noisy:
    where q(z|x) equals the prior (a latent dimension the decoder ignores), log q - log p cancels
    draw by draw in :func:`kl_monte_carlo`, while here -log p(z) keeps its full spread.
    """
    return -gaussian_entropy(logvar) - log_prior(z).mean(0)


# ---------------------------------------------------------------- the decoder's likelihood

def bernoulli_log_likelihood(x, logits) -> torch.Tensor:
    """log p(x | z) for a Bernoulli decoder, summed over pixels.

    x: N x P in [0, 1] (grey levels act as soft targets); logits: ... x N x P (any leading
    axes, e.g. L samples). Returns ... x N. Computed from logits, not sigmoid outputs:
    ``binary_cross_entropy_with_logits`` never takes log(0).
    """
    x = x.expand_as(logits)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


# log F(t) of the standardized distributions a pixel's level can be drawn from; both are symmetric,
# F(-t) = 1 - F(t), which :func:`_log_bin_terms` uses to stay in the tail where the mass is small.
LOG_CDF = {"logistic": F.logsigmoid, "normal": torch.special.log_ndtr}


def check_cdf(cdf: str) -> str:
    """``cdf`` if it names a distribution of :data:`LOG_CDF`; a clear error otherwise."""
    if cdf not in LOG_CDF:
        raise ValueError(f"cdf={cdf!r}: use one of {sorted(LOG_CDF)}.")
    return cdf


def _log_bin_terms(lo: torch.Tensor, hi: torch.Tensor, log_cdf, right: torch.Tensor) -> tuple:
    """(log A, log B) with F(hi) - F(lo) = A - B for standardized bin edges lo < hi, elementwise.

    Where ``right`` (right of the centre: lo + hi > 0) the bin is F(-lo) - F(-hi), whose terms are
    small there, so the difference does not cancel to 0 as two values near 1 would; elsewhere it is
    F(hi) - F(lo). Then log(A - B) = log A + log(1 - B/A), with A > B.
    """
    a, b = torch.where(right, -lo, hi), torch.where(right, -hi, lo)
    return log_cdf(a), log_cdf(b)


def discretized_log_likelihood(x, mean, log_scale, cdf: str = "logistic", levels: int = 256) -> torch.Tensor:
    """log P(x | z) of images with ``levels`` grey levels per channel, summed over pixels.

    A pixel at level k, x = k / (levels - 1), gets the probability of its bin [x - h, x + h]
    (h = half a level) under a logistic or normal distribution with location ``mean`` and scale
    exp(``log_scale``); the bins of 0 and 1 reach to -inf and +inf, so the levels' probabilities sum
    to 1 (the discretized logistic of PixelCNN++, Salimans et al., 2017). A probability, not a
    density: -log P / (P log 2) is bits per dimension, comparable across models.

    x: N x P on the grid of levels in [0, 1]; mean: ... x N x P (any leading axes, e.g. L samples);
    log_scale: broadcastable to mean. Returns ... x N.
    """
    log_cdf, h = LOG_CDF[check_cdf(cdf)], 0.5 / (levels - 1)
    x = x.expand_as(mean)
    inv_scale = torch.exp(-log_scale)
    lo, hi = (x - h - mean) * inv_scale, (x + h - mean) * inv_scale
    bottom, top = x < h, x > 1 - h
    # Level 0's mass F(hi) is the larger term of its bin on the left side, level 255's F(-lo) on the
    # right side: one pair of log-CDFs per value serves the edges too (two evaluations, not four).
    log_a, log_b = _log_bin_terms(lo, hi, log_cdf, right=top | (~bottom & (lo + hi > 0)))
    log_p = torch.where(bottom | top, log_a, log_a + torch.log(-torch.expm1(log_b - log_a)))
    return log_p.sum(-1)


# ---------------------------------------------------------------- GAN losses on logits

def discriminator_loss(real_logits, fake_logits, real_targets=None, fake_targets=None) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))]: the discriminator's side of the minimax game.

    D = sigmoid(logit). BCE-with-logits computes log sigmoid(t) = -softplus(-t) stably.
    real_logits, fake_logits: N. Returns a scalar. The targets (N soft labels in [0, 1]) are
    1 for real and 0 for fake unless given; see :func:`discriminator_loss_noisy_labels`.
    """
    real_targets = torch.ones_like(real_logits) if real_targets is None else real_targets
    fake_targets = torch.zeros_like(fake_logits) if fake_targets is None else fake_targets
    real = F.binary_cross_entropy_with_logits(real_logits, real_targets)
    fake = F.binary_cross_entropy_with_logits(fake_logits, fake_targets)
    return real + fake


# Ranges of the noisy target labels: real images get a label in [0.7, 1], generated ones in [0, 0.3].
NOISY_REAL_TARGETS, NOISY_FAKE_TARGETS = (0.7, 1.0), (0.0, 0.3)


def noisy_labels(logits, low: float, high: float) -> torch.Tensor:
    """One target per logit, drawn uniformly from [low, high] (torch's global generator). logits: N -> N."""
    return torch.empty_like(logits).uniform_(low, high)


def discriminator_loss_noisy_labels(real_logits, fake_logits) -> torch.Tensor:
    """The discriminator loss against noisy target labels, drawn afresh at every call: real images
    are labelled uniformly in [0.7, 1], generated ones in [0, 0.3], instead of 1 and 0.

    The report's improvement "add noises in the target label for GAN" (its section 4.3) gives no
    details; this is the common form of Chintala et al.'s "How to train a GAN" (NIPS 2016 workshop,
    tip 6), a noisy cousin of Salimans et al.'s (2016) one-sided label smoothing. Real labels stop
    at 1: above 1 the BCE has no minimum (it falls without bound as the real logit grows). For a
    target y strictly inside (0, 1) the loss is smallest at the finite logit log(y / (1 - y)), so D
    gains little by growing its logits, the certainty that cut off chapter 6's generators.
    real_logits, fake_logits: N. Returns a scalar.
    """
    return discriminator_loss(real_logits, fake_logits,
                              noisy_labels(real_logits, *NOISY_REAL_TARGETS), noisy_labels(fake_logits, *NOISY_FAKE_TARGETS))


def generator_loss_minimax(fake_logits) -> torch.Tensor:
    """E[log(1 - D(G(z)))], the generator's minimax loss (the report's eq. 2.8). Saturates when D wins.

    log(1 - sigmoid(t)) = -softplus(t) = -BCE(t, target 0). fake_logits: N. Returns a scalar.
    """
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss_nonsaturating(fake_logits) -> torch.Tensor:
    """-E[log D(G(z))], the non-saturating generator loss (the report's eq. 2.9).

    = BCE(t, target 1): large gradients exactly when D confidently rejects the samples.
    fake_logits: N. Returns a scalar.
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_loss_hinge(real_logits, fake_logits) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]: the hinge loss of Lim & Ye (2017), as SNGAN
    (Miyato et al., 2018) trains its discriminator. D(x) is the raw logit here, not a probability.

    A real logit >= 1 or a fake logit <= -1 costs nothing and passes no gradient: D stops pushing
    images it already separates by a margin, instead of growing its logits without end as the
    cross-entropy rewards. real_logits, fake_logits: N. Returns a scalar.
    """
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_loss_hinge(fake_logits) -> torch.Tensor:
    """-E[D(G(z))], the generator's side of the hinge loss (Lim & Ye, 2017; Miyato et al., 2018):
    raise D's logit on generated images, with no margin and no saturation (the gradient per sample
    is -1 whatever the logit). fake_logits: N. Returns a scalar.
    """
    return -fake_logits.mean()
