"""The Results chapter: every results file is checked and belongs to a chapter, the tables show the files'
numbers, a malformed file is named with its field, and the committed chapter is not stale."""
import copy
import re
import json
import statistics

import nbformat
import pytest
import torch

from helpers import pretrained, registry, results_table, train
from helpers.paths import REPO_ROOT

PUBLISHED = REPO_ROOT / "results"
CHAPTER = REPO_ROOT / "book" / "13_results.ipynb"


def rows_of(table: str) -> dict:
    """A Markdown table as ``{first cell: {column: cell}}``."""
    lines = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])] for line in table.splitlines()]
    header, body = lines[0], lines[2:]
    assert all(len(row) == len(header) for row in body), "every row has one cell per column"
    return {row[0]: dict(zip(header, row)) for row in body}


def columns_of(table: str) -> dict:
    """The models table (one column per results file) as ``{"`name`": {row label: cell}}``."""
    rows = rows_of(table)
    return {column: {label.strip("*"): row[column] for label, row in rows.items()}
            for column in next(iter(rows.values())) if column}


# A file as chapter 8 writes it for several seeds, with fields the tables do not read.
SEEDED = {
    "model": "mnist_flow_vae", "dataset": "mnist", "image_size": 32, "profile": "full", "epochs": 50,
    "train_seconds": 1745.0, "hardware": "2-core CPU (1 thread) (x86_64), torch 2.14.1", "train_threads": [1],
    "params": 4_600_000,
    "fid": {"value": 27.123, "n_generated": 10_000, "reference": "mnist/test", "n_reference": 10_000, "dims": 2048},
    "fid_curve": [[5, 90.0, 500], [10, 60.0, 500]],
    "test_neg_elbo_nats": 97.5, "test_neg_iw100_bound_nats": 94.2, "active_latent_dims": 30, "prior": "RealNVP",
    "seeds": [{"seed": 0, "fid": 27.12, "test_neg_elbo_nats": 97.5}, {"seed": 1, "fid": 29.4, "test_neg_elbo_nats": None},
              {"seed": 2, "fid": 28.0, "test_neg_elbo_nats": None}],
}
SEEDED["fid_mean"] = round(statistics.mean(s["fid"] for s in SEEDED["seeds"]), 2)
SEEDED["fid_spread"] = round(statistics.stdev(s["fid"] for s in SEEDED["seeds"]), 2)


def write(folder, result, name=None) -> None:
    """``result`` as ``folder/<name>.json`` (by default the name its ``model`` field says)."""
    (folder / f"{name or result['model']}.json").write_text(json.dumps(result))


def test_every_committed_results_file_is_valid_and_its_chapter_exists():
    results = results_table.read_all(PUBLISHED)
    assert set(results) == {p.stem for p in PUBLISHED.glob("*.json")}
    for name in results:
        chapter = REPO_ROOT / "book" / f"{results_table.BOOK_MODELS[name].chapter}.ipynb"
        assert chapter.exists(), f"{name}: its chapter {chapter} does not exist"


def test_the_models_table_shows_every_files_own_numbers():
    results = results_table.read_all(PUBLISHED)
    rows = columns_of(results_table.models_table(results, results_table.reference_numbers()))
    assert len(rows) == len(results)
    for name, result in results.items():
        row = rows[f"`{name}`"]
        assert row["dataset"] == result["dataset"] and row["hardware"] == result["hardware"]
        total = sum(result["params"].values()) if isinstance(result["params"], dict) else result["params"]
        assert sum(int(n.split(" ")[0].replace(",", "")) for n in row["parameters"].split(" + ")) == total
        if result["fid"]:
            fid = result["fid"]
            assert row["FID"].startswith(f"{fid['value']:.1f} ("), f"{name}: FID {fid['value']} shown as {row['FID']}"
            for part in (f"{fid['n_generated']:,}", f"{fid['n_reference']:,} {fid['reference']}", f"{fid['dims']}-d"):
                assert part in row["FID"], f"{name}: the FID cell must state {part}"
        else:
            assert row["FID"].startswith("none"), f"{name} has no FID"
        elbo, bits = result.get("test_neg_elbo_nats"), result.get("test_bits_per_dim")
        assert row["test −ELBO (nats)"] == (f"{elbo:.2f}" if elbo is not None else "—") + (
            f" ({bits:.3f} bits/dim)" if elbo is not None and bits is not None else "")
        if result["epochs"]:
            assert row["training"].startswith(f"{result['epochs']} epochs")
        if "train_threads" not in result:
            assert row["training threads"] == "not recorded"
        for entry in results_table.reference_numbers():
            if name in entry["counterparts"]:
                column = "the report's FID" if entry["source"] == "the report" else "the literature's FID, same kind of model"
                assert results_table.reference_fid(entry) in row[column], f"{name}: {entry} missing"


def test_seeds_threads_and_extra_fields_are_shown(tmp_path):
    write(tmp_path, SEEDED)
    row = columns_of(results_table.models_table(results_table.read_all(tmp_path), []))["`mnist_flow_vae`"]
    assert row["seeds: FID mean ± sd"] == f"{SEEDED['fid_mean']:.1f} ± {SEEDED['fid_spread']:.1f} over seeds 0, 1, 2; shown: seed 0"
    assert row["training threads"] == "1"
    assert row["KID"] == "not recorded" and row["the report's FID"] == "—"


KID = {"value": 0.01234, "standard_error": 0.00056, "n_subsets": 10, "subset_size": 1000}  # as helpers.fid writes it


def test_a_recorded_kid_is_shown(tmp_path):
    write(tmp_path, {**SEEDED, "fid": {**SEEDED["fid"], "kid": KID}})
    row = columns_of(results_table.models_table(results_table.read_all(tmp_path), []))["`mnist_flow_vae`"]
    assert row["KID"].startswith("0.0123 ± 0.00056") and "10 subsets of 1,000" in row["KID"]


def broken(change):
    """SEEDED with one change applied."""
    result = copy.deepcopy(SEEDED)
    change(result)
    return result


@pytest.mark.parametrize("change, field", [
    (lambda r: r.pop("hardware"), "'hardware' is missing"),
    (lambda r: r.update(params="3.5M"), "'params' must be"),
    (lambda r: r.update(profile="quick"), "'profile' must be 'full'"),
    (lambda r: r["fid"].pop("n_generated"), "'fid.n_generated' must be a number"),
    (lambda r: r["fid"].update(kid={**KID, "standard_error": None}), "'fid.kid.standard_error' must be a number"),
    (lambda r: r["fid"].update(kid=0.5), "'fid.kid' must be an object with value, standard_error"),
    (lambda r: r.update(fid_curve=[[5, 90.0]]), "'fid_curve' must be"),
    (lambda r: r.update(epochs=None), "'steps' must be a whole number"),
    (lambda r: r.update(model="mnist_vae"), "'model' is 'mnist_vae'"),
    (lambda r: r.update(fid_mean=r["fid_mean"] + 1), "'fid_mean' is"),
    (lambda r: r.update(fid_spread=r["fid_spread"] * 1.3), "'fid_spread' is"),
    (lambda r: r.pop("seeds"), "'seeds' is missing"),
    (lambda r: r["seeds"][1].pop("fid"), "'seeds' must give a number 'fid'"),
    (lambda r: r["fid"].update(value=31.0), "'fid' must be the FID of one of the seeds"),
])
def test_a_malformed_file_is_named_with_its_field(tmp_path, change, field):
    write(tmp_path, broken(change), name="mnist_flow_vae")
    with pytest.raises(results_table.ResultsError) as error:
        results_table.read_all(tmp_path)
    assert str(tmp_path / "mnist_flow_vae.json") in str(error.value) and field in str(error.value)


def test_a_file_of_no_chapter_and_invalid_json_are_refused(tmp_path):
    write(tmp_path, {**SEEDED, "model": "mnist_mystery"})
    with pytest.raises(results_table.ResultsError, match="mnist_mystery.json belong to no chapter.*BOOK_MODELS"):
        results_table.read_all(tmp_path)
    (tmp_path / "mnist_mystery.json").unlink()
    (tmp_path / "mnist_vae.json").write_text('{"model": "mnist_vae", "fid_cur')
    with pytest.raises(results_table.ResultsError, match="mnist_vae.json is not valid JSON"):
        results_table.read_all(tmp_path)


def test_one_seed_has_no_spread(tmp_path):
    one = {**SEEDED, "seeds": SEEDED["seeds"][:1], "fid_mean": 27.12, "fid_spread": None}
    write(tmp_path, one)
    assert columns_of(results_table.models_table(results_table.read_all(tmp_path), []))["`mnist_flow_vae`"][
        "seeds: FID mean ± sd"].startswith("27.1 over seeds 0;")
    write(tmp_path, {**one, "fid_spread": 0.5})
    with pytest.raises(results_table.ResultsError, match="one seed has no spread"):
        results_table.read_all(tmp_path)


def test_a_bound_in_bits_per_dimension_is_shown_next_to_the_nats(tmp_path):
    write(tmp_path, {**SEEDED, "test_neg_elbo_nats": 38_330.0, "test_bits_per_dim": 4.5})
    row = columns_of(results_table.models_table(results_table.read_all(tmp_path), []))["`mnist_flow_vae`"]
    assert row["test −ELBO (nats)"] == "38330.00 (4.500 bits/dim)"
    write(tmp_path, {**SEEDED, "test_bits_per_dim": "4.5"})
    with pytest.raises(results_table.ResultsError, match="test_bits_per_dim"):
        results_table.read_all(tmp_path)


def test_reference_numbers_say_when_n_is_not_known():
    references = results_table.reference_numbers()
    rows = results_table.references_table(results_table.read_all(PUBLISHED), references).splitlines()[2:]
    assert len(rows) == len(references)
    for entry, row in zip(references, rows):
        assert entry["source"] in row and results_table.reference_fid(entry) in row
        assert ("N not stated here" in row or "N and reference not stated here" in row) == (not entry["n_generated"])


def test_a_reference_without_number_or_remark_is_refused(tmp_path):
    entries = results_table.reference_numbers()
    path = tmp_path / "reference_numbers.json"
    path.write_text(json.dumps({"numbers": [*entries, {**entries[0], "fid": None, "remark": None}]}))
    with pytest.raises(results_table.ResultsError, match=f"entry {len(entries)} .*null with a remark"):
        results_table.reference_numbers(path)
    path.write_text(json.dumps({"numbers": [{**entries[0], "counterparts": ["mnist_vea"]}]}))
    with pytest.raises(results_table.ResultsError, match="mnist_vea"):
        results_table.reference_numbers(path)


def test_files_of_one_run_share_their_fid_curve(tmp_path):
    write(tmp_path, SEEDED)
    write(tmp_path, {**SEEDED, "model": "mnist_vae_gmm"})
    write(tmp_path, {**SEEDED, "model": "mnist_vae", "fid_curve": [[5, 100.0, 500]], "seeds": SEEDED["seeds"]})
    curves = results_table.fid_curves(results_table.read_all(tmp_path))
    assert [names for names, _ in curves["mnist"]] == [["mnist_vae"], ["mnist_flow_vae", "mnist_vae_gmm"]]


def test_the_shipped_model_of_a_results_file_is_its_lowest_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("DGM_PRETRAINED", str(tmp_path))
    monkeypatch.setenv(pretrained.SWITCH, "1")
    weights = {}
    for seed in (2, 1):
        identity = {"model": "mnist-vae", "epochs": 1, "batch_size": 64, "lr": 1e-4, "seed": seed, "data": "real"}
        torch.manual_seed(seed)
        weights[seed] = registry.spec("mnist-vae").build(
            train.RunConfig(**{k: v for k, v in identity.items() if k != "data"})).model.state_dict()
        pretrained.export({"objective": {"model": weights[seed]}, "history": [], "timings": []}, identity,
                          results="mnist_vae", half=False)
    model, entry = results_table.shipped_model("mnist_vae")
    assert entry["identity"]["seed"] == 1
    assert all(torch.equal(v, weights[1][k]) for k, v in model.state_dict().items())
    assert not model.training, "ready to sample"
    assert results_table.shipped_model("mnist_gan_ns") is None
    monkeypatch.setenv(pretrained.SWITCH, "0")
    assert results_table.shipped_model("mnist_vae") is None


def saved_markdown(cell) -> list:
    return ["".join(o["data"]["text/markdown"]) for o in cell.get("outputs", []) if "text/markdown" in o.get("data", {})]


def test_the_committed_chapter_shows_the_tables_of_the_current_files():
    """Re-execute the chapter after any results file changes (see its first cell): a stale page fails here."""
    notebook = nbformat.read(CHAPTER, as_version=4)
    results = results_table.read_all(PUBLISHED)
    references = results_table.reference_numbers()
    for function in (results_table.models_table, results_table.references_table):
        cells = [c for c in notebook.cells if c.cell_type == "code" and f"results_table.{function.__name__}(" in c.source]
        assert len(cells) == 1, f"the chapter shows {function.__name__} in exactly one cell"
        assert saved_markdown(cells[0]) == [function(results, references)], (
            f"{CHAPTER.name}: the saved {function.__name__} differs from the one of today's results files; "
            "re-execute the chapter")


def test_the_chapters_prose_states_only_numbers_its_outputs_show():
    """A measured number in the prose (a decimal, or a count with a thousands separator) must appear in an output
    of the chapter, so that re-executing with new results files cannot leave the text contradicting the tables."""
    notebook = nbformat.read(CHAPTER, as_version=4)
    outputs = " ".join(o.get("text", "") + "".join(o.get("data", {}).get("text/markdown", ""))
                       for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    prose = " ".join(c.source for c in notebook.cells if c.cell_type == "markdown" and "## References" not in c.source)
    numbers = re.findall(r"\d+\.\d+|\d{1,3}(?:,\d{3})+", prose)
    assert numbers, "the check needs the prose to state some number"
    assert not [n for n in numbers if n not in outputs], "numbers in the prose that no output shows"
