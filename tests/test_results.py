"""results.record: what a results file says about a run, that quick runs never write one, and
that a run with other settings than the published ones never replaces the published file."""
import json
import math
import re
import shutil
from types import SimpleNamespace

import pytest
import torch

from helpers import registry, results, train
from helpers.fid import FIDResult
from helpers.paths import REPO_ROOT, results_dir

PUBLISHED = REPO_ROOT / "results"


@pytest.fixture(autouse=True)
def own_results(tmp_path, monkeypatch):
    """Every test writes into its own results folder, never the committed one."""
    monkeypatch.setenv("DGM_RESULTS", str(tmp_path / "results"))


@pytest.fixture
def full(monkeypatch):
    monkeypatch.setattr(results, "PROFILE", "full")


def fake_run(timings, config=None, curve=((2, 500),), value=80.5):
    """A finished run of ``config`` whose history holds FID ``value`` at each (epoch, n) of ``curve``."""
    epochs = config.epochs if config else 2
    history = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, epochs + 1)]
    for epoch, n in curve:
        history[epoch - 1].update(fid=value, fid_n=n)
    return SimpleNamespace(config=config, history=history, timings=timings,
                           train_seconds=sum(t["seconds"] for t in timings), model=torch.nn.Linear(3, 2))


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


def test_results_dir_follows_DGM_RESULTS(tmp_path):
    assert results_dir() == tmp_path / "results"


def published_run(name):
    """A run with exactly the settings of the committed ``results/<name>.json``, and its final FID."""
    saved = json.loads((PUBLISHED / f"{name}.json").read_text())
    curve = [(epoch, n) for epoch, _, n in saved["fid_curve"]]
    config = train.config_for(name.replace("_", "-"), fid_every=curve[0][0], fid_n=curve[0][1])
    return fake_run([{"seconds": 1.0}], config, curve), FIDResult(**saved["fid"])


@pytest.mark.parametrize("name", ["mnist_vae", "mnist_gan_minimax", "mnist_gan_ns", "mnist_gan_ns_sn"])
def test_a_run_with_the_published_settings_replaces_its_file(name, full):
    shutil.copytree(PUBLISHED, results_dir(), dirs_exist_ok=True)
    run, final_fid = published_run(name)
    results.record(name, run, dataset="mnist", image_size=32, fid=final_fid)
    written = json.loads((results_dir() / f"{name}.json").read_text())
    assert written["fid"] == final_fid.as_dict() and written["profile"] == "full"


def _refusal(name, run, final_fid, **kwargs):
    """Record in the full profile, expecting a refusal; check the published file is untouched."""
    shutil.copytree(PUBLISHED, results_dir(), dirs_exist_ok=True)
    before = (results_dir() / f"{name}.json").read_bytes()
    with pytest.raises(results.UnpublishedSettingsError) as refused:
        results.record(name, run, dataset="mnist", image_size=32, fid=final_fid, **kwargs)
    assert (results_dir() / f"{name}.json").read_bytes() == before, "a refused run must write nothing"
    return str(refused.value)


def test_a_shortened_run_is_refused_naming_each_changed_setting(full):
    run, final_fid = published_run("mnist_vae")
    short = train.config_for("mnist-vae", epochs=10, train_limit=2_000, fid_every=5, fid_n=500)
    message = _refusal("mnist_vae", fake_run(run.timings, short, [(5, 500), (10, 500)]), final_fid)
    assert f"epochs=10 (published {registry.spec('mnist-vae').defaults['epochs']})" in message
    assert "train_limit=2000 (published None)" in message
    assert re.search("pass force=True.*DGM_RESULTS", message), "the message must say how to record it anyway"


def test_a_final_fid_of_fewer_samples_is_refused(full):
    run, final_fid = published_run("mnist_gan_ns")
    small_fid = FIDResult(**{**final_fid.as_dict(), "n_generated": 1_000, "dims": 64})
    message = _refusal("mnist_gan_ns", run, small_fid)
    assert "fid.n_generated=1000 (published 10000)" in message and "fid.dims=64 (published 2048)" in message


def test_a_run_without_the_published_fid_curve_is_refused(full):
    run, final_fid = published_run("mnist_vae")
    no_curve = train.config_for("mnist-vae")  # fid_every=0: the published curve would be lost
    message = _refusal("mnist_vae", fake_run(run.timings, no_curve, curve=[]), final_fid)
    assert "fid_curve (epoch, n)=[]" in message


def test_force_records_a_run_with_other_settings(full):
    short = train.config_for("mnist-vae", epochs=2, train_limit=2_000)
    results.record("mnist_vae", fake_run([{"seconds": 1.0}], short), dataset="mnist", image_size=32, force=True)
    assert json.loads((results_dir() / "mnist_vae.json").read_text())["epochs"] == 2


def test_a_corrupt_published_file_is_named(full):
    run, final_fid = published_run("mnist_vae")
    (results_dir() / "mnist_vae.json").write_text('{"model": "mnist_vae", "fid_cur')
    with pytest.raises(ValueError, match=re.escape(f"{results_dir() / 'mnist_vae.json'} is not valid JSON")):
        results.record("mnist_vae", run, dataset="mnist", image_size=32, fid=final_fid)


def test_mean_sd_is_the_mean_and_the_sample_standard_deviation_over_seeds():
    mean, sd = results.mean_sd([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert sd == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)), "divides by N - 1"
    assert math.isnan(results.mean_sd([3.0])[1]), "one seed has no spread"


def imagenette_fid(n_generated):
    return FIDResult(value=150.0, n_generated=n_generated, reference="imagenette/test", n_reference=3_000, dims=2048)


def test_an_ablation_row_at_its_stated_budget_is_recorded_and_at_another_refused(full):
    ablation = train.config_for("imagenette-gan-ns", epochs=50, fid_every=10, fid_n=500)
    run = fake_run([{"seconds": 1.0}], ablation, [(10, 500), (20, 500)])
    written = results.record("imagenette_gan_ns_e50", run, dataset="imagenette", image_size=64,
                             fid=imagenette_fid(3_000), epochs=50)
    assert written["epochs"] == 50
    with pytest.raises(results.UnpublishedSettingsError, match=r"epochs=50 \(published 40\)"):
        results.record("imagenette_gan_ns_e40", run, dataset="imagenette", image_size=64,
                       fid=imagenette_fid(3_000), epochs=40)
    with pytest.raises(results.UnpublishedSettingsError, match=r"epochs=50 \(published 150\)"):
        results.record("imagenette_gan_ns_e50_again", run, dataset="imagenette", image_size=64, fid=imagenette_fid(3_000))


def test_the_final_fid_on_a_test_split_of_3000_uses_3000_samples(full):
    run = fake_run([{"seconds": 1.0}], train.config_for("imagenette-vae"), curve=[])
    results.record("imagenette_vae", run, dataset="imagenette", image_size=64, fid=imagenette_fid(3_000))
    with pytest.raises(results.UnpublishedSettingsError, match=r"fid.n_generated=1000 \(published 3000\)"):
        results.record("imagenette_vae", run, dataset="imagenette", image_size=64, fid=imagenette_fid(1_000))
