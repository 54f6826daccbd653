"""Models, runs and fingerprints that several test files build the same way."""
import hashlib

import pytest
import torch

from helpers import flows, models, registry, train


def flow_vae():
    """A flow-prior VAE whose couplings are not the identity (a new flow's last layers start at zero)."""
    torch.manual_seed(1)
    vae = models.mnist_vae(prior=flows.RealNVPPrior(100))
    for coupling in vae.prior.couplings:
        torch.nn.init.normal_(coupling.net[-1].weight, std=0.05)
    return vae.eval()


def registered(name, **overrides):
    """The objective of registry model ``name`` with the initial weights the training loop gives it
    (the seed it derives from the run's seed), without training."""
    config = train.config_for(name, **overrides)
    torch.manual_seed(train.derive_seed(config.seed, "init"))
    return registry.spec(name).build(config)


def interrupted_and_uninterrupted(monkeypatch, tmp_path, objective_class, config, stop_at_call: int):
    """Train ``config`` twice: once stopped by a KeyboardInterrupt at the ``stop_at_call``-th training
    step of ``objective_class`` and then resumed, once without a stop in its own checkpoint folder.
    Returns (resumed run, uninterrupted run)."""
    real_step, calls = objective_class.train_step, []

    def stop(self, x):
        calls.append(1)
        if len(calls) == stop_at_call:
            raise KeyboardInterrupt
        return real_step(self, x)

    monkeypatch.setattr(objective_class, "train_step", stop)
    with pytest.raises(KeyboardInterrupt):
        train.run(config, progress=False)
    monkeypatch.setattr(objective_class, "train_step", real_step)
    resumed = train.run(config, progress=False)
    monkeypatch.setenv("DGM_CHECKPOINTS", str(tmp_path / "uninterrupted"))
    return resumed, train.run(config, progress=False)


def fingerprint(module) -> str:
    """The first 16 hex digits of the SHA-256 of a module's state_dict (names and exact values)."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
