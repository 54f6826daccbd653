"""The MNIST GAN registry: chapter 6's variations build what their names say and train through the
one loop, and the entries that committed results depend on build and train exactly as before.

Runs are tiny (300 digits, one or two epochs) so the file takes seconds.
"""
import pytest
import torch

from helpers import gan_diagnostics, losses, registry, train

from builders import fingerprint, registered as build

TINY = dict(train_limit=300, val_limit=100, batch_size=100)
NEW = ["mnist-gan-minimax-sn", "mnist-gan-minimax-beta09", "mnist-gan-ns-beta09",
       "mnist-gan-minimax-noisy", "mnist-gan-ns-noisy", "mnist-gan-ns-small-d"]
DIAGNOSTICS = {"g_logit_abs_median", "g_slope_share", "g_grad_norm_minimax", "g_grad_norm_ns",
               "g_grad_share_above_eps", "g_update_norm"}
# sha256 (first 16 hex digits) of each entry's initial state_dict under its default config and seed 0,
# recorded before the variations were added: checkpoints and results were made from these weights.
INITIAL_WEIGHTS = {"mnist-vae": "e7eb3bd4a05acce5", "mnist-flow-vae": "bc60f599f676d2d9",
                   "mnist-gan-minimax": "6d88d4748ba45ecb", "mnist-gan-ns": "6d88d4748ba45ecb",
                   "mnist-gan-ns-sn": "50cab22e88a287ab"}


pytestmark = pytest.mark.usefixtures("own_checkpoints")  # run folders in a temporary directory



def params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


# ------------------------------------------------------------------ the existing entries are untouched

@pytest.mark.parametrize("name", sorted(INITIAL_WEIGHTS))
def test_existing_entries_start_from_the_same_weights(name):
    assert fingerprint(build(name).model) == INITIAL_WEIGHTS[name], (
        f"{name} now starts from other weights: its checkpoints, shipped weights and results no longer match. "
        "Anything added to the registry must leave the existing builders' modules and RNG draws alone.")


@pytest.mark.parametrize("name", ["mnist-gan-minimax", "mnist-gan-ns-sn", "mnist-gan-ns-small-d"])
def test_training_is_bit_identical_with_and_without_the_diagnostics(name, monkeypatch):
    config = train.config_for(name, epochs=2, **{**TINY, "val_limit": 600})  # 2 eval batches: RNG draws would show
    measured = train.run(config, resume=False, progress=False)
    monkeypatch.setattr(gan_diagnostics, "generator_diagnostics", lambda *args, **kwargs: {})
    plain = train.run(config, resume=False, progress=False)
    assert torch.equal(params(measured.model), params(plain.model)), (
        "measuring the generator's gradients in eval changed training: the diagnostics must draw no random "
        "numbers and leave parameters, buffers (batch norm, spectral norm) and Adam's state alone")
    for name_, state in measured.model.state_dict().items():
        assert torch.equal(state, plain.model.state_dict()[name_]), f"buffer {name_} differs"
    for with_, without in zip(measured.history, plain.history):
        assert {k: with_[k] for k in without} == without, "every existing history value must stay the same"
        assert {f"val_{k}" for k in DIAGNOSTICS} <= set(with_) - set(without)


# ------------------------------------------------------------------ the new entries

@pytest.mark.parametrize("name", NEW)
def test_new_entry_trains_one_epoch_and_records_the_diagnostics(name):
    run = train.run(train.config_for(name, epochs=1, **TINY), progress=False)
    before = build(name, epochs=1, **TINY)
    for player in ("generator", "discriminator"):
        assert not torch.equal(params(getattr(run.model, player)), params(getattr(before.model, player))), \
            f"{name}: the {player} must have been updated"
    record = run.history[0]
    for key in DIAGNOSTICS:
        value = record[f"val_{key}"]
        assert value == value and value >= 0, f"{name}: val_{key} = {value}"
    assert 0 <= record["val_g_slope_share"] <= 1 and 0 <= record["val_g_grad_share_above_eps"] <= 1
    assert record["val_g_update_norm"] > 0, "after an epoch of steps, Adam's last update is not zero"
    assert registry.spec(name).defaults == {"epochs": 80, "batch_size": 100, "lr": 2e-4}


def test_each_variation_changes_only_what_its_name_says():
    def describe(name):
        objective = build(name)
        d = objective.model.discriminator
        return {"loss": objective.generator_loss_name,
                "betas": {p: o.defaults["betas"] for p, o in objective.optimizers.items()},
                "lr": {p: o.defaults["lr"] for p, o in objective.optimizers.items()},
                "spectral_norm": any(hasattr(m, "parametrizations") for m in d.modules()),
                "batch_norm_in_G": any(isinstance(m, torch.nn.BatchNorm1d) for m in objective.model.generator.modules()),
                "d_widths": [m.out_features for m in d.modules() if isinstance(m, torch.nn.Linear)],
                "d_loss": objective.discriminator_loss}

    base = {"betas": {"generator": (0.5, 0.999), "discriminator": (0.5, 0.999)},
            "lr": {"generator": 2e-4, "discriminator": 2e-4}, "spectral_norm": False, "batch_norm_in_G": False,
            "d_widths": [1024, 512, 256, 1], "d_loss": losses.discriminator_loss}
    expected = {
        "mnist-gan-minimax": {"loss": "minimax"},
        "mnist-gan-ns": {"loss": "ns"},
        "mnist-gan-ns-sn": {"loss": "ns", "spectral_norm": True},
        "mnist-gan-minimax-sn": {"loss": "minimax", "spectral_norm": True},
        "mnist-gan-minimax-beta09": {"loss": "minimax", "betas": {"generator": (0.9, 0.999), "discriminator": (0.9, 0.999)}},
        "mnist-gan-ns-beta09": {"loss": "ns", "betas": {"generator": (0.9, 0.999), "discriminator": (0.9, 0.999)}},
        "mnist-gan-minimax-noisy": {"loss": "minimax", "d_loss": losses.discriminator_loss_noisy_labels},
        "mnist-gan-ns-noisy": {"loss": "ns", "d_loss": losses.discriminator_loss_noisy_labels},
        "mnist-gan-ns-small-d": {"loss": "ns", "batch_norm_in_G": True, "d_widths": [512, 256, 1]},
    }
    assert set(expected) == {name for name in registry.MODELS if name.startswith("mnist-gan")}
    for name, change in expected.items():
        assert describe(name) == {**base, **change}, f"{name} differs from the report's GAN in more than {change}"


def test_noisy_entry_trains_d_on_fresh_noisy_targets_and_evaluates_on_plain_ones(monkeypatch):
    seen, plain = [], losses.discriminator_loss

    def spy(real_logits, fake_logits, real_targets=None, fake_targets=None):
        seen.append((real_targets, fake_targets))
        return plain(real_logits, fake_logits, real_targets, fake_targets)

    monkeypatch.setattr(losses, "discriminator_loss", spy)
    objective = build("mnist-gan-ns-noisy")
    x = torch.rand(100, 1, 32, 32)
    objective.train_step(x)
    objective.train_step(x)
    (r1, f1), (r2, f2) = seen
    assert r1.shape == f1.shape == (100,)
    assert 0.7 <= r1.min() and r1.max() <= 1 and 0 <= f1.min() and f1.max() <= 0.3, "targets in [0.7, 1] and [0, 0.3]"
    assert not torch.equal(r1, r2) and not torch.equal(f1, f2), "fresh targets at every step"
    noisy, clean = build("mnist-gan-ns-noisy"), build("mnist-gan-ns")  # the same initial weights
    for objective in (noisy, clean):
        objective.model.eval()
        torch.manual_seed(1)
        objective.terms = objective.eval_step(x)
    assert noisy.terms["d_loss"] == clean.terms["d_loss"], \
        "validation reports the plain discriminator loss, so val_d_loss compares across the GAN variants"
