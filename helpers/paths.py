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
    """A gitignored folder for derived files (decoded images, FID statistics), created on demand."""
    path = Path(os.environ.get("DGM_CACHE", REPO_ROOT / ".cache")).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_dir() -> Path:
    """Where training runs keep their checkpoints (gitignored)."""
    path = Path(os.environ.get("DGM_CHECKPOINTS", REPO_ROOT / "checkpoints"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """``results/``: the JSON numbers of full-profile runs, committed and read by the Results chapter."""
    path = REPO_ROOT / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path
