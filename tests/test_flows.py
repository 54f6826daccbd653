"""The RealNVP prior: invertibility, the log-determinant against autograd, a density that
integrates to one, one log-density per sample, and sampling through the inverse.

A new flow is the identity (its last layers start at zero), which would pass most of these
checks trivially; every test therefore uses a flow with random, non-zero output layers.
"""
import math

import pytest
import torch
from torch import distributions as dist

from helpers import flows, losses, models


def random_flow(dim, layers=4, hidden=32, scale=0.5, seed=0) -> flows.RealNVPPrior:
    """A flow far from the identity: every parameter, the zero-initialized ones too, drawn at random."""
    torch.manual_seed(seed)
    flow = flows.RealNVPPrior(dim, layers=layers, hidden=hidden).double()
    with torch.no_grad():
        for coupling in flow.couplings:
            for p in coupling.net[-1].parameters():
                p.normal_(0, scale)
    return flow


def test_inverse_undoes_forward():
    flow = random_flow(6)
    z = torch.randn(50, 6, dtype=torch.double)
    u, _ = flow(z)
    assert (u - z).abs().max() > 0.1, "the test flow must not be the identity"
    assert torch.allclose(flow.inverse(u), z, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dim", [2, 5, 8])
def test_log_det_equals_autograd_jacobian(dim):
    flow = random_flow(dim, seed=dim)
    for z in torch.randn(3, dim, dtype=torch.double):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow(v)[0], z)
        _, log_abs_det = torch.linalg.slogdet(jacobian)
        assert flow(z)[1].item() == pytest.approx(log_abs_det.item(), abs=1e-9)


def test_two_dimensional_density_integrates_to_one():
    flow = random_flow(2, layers=6, scale=0.1)  # small enough that the mass stays inside the grid
    side = torch.linspace(-12, 12, 801, dtype=torch.double)
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        log_p = flow.log_prob(grid)
    central = grid.norm(dim=1) < 3
    gaussian = dist.Normal(0.0, 1.0).log_prob(grid).sum(-1)
    assert (log_p - gaussian)[central].abs().max() > 0.5, "the test flow must reshape the Gaussian"
    density = log_p.exp().reshape(801, 801)
    mass = torch.trapezoid(torch.trapezoid(density, side, dim=1), side)
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


def test_one_log_density_per_sample_for_l_by_n_inputs():
    flow = random_flow(4)
    z = torch.randn(3, 5, 4, dtype=torch.double)                    # L x N x D
    log_p = flow.log_prob(z)
    assert log_p.shape == (3, 5)
    one_by_one = torch.stack([torch.stack([flow.log_prob(z[l, n]) for n in range(5)]) for l in range(3)])
    assert torch.allclose(log_p, one_by_one)
    # log p(z) = log N(F(z)) + log|det|: the determinant enters once per code, not once per dimension
    u, log_det = flow(z)
    gaussian = dist.Normal(0.0, 1.0).log_prob(u).sum(-1)
    assert torch.allclose(log_p, gaussian + log_det)


def test_samples_go_through_the_inverse():
    flow = random_flow(4)
    torch.manual_seed(7)
    z = flow.sample(1000)
    torch.manual_seed(7)
    u = torch.randn(1000, 4, dtype=torch.double)
    assert torch.allclose(flow(z)[0], u, atol=1e-6)
    assert (z - u).abs().mean() > 0.1, "samples must be mapped by F^-1, not returned as N(0, I) draws"


def test_samples_follow_log_prob():
    """Samples and density describe the same distribution: E_p[log p] by sampling equals -H estimated
    on a grid. A forward/inverse mix-up (sampling with F instead of F^-1) breaks this."""
    flow = random_flow(2, layers=6, scale=0.1)
    with torch.no_grad():
        torch.manual_seed(1)
        mean_log_p = flow.log_prob(flow.sample(200_000)).mean()
        side = torch.linspace(-12, 12, 801, dtype=torch.double)
        log_p = flow.log_prob(torch.cartesian_prod(side, side)).reshape(801, 801)
        integrand = log_p.exp() * log_p
        by_quadrature = torch.trapezoid(torch.trapezoid(integrand, side, dim=1), side)
    assert mean_log_p.item() == pytest.approx(by_quadrature.item(), abs=0.01)


def test_new_flow_is_the_standard_normal():
    flow = flows.RealNVPPrior(10)
    z = torch.randn(20, 10)
    expected = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(flow.log_prob(z), expected, atol=1e-5)


def test_scales_are_bounded_so_huge_weights_stay_finite():
    flow = random_flow(6, scale=1e4)
    z = 3 * torch.randn(100, 6, dtype=torch.double)
    u, log_det = flow(z)
    assert log_det.abs().max() <= len(flow.couplings) * 3 * flows.SCALE_BOUND + 1e-9
    assert torch.isfinite(flow.log_prob(z)).all()
    assert torch.isfinite(flow.inverse(u)).all()


def test_vae_trains_through_a_flow_prior():
    """Gradients reach the flow's parameters through the KL term of the VAE's loss."""
    torch.manual_seed(0)
    vae = models.VAE(models.MLPEncoder(8), models.MLPDecoder(8), flows.RealNVPPrior(8, layers=2, hidden=16))
    x = (torch.rand(4, 1, 32, 32) > 0.7).float()
    vae(x, samples=2)["loss"].backward()
    last = vae.prior.couplings[0].net[-1].weight
    assert last.grad is not None and last.grad.abs().sum() > 0


def test_gaussian_entropy_matches_torch_distributions():
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    expected = dist.Normal(mu, (0.5 * logvar).exp()).entropy().sum(-1)
    assert torch.allclose(losses.gaussian_entropy(logvar), expected, atol=1e-6)


def test_both_kl_estimators_average_to_the_closed_form():
    """With p = N(0, I) the two Monte Carlo forms must agree, on average, with the closed-form KL."""
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 5, dtype=torch.double), 0.5 * torch.randn(3, 5, dtype=torch.double)
    z = losses.reparameterize(mu, logvar, samples=200_000)
    prior = models.StandardNormalPrior(5).double()
    exact = losses.kl_standard_normal(mu, logvar)
    for estimator in (losses.kl_monte_carlo(z, mu, logvar, prior.log_prob),
                      losses.kl_entropy_cross(z, logvar, prior.log_prob)):
        assert torch.allclose(estimator, exact, atol=0.03), (estimator, exact)
    assert not math.isclose(losses.kl_entropy_cross(z[:1], logvar, prior.log_prob)[0].item(), exact[0].item(),
                            abs_tol=1e-6), "one draw is a noisy estimate, not the closed form"
