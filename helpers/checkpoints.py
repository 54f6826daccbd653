"""Run folders keyed by configuration, and checkpoints that are never half-written.

A run folder is ``checkpoints/<model>-<hash of the configuration>/`` holding
``config.json`` and ``checkpoint.pt``. Writes go to a temporary file that is then
renamed over the old one: a rename is atomic, so a run killed at any instant
leaves either the previous checkpoint or the new one, never a torn file.
"""
import hashlib
import json
import os
from pathlib import Path

import torch

from .paths import checkpoint_dir

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"


def config_hash(config: dict) -> str:
    """12 hex digits identifying a configuration (JSON with sorted keys, SHA-256)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def run_folder(config: dict) -> Path:
    """The folder of a configuration: ``<checkpoint_dir>/<model>-<hash>``."""
    return checkpoint_dir() / f"{config['model']}-{config_hash(config)}"


def check_folder(folder: Path, config: dict) -> None:
    """Refuse a folder that belongs to another configuration, naming what differs."""
    saved_path = Path(folder) / CONFIG
    if not saved_path.exists():
        return
    saved = json.loads(saved_path.read_text())
    if saved != config:
        diff = {k: (saved.get(k), config.get(k)) for k in sorted(set(saved) | set(config)) if saved.get(k) != config.get(k)}
        raise ValueError(f"{folder} holds a run of another configuration (saved vs requested: {diff}). "
                         "Use the folder of this configuration (the default), or start a fresh one.")


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(folder: Path, config: dict, state: dict) -> None:
    """Write ``config.json`` (once) and ``checkpoint.pt`` atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / CONFIG).exists():
        atomic_write(folder / CONFIG, lambda p: p.write_text(json.dumps(config, indent=1, sort_keys=True)))
    atomic_write(folder / CHECKPOINT, lambda p: torch.save(state, p))


def load(folder: Path, map_location=None):
    """The saved state, or None when the folder has no checkpoint. ``weights_only=True``:
    a checkpoint is data (tensors, numbers, strings), never code to execute."""
    path = Path(folder) / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=True)
