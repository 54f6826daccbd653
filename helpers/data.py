"""MNIST and Imagenette as in-memory uint8 tensors, with the report's splits.

Each split is decoded once and kept as one ``uint8`` tensor of shape N x C x H x W;
training draws batches by indexing it, so no per-sample PIL transform runs at
every epoch. The files come from torchvision's own loaders with ``download=True``:
a reader with internet gets them automatically, and an offline machine gets a
clear :class:`DataNotFoundError` instead of a traceback from urllib.

Splits (fixed, seeded, disjoint):

- MNIST: ``train`` = the first 50,000 digits of the official training file,
  ``val`` = its last 10,000, ``test`` = the official 10,000 test digits; all
  zero-padded from 28 x 28 to 1 x 32 x 32 as in the report.
- Imagenette: ``train`` (8,000) and ``val`` (1,450) are drawn from the official
  ``train`` folder (9,469 images; the other 19 are unused), ``test`` (3,000) from
  the official ``val`` folder (3,925; the other 925 are unused). Images are resized
  to a square ``size`` (the report used 160) and always have 3 channels.

With no data and no internet, the quick profile falls back to a small synthetic
stand-in (:func:`synthetic`), so the book's tests pass on a fresh offline clone.
"""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import datasets
from PIL import Image
from torchvision.transforms.v2.functional import center_crop, pil_to_tensor, resize

from .paths import cache_dir, data_root
from .profile import PROFILE

DATASETS = ("mnist", "imagenette")
SPLITS = ("train", "val", "test")
SPLIT_SEED = 0  # fixes the Imagenette split draws; changing it changes every number in the book
MNIST_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}
IMAGENETTE_SIZES = {"train": 8_000, "val": 1_450, "test": 3_000}
IMAGENETTE_DEFAULT_SIZE = 64  # the report used 160; 64 keeps conv models within a CPU budget


class DataNotFoundError(RuntimeError):
    """The dataset is neither on disk nor downloadable (typically: offline)."""


@dataclass
class Split:
    """One split of a dataset held in memory.

    ``images``: uint8, N x C x H x W, values 0..255. ``labels``: int64, N.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list
    name: str

    def __len__(self) -> int:
        return len(self.images)

    def float(self) -> torch.Tensor:
        """Images as float32 in [0, 1], N x C x H x W."""
        return self.images.float().div_(255)


def _check_names(dataset: str, split: str = "train") -> None:
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; the book uses {DATASETS}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {SPLITS}.")


# ---------------------------------------------------------------- finding the files

_MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _not_found(dataset: str, root: Path, cause: Exception) -> DataNotFoundError:
    expected = {
        "mnist": f"{root / 'MNIST' / 'raw'}/ with {', '.join(_MNIST_FILES)}",
        "imagenette": f"{root / 'imagenette2-160'}/ with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG",
    }[dataset]
    return DataNotFoundError(
        f"The {dataset} data is not on disk and could not be downloaded ({type(cause).__name__}: "
        f"{str(cause).strip().splitlines()[0] if str(cause).strip() else 'no detail'}).\n"
        f"Expected: {expected}\n"
        f"Fix: connect to the internet (torchvision downloads it into $DGM_DATA={root}), or point "
        f"DGM_DATA at a folder that already holds it. BOOK_PROFILE=quick runs on synthetic data instead."
    )


@lru_cache(maxsize=None)
def _torchvision_dataset(dataset: str, official_split: str):
    """The torchvision dataset object, downloading the files if they are missing."""
    root = data_root()
    try:
        if dataset == "mnist":
            return datasets.MNIST(root, train=official_split == "train", download=True)
        return datasets.Imagenette(root, split=official_split, size="160px", download=True)
    except Exception as cause:  # urllib, HTTP, checksum or permission errors all mean the same here
        raise _not_found(dataset, root, cause) from cause


_SOURCES: dict = {}


def source(dataset: str) -> str:
    """``"real"`` if the dataset's files are available (downloading them if needed), else
    ``"synthetic"`` in the quick profile; in the full profile a missing dataset raises."""
    _check_names(dataset)
    if dataset not in _SOURCES:
        try:
            for official in ("train", "test" if dataset == "mnist" else "val"):
                _torchvision_dataset(dataset, official)
            _SOURCES[dataset] = "real"
        except DataNotFoundError as err:
            if PROFILE != "quick":
                raise
            print(f"[data] {dataset}: real data unavailable, using the synthetic stand-in. ({err.args[0].splitlines()[0]})")
            _SOURCES[dataset] = "synthetic"
    return _SOURCES[dataset]


# ---------------------------------------------------------------- split indices

OFFICIAL_COUNTS = {("mnist", "train"): 60_000, ("mnist", "test"): 10_000,
                   ("imagenette", "train"): 9_469, ("imagenette", "val"): 3_925}


def official_split(dataset: str, split: str) -> str:
    """The official file (MNIST) or folder (Imagenette) a split is drawn from."""
    if split != "test":
        return "train"
    return "test" if dataset == "mnist" else "val"


def split_indices(dataset: str, split: str, n_official: int = None) -> tuple:
    """``(official_split, indices)``: which official file or folder a split comes from, and
    which of its items (a 1-D int64 tensor). Deterministic and disjoint across splits.

    ``n_official`` is the number of items in that official file or folder (default: the
    published count); a smaller one than the split needs is an error.
    """
    _check_names(dataset, split)
    sizes = MNIST_SIZES if dataset == "mnist" else IMAGENETTE_SIZES
    official = official_split(dataset, split)
    n_official = n_official or OFFICIAL_COUNTS[(dataset, official)]
    first = sizes["train"] if split == "val" else 0
    needed = first + sizes[split]
    if n_official < needed:
        raise DataNotFoundError(f"The official {dataset} {official!r} data holds {n_official} images, but the "
                                f"{split} split needs {needed}: the files under {data_root()} are incomplete.")
    if dataset == "mnist":  # the report's order: train, then validation, from the official training file
        return official, torch.arange(first, needed)
    order = torch.randperm(n_official, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return official, order[first:needed]


# ---------------------------------------------------------------- decoding

def pad_to_32(digits: torch.Tensor) -> torch.Tensor:
    """N x 28 x 28 uint8 digits -> N x 1 x 32 x 32, zero border of 2 pixels (the report's shape)."""
    return F.pad(digits, (2, 2, 2, 2)).unsqueeze(1)


def decode_square(path: str, size: int) -> torch.Tensor:
    """One image file -> 3 x size x size uint8: RGB (grayscale repeated), shorter side resized
    to ``size`` with antialiasing, then center-cropped."""
    with Image.open(path) as file:
        image = pil_to_tensor(file.convert("RGB"))
    return center_crop(resize(image, [size], antialias=True), [size, size])


def _decode_all(samples: list, size: int) -> tuple:
    images = torch.stack([decode_square(path, size) for path, _ in samples])
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return images, labels


def _imagenette_folder(official: str, size: int) -> tuple:
    """The whole official folder decoded at ``size``, cached on disk (written atomically)."""
    path = cache_dir("imagenette") / f"{official}-{size}px.pt"
    if path.exists():
        cached = torch.load(path, weights_only=True)
        return cached["images"], cached["labels"]
    images, labels = _decode_all(_torchvision_dataset("imagenette", official)._samples, size)
    tmp = path.with_suffix(".tmp")
    torch.save({"images": images, "labels": labels}, tmp)
    tmp.replace(path)
    return images, labels


@lru_cache(maxsize=8)
def _load_real(dataset: str, split: str, size: int, limit) -> Split:
    tv = _torchvision_dataset(dataset, official_split(dataset, split))
    official, idx = split_indices(dataset, split, len(tv))
    if limit is not None:
        idx = idx[:limit]
    if dataset == "mnist":
        images, labels = pad_to_32(tv.data[idx]), tv.targets[idx]
    elif limit is not None:  # a small subset: decode only those files, skip the cache
        images, labels = _decode_all([tv._samples[i] for i in idx.tolist()], size)
    else:
        images, labels = _imagenette_folder(official, size)
        images, labels = images[idx], labels[idx]
    return Split(images, labels, list(_class_names(dataset, tv)), f"{dataset}/{split}")


def _class_names(dataset: str, tv) -> list:
    if dataset == "mnist":
        return [str(d) for d in range(10)]
    return [names[0] for names in tv.classes]


def load(dataset: str, split: str, *, size: int = None, limit: int = None) -> Split:
    """Load one split into memory.

    Args:
        dataset: ``"mnist"`` or ``"imagenette"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: Imagenette's square side in pixels (default 64); MNIST is always 32.
        limit: keep only the first ``limit`` images of the split (quick runs).

    Returns:
        A :class:`Split` with uint8 images N x C x H x W (C=1 for MNIST, 3 for Imagenette).
    """
    _check_names(dataset, split)
    if dataset == "mnist":
        if size not in (None, 32):
            raise ValueError(f"MNIST is padded to 32 x 32 as in the report; got size={size}.")
        size = 32
    size = size or IMAGENETTE_DEFAULT_SIZE
    if size < 8:
        raise ValueError(f"size={size} is too small to be an image; use 8 or more.")
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit} must be a positive number of images (or None for all).")
    if source(dataset) == "synthetic":
        return synthetic(dataset, split, size=size, n=limit or 512)
    return _load_real(dataset, split, size, limit)


# ---------------------------------------------------------------- synthetic stand-in

def synthetic(dataset: str, split: str, *, size: int = None, n: int = 512) -> Split:
    """A small labelled stand-in with the real data's shapes and dtype, for offline tests.

    Class ``c`` is a bright bar at angle 18c degrees on a dark background, plus noise:
    enough structure that a model's loss goes down, and nothing that looks like data.
    """
    _check_names(dataset, split)
    channels, size = (1, 32) if dataset == "mnist" else (3, size or IMAGENETTE_DEFAULT_SIZE)
    g = torch.Generator().manual_seed(SPLITS.index(split) + 10 * DATASETS.index(dataset))
    labels = torch.randint(0, 10, (n,), generator=g)
    axis = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    angle = labels.float().mul(torch.pi / 10).view(n, 1, 1)
    distance = (x * torch.sin(angle) - y * torch.cos(angle)).abs()  # distance to the bar's axis
    bar = (distance < 0.15).float() * (x.square() + y.square() < 0.7).float()
    noisy = bar.unsqueeze(1).expand(n, channels, size, size) + 0.1 * torch.randn(n, channels, size, size, generator=g)
    images = noisy.clamp(0, 1).mul(255).round().to(torch.uint8)
    classes = [str(d) for d in range(10)] if dataset == "mnist" else [f"class {d}" for d in range(10)]
    return Split(images, labels, classes, f"{dataset}/{split} (synthetic)")
