"""The generator diagnostics of helpers.gan_diagnostics, on inputs whose answers are known by hand.

Each measurement is checked against its definition (a direct autograd computation, the parameter
change of a real Adam step), and the whole is checked to leave no trace: no random draws, no
.grad fields, no change to parameters, buffers, optimizer state or train/eval modes.
"""
import copy

import pytest
import torch
from torch import nn

from helpers import gan_diagnostics as diag
from helpers import losses, models, objectives

LOSSES = objectives.GENERATOR_LOSSES  # {"minimax": ..., "ns": ...}


# ------------------------------------------------------------------ the output sigmoid

def test_slope_share_is_zero_for_saturated_logits_and_one_at_zero():
    assert diag.share_with_slope_above(torch.tensor([[50.0, -50.0], [-50.0, 50.0]])) == 0, \
        "at |t| = 50 the sigmoid's slope is 2e-22: no pixel passes a gradient"
    assert diag.share_with_slope_above(torch.zeros(4, 1024)) == 1, "at t = 0 the slope is 1/4 > 1e-4 everywhere"
    # sigma'(t) = 1e-4 at |t| = 9.21: 9.0 is still alive (1.2e-4), 9.5 is not (7.5e-5).
    assert diag.share_with_slope_above(torch.tensor([9.0, -9.0, 9.5, -9.5, 0.0])) == pytest.approx(0.6)


def test_sigmoid_slope_matches_its_definition_and_survives_float32_rounding():
    t = torch.linspace(-8, 8, 33, dtype=torch.float64)
    s = torch.sigmoid(t)
    assert torch.allclose(diag.sigmoid_slope(t), s * (1 - s), rtol=1e-12)
    big = diag.sigmoid_slope(torch.tensor([30.0, -30.0]))
    assert (big > 0).all() and torch.allclose(big, torch.tensor(9.357623e-14), rtol=1e-5), (
        "sigma(30)(1 - sigma(30)) rounds to 0 in float32 when computed as s * (1 - s); sigma(t) sigma(-t) keeps it")


def test_median_abs_logit():
    assert diag.median_abs(torch.tensor([[-5.0, 1.0], [3.0, -2.0], [0.5, 4.0]])) == 2.0  # |t| sorted: .5 1 2 3 4 5


# ------------------------------------------------------------------ norms and shares

def test_global_norm_is_the_norm_of_everything_concatenated():
    tensors = [torch.tensor([3.0]), torch.tensor([[4.0, 0.0], [0.0, 12.0]])]
    assert diag.global_norm(tensors) == pytest.approx(13.0)


def test_share_above_counts_entries_over_all_tensors():
    tensors = [torch.tensor([1e-9, -2e-8, 0.0]), torch.tensor([[5e-8], [-1e-7], [1e-8]])]
    assert diag.share_above(tensors, 1e-8) == pytest.approx(3 / 6), "only |g| > eps counts: 2e-8, 5e-8, 1e-7"


# ------------------------------------------------------------------ gradients, on a small G and D

def small_gan(seed=0, batch_norm=False, spectral_norm=False):
    """G: 3 -> 16 -> 8 "pixels" (logits); D: 8 -> one logit per image. Batch norm in G and spectral norm
    in D are the two layers with state that a forward pass in training mode would change."""
    torch.manual_seed(seed)
    g_layers = [nn.Linear(3, 16)] + ([nn.BatchNorm1d(16)] if batch_norm else []) + [nn.ReLU(), nn.Linear(16, 8)]
    d_layer = nn.Linear(8, 1)
    if spectral_norm:
        d_layer = nn.utils.parametrizations.spectral_norm(d_layer)
    return nn.Sequential(*g_layers), nn.Sequential(d_layer, nn.Flatten(0))


def test_gradient_norms_match_a_direct_autograd_computation():
    generator, discriminator = small_gan()
    generator.eval(), discriminator.eval()
    z = torch.randn(32, 3)
    _, gradients = diag.generator_gradients(generator, discriminator, z, LOSSES)
    for name, loss in LOSSES.items():
        generator.zero_grad(set_to_none=True)
        loss(discriminator(torch.sigmoid(generator(z)))).backward()
        expected = torch.cat([p.grad.flatten() for p in generator.parameters()]).norm()
        assert torch.allclose(diag.global_norm(gradients[name]), expected, rtol=1e-6), (
            f"the {name} gradient norm must be that of d loss / d theta_G on the same batch")
    generator.zero_grad(set_to_none=True)


def test_diagnostics_leave_no_trace():
    generator, discriminator = small_gan(batch_norm=True, spectral_norm=True)
    generator.train(), discriminator.train()
    discriminator[1].eval()  # mixed modes must come back as they were
    optimizer = objectives.adam(generator.parameters(), 1e-3)
    loss = LOSSES["ns"](discriminator(torch.sigmoid(generator(torch.randn(8, 3)))))
    loss.backward()
    optimizer.step()
    generator.zero_grad(set_to_none=True), discriminator.zero_grad(set_to_none=True)
    before = copy.deepcopy((generator.state_dict(), discriminator.state_dict(), optimizer.state_dict()))
    modes = [m.training for m in (*generator.modules(), *discriminator.modules())]
    rng = torch.get_rng_state()

    terms = diag.generator_diagnostics(generator, discriminator, torch.randn(16, 3), LOSSES, "ns", optimizer)
    rng_after_z = torch.get_rng_state()
    torch.set_rng_state(rng)
    torch.randn(16, 3)
    assert torch.equal(rng_after_z, torch.get_rng_state()), "the diagnostics must draw no random numbers"
    after = (generator.state_dict(), discriminator.state_dict(), optimizer.state_dict())
    for which, b, a in zip(("G", "D"), before[:2], after[:2]):
        for key in b:
            assert torch.equal(b[key], a[key]), f"{which}'s {key} changed (batch-norm statistics or spectral-norm u, v?)"
    for index, state in before[2]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, after[2]["state"][index][key]), f"Adam's {key} changed"
    assert all(p.grad is None for p in (*generator.parameters(), *discriminator.parameters())), "no .grad written"
    assert modes == [m.training for m in (*generator.modules(), *discriminator.modules())], "modes restored"
    assert set(terms) == {"g_logit_abs_median", "g_slope_share", "g_grad_norm_minimax", "g_grad_norm_ns",
                          "g_grad_share_above_eps", "g_update_norm"}
    assert all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())


def test_gradient_share_above_eps_is_zero_when_d_saturates_the_minimax_loss():
    generator, discriminator = small_gan()
    with torch.no_grad():  # D rejects everything, at logits near -60: the minimax slope sigma(t) is ~ 1e-26
        discriminator[0].bias.fill_(-60.0)
    optimizer = objectives.adam(generator.parameters(), 1e-3)
    z = torch.randn(32, 3)
    minimax = diag.generator_diagnostics(generator, discriminator, z, LOSSES, "minimax", optimizer)
    ns = diag.generator_diagnostics(generator, discriminator, z, LOSSES, "ns", optimizer)
    assert minimax["g_grad_norm_minimax"] < 1e-20 and minimax["g_grad_share_above_eps"] == 0, (
        "under a saturated minimax loss no generator gradient reaches Adam's eps = 1e-8")
    assert ns["g_grad_norm_ns"] > 1e-3 and ns["g_grad_share_above_eps"] > 0.5, (
        "the non-saturating loss keeps a full-size gradient where D rejects the samples")
    assert minimax["g_grad_norm_ns"] == ns["g_grad_norm_ns"], "both norms come from the same batch, whichever loss trains"
    assert minimax["g_update_norm"] == 0, "no Adam step yet: no update"


# ------------------------------------------------------------------ Adam's last update

@pytest.mark.parametrize("betas", [(0.5, 0.999), (0.9, 0.999)])
def test_update_norm_is_the_parameter_change_of_the_last_adam_step(betas):
    generator, discriminator = small_gan()
    optimizer = objectives.adam(generator.parameters(), 2e-3, betas)  # the book's (fused) Adam
    for step in range(4):  # several steps: the bias corrections differ from step 1's
        before = [p.detach().clone() for p in generator.parameters()]
        optimizer.zero_grad(set_to_none=True)
        LOSSES["ns"](discriminator(torch.sigmoid(generator(torch.randn(16, 3))))).backward()
        optimizer.step()
        change = [p.detach() - b for p, b in zip(generator.parameters(), before)]
        updates = diag.adam_last_update(optimizer)
        for u, c in zip(updates, change):
            assert torch.allclose(u, c, rtol=1e-4, atol=1e-9), f"step {step + 1}: recomputed update != parameter change"
        assert torch.isclose(diag.global_norm(updates), diag.global_norm(change), rtol=1e-5)


def test_adam_last_update_refuses_what_it_does_not_recompute():
    optimizer = torch.optim.Adam([nn.Parameter(torch.ones(2))], weight_decay=0.1)
    with pytest.raises(ValueError, match="plain Adam"):
        diag.adam_last_update(optimizer)


# ------------------------------------------------------------------ through the objective

def test_gan_objective_eval_step_returns_the_old_terms_unchanged_plus_the_diagnostics():
    torch.manual_seed(0)
    objective = objectives.GANObjective(models.mnist_gan(latent_dim=8), 2e-4, "minimax")
    objective.model.eval()
    n = objectives.DIAGNOSTIC_LATENTS + 20
    x = torch.rand(n, 1, 32, 32)
    torch.manual_seed(1)
    terms = objective.eval_step(x)
    torch.manual_seed(1)
    with torch.no_grad():  # the pre-diagnostics eval step, written out
        z = objective.model.prior.sample(n)
        fake = torch.sigmoid(objective.model.generator(z))
        logits = objective.model.discriminator(torch.cat([x, fake]))
        expected = {"d_loss": losses.discriminator_loss(logits[:n], logits[n:]),
                    "g_loss": losses.generator_loss_minimax(objective.model.discriminator(fake)),
                    "d_real": torch.sigmoid(logits[:n]).mean(), "d_fake": torch.sigmoid(logits[n:]).mean()}
    for name, value in expected.items():
        assert torch.equal(terms[name], value), f"eval_step's {name} must not change with the diagnostics"
    pixel_logits = objective.model.generator(z[:objectives.DIAGNOSTIC_LATENTS])
    assert torch.equal(terms["g_logit_abs_median"], pixel_logits.abs().median().detach()), \
        "the diagnostics use the first 100 of the latents behind the loss terms"
