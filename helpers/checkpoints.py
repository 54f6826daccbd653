"""Run folders keyed by configuration, and checkpoints that are never half-written.

A run folder is ``checkpoints/<model>-<hash of the configuration>/`` holding
``config.json`` and ``checkpoint.pt``. Writes go to a temporary file of their own
that is then renamed over the old one: a rename is atomic, so a run killed at any
instant leaves either the previous checkpoint or the new one, never a torn file.
One process at a time trains in a folder: :func:`lock` holds it.
"""
import errno
import fcntl
import hashlib
import json
import os
import pickle
import secrets
from contextlib import contextmanager
from pathlib import Path

import torch

from .paths import checkpoint_dir

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
LOCK = ".lock"


class CheckpointError(RuntimeError):
    """A run folder cannot be used as it is: unreadable, or of unknown origin."""


class RunInProgressError(RuntimeError):
    """Another process holds the run folder."""


def config_hash(config: dict) -> str:
    """12 hex digits identifying a configuration (JSON with sorted keys, SHA-256)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def run_folder(config: dict) -> Path:
    """The folder of a configuration: ``<checkpoint_dir>/<model>-<hash>``."""
    return checkpoint_dir() / f"{config['model']}-{config_hash(config)}"


def check_folder(folder: Path, config: dict) -> None:
    """Refuse a folder that belongs to another configuration, naming what differs, and a
    checkpoint without its ``config.json`` (nothing says which configuration trained it)."""
    folder = Path(folder)
    if not (folder / CONFIG).exists():
        if (folder / CHECKPOINT).exists():
            raise CheckpointError(f"{folder / CHECKPOINT} has no {CONFIG} beside it, so nothing says which "
                                  f"configuration trained it. Delete {folder} or use another folder.")
        return
    saved = _read_config(folder / CONFIG)
    if saved != config:
        diff = {k: (saved.get(k), config.get(k)) for k in sorted(set(saved) | set(config)) if saved.get(k) != config.get(k)}
        raise ValueError(f"{folder} holds a run of another configuration (saved vs requested: {diff}). "
                         "Use the folder of this configuration (the default), or start a fresh one.")


def _read_config(path: Path) -> dict:
    try:
        saved = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}). Delete {path.parent} to start over.") from err
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} holds {type(saved).__name__}, not a configuration. "
                              f"Delete {path.parent} to start over.")
    return saved


@contextmanager
def lock(folder: Path):
    """Hold ``folder`` for this process while the block runs (creating it, so an unwritable
    place fails here, before any training). The kernel drops the lock when the process
    ends, however it ends, so a crashed run never blocks the next one."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise OSError(err.errno, f"Cannot write checkpoints in {folder} ({err.strerror}). "
                              "Set DGM_CHECKPOINTS to a writable folder.") from err
    try:
        _acquire(fd, folder)
        _remove_stale_temporaries(folder)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _acquire(fd: int, folder: Path) -> None:
    """Take the lock without waiting, and write this process's id into the lock file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        raise RunInProgressError(f"{folder} is already in use by another process (pid {holder}), which is training "
                                 "this run. Wait for it to finish (the finished run then loads without training), "
                                 "or stop that process.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of writes that a kill interrupted (only the lock holder writes here)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk, then rename it to ``path``.

    The temporary name is unique to this write, so concurrent writers never rename each
    other's half-written files. On failure it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err.errno, f"The disk holding {path.parent} is full: {path.name} could not be written. "
                          f"The previous {path.name}, if any, is intact; free some space and run again.") from err
        raise


def torch_save(state: dict, path: Path) -> None:
    """torch.save(state, path), for use inside :func:`atomic_write`."""
    # Through a Python file object: a full disk then raises OSError (ENOSPC), not an opaque RuntimeError.
    with open(path, "wb") as f:
        torch.save(state, f)


def save(folder: Path, config: dict, state: dict) -> None:
    """Write ``config.json`` (once) and ``checkpoint.pt`` atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / CONFIG).exists():
        atomic_write(folder / CONFIG, lambda p: p.write_text(json.dumps(config, indent=1, sort_keys=True)))
    atomic_write(folder / CHECKPOINT, lambda p: torch_save(state, p))


def load(folder: Path, map_location=None):
    """The saved state, or None when the folder has no checkpoint. ``weights_only=True``:
    a checkpoint is data (tensors, numbers, strings), never code to execute."""
    path = Path(folder) / CHECKPOINT
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} cannot be read: it is truncated or corrupt ({reason}). To start over, "
                              "pass resume=False (--no-resume on the command line) or delete the file.") from err
