"""The Results chapter's tables and figures, built from ``results/*.json``, never typed by hand.

:func:`read_all` checks every results file before anything is drawn: a file that lacks a field the
tables need, or holds one of the wrong kind, is named together with that field. Fields the tables do
not use are allowed and ignored. The report's and the literature's FIDs come from
``book/reference_numbers.json`` (:func:`reference_numbers`), each with its source and, where known,
its sample size; :data:`BOOK_MODELS` says which chapter wrote each results file.
"""
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from . import pretrained, train
from .paths import REPO_ROOT, results_dir

REFERENCE_NUMBERS = REPO_ROOT / "book" / "reference_numbers.json"
# Chapters write the seeds' FIDs and their mean and spread rounded to 2 decimals: summaries recomputed from
# rounded values may differ by up to 0.01, and a rounded seed FID from the headline value by up to 0.005.
SUMMARY_TOLERANCE = 0.02
ROUNDING_TOLERANCE = 0.0051
FIX = "Re-run the chapter that writes it in the full profile, or restore the committed file (git checkout results/)."


class ResultsError(ValueError):
    """A results or reference file the Results chapter cannot use; the message names the file and the field."""


@dataclass(frozen=True)
class BookModel:
    """Where a results file comes from: ``book/<chapter>.ipynb`` trains the model and writes the file."""

    chapter: str
    architecture: str  # a few words for the table


# results name -> its model, in reading order: the table's rows follow this order.
BOOK_MODELS = {
    "mnist_vae": BookModel("04_vae_mnist", "the report's MLP VAE, N(0, I) prior, Bernoulli decoder"),
    "gan_toy_1d": BookModel("05_gan_objective", "MLP generator and discriminator on 1-D data"),
    "mnist_gan_minimax": BookModel("06_gan_mnist", "the report's MLP GAN, minimax generator loss"),
    "mnist_gan_ns": BookModel("06_gan_mnist", "the report's MLP GAN, non-saturating generator loss"),
    "mnist_gan_ns_sn": BookModel("06_gan_mnist", "the report's MLP GAN, non-saturating loss, spectral norm in D"),
    "mnist_flow_vae": BookModel("08_flow_prior", "the report's MLP VAE with a RealNVP prior trained jointly"),
    "mnist_vae_gmm": BookModel("08_flow_prior", "the N(0, I) VAE, sampled through a Gaussian mixture fitted ex post"),
    "imagenette_vae_report": BookModel("09_imagenette_vae", "the report's conv VAE at 64 px, its ReLU before the sigmoid kept"),
    "imagenette_vae": BookModel("09_imagenette_vae", "the report's conv VAE at 64 px, corrected, Bernoulli decoder"),
    "imagenette_vae_logistic": BookModel("09_imagenette_vae", "the corrected conv VAE at 64 px, discretized logistic decoder"),
    "imagenette_vae_gmm": BookModel("09_imagenette_vae", "the logistic conv VAE, sampled through a Gaussian mixture fitted ex post"),
    "imagenette_gan_report": BookModel("09_imagenette_gan", "the report's conv GAN at 64 px, its ReLU before the sigmoid kept, 50 epochs"),
    "imagenette_gan_wide_noisy": BookModel("09_imagenette_gan", "the corrected conv GAN with the report's improvements (wider, noisy labels), 50 epochs"),
    "imagenette_gan": BookModel("09_imagenette_gan", "conv GAN: batch norm in G, spectral norm in D, hinge loss, average of G, DiffAugment"),
}


# ---------------------------------------------------------------- checking a results file

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_text(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _is_curve(v) -> bool:
    return isinstance(v, list) and all(isinstance(p, list) and len(p) == 3 and _is_count(p[0]) and _is_number(p[1])
                                       and _is_count(p[2]) for p in v)


# field -> (required, check, what it must be). Fields not listed here may hold anything.
FIELDS = {
    "model": (True, _is_text, "the file's name without .json"),
    "dataset": (True, _is_text, "the dataset's name, e.g. 'mnist'"),
    "profile": (True, lambda v: v == "full", "'full' (quick runs never write results)"),
    "epochs": (True, lambda v: v is None or _is_count(v), "a whole number, or null for a run counted in 'steps'"),
    "train_seconds": (True, _is_number, "the training time in seconds"),
    "hardware": (True, _is_text, "a description such as '2-core CPU (1 thread) (x86_64), torch 2.14.1'"),
    "params": (True, lambda v: _is_count(v) or (isinstance(v, dict) and v and all(map(_is_count, v.values()))),
               "a parameter count, or one count per network such as {'G': ..., 'D': ...}"),
    "fid": (True, lambda v: v is None or isinstance(v, dict), "an FID object (see helpers.fid.FIDResult) or null"),
    "fid_curve": (False, _is_curve, "a list of [epoch, FID, number of samples] triples"),
    "train_threads": (False, lambda v: v is None or (isinstance(v, list) and all(_is_count(t) and t > 0 for t in v)),
                      "a list of thread counts, or null"),
    "test_neg_elbo_nats": (False, lambda v: v is None or _is_number(v), "a number of nats per image, or null"),
    "test_bits_per_dim": (False, _is_number, "the test negative ELBO in bits per dimension"),
    "seeds": (False, lambda v: isinstance(v, list) and v and all(isinstance(s, dict) and _is_count(s.get("seed"))
                                                               for s in v),
              "a non-empty list of objects with a 'seed'"),
}
FID_FIELDS = {"value": _is_number, "n_generated": _is_count, "reference": _is_text, "n_reference": _is_count,
              "dims": _is_count}
# The KID of the same features, where a run asked for it (helpers.fid.KIDResult, inside the "fid" object).
KID_FIELDS = {"value": _is_number, "standard_error": _is_number, "n_subsets": _is_count, "subset_size": _is_count}


def _fail(path, field: str, problem: str):
    raise ResultsError(f"{path}: field '{field}' {problem}. {FIX}")


def check(result: dict, path) -> None:
    """Raise :class:`ResultsError` naming ``path`` and the field, unless ``result`` has every field the
    tables read, each of the right kind, and its seed summary agrees with its seeds."""
    for field, (required, ok, expected) in FIELDS.items():
        if field not in result:
            if required:
                _fail(path, field, f"is missing (it must be {expected})")
        elif not ok(result[field]):
            _fail(path, field, f"must be {expected}, not {result[field]!r}")
    if result["model"] != Path(path).stem:
        _fail(path, "model", f"is {result['model']!r}, but the file is named {Path(path).name}")
    if result["epochs"] is None and not _is_count(result.get("steps")):
        _fail(path, "steps", "must be a whole number when 'epochs' is null")
    if result["fid"] is not None:
        _check_object(path, "fid", result["fid"], FID_FIELDS)
        if "kid" in result["fid"]:
            _check_object(path, "fid.kid", result["fid"]["kid"], KID_FIELDS)
    if "fid_mean" in result or "fid_spread" in result:
        _check_seed_summary(result, path)


def _check_object(path, name: str, values, fields: dict) -> None:
    """The object ``name`` (e.g. ``fid``) has each of ``fields`` (field -> check)."""
    if not isinstance(values, dict):
        _fail(path, name, f"must be an object with {', '.join(fields)}, not {values!r}")
    for field, ok in fields.items():
        if not ok(values.get(field)):
            _fail(path, f"{name}.{field}", f"must be a {'name' if field == 'reference' else 'number'}, "
                                           f"not {values.get(field)!r}")


def _check_seed_summary(result: dict, path) -> None:
    """``fid_mean`` and ``fid_spread`` (sample standard deviation) of the seeds' FIDs, and the headline
    ``fid`` one of them (rounding to 2 decimals allowed)."""
    for field in ("fid_mean", "fid_spread", "seeds"):
        if field not in result:
            _fail(path, field, "is missing (a file with a seed summary needs fid_mean, fid_spread and seeds)")
    fids = [s.get("fid") for s in result["seeds"]]
    if not all(map(_is_number, fids)):
        _fail(path, "seeds", f"must give a number 'fid' for every seed, not {fids}")
    if not _is_number(result["fid_mean"]) or abs(result["fid_mean"] - statistics.mean(fids)) > SUMMARY_TOLERANCE:
        _fail(path, "fid_mean", f"is {result['fid_mean']!r}, but the seeds' FIDs {fids} have mean "
                                f"{statistics.mean(fids):.2f}")
    spread, given = (statistics.stdev(fids) if len(fids) > 1 else None), result["fid_spread"]
    if spread is None and _is_number(given):
        _fail(path, "fid_spread", f"is {given!r}, but one seed has no spread: write null")
    if spread is not None and not (_is_number(given) and abs(given - spread) <= SUMMARY_TOLERANCE):
        _fail(path, "fid_spread", f"is {given!r}, but the sample standard deviation of the seeds' FIDs {fids} "
                                  f"is {spread:.2f}")
    if result["fid"] is None or headline_seed(result) is None:
        _fail(path, "fid", f"must be the FID of one of the seeds {fids} (the seed the chapter shows)")


def headline_seed(result: dict):
    """The seed whose FID is the headline ``fid`` of a file with several seeds, or None."""
    value = result["fid"]["value"]
    return next((s["seed"] for s in result.get("seeds", []) if _is_number(s.get("fid"))
                 and abs(s["fid"] - value) <= ROUNDING_TOLERANCE), None)


def read(path) -> dict:
    """One results file, checked (see :func:`check`)."""
    path = Path(path)
    try:
        result = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path} is not valid JSON ({err}). {FIX}") from None
    if not isinstance(result, dict):
        raise ResultsError(f"{path} holds a {type(result).__name__}, not an object of fields. {FIX}")
    check(result, path)
    return result


def read_all(folder=None) -> dict:
    """``{name: result}`` of every ``<name>.json`` in ``folder`` (default ``results/``), each checked,
    in the order of :data:`BOOK_MODELS`. Every file is checked before any is returned."""
    folder = Path(folder) if folder else results_dir()
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise ResultsError(f"{folder} holds no results files: run a chapter in the full profile first.")
    unknown = [p.name for p in paths if p.stem not in BOOK_MODELS]
    if unknown:
        raise ResultsError(f"{folder}: {', '.join(unknown)} belong to no chapter. Add each name to "
                           "helpers.results_table.BOOK_MODELS, with the chapter that writes it and its architecture.")
    results = {p.stem: read(p) for p in paths}
    return {name: results[name] for name in BOOK_MODELS if name in results}


# ---------------------------------------------------------------- the report's and the literature's numbers

REPORT = "the report"  # the source name of the report's numbers; every other source is the literature
REFERENCE_FIELDS = ("source", "where", "model", "dataset", "fid", "approximate", "remark", "n_generated",
                    "reference", "counterparts")


def reference_numbers(path=REFERENCE_NUMBERS) -> list:
    """The entries of ``book/reference_numbers.json``, checked: every field present, the FID a number,
    a [low, high] range or null with a remark, and every counterpart a name of :data:`BOOK_MODELS`."""
    entries = json.loads(Path(path).read_text())["numbers"]
    for i, entry in enumerate(entries):
        where = f"{path}: entry {i} ({entry.get('source')}, {entry.get('model')})"
        missing = [f for f in REFERENCE_FIELDS if f not in entry]
        fid = entry.get("fid")
        if missing:
            raise ResultsError(f"{where} lacks {', '.join(missing)}.")
        if not (_is_number(fid) or (isinstance(fid, list) and len(fid) == 2 and all(map(_is_number, fid)))
                or (fid is None and _is_text(entry["remark"]))):
            raise ResultsError(f"{where}: fid must be a number, [low, high], or null with a remark; not {fid!r}.")
        strangers = set(entry["counterparts"]) - set(BOOK_MODELS)
        if strangers:
            raise ResultsError(f"{where}: counterparts {sorted(strangers)} are not results names of the book "
                               f"({', '.join(BOOK_MODELS)}).")
    return entries


# ---------------------------------------------------------------- table cells

def chapter_link(name: str) -> str:
    """A Markdown link to the chapter that trains the model of ``results/<name>.json``."""
    chapter = BOOK_MODELS[name].chapter
    return f"[chapter {int(chapter.split('_')[0])}]({chapter}.ipynb)"


def _params(params) -> str:
    if isinstance(params, dict):
        return " + ".join(f"{n:,} ({net})" for net, n in params.items())
    return f"{params:,}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _training(result: dict) -> str:
    length = f"{result['epochs']} epochs" if result["epochs"] is not None else f"{result['steps']:,} steps"
    return f"{length}, {_duration(result['train_seconds'])}"


def _threads(result: dict) -> str:
    threads = result.get("train_threads")
    return ", ".join(map(str, threads)) if threads else "not recorded"


def _neg_elbo(result: dict) -> str:
    value, bits = result.get("test_neg_elbo_nats"), result.get("test_bits_per_dim")
    if value is None:
        return "—"
    return f"{value:.2f}" + (f" ({bits:.3f} bits/dim)" if bits is not None else "")


def fid_text(fid: dict) -> str:
    """An FID object as the table shows it: value, N, reference and feature dimension."""
    return f"{fid['value']:.1f} (N = {fid['n_generated']:,} vs {fid['n_reference']:,} {fid['reference']}, {fid['dims']}-d)"


def _fid(result: dict) -> str:
    if result["fid"] is None:
        return "none" + (f"; measured instead: {result['metric']}" if _is_text(result.get("metric")) else "")
    return fid_text(result["fid"])


def _kid(result: dict) -> str:
    kid = (result["fid"] or {}).get("kid")
    if kid is None:
        return "not recorded"
    return (f"{kid['value']:.3g} ± {kid['standard_error']:.2g} (same N as the FID, in {kid['n_subsets']} subsets "
            f"of {kid['subset_size']:,})")


def _seeds(result: dict) -> str:
    seeds = sorted({s["seed"] for s in result.get("seeds", [])})
    if not seeds:
        return "one run"
    listed = ", ".join(map(str, seeds))
    if "fid_mean" not in result:
        return f"{len(result['seeds'])} runs over seeds {listed}; no FID per seed"
    spread = f" ± {result['fid_spread']:.1f}" if _is_number(result["fid_spread"]) else ""
    return f"{result['fid_mean']:.1f}{spread} over seeds {listed}; shown: seed {headline_seed(result)}"


def reference_fid(entry: dict) -> str:
    """A reference FID as its source gives it: '9.8', '≈ 95', '420–470', or the remark where there is no number."""
    fid = entry["fid"]
    if fid is None:
        return entry["remark"]
    text = f"{fid[0]}–{fid[1]}" if isinstance(fid, list) else str(fid)
    return f"≈ {text}" if entry["approximate"] and not isinstance(fid, list) else text


LINE_BREAK = "<br>"  # between the entries of one table cell (Markdown tables have no other line break)


def _n(entry: dict) -> str:
    return f"N = {entry['n_generated']:,}" if entry["n_generated"] else "N not stated here"


def _sample_size(entry: dict) -> str:
    if not entry["n_generated"] and not entry["reference"]:
        return "N and reference not stated here"
    return f"{_n(entry)}; reference {entry['reference'] or 'not stated here'}"


def _report(name: str, references: list) -> str:
    cells = [f"{reference_fid(e)} ({_n(e)})" for e in references if e["source"] == REPORT and name in e["counterparts"]]
    return "; ".join(cells) or "—"


def _literature(name: str, references: list) -> str:
    cells = [f"{reference_fid(e)}, {e['model']}: {e['source']}{', ' + e['where'] if e['where'] else ''}; {_n(e)}"
             for e in references if e["source"] != REPORT and name in e["counterparts"]]
    return LINE_BREAK.join(cells) or "—"


def _counterparts(entry: dict, results: dict) -> str:
    cells = []
    for name in entry["counterparts"]:
        result = results.get(name)
        if result is None:
            cells.append(f"`{name}`: no results file yet")
        else:
            fid = f"FID {result['fid']['value']:.1f}" if result["fid"] else "no FID"
            cells.append(f"`{name}` ({chapter_link(name)}): {fid}")
    return "; ".join(cells) or "none in the book yet"


def markdown_table(columns: list, rows: list) -> str:
    """A Markdown table; a '|' inside a cell is escaped."""
    lines = [columns, ["---"] * len(columns), *rows]
    return "\n".join("| " + " | ".join(str(c).replace("|", "\\|") for c in line) + " |" for line in lines)


# ---------------------------------------------------------------- the tables

REFERENCE_COLUMNS = ["source", "where", "model", "dataset", "FID", "N and reference", "the book's model of this kind"]


def model_column(name: str, result: dict, references: list) -> dict:
    """``{row label: cell}`` of one results file: what was trained, on what, for how long, and what it
    scored, with the report's FID of the same model and the literature's FIDs of models of its kind."""
    return {
        "chapter": chapter_link(name), "dataset": result["dataset"], "architecture": BOOK_MODELS[name].architecture,
        "parameters": _params(result["params"]), "training": _training(result), "hardware": result["hardware"],
        "training threads": _threads(result), "test −ELBO (nats)": _neg_elbo(result), "FID": _fid(result),
        "KID": _kid(result), "seeds: FID mean ± sd": _seeds(result), "the report's FID": _report(name, references),
        "the literature's FID, same kind of model": _literature(name, references),
    }


def models_table(results: dict, references: list) -> str:
    """Every model of the book side by side: one column per results file, one row per property
    (see :func:`model_column`), so that a row compares the models."""
    columns = [model_column(name, result, references) for name, result in results.items()]
    rows = [[f"**{label}**", *(column[label] for column in columns)] for label in columns[0]]
    return markdown_table(["", *(f"`{name}`" for name in results)], rows)


def references_table(results: dict, references: list) -> str:
    """One row per reference number: its source, its FID with N and reference where known, and the book's
    models of the same kind with their FIDs."""
    rows = [[e["source"], e["where"] or "—", e["model"], e["dataset"], reference_fid(e), _sample_size(e),
             _counterparts(e, results)] for e in references]
    return markdown_table(REFERENCE_COLUMNS, rows)


# ---------------------------------------------------------------- curves and samples

def fid_curves(results: dict) -> dict:
    """``{dataset: [(names, curve), ...]}``: the per-epoch FID curves, each ``curve`` a list of
    ``[epoch, FID, N]``. Files that carry the same curve (one training run reported twice, e.g. a VAE and
    the mixture fitted to its codes after training) share one entry, so each run is drawn once; ``names``
    are in the order of ``results``, so the first is the earliest chapter's, whose run it is."""
    curves = {}
    for name, result in results.items():
        curve = result.get("fid_curve")
        if not curve:
            continue
        runs = curves.setdefault(result["dataset"], [])
        same = next((run for run in runs if run[1] == curve), None)
        if same:
            same[0].append(name)
        else:
            runs.append(([name], curve))
    return curves


def shipped_model(name: str):
    """``(model in eval mode, manifest entry)`` behind ``results/<name>.json``, from ``pretrained/``: the
    entry whose ``results`` is ``name`` (the lowest seed where there are several). None when no weights
    are shipped for it, or with ``BOOK_PRETRAINED=0``. Never trains and never reads a local checkpoint."""
    entries = sorted((e for e in pretrained.manifest()["runs"] if e.get("results") == name),
                     key=lambda e: e["identity"]["seed"])
    state = pretrained.load(entries[0]["identity"], map_location="cpu") if entries else None
    if state is None:
        return None
    return train.shipped_objective(entries[0]["identity"], state).sampling_model().eval(), entries[0]
