"""MNIST and Imagenette as in-memory uint8 tensors, with the report's splits.

Each split is decoded once and kept as one ``uint8`` tensor of shape N x C x H x W;
training draws batches by indexing it, so no per-sample PIL transform runs at
every epoch. A dataset that is not on disk is fetched by torchvision's own classes
(``download=True``): a reader with internet gets it automatically, and an offline
machine gets a clear :class:`DataNotFoundError` instead of a traceback from urllib.

Files that are on disk are checked before anything is decoded: MNIST's four IDX files
against their published MD5s, Imagenette's two folders against its 10 classes and its
published image counts. Damaged or incomplete files raise :class:`BadDataError`, which
names the file and says how to repair it.

Splits (fixed, disjoint, the same on every machine):

- MNIST: ``train`` = the first 50,000 digits of the official training file,
  ``val`` = its last 10,000, ``test`` = the official 10,000 test digits; all
  zero-padded from 28 x 28 to 1 x 32 x 32 as in the report.
- Imagenette: ``train`` (8,000) and ``val`` (1,450) are drawn from the official
  ``train`` folder (9,469 images; the other 19 are unused), ``test`` (3,000) from
  the official ``val`` folder (3,925; the other 925 are unused). The draws follow a
  hash of each file's name (:func:`hash_order`), not the order the files are listed in.
  Images are resized to a square ``size`` (the report used 160) and always have 3 channels.

With no data and no internet, the quick profile falls back to a small synthetic
stand-in (:func:`synthetic`), so the book's tests pass on a fresh offline clone. Data
that is on disk but damaged raises in every profile: the stand-in replaces only absent data.
"""
import contextlib
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import datasets
from PIL import Image
from torchvision.transforms.v2.functional import center_crop, pil_to_tensor, resize

from .checkpoints import atomic_write, torch_save
from .paths import cache_dir, data_root
from .profile import PROFILE

DATASETS = ("mnist", "imagenette")
SPLITS = ("train", "val", "test")
SPLIT_SEED = 0  # salts the Imagenette split hash; changing it changes every number in the book
MNIST_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}
IMAGENETTE_SIZES = {"train": 8_000, "val": 1_450, "test": 3_000}
IMAGENETTE_DEFAULT_SIZE = 64  # the report used 160; 64 keeps conv models within a CPU budget
OFFICIAL_COUNTS = {("mnist", "train"): 60_000, ("mnist", "test"): 10_000,
                   ("imagenette", "train"): 9_469, ("imagenette", "val"): 3_925}

# The uncompressed IDX files that torchvision extracts (the MD5s the offline data README lists).
MNIST_MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
             "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
             "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
             "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
MNIST_CLASSES = tuple(str(d) for d in range(10))
IMAGENETTE_FOLDER = "imagenette2-160"  # where torchvision's Imagenette(size="160px") unpacks
# WordNet id of each class folder -> torchvision's first name for it; label = position in this dict.
IMAGENETTE_CLASSES = {"n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
                      "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
                      "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
                      "n03888257": "parachute"}


class DataNotFoundError(RuntimeError):
    """The dataset is neither on disk nor downloadable (typically: offline)."""


class BadDataError(RuntimeError):
    """The dataset's files are on disk but damaged or incomplete. Raised in every profile:
    torchvision never downloads over files that exist, and a synthetic stand-in would hide it."""


@dataclass
class Split:
    """One split of a dataset held in memory.

    ``images``: uint8, N x C x H x W, values 0..255. ``labels``: int64, N.
    ``files``: N strings, where each image comes from (``train-images-idx3-ubyte[7]``,
    ``train/n01440764/n01440764_10026.JPEG``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list
    name: str
    files: list

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


# ---------------------------------------------------------------- finding and checking the files

def _folder(dataset: str, root: Path) -> Path:
    """The folder torchvision keeps a dataset's files in under the data root."""
    return root / "MNIST" / "raw" if dataset == "mnist" else root / IMAGENETTE_FOLDER


def _not_found(dataset: str, root: Path, cause: Exception) -> DataNotFoundError:
    expected = {
        "mnist": f"{_folder('mnist', root)}/ with {', '.join(MNIST_MD5)}",
        "imagenette": f"{_folder('imagenette', root)}/ with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG",
    }[dataset]
    return DataNotFoundError(
        f"The {dataset} data is not on disk and could not be downloaded ({type(cause).__name__}: "
        f"{str(cause).strip().splitlines()[0] if str(cause).strip() else 'no detail'}).\n"
        f"Expected: {expected}\n"
        f"Fix: connect to the internet (torchvision downloads it into $DGM_DATA={root}), or point "
        f"DGM_DATA at a folder that already holds it. BOOK_PROFILE=quick runs on synthetic data instead."
    )


def _download(dataset: str, root: Path) -> None:
    """Let torchvision fetch a dataset that is not on disk, or raise :class:`DataNotFoundError`.

    torchvision creates the dataset's folders before it downloads. When the download fails the
    empty ones are removed again: the data root may be a shared folder that others read.
    """
    created = [p for p in (_folder(dataset, root), *_folder(dataset, root).parents) if not p.exists()]
    try:
        if dataset == "mnist":
            datasets.MNIST(root, download=True)
        else:
            datasets.Imagenette(root, size="160px", download=True)
    except Exception as cause:  # urllib, HTTP, checksum or permission errors all mean the same here
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):  # not empty: something was downloaded, keep it
                folder.rmdir()
        raise _not_found(dataset, root, cause) from cause


def _mnist_folder(root: Path) -> Path:
    """``MNIST/raw`` under ``root``, its four IDX files present (downloaded if none is) and verified."""
    raw = _folder("mnist", root)
    missing = [name for name in MNIST_MD5 if not (raw / name).is_file()]
    if len(missing) == len(MNIST_MD5):
        _download("mnist", root)
    elif missing:
        raise BadDataError(f"{raw} is incomplete: {', '.join(missing)} missing.\n"
                           f"Fix: copy the missing files there, or delete {raw} to let torchvision "
                           f"download all four (needs internet).")
    for name, md5 in MNIST_MD5.items():
        _verify_md5(raw / name, md5)
    return raw


def _verify_md5(path: Path, md5: str) -> None:
    """Raise :class:`BadDataError` unless the file at ``path`` has the published MD5."""
    stat = path.stat()
    found = _md5(path, stat.st_size, stat.st_mtime_ns)
    if found != md5:
        raise BadDataError(f"{path} is damaged: its MD5 is {found} ({stat.st_size:,} bytes), the official "
                           f"file's is {md5}.\nFix: replace it with a good copy, or delete {path.parent} to let "
                           f"torchvision download MNIST again (needs internet).")


@lru_cache(maxsize=None)
def _md5(path: Path, size: int, mtime_ns: int) -> str:
    """MD5 of a file (all of MNIST: about 0.15 s). Size and modification time are part of the
    cache key so that a file changed on disk is hashed again."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def _repair_imagenette(root: Path) -> str:
    return (f"Fix: replace {_folder('imagenette', root)} with a complete copy of Imagenette's 160 px "
            f"release, or delete it to let torchvision download it again (needs internet).")


def _check_classes(folder: Path, root: Path) -> None:
    """Raise unless ``folder`` holds exactly Imagenette's 10 class folders: with one missing, a
    model would silently learn 9 classes and the split would draw from other images."""
    found = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
    missing, extra = sorted(IMAGENETTE_CLASSES.keys() - found), sorted(found - IMAGENETTE_CLASSES.keys())
    if missing or extra:
        raise BadDataError(f"{folder} does not hold Imagenette's 10 class folders (missing: "
                           f"{', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'}).\n"
                           f"{_repair_imagenette(root)}")


@lru_cache(maxsize=None)
def _imagenette_files(root: Path, official: str) -> tuple:
    """Sorted paths ``<wnid>/<file>.JPEG`` of the official folder ``official`` (``"train"`` or
    ``"val"``), downloaded if absent, after checking its classes and its published image count."""
    if not _folder("imagenette", root).exists():
        _download("imagenette", root)
    folder = _folder("imagenette", root) / official
    _check_classes(folder, root)
    files = tuple(sorted(f"{p.parent.name}/{p.name}" for p in folder.glob("*/*") if p.suffix.lower() == ".jpeg"))
    expected = OFFICIAL_COUNTS[("imagenette", official)]
    if len(files) != expected:
        raise BadDataError(f"{folder} holds {len(files):,} JPEG images in its class folders; Imagenette's "
                           f"{official!r} folder has {expected:,}.\n{_repair_imagenette(root)}")
    return files


_SOURCES: dict = {}


def source(dataset: str) -> str:
    """``"real"`` if the dataset's files are on disk (downloading them if needed) and pass their
    checks. Absent files give ``"synthetic"`` in the quick profile and raise
    :class:`DataNotFoundError` in the full one; damaged files raise :class:`BadDataError` in both."""
    _check_names(dataset)
    if dataset not in _SOURCES:
        try:
            if dataset == "mnist":
                _mnist_folder(data_root())
            else:
                for official in ("train", "val"):
                    _imagenette_files(data_root(), official)
            _SOURCES[dataset] = "real"
        except DataNotFoundError as err:
            if PROFILE != "quick":
                raise
            print(f"[data] {dataset}: real data unavailable, using the synthetic stand-in. ({err.args[0].splitlines()[0]})")
            _SOURCES[dataset] = "synthetic"
    return _SOURCES[dataset]


# ---------------------------------------------------------------- split indices

def official_split(dataset: str, split: str) -> str:
    """The official file (MNIST) or folder (Imagenette) a split is drawn from."""
    if split != "test":
        return "train"
    return "test" if dataset == "mnist" else "val"


def hash_order(names) -> torch.Tensor:
    """Positions 0..N-1 of ``names`` (N strings), sorted by a hash of each name salted with SPLIT_SEED.

    A seeded shuffle in which a file's place depends on its own name only, not on where it sits in
    a listing: adding or removing a file leaves the others in the same order, so a split cut as a
    run of this order gains or loses at most the one file at each of its ends.
    """
    keys = [hashlib.sha256(f"{SPLIT_SEED}/{name}".encode()).digest() for name in names]
    return torch.tensor(sorted(range(len(keys)), key=keys.__getitem__), dtype=torch.int64)


def split_indices(dataset: str, split: str) -> tuple:
    """``(official_split, indices)``: which official file or folder a split comes from, and which
    of its items (a 1-D int64 tensor; for Imagenette, positions in the folder's sorted file list,
    which is read and checked). Deterministic and disjoint across splits."""
    _check_names(dataset, split)
    sizes = MNIST_SIZES if dataset == "mnist" else IMAGENETTE_SIZES
    official = official_split(dataset, split)
    first = sizes["train"] if split == "val" else 0
    if dataset == "mnist":  # the report's order: train, then validation, from the official training file
        return official, torch.arange(first, first + sizes[split])
    order = hash_order(_imagenette_files(data_root(), official))
    return official, order[first:first + sizes[split]]


# ---------------------------------------------------------------- decoding

def pad_to_32(digits: torch.Tensor) -> torch.Tensor:
    """N x 28 x 28 uint8 digits -> N x 1 x 32 x 32, zero border of 2 pixels (the report's shape)."""
    return F.pad(digits, (2, 2, 2, 2)).unsqueeze(1)


def decode_square(path: Path, size: int) -> torch.Tensor:
    """One image file -> 3 x size x size uint8: RGB (grayscale repeated), shorter side resized
    to ``size`` with antialiasing, then center-cropped."""
    try:
        with Image.open(path) as file:
            image = pil_to_tensor(file.convert("RGB"))
    except OSError as err:  # PIL's "truncated" and "cannot identify image file" are OSErrors
        raise BadDataError(f"{path} cannot be decoded ({err}).\nFix: replace it with a good copy, or delete "
                           f"the dataset's folder to let torchvision download it again (needs internet).") from err
    return center_crop(resize(image, [size], antialias=True), [size, size])


def _decode_files(folder: Path, files, size: int) -> tuple:
    """Images ``folder/<wnid>/<file>`` -> (N x 3 x size x size uint8, N int64 labels from the wnids)."""
    wnids = list(IMAGENETTE_CLASSES)
    images = torch.stack([decode_square(folder / name, size) for name in files])
    labels = torch.tensor([wnids.index(name.split("/")[0]) for name in files], dtype=torch.int64)
    return images, labels


def _fingerprint(folder: Path, files) -> str:
    """A short hash of the files' relative paths, sizes and modification times: it changes when
    the files do (another DGM_DATA, a file replaced, added or removed) at the cost of one stat each."""
    lines = []
    for name in files:
        stat = (folder / name).stat()
        lines.append(f"{name} {stat.st_size} {stat.st_mtime_ns}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


def _imagenette_folder(root: Path, official: str, size: int) -> tuple:
    """(images, labels) of a whole official folder at ``size``, in sorted file order, decoded once
    and then read from a cache file named after the fingerprint of its source files."""
    folder = _folder("imagenette", root) / official
    files = _imagenette_files(root, official)
    path = cache_dir("imagenette") / f"{official}-{size}px-{_fingerprint(folder, files)}.pt"
    if path.exists():
        cached = torch.load(path, weights_only=True)
        return cached["images"], cached["labels"]
    images, labels = _decode_files(folder, files, size)
    atomic_write(path, lambda tmp: torch_save({"images": images, "labels": labels}, tmp))
    return images, labels


def _load_mnist(split: str, idx: torch.Tensor) -> Split:
    official = official_split("mnist", split)
    _mnist_folder(data_root())  # verified once per process; a file changed since is hashed again
    digits = datasets.MNIST(data_root(), train=official == "train")
    prefix = "train" if official == "train" else "t10k"
    files = [f"{prefix}-images-idx3-ubyte[{i}]" for i in idx.tolist()]
    return Split(pad_to_32(digits.data[idx]), digits.targets[idx], list(MNIST_CLASSES), f"mnist/{split}", files)


def _load_imagenette(split: str, idx: torch.Tensor, size: int, subset: bool) -> Split:
    root, official = data_root(), official_split("imagenette", split)
    listing = _imagenette_files(root, official)
    files = [listing[i] for i in idx.tolist()]
    if subset:  # a few images: decode only those files, skip the cache
        images, labels = _decode_files(_folder("imagenette", root) / official, files, size)
    else:
        images, labels = _imagenette_folder(root, official, size)
        images, labels = images[idx], labels[idx]
    return Split(images, labels, list(IMAGENETTE_CLASSES.values()), f"imagenette/{split}",
                 [f"{official}/{name}" for name in files])


@lru_cache(maxsize=8)
def _load_real(dataset: str, split: str, size: int, limit) -> Split:
    _, idx = split_indices(dataset, split)
    if limit is not None:
        idx = idx[:limit]
    if dataset == "mnist":
        return _load_mnist(split, idx)
    return _load_imagenette(split, idx, size, subset=limit is not None)


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
    classes = list(MNIST_CLASSES) if dataset == "mnist" else [f"class {d}" for d in range(10)]
    files = [f"synthetic/{split}/{i}" for i in range(n)]
    return Split(images, labels, classes, f"{dataset}/{split} (synthetic)", files)
