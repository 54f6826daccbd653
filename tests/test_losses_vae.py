"""The VAE's loss terms, checked against torch.distributions, autograd and the math.

Each test reads as one line of the specification in the chapter "The ELBO":
the closed-form KL is the KL, its Monte Carlo estimate agrees with it, the
reparameterization draws from N(mu, sigma^2) and lets gradients through, and
the Bernoulli likelihood is computed from logits without ever taking log(0).
Statistical tests use a fixed seed and tolerances of a few standard errors.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

from helpers import losses
from helpers.losses import (
    bernoulli_log_likelihood,
    kl_monte_carlo,
    kl_normal,
    kl_standard_normal,
    normal_log_prob,
    reparameterize,
)

N, D = 6, 5


@pytest.fixture(autouse=True)
def seed():
    """A fixed seed: the statistical tests draw the same samples on every run."""
    torch.manual_seed(0)


def random_gaussian(*shape, dtype=torch.float64):
    """mu and logvar of a random diagonal Gaussian; variances between about 0.1 and 7."""
    return torch.randn(*shape, dtype=dtype), 4 * torch.rand(*shape, dtype=dtype) - 2


def torch_kl(mu_q, logvar_q, mu_p, logvar_p):
    return kl_divergence(Normal(mu_q, (0.5 * logvar_q).exp()), Normal(mu_p, (0.5 * logvar_p).exp()))


# ---------------------------------------------------------------- closed-form KL

def test_kl_normal_matches_torch_for_standard_prior():
    mu, logvar = random_gaussian(N, D)
    ours = kl_normal(mu, logvar)
    reference = torch_kl(mu, logvar, torch.zeros(()), torch.zeros(()))
    assert ours.shape == (N, D), "kl_normal returns one KL per dimension; sum over the last axis yourself"
    torch.testing.assert_close(ours, reference, msg="KL(N(mu, var) || N(0, 1)) differs from "
                               "torch.distributions.kl_divergence: check the signs of mu^2 and var")


def test_kl_normal_matches_torch_for_nonstandard_prior():
    mu_q, logvar_q = random_gaussian(N, D)
    mu_p, logvar_p = random_gaussian(N, D)
    torch.testing.assert_close(
        kl_normal(mu_q, logvar_q, mu_p, logvar_p), torch_kl(mu_q, logvar_q, mu_p, logvar_p),
        msg="KL against a prior N(mu_p, var_p) differs from torch: (mu_q - mu_p)^2 and var_q "
            "must both be divided by var_p, and log(var_p / var_q) enters with weight 1/2")


def test_kl_normal_broadcasts_prior_parameters():
    mu_q, logvar_q = random_gaussian(N, D)
    mu_p, logvar_p = random_gaussian(D)  # one prior per latent dimension, shared by the batch
    per_dim = kl_normal(mu_q, logvar_q, mu_p, logvar_p)
    assert per_dim.shape == (N, D), f"expected the broadcast shape {(N, D)}, got {tuple(per_dim.shape)}"
    torch.testing.assert_close(per_dim, torch_kl(mu_q, logvar_q, mu_p.expand(N, D), logvar_p.expand(N, D)))

    floats = kl_normal(mu_q, logvar_q, 0.5, -1.0)  # a scalar prior given as Python floats
    torch.testing.assert_close(floats, torch_kl(mu_q, logvar_q, torch.tensor(0.5), torch.tensor(-1.0)),
                               msg="float prior parameters must act like tensors of that value")


def test_kl_of_identical_gaussians_is_zero():
    mu, logvar = random_gaussian(N, D)
    kl = kl_normal(mu, logvar, mu, logvar)
    torch.testing.assert_close(kl, torch.zeros_like(kl), msg="KL(q || q) must be exactly 0")
    torch.testing.assert_close(kl_standard_normal(torch.zeros(N, D), torch.zeros(N, D)), torch.zeros(N),
                               msg="KL(N(0, 1) || N(0, 1)) must be 0: the standard-normal formula "
                                   "has +1 and -var that cancel at var = 1")


def test_kl_is_nonnegative():
    mu_q, logvar_q = random_gaussian(10_000, D)
    mu_p, logvar_p = random_gaussian(10_000, D)
    kl = kl_normal(mu_q, logvar_q, mu_p, logvar_p)
    assert (kl >= 0).all(), f"KL can never be negative (Gibbs' inequality); min was {kl.min().item():.3g}"
    assert (kl_standard_normal(mu_q, logvar_q) >= 0).all(), (
        "KL to N(0, I) was negative: with +mu^2 inside -1/2 sum(1 + logvar - var - mu^2) "
        "a large mean would lower the KL")


def test_kl_standard_normal_is_kl_normal_summed():
    mu, logvar = random_gaussian(N, D)
    summed = kl_normal(mu, logvar).sum(-1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), summed,
                               msg="the diagonal-Gaussian KL is the sum of the per-dimension KLs")


def test_kl_standard_normal_grows_with_the_mean():
    logvar = torch.zeros(3, D, dtype=torch.float64)
    mu = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)[:, None].expand(3, D)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), D * mu[:, 0].square() / 2,
                               msg="with var = 1 the KL to N(0, I) is |mu|^2 / 2: it must grow with mu")


# ---------------------------------------------------------------- Monte Carlo KL

@pytest.mark.parametrize("prior", ["standard", "nonstandard"])
def test_kl_monte_carlo_agrees_with_closed_form(prior):
    mu, logvar = random_gaussian(N, D)
    mu_p, logvar_p = (torch.zeros(D), torch.zeros(D)) if prior == "standard" else random_gaussian(D)
    log_prior = lambda z: normal_log_prob(z, mu_p, logvar_p)  # noqa: E731
    samples = 100_000
    z = reparameterize(mu, logvar, samples)
    estimate = kl_monte_carlo(z, mu, logvar, log_prior)
    assert estimate.shape == (N,), f"one estimate per data point expected, got shape {tuple(estimate.shape)}"

    per_sample = normal_log_prob(z, mu, logvar) - log_prior(z)  # L x N, the terms being averaged
    torch.testing.assert_close(estimate, per_sample.mean(0), msg="kl_monte_carlo must average log q - log p over L")
    standard_error = per_sample.std(0) / math.sqrt(samples)
    exact = kl_normal(mu, logvar, mu_p, logvar_p).sum(-1)
    z_scores = (estimate - exact) / standard_error
    assert z_scores.abs().max() < 4, (
        f"Monte Carlo KL is {z_scores.abs().max():.1f} standard errors from the closed form; an unbiased "
        "estimator lands within 4 almost always. Are the samples drawn from q, and is it log q - log p?")


# ---------------------------------------------------------------- reparameterization

def test_reparameterize_shape():
    mu, logvar = random_gaussian(N, D)
    assert reparameterize(mu, logvar).shape == (1, N, D), "one sample per data point by default: 1 x N x D"
    assert reparameterize(mu, logvar, samples=7).shape == (7, N, D), "L samples stack on a new leading axis"


def test_reparameterize_has_the_right_mean_and_variance():
    mu, logvar = random_gaussian(N, D)
    samples = 100_000
    z = reparameterize(mu, logvar, samples)
    var = logvar.exp()
    mean_error = (z.mean(0) - mu) / (var / samples).sqrt()
    assert mean_error.abs().max() < 5, (
        f"sample mean is {mean_error.abs().max():.1f} standard errors from mu: is z = mu + sigma * eps?")
    # The sample variance of a Gaussian has standard error var * sqrt(2 / (samples - 1)).
    var_error = (z.var(0) - var) / (var * math.sqrt(2 / (samples - 1)))
    assert var_error.abs().max() < 5, (
        f"sample variance is {var_error.abs().max():.1f} standard errors from exp(logvar): "
        "sigma is exp(logvar / 2), not exp(logvar) or logvar")


def test_reparameterize_gradients_reach_mu_and_logvar():
    mu, logvar = random_gaussian(N, D)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    reparameterize(mu, logvar, samples=4).square().sum().backward()
    assert mu.grad is not None and mu.grad.abs().min() > 0, "no gradient reached mu: was z detached?"
    assert logvar.grad is not None and logvar.grad.abs().min() > 0, (
        "no gradient reached logvar: the noise must be scaled by exp(logvar / 2) inside the graph")


def test_reparameterize_pathwise_derivatives():
    mu, logvar = random_gaussian(N, D)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    z = reparameterize(mu, logvar)[0]
    dz_dmu, dz_dlogvar = torch.autograd.grad(z.sum(), (mu, logvar))
    torch.testing.assert_close(dz_dmu, torch.ones_like(mu), msg="dz/dmu must be 1 for z = mu + sigma * eps")
    torch.testing.assert_close(dz_dlogvar, 0.5 * (z - mu).detach(),
                               msg="dz/dlogvar must be sigma * eps / 2 = (z - mu) / 2 for sigma = exp(logvar / 2)")


def test_reparameterize_gradients_estimate_the_true_gradient():
    # E[z^2] = mu^2 + var, so d/dmu = 2 mu and d/dlogvar = var. Each of L copies of (mu, logvar)
    # gets one draw, so autograd returns L single-sample gradients; their mean must agree with
    # the exact gradient to within a few standard errors.
    mu0, logvar0 = random_gaussian(D)
    samples = 100_000
    mu = mu0.expand(samples, D).clone().requires_grad_(True)
    logvar = logvar0.expand(samples, D).clone().requires_grad_(True)
    z = reparameterize(mu, logvar)[0]
    grads = torch.autograd.grad(z.square().sum(), (mu, logvar))
    for name, grad, exact in zip(("mu", "logvar"), grads, (2 * mu0, logvar0.exp())):
        z_score = (grad.mean(0) - exact) / (grad.std(0) / math.sqrt(samples))
        assert z_score.abs().max() < 5, (
            f"the reparameterization gradient w.r.t. {name} is {z_score.abs().max():.1f} standard errors "
            f"from the exact d E[z^2] / d {name}: the estimator should be unbiased")


# ---------------------------------------------------------------- Gaussian log-density

def test_normal_log_prob_matches_torch():
    mu, logvar = random_gaussian(N, D)
    z = torch.randn(3, N, D, dtype=torch.float64)
    reference = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    ours = normal_log_prob(z, mu, logvar)
    assert ours.shape == (3, N), "normal_log_prob sums over the last (latent) axis and broadcasts the rest"
    torch.testing.assert_close(ours, reference, msg="log N(z; mu, var) differs from torch.distributions.Normal")


# ---------------------------------------------------------------- Bernoulli decoder

def test_bernoulli_log_likelihood_matches_torch_for_binary_x():
    pixels = 20
    x = torch.randint(0, 2, (N, pixels)).double()
    logits = 3 * torch.randn(4, N, pixels, dtype=torch.float64)  # 4 Monte Carlo samples per data point
    ours = bernoulli_log_likelihood(x, logits)
    assert ours.shape == (4, N), "leading sample axes stay, the pixel axis is summed"
    reference = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum(-1)
    torch.testing.assert_close(ours, reference, msg="log p(x|z) differs from torch.distributions.Bernoulli")
    assert (ours <= 0).all(), "a log-probability of binary data is never positive"


def test_bernoulli_log_likelihood_is_finite_for_extreme_logits():
    # Every pixel confidently wrong: the exact log-likelihood is -softplus(100) per pixel, about -100.
    x = torch.tensor([[1.0, 0.0]])
    logits = torch.tensor([[-100.0, 100.0]])
    naive = (x * torch.sigmoid(logits).log() + (1 - x) * (1 - torch.sigmoid(logits)).log()).sum(-1)
    assert torch.isinf(naive).all(), "the naive sigmoid-then-log version is expected to underflow here"
    ours = bernoulli_log_likelihood(x, logits)
    assert torch.isfinite(ours).all(), "log p(x|z) must be computed from logits, never as log(sigmoid(.))"
    torch.testing.assert_close(ours, -2 * F.softplus(torch.tensor([100.0])),
                               msg="log sigmoid(t) = -softplus(-t) and log(1 - sigmoid(t)) = -softplus(t)")

    logits.requires_grad_(True)
    bernoulli_log_likelihood(x, logits).sum().backward()
    torch.testing.assert_close(logits.grad, x - torch.sigmoid(logits.detach()),
                               msg="d log p / d logit = x - sigmoid(logit): it must not vanish when wrong")


# ------------------------------------------------------------------ discretized likelihoods of 8-bit pixels

LEVELS = torch.arange(256, dtype=torch.double) / 255


@pytest.mark.parametrize("cdf", ["logistic", "normal"])
@pytest.mark.parametrize("mean, log_scale", [(0.5, -2.0), (0.0, -7.0), (1.0, -7.0), (0.3, 1.0), (-2.0, -3.0), (3.0, -1.0),
                                             (0.5, -7.0), (0.123, -5.5)])
def test_the_probabilities_of_the_256_levels_sum_to_one(cdf, mean, log_scale):
    # One pixel per level: x = k / 255 for k = 0..255, all with the same distribution.
    log_p = losses.discretized_log_likelihood(LEVELS[:, None], torch.full((256, 1), mean, dtype=torch.double),
                                              torch.tensor(log_scale, dtype=torch.double), cdf=cdf)
    assert torch.isfinite(log_p).all()
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("cdf", ["logistic", "normal"])
def test_each_bin_holds_the_mass_the_distribution_gives_it(cdf):
    g = torch.Generator().manual_seed(0)
    x = LEVELS[torch.randint(1, 255, (50,), generator=g)][:, None]  # inner levels
    log_scale = torch.empty(50, 1, dtype=torch.double).uniform_(-5, -1, generator=g)
    scale, h = log_scale.exp(), 0.5 / 255
    # Within 3 scales of the pixel, where the plain difference of two CDFs below is still accurate
    # (further out it cancels to 0; the next test covers the tails).
    mean = x + scale * torch.empty(50, 1, dtype=torch.double).uniform_(-3, 3, generator=g)
    if cdf == "normal":
        dist = torch.distributions.Normal(mean, scale)
    else:  # the logistic as a sigmoid-transformed uniform, built independently of losses
        dist = torch.distributions.TransformedDistribution(
            torch.distributions.Uniform(torch.zeros_like(mean), torch.ones_like(mean)),
            [torch.distributions.transforms.SigmoidTransform().inv,
             torch.distributions.transforms.AffineTransform(mean, scale)])
    expected = (dist.cdf(x + h) - dist.cdf(x - h)).log().squeeze(1)
    assert torch.allclose(losses.discretized_log_likelihood(x, mean, log_scale, cdf=cdf), expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("cdf", ["logistic", "normal"])
def test_the_edge_levels_take_the_whole_tail(cdf):
    # Level 0 gets F(h), level 255 gets 1 - F(1 - h): all the mass below and above.
    mean, log_scale = torch.tensor([0.02, 0.97], dtype=torch.double), torch.tensor([-2.5, -3.0], dtype=torch.double)
    h, s = 0.5 / 255, log_scale.exp()
    if cdf == "normal":
        below, above = Normal(mean[0], s[0]).cdf(mean.new_tensor(h)), 1 - Normal(mean[1], s[1]).cdf(mean.new_tensor(1 - h))
    else:
        below, above = torch.sigmoid((h - mean[0]) / s[0]), 1 - torch.sigmoid((1 - h - mean[1]) / s[1])
    log_p = losses.discretized_log_likelihood(torch.tensor([[0.0], [1.0]], dtype=torch.double), mean[:, None],
                                              log_scale[:, None], cdf=cdf)
    assert torch.allclose(log_p, torch.stack([below, above]).log(), rtol=1e-9)


@pytest.mark.parametrize("cdf", ["logistic", "normal"])
def test_far_tails_stay_finite_and_keep_a_gradient(cdf):
    # A sharp distribution far from the pixel: F(hi) and F(lo) both round to 1 (or 0) in float32, yet
    # the bin's log-probability must stay finite, and so must its gradient, edges included.
    x = torch.tensor([[0.0, 0.2, 0.9, 1.0]])
    mean = torch.tensor([[0.9, 0.95, 0.1, 0.05]], requires_grad=True)
    log_scale = torch.full((1, 4), -6.0, requires_grad=True)
    log_p = losses.discretized_log_likelihood(x, mean, log_scale, cdf=cdf)
    log_p.backward()
    assert torch.isfinite(log_p).all() and log_p.item() < -100
    assert torch.isfinite(mean.grad).all() and torch.isfinite(log_scale.grad).all()


def test_an_unknown_cdf_is_refused():
    with pytest.raises(ValueError, match="cdf='cauchy'"):
        losses.discretized_log_likelihood(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), cdf="cauchy")
