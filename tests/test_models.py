"""The VAE's loss terms against torch.distributions, the GAN's shapes, and latent interpolation."""
import math

import pytest
import torch
from torch import distributions as dist

from helpers import conv_models, explore, losses, models, objectives


def binary_batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 32, 32, generator=g) > 0.7).float()


class PriorWithoutClosedForm(torch.nn.Module):
    """A standard Gaussian that hides its closed-form KL, forcing the Monte Carlo path."""

    def __init__(self, dim):
        super().__init__()
        self.inner = models.StandardNormalPrior(dim)

    def sample(self, n):
        return self.inner.sample(n)

    def log_prob(self, z):
        return self.inner.log_prob(z)


def test_vae_terms_match_torch_distributions():
    torch.manual_seed(0)
    vae, x = models.mnist_vae(latent_dim=8), binary_batch()
    torch.manual_seed(1)
    terms = vae(x, samples=3)
    mu, logvar = vae.encoder(x)
    q = dist.Normal(mu, (0.5 * logvar).exp())
    kl = dist.kl_divergence(q, dist.Normal(0.0, 1.0)).sum(-1).mean()
    torch.manual_seed(1)
    z = mu + (0.5 * logvar).exp() * torch.randn(3, *mu.shape)  # the same draws as inside forward
    rec = -dist.Bernoulli(logits=vae.decoder(z).flatten(2)).log_prob(x.flatten(1)).sum(-1).mean()
    assert torch.allclose(terms["kl"], kl, rtol=1e-5), "KL term must be KL(q(z|x) || N(0, I)) per image"
    assert torch.allclose(terms["rec"], rec, rtol=1e-5), "rec must be -1/L sum_l log p(x|z_l), summed over pixels"
    assert torch.allclose(terms["loss"], terms["rec"] + terms["kl"])


def test_monte_carlo_kl_path_agrees_with_the_closed_form_on_average():
    torch.manual_seed(0)
    closed = models.mnist_vae(latent_dim=4)
    with torch.no_grad():  # move q away from the prior, so the KL is far from 0
        closed.encoder.mu.bias.fill_(0.5)
        closed.encoder.logvar.bias.fill_(-1.0)
    mc = models.VAE(closed.encoder, closed.decoder, PriorWithoutClosedForm(4))
    x = binary_batch(2)
    torch.manual_seed(2)
    estimate = mc(x, samples=20_000)["kl"]
    assert torch.allclose(estimate, closed(x)["kl"], rtol=0.05), \
        "a prior without a closed form falls back to an unbiased Monte Carlo KL"


def test_importance_weighted_bound_is_above_the_elbo_and_k1_is_the_elbo():
    torch.manual_seed(0)
    vae, x = models.mnist_vae(latent_dim=8), binary_batch(4)
    torch.manual_seed(3)
    elbo = -torch.stack([vae(x)["loss"] for _ in range(400)]).mean()
    k1 = torch.stack([vae.importance_log_likelihood(x, samples=1).mean() for _ in range(400)]).mean()
    k64 = vae.importance_log_likelihood(x, samples=64).mean()
    assert abs(k1 - elbo) < 0.02 * abs(elbo), "with K = 1 the importance-weighted bound is the ELBO"
    assert k64 > elbo, "more importance samples give a tighter (higher) bound on log p(x)"


def test_gan_shapes_and_ranges():
    torch.manual_seed(0)
    gan = models.mnist_gan(latent_dim=16)
    images = gan.sample(5)
    assert images.shape == (5, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert gan.discriminator(images).shape == (5,), "the discriminator returns one logit per image"


def test_interpolation_endpoints_and_norm():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(100, generator=g), torch.randn(100, generator=g)
    z1 = z1 / z1.norm() * z0.norm()
    for path in (explore.lerp(z0, z1, 10), explore.slerp(z0, z1, 10)):
        assert path.shape == (10, 100)
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    norms = explore.slerp(z0, z1, 10).norm(dim=1)
    assert torch.allclose(norms, z0.norm().expand(10), rtol=1e-4), "slerp stays on the sphere"
    mid = explore.lerp(z0, z1, 11)[5].norm()
    assert mid < 0.9 * z0.norm(), "the straight line cuts inside the sphere (why slerp exists)"
    assert math.isclose(explore.slerp(z0, 2 * z0, 3)[1].norm().item(), 1.5 * z0.norm().item(), rel_tol=1e-5)


def test_spectral_norm_makes_the_discriminator_1_lipschitz():
    torch.manual_seed(0)
    normalized = models.MLPDiscriminator(spectral_norm=True)
    normalized.train()
    with torch.no_grad():
        for _ in range(300):  # each training-mode forward runs one power iteration per layer
            normalized(torch.rand(2, 1, 32, 32))
    normalized.eval()
    layers = [m for m in normalized.modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 4, "every linear layer of D is normalized"
    for layer in layers:
        assert abs(torch.linalg.matrix_norm(layer.weight, ord=2).item() - 1) < 0.01, \
            "each effective weight matrix has largest singular value 1"
    x, y = torch.rand(64, 1, 32, 32), torch.rand(64, 1, 32, 32)
    with torch.no_grad():
        change = (normalized(x) - normalized(y)).abs()
        distance = (x - y).flatten(1).norm(dim=1)
        # 1.05: room for the power iteration's estimate of each of the four norms (1 % each)
        assert (change <= distance * 1.05).all(), "|t(x) - t(y)| <= ||x - y|| for a 1-Lipschitz logit"
        before = normalized(x)
        for layer in layers:  # training makes weights grow; the normalized D must not notice
            layer.parametrizations.weight.original.mul_(10)
        assert torch.allclose(normalized(x), before, rtol=1e-4, atol=1e-6), "W / sigma(W) ignores the scale of W"


def test_mixture_prior_log_prob_is_the_mixture_density():
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    weights = torch.tensor([0.3, 0.7], dtype=torch.double)
    means = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.5]], dtype=torch.double)
    a = torch.randn(2, 3, 3, dtype=torch.double, generator=torch.Generator().manual_seed(0))
    covariances = a @ a.transpose(1, 2) + 0.5 * torch.eye(3, dtype=torch.double)
    prior = models.GaussianMixturePrior(weights, means, covariances)
    z = torch.randn(7, 3, dtype=torch.double)
    expected = logsumexp([math.log(w) + multivariate_normal(m.numpy(), c.numpy()).logpdf(z.numpy())
                          for w, m, c in zip(weights.tolist(), means, covariances)], axis=0)
    assert torch.allclose(prior.log_prob(z), torch.as_tensor(expected), atol=1e-10)
    assert prior.sample(5).shape == (5, 3)


def test_mixture_prior_fit_recovers_two_clusters():
    g = torch.Generator().manual_seed(1)
    truth = torch.tensor([[-4.0, 0.0], [4.0, 1.0]])
    codes = torch.cat([truth[0] + 0.5 * torch.randn(3000, 2, generator=g), truth[1] + torch.randn(1000, 2, generator=g)])
    prior = models.GaussianMixturePrior.fit(codes, components=2, seed=0)
    order = prior.means[:, 0].argsort()
    assert torch.allclose(prior.means[order], truth, atol=0.1)
    assert torch.allclose(prior.weights[order], torch.tensor([0.75, 0.25]), atol=0.02)
    torch.manual_seed(0)
    draws = prior.sample(20_000)
    assert (draws[:, 0] > 0).float().mean().item() == pytest.approx(0.25, abs=0.02), "samples follow the weights"


def test_small_d_recipe_has_batch_norm_in_g_and_the_stated_sizes():
    gan = models.mnist_gan_small_d(latent_dim=100)
    sizes = lambda net: [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes(gan.generator) == [(100, 256), (256, 512), (512, 1024), (1024, 1024)], "G keeps the report's sizes"
    assert sizes(gan.discriminator) == [(1024, 512), (512, 256), (256, 1)], "D is the smaller 1024-512-256-1"
    g_layers = list(gan.generator.net)
    kinds = [type(m).__name__ for m in g_layers]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU"] * 3 + ["Linear"], \
        f"G: batch norm and LeakyReLU after every hidden layer, a plain linear output of logits; got {kinds}"
    slopes = {m.negative_slope for m in gan.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}, "LeakyReLU(0.2) throughout"
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in gan.discriminator.modules()), "no batch norm in D"
    assert models.MLPDiscriminator().net[-1].in_features == 256 and len(sizes(models.MLPDiscriminator())) == 4, \
        "the report's D is unchanged by default"


def test_batch_norm_generator_takes_any_leading_axes_and_samples_in_range():
    torch.manual_seed(0)
    gan = models.mnist_gan_small_d(latent_dim=8)
    gan.eval()  # running statistics: each latent's image does not depend on the rest of the batch
    z = torch.randn(3, 5, 8)
    images = gan.decode(z)
    assert images.shape == (3, 5, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert torch.allclose(images[1, 2], gan.decode(z[1, 2:3])[0], atol=1e-6)
    assert gan.discriminator(images[0]).shape == (5,)


# ------------------------------------------------------------------ the decoder's likelihood

def discretized_vae(cdf="logistic"):
    return conv_models.imagenette_vae(32, latent_dim=8, likelihood=models.DiscretizedLikelihood(3, cdf))


def rgb_images(n=4):
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(0)).float() / 255


@pytest.mark.parametrize("cdf", ["logistic", "normal"])
def test_a_discretized_vae_scores_its_reconstructions_with_that_likelihood(cdf):
    vae, x = discretized_vae(cdf), rgb_images()
    torch.manual_seed(1)
    terms = vae(x)
    torch.manual_seed(1)
    mu, logvar = vae.encoder(x)
    logits = vae.decoder(losses.reparameterize(mu, logvar, 1))
    scale = vae.likelihood.log_scale[:, None, None].expand(3, 32, 32).flatten()
    expected = -losses.discretized_log_likelihood(x.flatten(1), torch.sigmoid(logits).flatten(-3), scale, cdf).mean()
    assert terms["rec"].item() == pytest.approx(expected.item(), rel=1e-6)
    terms["loss"].backward()
    assert vae.likelihood.log_scale.grad is not None and vae.likelihood.log_scale.grad.abs().sum() > 0, \
        "the scales are learned with the rest of the VAE"
    assert any(p is vae.likelihood.log_scale for p in vae.parameters()), "and so reach the optimizer"


def test_the_bernoulli_vae_is_unchanged_by_the_likelihood_option():
    torch.manual_seed(0)
    vae = models.mnist_vae(latent_dim=4)
    x = torch.rand(3, 1, 32, 32)
    torch.manual_seed(1)
    rec = vae(x)["rec"]
    torch.manual_seed(1)
    mu, logvar = vae.encoder(x)
    logits = vae.decoder(losses.reparameterize(mu, logvar, 1))
    assert rec.item() == pytest.approx(-losses.bernoulli_log_likelihood(x.flatten(1), logits.flatten(2)).mean().item())
    assert "likelihood" not in "".join(vae.state_dict()), "no new weights: shipped Bernoulli VAEs still load"


def test_a_collapsed_scale_is_held_at_a_thousandth_of_a_level():
    likelihood = models.DiscretizedLikelihood(3)
    with torch.no_grad():
        likelihood.log_scale.fill_(-100.0)
    log_p = likelihood.log_prob(rgb_images(2), torch.zeros(2, 3, 32, 32))
    assert torch.isfinite(log_p).all()
    clamped = models.DiscretizedLikelihood(3, scale=1e-3 / 255).log_prob(rgb_images(2), torch.zeros(2, 3, 32, 32))
    assert torch.allclose(log_p, clamped)
    with pytest.raises(ValueError, match="cdf='laplace'"):
        models.DiscretizedLikelihood(3, cdf="laplace")


def test_the_likelihood_scales_learn_at_their_own_rate_and_the_networks_at_the_vae_rate():
    objective = objectives.VAEObjective(discretized_vae(), lr=1e-4)
    groups = objective.optimizers["vae"].param_groups
    assert [g["lr"] for g in groups] == [1e-4, objectives.LIKELIHOOD_LR]
    assert groups[1]["params"] == [objective.model.likelihood.log_scale]
    assert sum(len(g["params"]) for g in groups) == len(list(objective.model.parameters())), "every weight, once"
    before = objective.model.likelihood.log_scale.detach().clone()
    objective.train_step(rgb_images())
    assert (objective.model.likelihood.log_scale - before).abs().max().item() == pytest.approx(objectives.LIKELIHOOD_LR, rel=1e-3), \
        "Adam's first step moves each parameter by its learning rate"
    bernoulli = objectives.VAEObjective(models.mnist_vae(latent_dim=4), lr=1e-4)
    assert len(bernoulli.optimizers["vae"].param_groups) == 1, "a Bernoulli VAE's optimizer (and checkpoints) as before"
