"""The run banner every chapter prints in its first code cell: profile, device, data and torch version.

It reads the profile and the device (:mod:`helpers.profile`) and where the data come from
(:mod:`helpers.data`), so it sits above both.
"""
import torch

from .data import source
from .profile import PROFILE, device


def banner(*datasets: str) -> str:
    """Print and return the run banner every chapter shows in its first code cell.

    ``datasets`` names the datasets the chapter loads (``"mnist"``, ``"imagenette"``);
    ``data=`` says whether they are the real files or the synthetic stand-in that the
    quick profile falls back to offline, and ``data=none`` when the chapter loads none.
    """
    sources = {source(name) for name in datasets}
    data = "none" if not sources else ("synthetic" if "synthetic" in sources else "real")
    line = f"profile={PROFILE} device={device().type} data={data} torch={torch.__version__.split('+')[0]}"
    print(line)
    return line
