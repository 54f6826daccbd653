"""Where the book reads data and writes caches, checkpoints and results.

Everything is relative to the repository root, so notebooks (which run with
``book/`` as working directory), the command line and the tests agree.
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Root of the datasets: ``$DGM_DATA``, else ``data/`` in the repository (gitignored).

    The folder may be read-only: nothing is ever written inside it once the data exists.
    """
    return Path(os.environ.get("DGM_DATA", REPO_ROOT / "data")).expanduser().resolve()


def cache_dir(*parts: str) -> Path:
    """A gitignored folder for derived files (decoded images, FID statistics): ``$DGM_CACHE``, else ``.cache/``."""
    return _folder("DGM_CACHE", ".cache", *parts)


def checkpoint_dir() -> Path:
    """Where training runs keep their checkpoints (gitignored): ``$DGM_CHECKPOINTS``, else ``checkpoints/``."""
    return _folder("DGM_CHECKPOINTS", "checkpoints")


def results_dir() -> Path:
    """Where full-profile runs write their JSON numbers: ``$DGM_RESULTS``, else ``results/``,
    committed and read by the Results chapter (point the variable elsewhere to keep those intact)."""
    return _folder("DGM_RESULTS", "results")


def _folder(variable: str, default: str, *parts: str) -> Path:
    """``$variable`` (or ``default`` in the repository), joined with ``parts`` and created on demand."""
    path = Path(os.environ.get(variable) or REPO_ROOT / default).expanduser().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"Cannot create the folder {path} ({err.strerror}). "
                      f"Set {variable} to a folder you can write to.") from err
    return path
