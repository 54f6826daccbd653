"""``results/<name>.json``: the numbers a full-profile run reports, read by the Results chapter."""
import json
import os
import platform

import torch

from .checkpoints import atomic_write
from .paths import results_dir
from .profile import PROFILE, device


def hardware() -> str:
    """A short description of where the run happened, e.g. '2-core CPU (2 threads) (x86_64), torch 2.14.1'."""
    dev = device()
    if dev.type == "cuda":
        where = torch.cuda.get_device_name(dev)
    else:
        threads = torch.get_num_threads()
        where = f"{os.cpu_count()}-core CPU ({threads} thread{'s' if threads > 1 else ''})"
    return f"{where} ({platform.machine()}), torch {torch.__version__.split('+')[0]}"


def record(name: str, run, *, dataset: str, image_size: int, fid=None, **fields) -> dict:
    """Write ``results/<name>.json`` for a finished :class:`helpers.train.Run` and return it.

    ``fid`` is a :class:`helpers.fid.FIDResult`; ``fields`` adds anything chapter-specific
    (e.g. ``test_neg_elbo_nats``). The per-epoch FID curve is taken from the run's history.
    Only full-profile runs write: quick runs must never overwrite published numbers.
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
    if PROFILE == "full":
        path = results_dir() / f"{name}.json"
        atomic_write(path, lambda p: p.write_text(json.dumps(result, indent=1) + "\n"))
        print(f"wrote {path.relative_to(results_dir().parent)}")
    else:
        print(f"profile={PROFILE}: results/{name}.json left untouched")
    return result
