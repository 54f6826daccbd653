"""helpers.data: the report's splits, torchvision's real readers on files the tests write,
the offline error, and the synthetic stand-in."""
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import data, profile


@pytest.fixture
def fresh_data(monkeypatch, tmp_path):
    """Point DGM_DATA at an empty folder, forget cached loads, and make every download fail
    as it does offline (so no test ever reaches the network)."""
    monkeypatch.setenv("DGM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DGM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_SOURCES", {})
    for cached in (data._torchvision_dataset, data._load_real):
        cached.cache_clear()

    def offline(url, *args, **kwargs):
        raise URLError("no network in this test")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    monkeypatch.setattr("torchvision.datasets.imagenette.download_and_extract_archive", offline)
    yield tmp_path / "data"
    for cached in (data._torchvision_dataset, data._load_real):
        cached.cache_clear()


# ---------------------------------------------------------------- split indices

@pytest.mark.parametrize("dataset, sizes", [("mnist", data.MNIST_SIZES), ("imagenette", data.IMAGENETTE_SIZES)])
def test_splits_have_the_reports_sizes_are_disjoint_and_deterministic(dataset, sizes):
    drawn = {split: data.split_indices(dataset, split) for split in data.SPLITS}
    for split, (official, idx) in drawn.items():
        assert len(idx) == sizes[split], f"{dataset}/{split} must have {sizes[split]} images like the report"
        assert idx.unique().numel() == len(idx), "no image twice in a split"
        assert torch.equal(idx, data.split_indices(dataset, split)[1]), "splits must not change between calls"
        assert idx.max() < data.OFFICIAL_COUNTS[(dataset, official)]
    train, val = set(drawn["train"][1].tolist()), set(drawn["val"][1].tolist())
    assert not train & val, "train and validation come from the same official file and must not overlap"
    assert drawn["test"][0] != drawn["train"][0], "the test split comes from the official held-out data"


def test_mnist_validation_is_the_end_of_the_official_training_file():
    assert data.split_indices("mnist", "val")[1].tolist() == list(range(50_000, 60_000))


def test_incomplete_official_folder_is_reported():
    with pytest.raises(data.DataNotFoundError, match="holds 100 images"):
        data.split_indices("imagenette", "train", n_official=100)


# ---------------------------------------------------------------- real readers on written files

def write_idx(path, array: np.ndarray) -> None:
    """An IDX file as in the MNIST distribution: magic (0, 0, 0x08 = uint8, ndim), big-endian dims, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_loads_from_idx_files_padded_to_32(fresh_data, monkeypatch):
    monkeypatch.setattr(data, "MNIST_SIZES", {"train": 50, "val": 10, "test": 10})
    raw = fresh_data / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 60), ("t10k", 10)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = np.arange(n)          # image i carries its index in its first pixel
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    val = data.load("mnist", "val")
    assert val.images.shape == (10, 1, 32, 32) and val.images.dtype == torch.uint8
    assert val.images[:, 0, 2, 2].tolist() == list(range(50, 60)), "val must be items 50.. of the training file"
    assert val.images[:, :, :2].sum() == 0 and val.images[:, :, :, -2:].sum() == 0, "a 2-pixel zero border"
    assert val.labels.tolist() == [i % 10 for i in range(50, 60)]
    assert 0.0 <= val.float().min() and val.float().max() <= 1.0
    assert data.source("mnist") == "real"


def test_imagenette_loads_rgb_squares_from_a_jpeg_folder(fresh_data, monkeypatch):
    monkeypatch.setattr(data, "IMAGENETTE_SIZES", {"train": 6, "val": 2, "test": 3})
    monkeypatch.setattr(data, "OFFICIAL_COUNTS", {**data.OFFICIAL_COUNTS, ("imagenette", "train"): 8,
                                                  ("imagenette", "val"): 4})
    wnids = ["n01440764", "n02102040"]  # tench, English springer
    for folder, per_class in (("train", 4), ("val", 2)):
        for c, wnid in enumerate(wnids):
            (fresh_data / "imagenette2-160" / folder / wnid).mkdir(parents=True)
            for i in range(per_class):
                mode = "L" if i == 0 else "RGB"  # Imagenette has some grayscale photos
                grey = 60 + 100 * c
                Image.new(mode, (200, 160), grey if mode == "L" else (grey,) * 3).save(fresh_data / "imagenette2-160" / folder / wnid / f"{i}.JPEG")
    train = data.load("imagenette", "train", size=32)
    assert train.images.shape == (6, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.classes[:2] == ["tench", "English springer"]
    brightness = train.images.float().mean((1, 2, 3))
    assert torch.allclose(brightness, 60 + 100 * train.labels.float(), atol=3), "labels must follow the folders"
    test = data.load("imagenette", "test", size=32)
    assert len(test) == 3 and test.name == "imagenette/test"
    cached = list((fresh_data.parent / "cache" / "imagenette").glob("*.pt"))
    assert sorted(p.name for p in cached) == ["train-32px.pt", "val-32px.pt"], "decoded folders are cached on disk"


# ---------------------------------------------------------------- missing data

def test_offline_and_missing_gives_a_clear_error(fresh_data, monkeypatch):
    monkeypatch.setattr(data, "PROFILE", "full")
    with pytest.raises(data.DataNotFoundError) as err:
        data.load("mnist", "train")
    message = str(err.value)
    assert str(fresh_data) in message and "train-images-idx3-ubyte" in message, message
    assert "DGM_DATA" in message, "the error must say how to point at a local copy"
    assert "could not be downloaded" in message


def test_quick_profile_falls_back_to_synthetic_data_and_says_so(fresh_data, monkeypatch, capsys):
    monkeypatch.setattr(data, "PROFILE", "quick")
    split = data.load("imagenette", "val", size=16, limit=40)
    assert split.images.shape == (40, 3, 16, 16) and split.images.dtype == torch.uint8
    assert "synthetic" in split.name
    assert "data=synthetic" in profile.banner("imagenette")
    assert len(set(split.labels.tolist())) > 1


def test_synthetic_classes_differ():
    s = data.synthetic("mnist", "train", n=200)
    means = torch.stack([s.float()[s.labels == c].mean(0) for c in range(10)])
    assert torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(1e9).min() > 1.0, \
        "each synthetic class must look different, or a model has nothing to learn"


@pytest.mark.parametrize("kwargs, message", [
    (dict(dataset="cifar", split="train"), "Unknown dataset"),
    (dict(dataset="mnist", split="training"), "Unknown split"),
    (dict(dataset="mnist", split="train", size=28), "padded to 32"),
    (dict(dataset="mnist", split="train", limit=0), "positive"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load(**kwargs)
