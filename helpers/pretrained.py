"""The trained weights behind the book's numbers, shipped in ``pretrained/`` so a reader need not wait.

``pretrained/manifest.json`` lists one entry per finished run: the run's identity (its
configuration and data source, exactly what names its checkpoint folder), the file, its
SHA-256, the storage dtype and the results file whose numbers it produced (null for a run
whose chapter has not recorded its numbers yet). A file holds
what a finished checkpoint holds minus the optimizer state: the model's weights (and, for a GAN
sampled from an average of its generator's weights, that average), the per-epoch history and the
timings of the original run.

:func:`helpers.train.run` falls back to these weights when no checkpoint of the exact
configuration exists; ``BOOK_PRETRAINED=0`` turns that off, so every run trains from
scratch. A file whose SHA-256 differs from the manifest is refused, never loaded.
"""
import hashlib
import json
import os
from pathlib import Path

import torch

from .checkpoints import atomic_write, config_hash, torch_save
from .paths import REPO_ROOT

MANIFEST = "manifest.json"
SWITCH = "BOOK_PRETRAINED"
# What a shipped file keeps of a checkpoint's objective state: the weights a chapter samples from.
WEIGHTS = ("model", "generator_ema")


class PretrainedError(RuntimeError):
    """A shipped weights file is missing, damaged or does not match the manifest."""


def enabled() -> bool:
    """False when ``BOOK_PRETRAINED=0``: train everything from scratch."""
    value = os.environ.get(SWITCH, "1")
    if value not in ("0", "1"):
        raise ValueError(f"{SWITCH}={value!r}: use 1 (load shipped weights, the default) or 0 (train from scratch).")
    return value == "1"


def folder() -> Path:
    """``pretrained/`` in the repository (``DGM_PRETRAINED`` points elsewhere, e.g. in tests)."""
    return Path(os.environ.get("DGM_PRETRAINED", REPO_ROOT / "pretrained"))


def manifest() -> dict:
    """The manifest as a dict ``{"runs": [entry, ...]}``; empty when there is none yet."""
    path = folder() / MANIFEST
    if not path.exists():
        return {"runs": []}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PretrainedError(f"{path} is not valid JSON ({e}). Restore it with `git checkout {path.name}` "
                              f"in {path.parent}, or set {SWITCH}=0 to train from scratch.") from None


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_for(identity: dict):
    """The manifest entry of a run identity (configuration + data source), or None."""
    return next((e for e in manifest()["runs"] if e["identity"] == identity), None)


def verify(entry: dict) -> Path:
    """The path of an entry's file after checking that it exists and matches its SHA-256."""
    path = folder() / entry["file"]
    if not path.exists():
        raise PretrainedError(f"{path} is listed in {MANIFEST} but missing. Restore it (`git checkout "
                              f"pretrained/`), or set {SWITCH}=0 to train from scratch.")
    actual = sha256(path)
    if actual != entry["sha256"]:
        raise PretrainedError(f"{path} does not match its SHA-256 in {MANIFEST} (file {actual[:12]}..., manifest "
                              f"{entry['sha256'][:12]}...): it was changed or damaged. Restore it (`git checkout "
                              f"pretrained/`), or set {SWITCH}=0 to train from scratch.")
    return path


def load(identity: dict, map_location=None):
    """The shipped state of a finished run, or None (no entry, or ``BOOK_PRETRAINED=0``).

    Returns ``{"model": state_dict (float32), "history": [...], "timings": [...]}``, plus
    ``"generator_ema"`` (float32) for a run whose objective kept an average of G's weights.
    """
    entry = entry_for(identity) if enabled() else None
    if entry is None:
        return None
    state = torch.load(verify(entry), map_location=map_location, weights_only=True)
    for key in WEIGHTS:
        if key in state:
            state[key] = _cast(state[key], torch.float32)
    return state


# A GAN has no test loss to re-check its shipped weights against. Its results file records instead what the
# trained weights draw from fixed latents (seeded apart from the global generator): a few hundred images.
CHECK_SAMPLES, CHECK_SEED = 256, 0


@torch.no_grad()
def sample_check(gan) -> dict:
    """Mean and standard deviation of the pixel values of the CHECK_SAMPLES images that ``gan`` (a
    :class:`helpers.models.GAN` in eval mode: what a run samples from, e.g. ``objective.sampling_model()``)
    draws from fixed N(0, I) latents. A fingerprint of the generator's weights, its batch-norm statistics and
    its weight average included, for a results file to record and a test to recompute from the shipped file."""
    z = torch.randn(CHECK_SAMPLES, gan.prior.dim, generator=torch.Generator().manual_seed(CHECK_SEED))
    images = gan.decode(z.to(gan.prior.origin.device))
    return {"n": CHECK_SAMPLES, "seed": CHECK_SEED, "mean": round(images.mean().item(), 6),
            "sd": round(images.std().item(), 6)}


def _cast(weights: dict, dtype) -> dict:
    """Floating-point tensors to ``dtype``; integer buffers (step counts) as they are."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}


def export(state: dict, identity: dict, *, results, half: bool) -> dict:
    """Write a finished run's weights to ``pretrained/`` and list them in the manifest.

    ``state``: a checkpoint as :func:`helpers.train.run` saves it; ``results``: the name of
    the results file its numbers went to (None while no chapter has recorded them yet);
    ``half``: store floating-point weights as float16 (halves the size; only where measured
    harmless for the model's FID). Returns the manifest entry.
    """
    weights = {key: state["objective"][key] for key in WEIGHTS if state["objective"].get(key) is not None}
    if half:
        weights = {key: _cast(w, torch.float16) for key, w in weights.items()}
    name = f"{identity['model']}-{config_hash(identity)}.pt"
    folder().mkdir(parents=True, exist_ok=True)
    atomic_write(folder() / name, lambda p: torch_save(
        {**weights, "history": state["history"], "timings": state["timings"]}, p))
    entry = {"file": name, "sha256": sha256(folder() / name), "dtype": "float16" if half else "float32",
             "results": results, "identity": identity}
    runs = [e for e in manifest()["runs"] if e["identity"] != identity] + [entry]
    runs.sort(key=lambda e: e["file"])
    atomic_write(folder() / MANIFEST, lambda p: p.write_text(json.dumps({"runs": runs}, indent=1) + "\n"))
    return entry
