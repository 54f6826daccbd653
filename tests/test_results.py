"""results.record: what a results file says about a run, and that quick runs never write one."""
from types import SimpleNamespace

import torch

from helpers import results
from helpers.paths import results_dir


def fake_run(timings):
    history = [{"epoch": 1, "train_loss": 3.0}, {"epoch": 2, "train_loss": 2.0, "fid": 80.5, "fid_n": 500}]
    return SimpleNamespace(history=history, timings=timings, train_seconds=sum(t["seconds"] for t in timings),
                           model=torch.nn.Linear(3, 2))


def test_record_takes_curve_threads_and_size_from_the_run_and_writes_nothing_in_quick():
    timings = [{"seconds": 10.0, "threads": 1}, {"seconds": 5.5, "threads": 2}]
    result = results.record("no_such_model", fake_run(timings), dataset="mnist", image_size=32, extra=7)
    assert result["fid_curve"] == [[2, 80.5, 500]], "only the epochs where FID was computed"
    assert result["epochs"] == 2 and result["train_seconds"] == 15.5
    assert result["train_threads"] == [1, 2], "a run that changed thread count says so"
    assert result["params"] == 3 * 2 + 2 and result["extra"] == 7 and result["fid"] is None
    assert result["profile"] == "quick"
    assert not (results_dir() / "no_such_model.json").exists(), "quick runs must never write results"


def test_runs_saved_before_threads_were_recorded_say_none():
    result = results.record("no_such_model", fake_run([{"seconds": 1.0}]), dataset="mnist", image_size=32)
    assert result["train_threads"] is None
