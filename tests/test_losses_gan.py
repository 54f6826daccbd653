"""The GAN losses of helpers.losses, checked against their definitions.

D = sigmoid(t) for a discriminator logit t. The losses, as means over the batch:

    discriminator_loss(r, f)        = -E log D(x) - E log(1 - D(G(z)))
    generator_loss_minimax(f)       =  E log(1 - D(G(z)))      (minimized by G)
    generator_loss_nonsaturating(f) = -E log D(G(z))           (minimized by G)

References are computed independently: float64 sigmoid-then-log for moderate logits,
and Python's math module (stable softplus) for extreme ones.
"""
import math

import pytest
import torch
from scipy.spatial.distance import jensenshannon

from helpers.losses import discriminator_loss, generator_loss_minimax, generator_loss_nonsaturating

# Logits of a confident discriminator. In float32, sigmoid(t) rounds to exactly 1 above about 17 and to 0
# below about -88, where log(sigmoid(t)) breaks; nn.BCELoss's clamp already spoils gradients below about -28.
EXTREME = [-200.0, -100.0, -40.0, -20.0, 20.0, 40.0, 100.0, 200.0]
# float32 resolves about 1e-7 next to 1: terms like sigmoid(-20) = 2e-9 next to 1 round away,
# so tiny values and gradients are compared absolutely; the large ones (value 200, gradient -1) relatively.
FLOAT32_ABS = 1e-6


def log_sigmoid_exact(t: float) -> float:
    """log sigmoid(t) = -softplus(-t) = -(max(-t, 0) + log1p(exp(-|t|))), exact in double precision."""
    return -(max(-t, 0.0) + math.log1p(math.exp(-abs(t))))


def sigmoid_exact(t: float) -> float:
    """sigmoid(t) without overflow for either sign of t."""
    return 1 / (1 + math.exp(-t)) if t >= 0 else math.exp(t) / (1 + math.exp(t))


def per_sample_grad(loss_fn, t: float, dtype=torch.float32):
    """Value and d loss / d logit of a one-element batch (so the batch mean is the sample itself)."""
    logit = torch.tensor([t], dtype=dtype, requires_grad=True)
    value = loss_fn(logit)
    value.backward()
    return value.item(), logit.grad.item()


# ------------------------------------------------------------------ definitions

@pytest.fixture
def moderate_logits():
    generator = torch.Generator().manual_seed(0)
    real = torch.empty(64, dtype=torch.float64).uniform_(-8, 8, generator=generator)
    fake = torch.empty(48, dtype=torch.float64).uniform_(-8, 8, generator=generator)
    return real, fake


def test_discriminator_loss_is_minus_log_D_real_minus_log_one_minus_D_fake(moderate_logits):
    real, fake = moderate_logits
    expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    got = discriminator_loss(real.float(), fake.float())
    assert torch.isclose(got.double(), expected, rtol=1e-5), (
        f"discriminator_loss = {got.item():.6f}, but -mean log D(x) - mean log(1 - D(G(z))) = {expected.item():.6f}."
        " Each term is a mean over its own batch; D = sigmoid(logit); real targets 1, fake targets 0.")


def test_minimax_generator_loss_is_mean_log_one_minus_D(moderate_logits):
    _, fake = moderate_logits
    expected = torch.log(1 - torch.sigmoid(fake)).mean()
    got = generator_loss_minimax(fake.float())
    assert torch.isclose(got.double(), expected, rtol=1e-5), (
        f"generator_loss_minimax = {got.item():.6f}, expected +mean log(1 - D(G(z))) = {expected.item():.6f}."
        " It is negative; G minimizes it (the second term of the value function, with its sign).")


def test_nonsaturating_generator_loss_is_minus_mean_log_D(moderate_logits):
    _, fake = moderate_logits
    expected = -torch.log(torch.sigmoid(fake)).mean()
    got = generator_loss_nonsaturating(fake.float())
    assert torch.isclose(got.double(), expected, rtol=1e-5), (
        f"generator_loss_nonsaturating = {got.item():.6f}, expected -mean log D(G(z)) = {expected.item():.6f}."
        " It is positive; BCE of the fake logits against target 1 ('real').")


def test_losses_keep_float64_precision(moderate_logits):
    real, fake = moderate_logits
    expected = -torch.log(torch.sigmoid(fake)).mean()
    got = generator_loss_nonsaturating(fake)
    assert got.dtype == torch.float64 and torch.isclose(got, expected, rtol=1e-12, atol=0), (
        "A float64 input should give a float64 loss equal to the definition to ~1e-12;"
        f" got {got.dtype} with error {abs(got - expected).item():.2e}.")


# ------------------------------------------------------------------ extreme logits

@pytest.mark.parametrize("t", EXTREME)
def test_generator_losses_finite_and_exact_at_extreme_logits(t):
    # Per sample: NS loss = -log sigmoid(t), d/dt = -(1 - sigmoid(t)) = -sigmoid(-t);
    #             MM loss = log(1 - sigmoid(t)) = log sigmoid(-t), d/dt = -sigmoid(t).
    cases = [
        ("generator_loss_nonsaturating", generator_loss_nonsaturating, -log_sigmoid_exact(t), -sigmoid_exact(-t)),
        ("generator_loss_minimax", generator_loss_minimax, log_sigmoid_exact(-t), -sigmoid_exact(t)),
    ]
    for name, loss_fn, value_ref, grad_ref in cases:
        value, grad = per_sample_grad(loss_fn, t)
        assert math.isfinite(value) and math.isfinite(grad), (
            f"{name} at logit {t}: value {value}, gradient {grad}. A loss computed as log(sigmoid(t)) in float32"
            " gives inf/nan here because sigmoid rounds to 0 or 1; compute it from the logit (softplus / BCE-with-logits).")
        assert math.isclose(value, value_ref, rel_tol=1e-6, abs_tol=FLOAT32_ABS), (
            f"{name} at logit {t}: value {value!r}, exact {value_ref!r}. Far from 0 the loss is linear in the"
            " logit (softplus(t) ~ max(t, 0)); a log clamped at -100 caps it at 100 instead.")
        assert math.isclose(grad, grad_ref, rel_tol=1e-5, abs_tol=FLOAT32_ABS), (
            f"{name} at logit {t}: d loss/d logit = {grad!r}, exact {grad_ref!r}. A clamped log (as in nn.BCELoss"
            " after a sigmoid) keeps the value finite but destroys this gradient.")


@pytest.mark.parametrize("t", EXTREME)
def test_discriminator_loss_finite_and_exact_at_extreme_logits(t):
    real = torch.tensor([t], requires_grad=True)
    fake = torch.tensor([t], requires_grad=True)
    loss = discriminator_loss(real, fake)
    loss.backward()
    value_ref = -log_sigmoid_exact(t) - log_sigmoid_exact(-t)  # -log D(x) - log(1 - D(G(z))) at the same logit
    assert math.isfinite(loss.item()) and math.isclose(loss.item(), value_ref, rel_tol=1e-6), (
        f"discriminator_loss at logits ({t}, {t}) = {loss.item()!r}, exact {value_ref!r}.")
    # d/dt[-log sigmoid(t)] = sigmoid(t) - 1 (real term); d/dt[-log(1 - sigmoid(t))] = sigmoid(t) (fake term).
    assert math.isclose(real.grad.item(), sigmoid_exact(t) - 1, rel_tol=1e-5, abs_tol=FLOAT32_ABS), (
        f"gradient w.r.t. the real logit {t} is {real.grad.item()!r}, expected sigmoid(t) - 1 = {sigmoid_exact(t) - 1!r}.")
    assert math.isclose(fake.grad.item(), sigmoid_exact(t), rel_tol=1e-5, abs_tol=FLOAT32_ABS), (
        f"gradient w.r.t. the fake logit {t} is {fake.grad.item()!r}, expected sigmoid(t) = {sigmoid_exact(t)!r}.")


# ------------------------------------------------------------------ saturation

def test_minimax_gradient_vanishes_while_nonsaturating_tends_to_minus_one():
    # D(G(z)) -> 0 means the fake logit t -> -inf: the discriminator confidently rejects the samples.
    logits = [-2.0, -5.0, -10.0, -20.0, -40.0]
    mm = [per_sample_grad(generator_loss_minimax, t, torch.float64)[1] for t in logits]
    ns = [per_sample_grad(generator_loss_nonsaturating, t, torch.float64)[1] for t in logits]
    for t, g_mm, g_ns in zip(logits, mm, ns):
        assert g_mm < 0 and g_ns < 0, (
            f"at logit {t}: d loss/d logit = {g_mm:.3g} (minimax), {g_ns:.3g} (non-saturating). Both must be"
            " negative: gradient descent on G's loss must raise the logit, i.e. make D(G(z)) more 'real'.")
    assert all(abs(a) > abs(b) for a, b in zip(mm, mm[1:])), (
        f"minimax gradients {mm} should shrink in magnitude as the logit falls (they equal -D(G(z))).")
    assert abs(mm[-1]) < 1e-15, (
        f"minimax gradient at logit {logits[-1]} is {mm[-1]:.3g}; it equals -sigmoid(t) and should have vanished:"
        " log(1 - D) is flat where D rejects fakes, which is why the minimax loss saturates early in training.")
    assert abs(ns[-1] + 1) < 1e-15, (
        f"non-saturating gradient at logit {logits[-1]} is {ns[-1]:.17g}; it equals -(1 - sigmoid(t)) -> -1,"
        " a full-size learning signal exactly when D rejects the fakes.")


def test_both_generator_losses_agree_in_direction_and_differ_in_weight():
    # Per sample, d MM/dt = -D and d NS/dt = -(1 - D): their ratio is D / (1 - D) = exp(t).
    t = torch.linspace(-6, 6, 25, dtype=torch.float64, requires_grad=True)
    (g_mm,) = torch.autograd.grad(generator_loss_minimax(t) * len(t), t)
    (g_ns,) = torch.autograd.grad(generator_loss_nonsaturating(t) * len(t), t)
    assert torch.allclose(g_mm / g_ns, t.detach().exp(), rtol=1e-10), (
        "The minimax and non-saturating per-sample gradients should differ by the factor D/(1-D) = exp(logit);"
        " if not, one of the losses is not log(1 - D) or -log D.")


# ------------------------------------------------------------------ the optimal discriminator

P_DATA = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
P_G = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)


def expected_discriminator_loss(logits: torch.Tensor) -> torch.Tensor:
    """The discriminator loss as an exact expectation over the four-point space.

    Batches with the points repeated in proportion to p_data and p_g (10 samples each)
    make the batch means of discriminator_loss exact expectations.
    """
    real_idx = torch.repeat_interleave(torch.arange(4), (P_DATA * 10).round().long())
    fake_idx = torch.repeat_interleave(torch.arange(4), (P_G * 10).round().long())
    return discriminator_loss(logits[real_idx], logits[fake_idx])


def test_discriminator_loss_is_minimized_at_the_optimal_discriminator():
    # Optimize one free logit per point; the optimum is t*(x) = log(p_data(x) / p_g(x)), i.e. D* = p_data/(p_data + p_g).
    logits = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([logits], lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = expected_discriminator_loss(logits)
        loss.backward()
        return loss

    optimizer.step(closure)
    t_star = torch.log(P_DATA / P_G)
    assert torch.allclose(logits.detach(), t_star, atol=1e-6), (
        f"minimizing discriminator_loss gave logits {logits.detach().numpy().round(6)}, expected"
        f" log(p_data/p_g) = {t_star.numpy().round(6)}. The pointwise maximizer of"
        " p_data log D + p_g log(1 - D) is D* = p_data / (p_data + p_g).")


def test_discriminator_loss_at_the_optimum_is_log4_minus_2_jsd():
    t_star = torch.log(P_DATA / P_G).requires_grad_()
    loss = expected_discriminator_loss(t_star)
    (grad,) = torch.autograd.grad(loss, t_star)
    assert grad.abs().max() < 1e-12, f"the gradient at t* = log(p_data/p_g) should be zero, got {grad.numpy()}."
    # scipy's jensenshannon returns the JS *distance*, the square root of the divergence (natural log by default).
    jsd = jensenshannon(P_DATA.numpy(), P_G.numpy()) ** 2
    assert math.isclose(loss.item(), math.log(4) - 2 * jsd, rel_tol=1e-12), (
        f"discriminator loss at D* = {loss.item():.12f}, but log 4 - 2 JSD(p_data || p_g) = {math.log(4) - 2 * jsd:.12f}."
        " The value of the game at D* is -log 4 + 2 JSD and the discriminator loss is its negative.")
    for shift in (-0.3, 0.3):
        perturbed = expected_discriminator_loss(t_star.detach() + shift * torch.tensor([1.0, -1.0, 1.0, -1.0]))
        assert perturbed > loss, f"moving the logits away from t* by {shift} lowered the loss ({perturbed} < {loss})."


def test_optimal_discriminator_at_equal_densities_is_one_half_and_loss_is_log4():
    logits = torch.zeros(4, dtype=torch.float64)
    real_idx = torch.arange(4).repeat(3)
    loss = discriminator_loss(logits[real_idx], logits[real_idx])
    assert math.isclose(loss.item(), math.log(4), rel_tol=1e-14), (
        f"with p_g = p_data, D* = 1/2 everywhere and the loss is 2 log 2 = log 4 = {math.log(4):.6f}; got {loss.item():.6f}.")


# ------------------------------------------------------------------ noisy target labels (the report's improvement)

def test_noisy_labels_lie_in_their_ranges_and_change_at_every_call():
    from helpers.losses import NOISY_FAKE_TARGETS, NOISY_REAL_TARGETS, noisy_labels

    torch.manual_seed(0)
    logits = torch.zeros(10_000)
    for (low, high) in (NOISY_REAL_TARGETS, NOISY_FAKE_TARGETS):
        first, second = noisy_labels(logits, low, high), noisy_labels(logits, low, high)
        for labels in (first, second):
            assert labels.shape == logits.shape and labels.min() >= low and labels.max() <= high, (
                f"noisy labels must lie in [{low}, {high}]; got [{labels.min():.3f}, {labels.max():.3f}].")
            assert labels.min() < low + 0.01 and labels.max() > high - 0.01 and abs(labels.mean() - (low + high) / 2) < 0.01, \
                f"10,000 uniform draws should fill [{low}, {high}] with mean {(low + high) / 2}"
        assert not torch.equal(first, second), "the labels are drawn afresh at every call, not fixed once"
    assert NOISY_REAL_TARGETS == (0.7, 1.0) and NOISY_FAKE_TARGETS == (0.0, 0.3)


def test_discriminator_loss_with_soft_targets_is_the_bce_against_them(moderate_logits):
    real, fake = moderate_logits
    y_real, y_fake = torch.full_like(real, 0.8), torch.full_like(fake, 0.1)
    s_real, s_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected = (-(y_real * s_real.log() + (1 - y_real) * (1 - s_real).log()).mean()
                - (y_fake * s_fake.log() + (1 - y_fake) * (1 - s_fake).log()).mean())
    assert torch.isclose(discriminator_loss(real, fake, y_real, y_fake), expected, rtol=1e-10)
    assert torch.equal(discriminator_loss(real, fake, torch.ones_like(real), torch.zeros_like(fake)),
                       discriminator_loss(real, fake)), "without targets, real is labelled 1 and fake 0"


def test_noisy_label_loss_uses_fresh_labels_in_the_stated_ranges(monkeypatch, moderate_logits):
    from helpers import losses

    real, fake = moderate_logits
    seen = []
    monkeypatch.setattr(losses, "discriminator_loss", lambda r, f, yr, yf: seen.append((yr, yf)) or torch.tensor(0.0))
    losses.discriminator_loss_noisy_labels(real, fake)
    losses.discriminator_loss_noisy_labels(real, fake)
    (r1, f1), (r2, f2) = seen
    assert r1.shape == real.shape and f1.shape == fake.shape
    assert 0.7 <= r1.min() and r1.max() <= 1.0 and 0.0 <= f1.min() and f1.max() <= 0.3
    assert not torch.equal(r1, r2) and not torch.equal(f1, f2), "fresh labels at every step"
