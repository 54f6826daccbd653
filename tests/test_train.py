"""The training loop: reproducible, resumable after a hard kill, guarded, and distributed.

Runs are small (a few hundred MNIST digits, or the synthetic stand-in offline) so the
whole file takes well under a minute on two cores.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import checkpoints, objectives, train

SMALL = dict(train_limit=512, val_limit=128, batch_size=64)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def own_checkpoints(tmp_path, monkeypatch):
    """Every test writes its run folders into its own temporary directory."""
    monkeypatch.setenv("DGM_CHECKPOINTS", str(tmp_path / "checkpoints"))


def small(model="mnist-vae", **overrides):
    return train.config_for(model, **{**SMALL, "epochs": 2, **overrides})


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_same_history_and_weights():
    a = train.run(small(), resume=False, progress=False)
    b = train.run(small(), resume=False, progress=False)
    assert a.history == b.history, "the same seed must replay the same losses exactly"
    assert torch.equal(params(a.model), params(b.model))
    c = train.run(small(seed=1), resume=False, progress=False)
    assert c.history != a.history, "a different seed must give a different run"


def test_losses_go_down_and_history_has_every_term():
    run = train.run(small(epochs=3), progress=False)
    assert [r["epoch"] for r in run.history] == [1, 2, 3]
    for term in ("loss", "rec", "kl"):
        assert all(f"train_{term}" in r and f"val_{term}" in r for r in run.history)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"], "3 epochs of Adam should lower the loss"
    assert all(t["images_per_second"] > 0 and t["threads"] == torch.get_num_threads() for t in run.timings)


def test_gan_trains_both_players_through_the_same_loop():
    run = train.run(small("mnist-gan-ns", epochs=1, batch_size=64), progress=False)
    torch.manual_seed(train.derive_seed(run.config.seed, "init"))
    before = objectives.spec("mnist-gan-ns").build(run.config)  # the same initialization, untrained
    for player in ("generator", "discriminator"):
        assert not torch.equal(params(getattr(run.model, player)), params(getattr(before.model, player))), \
            f"the {player} must have been updated"
    assert {"train_d_loss", "train_g_loss", "val_d_loss", "val_d_real", "val_d_fake"} <= set(run.history[0])


def test_stopped_gan_resumes_both_players_and_both_optimizers_exactly(monkeypatch, tmp_path):
    config = small("mnist-gan-minimax", epochs=2)
    steps = SMALL["train_limit"] // SMALL["batch_size"]
    real_step, calls = objectives.GANObjective.train_step, []

    def stop_in_epoch_2(self, x):
        calls.append(1)
        if len(calls) == steps + 3:
            raise KeyboardInterrupt
        return real_step(self, x)

    monkeypatch.setattr(objectives.GANObjective, "train_step", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train.run(config, progress=False)
    monkeypatch.setattr(objectives.GANObjective, "train_step", real_step)
    resumed = train.run(config, progress=False)
    monkeypatch.setenv("DGM_CHECKPOINTS", str(tmp_path / "uninterrupted"))
    uninterrupted = train.run(config, progress=False)
    assert resumed.history == uninterrupted.history
    assert torch.equal(params(resumed.model), params(uninterrupted.model)), \
        "a resumed GAN must continue with the saved generator, discriminator and both Adam states"


def test_finished_checkpoint_is_loaded_without_training(monkeypatch):
    first = train.run(small(), progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must be loaded, not trained again")

    monkeypatch.setattr(objectives.VAEObjective, "train_step", no_training)
    again = train.run(small(), progress=False)
    assert again.history == first.history
    assert torch.equal(params(again.model), params(first.model))


def test_another_configuration_never_loads_a_stale_checkpoint():
    a = train.run(small(), progress=False)
    b = train.run(small(lr=3e-4), progress=False)
    assert a.folder != b.folder
    assert b.history != a.history
    with pytest.raises(ValueError, match="another configuration"):
        train.run(small(lr=3e-4), folder=a.folder, progress=False)


def test_divergence_stops_with_epoch_and_step_and_keeps_the_last_checkpoint(monkeypatch):
    config = small(epochs=3)
    steps = SMALL["train_limit"] // SMALL["batch_size"]
    real_step, calls = objectives.VAEObjective.train_step, []

    def nan_at_epoch_2_step_3(self, x):
        calls.append(1)
        terms = real_step(self, x)
        if len(calls) == steps + 3:
            terms["loss"] = torch.tensor(float("nan"))
        return terms

    monkeypatch.setattr(objectives.VAEObjective, "train_step", nan_at_epoch_2_step_3)
    with pytest.raises(train.DivergenceError, match="epoch 2, step 3"):
        train.run(config, progress=False)
    saved = checkpoints.load(checkpoints.run_folder({**config.__dict__, "data": _source()}))
    assert saved["epoch"] == 1 and len(saved["history"]) == 1, "the epoch-1 checkpoint must survive intact"


def _source():
    from helpers import data
    return data.source("mnist")


@pytest.mark.parametrize("overrides, message", [
    (dict(model="no-such-model"), "Unknown model"),
    (dict(batch_size=0), "batch_size"),
    (dict(lr=-1.0), "lr"),
    (dict(batch_size=1024, train_limit=100), "larger than the training split"),
])
def test_bad_configurations_fail_before_training(overrides, message, tmp_path):
    config = train.RunConfig(**{**dict(model="mnist-vae", epochs=1, batch_size=64, lr=1e-4), **overrides})
    with pytest.raises(ValueError, match=message):
        train.run(config, progress=False)
    assert not any((tmp_path / "checkpoints").glob("*/checkpoint.pt")), "nothing may be trained or saved"


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="learning_rate"):
        train.config_for("mnist-vae", learning_rate=1e-3)


def test_batches_are_disjoint_shards_of_one_permutation():
    full = train.epoch_batches(100, 10, epoch_seed=5)
    shards = [train.epoch_batches(100, 10, epoch_seed=5, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat(shards, 1).sort(1).values, full.sort(1).values)
    assert full.unique().numel() == 100


def _cli(args):
    return [sys.executable, "-m", "helpers.train", *args]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = ["--model", "mnist-vae", "--epochs", "2", "--train-limit", "1024", "--val-limit", "256"]
    env = {**os.environ, "DGM_CHECKPOINTS": str(tmp_path / "killed")}
    proc = subprocess.Popen(_cli(args), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list((tmp_path / "killed").glob("*/checkpoint.pt")):
        assert proc.poll() is None and time.time() < deadline, "the run ended or stalled before its first checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the hardest stop
    proc.wait()
    folder = next((tmp_path / "killed").glob("*/checkpoint.pt")).parent
    assert checkpoints.load(folder)["epoch"] < 2, "the kill must land before the run finished"

    subprocess.run(_cli(args), env=env, cwd=REPO, check=True, capture_output=True)
    env_clean = {**os.environ, "DGM_CHECKPOINTS": str(tmp_path / "clean")}
    subprocess.run(_cli(args), env=env_clean, cwd=REPO, check=True, capture_output=True)
    resumed = checkpoints.load(folder)
    clean = checkpoints.load(next((tmp_path / "clean").glob("*/checkpoint.pt")).parent)
    assert resumed["history"] == clean["history"], "resume must replay the interrupted epoch exactly"
    for name, tensor in clean["objective"]["model"].items():
        assert torch.equal(resumed["objective"]["model"][name], tensor), f"{name} differs after resume"


def test_torchrun_two_processes_end_with_identical_parameters(tmp_path):
    env = {**os.environ, "DGM_CHECKPOINTS": str(tmp_path / "ddp"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "ddp_worker.py"), str(tmp_path),
           "--model", "mnist-vae", "--epochs", "2", "--train-limit", "512", "--val-limit", "128"]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(rank0["params"], rank1["params"]), "DDP must keep the replicas identical"
    assert len(rank0["history"]) == 2 and rank0["history"] == rank1["history"]
    assert len(list((tmp_path / "ddp").glob("*/checkpoint.pt"))) == 1, "only rank 0 writes the checkpoint"


def test_timing_summary_adds_minutes_and_takes_the_median_speed():
    timings = [{"seconds": 60.0, "train_seconds": 48.0, "fid_seconds": 6.0, "images_per_second": s}
               for s in (1000.0, 3000.0, 2000.0)]
    run = train.Run(config=None, objective=None, history=[], timings=timings, folder=None)
    assert run.timing_summary() == ("3 epochs, 3.0 min in total (2.4 min of training steps, 0.3 min of FID), "
                                    "median 2,000 images/s")
