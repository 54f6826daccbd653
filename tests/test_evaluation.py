"""The test-set numbers of a VAE: bounds, their standard errors, active dimensions."""
import math

import pytest
import torch
from torch import nn

from helpers import evaluation, models


class HalfActiveEncoder(nn.Module):
    """mu(x) = the first 3 pixel means copied to 3 dims, and 0 in the other D - 3: 3 active dimensions."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        n = len(x)
        mu = torch.zeros(n, self.dim)
        mu[:, :3] = 4 * x.flatten(1)[:, :3]
        return mu, torch.full((n, self.dim), -1.0)


def small_vae(dim=5, pixels=4):
    decoder = nn.Sequential(nn.Linear(dim, pixels), nn.Unflatten(-1, (1, 2, 2)))
    return models.VAE(HalfActiveEncoder(dim), decoder, models.StandardNormalPrior(dim))


def images(n=64):
    return torch.rand(n, 1, 2, 2, generator=torch.Generator().manual_seed(0))


def test_bounds_are_the_means_of_the_per_image_bounds_with_their_standard_errors():
    vae, x = small_vae(), images()
    torch.manual_seed(1)
    numbers = evaluation.vae_test_bounds(vae, x, iw_samples=20, batch=10)
    torch.manual_seed(1)
    neg_elbo = torch.cat([-vae.importance_log_likelihood(b, samples=1) for b in x.split(10)])
    neg_iw = torch.cat([-vae.importance_log_likelihood(b, samples=20) for b in x.split(10)])
    assert numbers["neg_elbo"] == pytest.approx(neg_elbo.mean().item())
    assert numbers["neg_iw"] == pytest.approx(neg_iw.mean().item())
    assert numbers["neg_elbo_se"] == pytest.approx(neg_elbo.std().item() / math.sqrt(64))
    assert numbers["neg_iw"] < numbers["neg_elbo"], "20 importance samples give a tighter bound than one"


def test_active_dimensions_are_those_whose_posterior_mean_varies():
    assert evaluation.vae_test_bounds(small_vae(dim=5), images(), iw_samples=2)["active"] == 3


def test_bits_per_dimension_of_a_uniform_8_bit_image_is_8():
    shape = (3, 4, 5)
    nats_of_uniform = math.prod(shape) * math.log(256)  # each of the 60 values has probability 1/256
    assert evaluation.bits_per_dimension(nats_of_uniform, shape) == pytest.approx(8.0)
