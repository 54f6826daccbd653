"""helpers.data: the report's splits, torchvision's real readers on files the tests write,
the checks on damaged files, the offline error, and the synthetic stand-in."""
import hashlib
import shutil
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import data, run_banner

CACHED = ("_imagenette_files", "_load_real", "_md5")


def forget_loads():
    """What a new kernel would start with: no dataset located, checked or loaded yet."""
    data._SOURCES.clear()
    for name in CACHED:
        getattr(data, name).cache_clear()


@pytest.fixture
def fresh_data(monkeypatch, tmp_path):
    """Point DGM_DATA at an empty folder, forget cached loads, and make every download fail
    as it does offline (so no test ever reaches the network)."""
    monkeypatch.setenv("DGM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DGM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_SOURCES", {})
    forget_loads()

    def offline(url, *args, **kwargs):
        raise URLError("no network in this test")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    monkeypatch.setattr("torchvision.datasets.imagenette.download_and_extract_archive", offline)
    yield tmp_path / "data"
    forget_loads()


# ---------------------------------------------------------------- files the tests write

def write_idx(path, array: np.ndarray) -> None:
    """An IDX file as in the MNIST distribution: magic (0, 0, 0x08 = uint8, ndim), big-endian dims, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_files(fresh_data, monkeypatch):
    """A 60 + 10 digit MNIST in DGM_DATA/MNIST/raw (image i carries i in its first pixel, label i % 10),
    split 50 / 10 / 10, with these files' MD5s as the published ones."""
    monkeypatch.setattr(data, "MNIST_SIZES", {"train": 50, "val": 10, "test": 10})
    raw = fresh_data / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 60), ("t10k", 10)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = np.arange(n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    monkeypatch.setattr(data, "MNIST_MD5", {name: hashlib.md5((raw / name).read_bytes()).hexdigest()
                                            for name in data.MNIST_MD5})
    return raw


def grey_of(label: int) -> int:
    """The grey level the written Imagenette images of class ``label`` have."""
    return 20 + 20 * label


def write_jpeg(path, grey: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (20, 16), grey if mode == "L" else (grey,) * 3).save(path)


@pytest.fixture
def imagenette_files(fresh_data, monkeypatch):
    """An Imagenette with all 10 class folders, 4 images each in ``train`` and 2 in ``val`` (the
    first of each class grayscale, as some real ones are), split 24 / 8 / 12; returns its root."""
    monkeypatch.setattr(data, "IMAGENETTE_SIZES", {"train": 24, "val": 8, "test": 12})
    monkeypatch.setattr(data, "OFFICIAL_COUNTS", {**data.OFFICIAL_COUNTS, ("imagenette", "train"): 40,
                                                  ("imagenette", "val"): 20})
    root = fresh_data / data.IMAGENETTE_FOLDER
    for official, per_class in (("train", 4), ("val", 2)):
        for label, wnid in enumerate(data.IMAGENETTE_CLASSES):
            for i in range(per_class):
                write_jpeg(root / official / wnid / f"{wnid}_{i}.JPEG", grey_of(label), "L" if i == 0 else "RGB")
    return root


def add_image(root, monkeypatch, official="train", wnid="n03445777", name="extra.JPEG"):
    """One more JPEG in an official folder, and the published count raised to match it."""
    write_jpeg(root / official / wnid / name, grey_of(list(data.IMAGENETTE_CLASSES).index(wnid)))
    key = ("imagenette", official)
    monkeypatch.setattr(data, "OFFICIAL_COUNTS", {**data.OFFICIAL_COUNTS, key: data.OFFICIAL_COUNTS[key] + 1})


def membership() -> dict:
    """{file: split} of the official train folder's images in train and val, as a new kernel loads them."""
    forget_loads()
    return {file: split for split in ("train", "val") for file in data.load("imagenette", split, size=8).files}


# ---------------------------------------------------------------- MNIST

def test_mnist_splits_are_the_reports_and_never_change():
    """Trained models and published numbers rest on these exact digits."""
    for split, official, first in (("train", "train", 0), ("val", "train", 50_000), ("test", "test", 0)):
        got_official, idx = data.split_indices("mnist", split)
        assert got_official == official
        assert idx.tolist() == list(range(first, first + data.MNIST_SIZES[split])), f"mnist/{split} moved"


def test_mnist_loads_from_idx_files_padded_to_32(mnist_files):
    val = data.load("mnist", "val")
    assert val.images.shape == (10, 1, 32, 32) and val.images.dtype == torch.uint8
    assert val.images[:, 0, 2, 2].tolist() == list(range(50, 60)), "val must be items 50.. of the training file"
    assert val.images[:, :, :2].sum() == 0 and val.images[:, :, :, -2:].sum() == 0, "a 2-pixel zero border"
    assert val.labels.tolist() == [i % 10 for i in range(50, 60)]
    assert val.files[0] == "train-images-idx3-ubyte[50]"
    assert 0.0 <= val.float().min() and val.float().max() <= 1.0
    assert data.source("mnist") == "real"


def flip_one_byte(path):
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


def cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [flip_one_byte, cut_in_half])
@pytest.mark.parametrize("profile_name", ["quick", "full"])
def test_a_damaged_mnist_file_is_named_in_every_profile(mnist_files, monkeypatch, damage, profile_name):
    """A damaged file is on disk: it must neither pass as real data, nor be reported as missing,
    nor turn into the synthetic stand-in."""
    monkeypatch.setattr(data, "PROFILE", profile_name)
    damage(mnist_files / "train-images-idx3-ubyte")
    with pytest.raises(data.BadDataError) as err:
        data.load("mnist", "test")
    message = str(err.value)
    assert str(mnist_files / "train-images-idx3-ubyte") in message, message
    assert "MD5" in message and "replace it" in message, message
    assert "not on disk" not in message


def test_a_file_changed_after_loading_is_checked_again(mnist_files):
    data.load("mnist", "val")
    data._load_real.cache_clear()
    flip_one_byte(mnist_files / "t10k-labels-idx1-ubyte")
    with pytest.raises(data.BadDataError, match="t10k-labels-idx1-ubyte"):
        data.load("mnist", "test")


def test_an_incomplete_mnist_folder_names_the_missing_file(mnist_files, monkeypatch):
    monkeypatch.setattr(data, "PROFILE", "quick")
    (mnist_files / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(data.BadDataError, match="incomplete: t10k-labels-idx1-ubyte missing"):
        data.load("mnist", "train")


# ---------------------------------------------------------------- Imagenette

def test_hash_order_places_each_name_by_the_name_alone():
    names = [f"n{c:08d}/{c}_{i}.JPEG" for c in range(10) for i in range(30)]
    ordered = [names[i] for i in data.hash_order(names)]
    assert len({name.split("/")[0] for name in ordered[:30]}) > 5, "a shuffle, not the listing's class blocks"
    backwards = names[::-1]
    assert [backwards[i] for i in data.hash_order(backwards)] == ordered, "the listing order must not matter"
    fewer = names[:17] + names[18:]
    assert [fewer[i] for i in data.hash_order(fewer)] == [name for name in ordered if name != names[17]], \
        "removing a file must leave the others in the same order"


def test_imagenette_loads_rgb_squares_with_labels_from_the_class_folders(imagenette_files):
    train = data.load("imagenette", "train", size=8)
    assert train.images.shape == (24, 3, 8, 8) and train.images.dtype == torch.uint8
    assert train.classes[:2] == ["tench", "English springer"]
    brightness = train.images.float().mean((1, 2, 3))
    expected = torch.tensor([grey_of(label) for label in train.labels.tolist()], dtype=torch.float)
    assert torch.allclose(brightness, expected, atol=3), "labels must follow the folders"
    folders = [file.split("/")[1] for file in train.files]
    assert [list(data.IMAGENETTE_CLASSES).index(wnid) for wnid in folders] == train.labels.tolist()
    assert len(set(train.labels.tolist())) > 5, "the split is a shuffle, not the first classes in the listing"
    test = data.load("imagenette", "test", size=8)
    assert len(test) == 12 and test.name == "imagenette/test"
    assert all(file.startswith("val/") for file in test.files), "the test split comes from the official val folder"


def test_imagenette_splits_are_disjoint_and_the_same_in_every_kernel(imagenette_files):
    first = {split: data.load("imagenette", split, size=8).files for split in data.SPLITS}
    assert {split: len(files) for split, files in first.items()} == data.IMAGENETTE_SIZES
    assert not set(first["train"]) & set(first["val"]), "train and validation must not share an image"
    forget_loads()
    assert {split: data.load("imagenette", split, size=8).files for split in data.SPLITS} == first


def test_one_more_image_keeps_every_other_image_in_its_split(imagenette_files, monkeypatch):
    """Only the images at the edge of a split may move, one per edge; a shuffle of the whole
    listing would move most of them."""
    before = membership()
    add_image(imagenette_files, monkeypatch)
    after = membership()
    moved = {file for file in before if after.get(file) != before[file]}
    assert len(moved) <= 2, f"{len(moved)} of {len(before)} images changed split: {sorted(moved)}"


@pytest.mark.parametrize("profile_name", ["quick", "full"])
def test_a_missing_class_folder_is_named_before_loading(imagenette_files, monkeypatch, profile_name):
    """With a class gone a model would silently learn 9 classes, from a split drawn out of other images."""
    monkeypatch.setattr(data, "PROFILE", profile_name)
    shutil.rmtree(imagenette_files / "val" / "n02102040")
    with pytest.raises(data.BadDataError) as err:
        data.load("imagenette", "train", size=8)
    message = str(err.value)
    assert str(imagenette_files / "val") in message and "missing: n02102040" in message, message
    assert "delete it to let torchvision download it again" in message


def test_an_unexpected_image_count_is_named(imagenette_files):
    write_jpeg(imagenette_files / "train" / "n01440764" / "stray.JPEG", 0)
    with pytest.raises(data.BadDataError) as err:
        data.split_indices("imagenette", "val")
    message = str(err.value)
    assert str(imagenette_files / "train") in message, message
    assert "holds 41 JPEG images" in message and "has 40" in message, message


def test_a_truncated_jpeg_is_named(imagenette_files):
    broken = imagenette_files / "train" / "n03000684" / "n03000684_1.JPEG"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(data.BadDataError) as err:
        data.load("imagenette", "val", size=8)
    assert str(broken) in str(err.value) and "replace it with a good copy" in str(err.value)


def test_the_decoded_cache_follows_the_source_files(imagenette_files, monkeypatch, tmp_path):
    """A cached folder is reused for the same files, and never for other ones under the same names."""
    decoded = []
    decode = data.decode_square
    monkeypatch.setattr(data, "decode_square", lambda path, size: decoded.append(path) or decode(path, size))
    before = data.load("imagenette", "train", size=8)
    assert len(decoded) == 40, "the whole official folder is decoded once"
    forget_loads()
    assert torch.equal(data.load("imagenette", "train", size=8).images, before.images)
    assert len(decoded) == 40, "the second kernel must read the cache, not decode again"

    other = tmp_path / "other"  # the same file names, every image 10 grey levels brighter
    shutil.copytree(imagenette_files, other / data.IMAGENETTE_FOLDER)
    for path in (other / data.IMAGENETTE_FOLDER).glob("*/*/*.JPEG"):
        with Image.open(path) as image:
            grey = image.convert("L").getpixel((0, 0))
        write_jpeg(path, grey + 10)
    monkeypatch.setenv("DGM_DATA", str(other))
    forget_loads()
    after = data.load("imagenette", "train", size=8)
    assert after.files == before.files
    assert torch.allclose(after.images.float() - before.images.float(), torch.tensor(10.0), atol=3)


# ---------------------------------------------------------------- absent data

def test_offline_and_missing_gives_a_clear_error(fresh_data, monkeypatch):
    monkeypatch.setattr(data, "PROFILE", "full")
    with pytest.raises(data.DataNotFoundError) as err:
        data.load("mnist", "train")
    message = str(err.value)
    assert str(fresh_data) in message and "train-images-idx3-ubyte" in message, message
    assert "DGM_DATA" in message, "the error must say how to point at a local copy"
    assert "could not be downloaded" in message


@pytest.mark.parametrize("dataset", data.DATASETS)
def test_a_failed_download_leaves_the_data_folder_as_it_was(fresh_data, monkeypatch, dataset):
    """The data root may be a read-only or shared folder: a failed load writes nothing there."""
    monkeypatch.setattr(data, "PROFILE", "full")
    fresh_data.mkdir()
    with pytest.raises(data.DataNotFoundError):
        data.source(dataset)
    assert list(fresh_data.iterdir()) == []


def test_quick_profile_falls_back_to_synthetic_data_and_says_so(fresh_data, monkeypatch, capsys):
    monkeypatch.setattr(data, "PROFILE", "quick")
    split = data.load("imagenette", "val", size=16, limit=40)
    assert split.images.shape == (40, 3, 16, 16) and split.images.dtype == torch.uint8
    assert "synthetic" in split.name and len(split.files) == 40
    assert "data=synthetic" in run_banner.banner("imagenette")
    assert "real data unavailable" in capsys.readouterr().out
    assert len(set(split.labels.tolist())) > 1
    assert not fresh_data.exists(), "falling back must not create the data folder"


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
