"""The one switch between a chapter's real settings and a fast smoke run.

``BOOK_PROFILE=full`` (the default) runs a chapter as published: real data, real
epoch counts. ``BOOK_PROFILE=quick`` runs every chapter in about a minute on two
CPU cores (small subsets, few steps) so that the test suite can execute them all.
"""
import os

import torch

PROFILES = ("quick", "full")
PROFILE = os.environ.get("BOOK_PROFILE", "full")
if PROFILE not in PROFILES:
    raise ValueError(f"BOOK_PROFILE={PROFILE!r} is not a profile; use one of {PROFILES}.")


def pick(*, quick, full):
    """The value for the active profile: ``EPOCHS = pick(quick=1, full=50)``."""
    return quick if PROFILE == "quick" else full


def device() -> torch.device:
    """CUDA when available, else CPU; ``BOOK_DEVICE=cpu`` (or ``cuda:1``...) overrides."""
    override = os.environ.get("BOOK_DEVICE")
    if override:
        return _device_from_environment(override)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# Accelerators torch can be asked for, and how to tell whether this machine has one.
_AVAILABLE = {"cuda": lambda: torch.cuda.is_available(), "mps": lambda: torch.backends.mps.is_available()}


def _device_from_environment(name: str) -> torch.device:
    """``BOOK_DEVICE`` as a device this machine has, or an error that names the variable."""
    try:
        chosen = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"BOOK_DEVICE={name!r} is not a device ({err}). Use cpu, cuda or cuda:N, "
                         "or unset BOOK_DEVICE to pick automatically.") from None
    if chosen.type in _AVAILABLE and not _AVAILABLE[chosen.type]():
        raise ValueError(f"BOOK_DEVICE={name!r}, but torch finds no {chosen.type} device on this machine. "
                         "Unset BOOK_DEVICE (or set it to cpu).")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise ValueError(f"BOOK_DEVICE={name!r}, but this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"numbered from 0. Use cuda:0 to cuda:{torch.cuda.device_count() - 1}, or unset BOOK_DEVICE.")
    return chosen
