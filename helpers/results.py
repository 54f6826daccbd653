"""``results/<name>.json``: the numbers a full-profile run reports, read by the Results chapter.

A results file stands for the published settings of its model, so :func:`record` refuses
to replace it with the numbers of a run that was shortened or changed.
"""
import dataclasses
import json
import os
import platform

import torch

from . import data
from .checkpoints import atomic_write
from .paths import results_dir
from .profile import PROFILE, device
from .train import config_for

# The per-epoch FID schedule is the chapter's choice; every other setting is the registry's.
CURVE_SETTINGS = ("fid_every", "fid_n")
# The book's final FID, against the whole test split: 10,000 samples, or as many as the test split holds
# when it holds fewer (Imagenette's 3,000), so that both sides have the same N (chapter 7).
FINAL_FID = {"n_generated": 10_000, "dims": 2048}


class UnpublishedSettingsError(ValueError):
    """A run whose settings differ from the published ones, which its results file stands for."""


def hardware() -> str:
    """A short description of where the run happened, e.g. '2-core CPU (2 threads) (x86_64), torch 2.14.1'."""
    dev = device()
    if dev.type == "cuda":
        where = torch.cuda.get_device_name(dev)
    else:
        threads = torch.get_num_threads()
        where = f"{os.cpu_count()}-core CPU ({threads} thread{'s' if threads > 1 else ''})"
    return f"{where} ({platform.machine()}), torch {torch.__version__.split('+')[0]}"


def record(name: str, run, *, dataset: str, image_size: int, fid=None, epochs: int = None, force: bool = False,
           **fields) -> dict:
    """Write ``results/<name>.json`` for a finished :class:`helpers.train.Run` and return it.

    ``fid`` is a :class:`helpers.fid.FIDResult`; ``fields`` adds anything chapter-specific
    (e.g. ``test_neg_elbo_nats``). The per-epoch FID curve is taken from the run's history.
    Only full-profile runs write: quick runs must never overwrite published numbers. Nor may
    a run with other settings than the published ones (see :func:`changed_settings`), unless
    ``force`` is set; ``DGM_RESULTS`` then keeps it out of the committed folder. ``epochs`` is a
    chapter's own budget when it is not the registry's (the rows of an ablation at a shorter
    budget): the run must then have been configured for exactly that many.
    """
    result = {
        "model": name, "dataset": dataset, "image_size": image_size, "profile": PROFILE,
        "epochs": len(run.history), "train_seconds": round(run.train_seconds, 1), "hardware": hardware(),
        # threads per training process, epoch by epoch (hardware() describes the process that records)
        "train_threads": sorted({t["threads"] for t in run.timings if "threads" in t}) or None,
        "params": sum(p.numel() for p in run.model.parameters()),
        "fid": fid.as_dict() if fid is not None else None,
        "fid_curve": [[r["epoch"], r["fid"], r["fid_n"]] for r in run.history if "fid" in r],
        **fields,
    }
    if PROFILE != "full":
        print(f"profile={PROFILE}: results/{name}.json left untouched")
        return result
    path = results_dir() / f"{name}.json"
    changed = {} if force else changed_settings(run.config, fid, dataset, result["fid_curve"], path, epochs)
    if changed:
        raise UnpublishedSettingsError(
            f"{path} is for the published settings of {run.config.model}, and this run differs: "
            + "; ".join(f"{k}={mine!r} (published {theirs!r})" for k, (mine, theirs) in changed.items())
            + ". Nothing was written. To record this run anyway, pass force=True, and set DGM_RESULTS "
            "to another folder to keep the published files as they are.")
    atomic_write(path, lambda p: p.write_text(json.dumps(result, indent=1) + "\n"))
    print(f"wrote {path.relative_to(results_dir().parent)}")
    return result


def changed_settings(config, fid, dataset: str, fid_curve: list, path, epochs: int = None) -> dict:
    """``{setting: (this run, published)}`` for every published setting that a run changed.

    Published are: the registry's settings of the model on the whole data (``train.config_for``;
    the chapter chooses the per-epoch FID schedule, and ``epochs`` when it states its own budget),
    the book's final FID (:data:`FINAL_FID` against the whole test split), and the FID schedule of
    the file at ``path``, if any.
    """
    budget = {} if epochs is None else {"epochs": epochs}
    published = config_for(config.model, **{k: getattr(config, k) for k in CURVE_SETTINGS}, **budget)
    changed = {k: (v, getattr(published, k)) for k, v in dataclasses.asdict(config).items()
               if v != getattr(published, k)}
    if fid is not None:
        whole = len(data.split_indices(dataset, "test")[1])
        final = {**FINAL_FID, "n_generated": min(FINAL_FID["n_generated"], whole), "reference": f"{dataset}/test",
                 "n_reference": whole}
        changed.update({f"fid.{k}": (getattr(fid, k), v) for k, v in final.items() if getattr(fid, k) != v})
    if path.exists():
        schedule = [(epoch, n) for epoch, _, n in fid_curve]
        published_schedule = [(epoch, n) for epoch, _, n in _read(path).get("fid_curve", [])]
        if schedule != published_schedule:
            changed["fid_curve (epoch, n)"] = (schedule, published_schedule)
    return changed


def _read(path) -> dict:
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): restore it (git checkout {path.name} in its folder), "
                         "or record with force=True to replace it.") from err


def mean_sd(values) -> tuple:
    """Mean and sample standard deviation (the ``fid_spread`` of a results file) of per-seed values;
    the deviation is NaN for a single value."""
    values = torch.tensor(values, dtype=torch.double)
    return values.mean().item(), (values.std().item() if len(values) > 1 else float("nan"))
