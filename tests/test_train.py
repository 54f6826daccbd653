"""The training loop: reproducible, resumable after a hard kill, guarded, and distributed.

Runs are small (a few hundred MNIST digits, or the synthetic stand-in offline) so the
whole file takes well under a minute on two cores.
"""
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import checkpoints, fid, objectives, registry, train

from builders import interrupted_and_uninterrupted

SMALL = dict(train_limit=512, val_limit=128, batch_size=64)
REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("own_checkpoints")  # run folders in a temporary directory


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
    before = registry.spec("mnist-gan-ns").build(run.config)  # the same initialization, untrained
    for player in ("generator", "discriminator"):
        assert not torch.equal(params(getattr(run.model, player)), params(getattr(before.model, player))), \
            f"the {player} must have been updated"
    assert {"train_d_loss", "train_g_loss", "val_d_loss", "val_d_real", "val_d_fake"} <= set(run.history[0])


def test_stopped_gan_resumes_both_players_and_both_optimizers_exactly(monkeypatch, tmp_path):
    config = small("mnist-gan-minimax", epochs=2)
    steps = SMALL["train_limit"] // SMALL["batch_size"]
    resumed, uninterrupted = interrupted_and_uninterrupted(monkeypatch, tmp_path, objectives.GANObjective, config,
                                                           stop_at_call=steps + 3)  # in epoch 2
    assert resumed.history == uninterrupted.history
    assert torch.equal(params(resumed.model), params(uninterrupted.model)), \
        "a resumed GAN must continue with the saved generator, discriminator and both Adam states"


def test_finished_checkpoint_is_loaded_without_training(monkeypatch):
    first = train.run(small(), progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must be loaded, not trained again")

    monkeypatch.setattr(objectives.VAEObjective, "train_step", no_training)
    again = train.run(small(), progress=False)
    assert (first.origin, again.origin) == ("trained", "checkpoint")
    assert not first.model.training and not again.model.training, "a finished run is returned ready to sample"
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
    (dict(lr="1e-3"), "lr='1e-3' must be a positive number"),
    (dict(epochs=True), "epochs=True must be an integer"),
    (dict(train_limit="500"), "train_limit='500' must be an integer >= 1 or None"),
    (dict(fid_every=1, fid_n=1), "fid_n=1 must be an integer >= 2"),
])
def test_bad_configurations_fail_before_training(overrides, message, tmp_path):
    config = train.RunConfig(**{**dict(model="mnist-vae", epochs=1, batch_size=64, lr=1e-4), **overrides})
    with pytest.raises(ValueError, match=message):
        train.run(config, progress=False)
    assert not any((tmp_path / "checkpoints").glob("*/checkpoint.pt")), "nothing may be trained or saved"


@pytest.fixture
def no_training(monkeypatch):
    """Make any training step fail the test: what is checked must be checked before training."""
    def step(*args):
        raise AssertionError("a training step ran before the configuration was checked")

    monkeypatch.setattr(objectives.VAEObjective, "train_step", step)


@pytest.mark.parametrize("broken", ["dims", "weights"])
def test_fid_settings_and_weights_are_checked_before_the_first_epoch(broken, tmp_path, monkeypatch, no_training):
    overrides = dict(fid_every=1, fid_n=50, fid_reference_n=50, fid_dims=64)
    if broken == "dims":
        overrides["fid_dims"], error, message = 100, ValueError, "dims=100"
    else:  # an interrupted copy: the weights file is there but empty
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
        fid.weights_path().parent.mkdir(parents=True)
        fid.weights_path().touch()
        error, message = fid.BrokenWeightsError, str(fid.weights_path())
    with pytest.raises(error, match=re.escape(message)):
        train.run(small(**overrides), progress=False)


def test_a_run_training_in_another_process_is_refused_before_loading_data(tmp_path, monkeypatch):
    args = ["--model", "mnist-vae", "--epochs", "1000", "--train-limit", "512", "--val-limit", "128"]
    config = train.config_for("mnist-vae", epochs=1000, train_limit=512, val_limit=128)
    lock = checkpoints.run_folder({**config.__dict__, "data": _source()}) / checkpoints.LOCK
    other = subprocess.Popen(_cli(args), env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text() == str(other.pid)):
            assert other.poll() is None and time.time() < deadline, "the other run ended or stalled before training"
            time.sleep(0.05)
        monkeypatch.setattr(train.data, "load", lambda *a, **k: pytest.fail("data loaded for a run in use"))
        expected = re.escape(f"already in use by another process (pid {other.pid})")
        with pytest.raises(checkpoints.RunInProgressError, match=expected):
            train.run(config, progress=False)
    finally:
        other.kill()
        other.wait()


def test_a_checkpoint_without_config_is_never_loaded(no_training):
    folder = checkpoints.run_folder({**small().__dict__, "data": _source()})
    checkpoints.save(folder, {}, {"epoch": 2})
    (folder / checkpoints.CONFIG).unlink()  # e.g. copied without it: nothing says what trained it
    for resume in (True, False):
        with pytest.raises(checkpoints.CheckpointError, match="no config.json"):
            train.run(small(), resume=resume, progress=False)


def test_a_truncated_checkpoint_says_how_to_start_over_and_that_way_works():
    config = small(epochs=1, train_limit=128, val_limit=64)
    first = train.run(config, progress=False)
    path = first.folder / checkpoints.CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(checkpoints.CheckpointError, match="resume=False"):
        train.run(config, progress=False)
    assert train.run(config, resume=False, progress=False).history == first.history


def test_a_full_disk_stops_the_run_and_the_next_run_resumes_from_the_last_checkpoint(monkeypatch):
    config, real_save, saves, disk_full = small(train_limit=128, val_limit=64), torch.save, [], [True]

    def save_unless_full_at_epoch_2(state, f):
        saves.append(state["epoch"])
        if state["epoch"] == 2 and disk_full[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(state, f)

    monkeypatch.setattr(torch, "save", save_unless_full_at_epoch_2)
    with pytest.raises(OSError, match="is full"):
        train.run(config, progress=False)
    assert checkpoints.load(checkpoints.run_folder({**config.__dict__, "data": _source()}))["epoch"] == 1
    disk_full[0] = False  # space was freed
    assert [r["epoch"] for r in train.run(config, progress=False).history] == [1, 2]
    assert saves == [1, 2, 2], "the next run must continue from the epoch-1 checkpoint, not start over"


def test_an_unusable_checkpoint_folder_is_named_before_loading_data(tmp_path, monkeypatch):
    (tmp_path / "a_file").touch()
    monkeypatch.setenv("DGM_CHECKPOINTS", str(tmp_path / "a_file" / "checkpoints"))
    monkeypatch.setattr(train.data, "load", lambda *a, **k: pytest.fail("data loaded before the folder was checked"))
    with pytest.raises(OSError, match="Set DGM_CHECKPOINTS to a folder you can write to"):
        train.run(small(), progress=False)
    with pytest.raises(OSError, match="Set DGM_CHECKPOINTS to a writable folder"):
        train.run(small(), folder=tmp_path / "a_file" / "run", progress=False)


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
