"""Test-set numbers of a trained VAE: its negative ELBO and importance-weighted bound, and how many
latent dimensions it uses.

Both bounds are in nats per image, averaged over the images given, each with the standard error of
that mean (the spread over images, not over seeds). With a Bernoulli decoder on grey levels they bound
a cross-entropy, not a log-likelihood (chapter 3); with a discretized likelihood they bound
-log P(x) of the 8-bit images, and :func:`bits_per_dimension` makes them comparable across sizes.
"""
import math

import torch

from .models import VAE

# A latent dimension is active when its posterior mean varies across images by more than this
# (Burda et al., 2016): Var_x E_q[z_d] > 0.01. An inactive one is ignored by the decoder: q = p there.
ACTIVE_VARIANCE = 0.01


def _mean_and_se(values: torch.Tensor) -> tuple:
    """Mean of N values and its standard error, sd / sqrt(N)."""
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


@torch.no_grad()
def vae_test_bounds(vae: VAE, x: torch.Tensor, iw_samples: int = 100, batch: int = 500) -> dict:
    """Negative ELBO (one reparameterized draw per image) and negative IW-``iw_samples`` bound of
    images x (N x C x H x W in [0, 1]), and the number of active latent dimensions.

    Returns ``neg_elbo``, ``neg_iw`` (means over N), ``neg_elbo_se``, ``neg_iw_se`` (their standard
    errors) and ``active``. Draws from the global random generator: seed it for repeatable numbers.
    """
    neg_elbo = torch.cat([-vae.importance_log_likelihood(b, samples=1) for b in x.split(batch)])
    neg_iw = torch.cat([-vae.importance_log_likelihood(b, samples=iw_samples) for b in x.split(batch)])
    mu = torch.cat([vae.encode(b) for b in x.split(batch)])
    (elbo, elbo_se), (iw, iw_se) = _mean_and_se(neg_elbo), _mean_and_se(neg_iw)
    return {"neg_elbo": elbo, "neg_elbo_se": elbo_se, "neg_iw": iw, "neg_iw_se": iw_se,
            "active": int((mu.var(0) > ACTIVE_VARIANCE).sum())}


def bits_per_dimension(nats: float, image_shape) -> float:
    """A negative log-likelihood (or bound) of one image in nats, per pixel and channel in bits:
    nats / (C H W ln 2) for ``image_shape`` (C, H, W). 8 bits is what storing raw 8-bit values costs."""
    return nats / (math.prod(image_shape) * math.log(2))
