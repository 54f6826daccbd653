"""FID: the distance against closed forms and pytorch-fid, the fast network against
pytorch-fid's InceptionV3, input checks, the offline error and the reference cache.

Tests that run Inception use the real weights from $TORCH_HOME (they fail with a message
naming the file when it is missing) and tiny inputs: 64-d features, a handful of images.
"""
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import InceptionV3

import helpers.data
from helpers import fid


def random_covariance(rng, dims, rank=None):
    """A random covariance of the given rank (full by default): A A^T / rank."""
    a = rng.standard_normal((dims, rank or 2 * dims))
    return a @ a.T / a.shape[1]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------- the distance

def test_identical_statistics_give_zero(rng):
    mu, sigma = rng.standard_normal(32), random_covariance(rng, 32)
    assert fid.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-9)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pytorch-fid passes sqrtm an argument scipy deprecates
def test_matches_pytorch_fid(rng):
    mu1, mu2 = rng.standard_normal(48), rng.standard_normal(48)
    sigma1, sigma2 = random_covariance(rng, 48), 3 * random_covariance(rng, 48)
    expected = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert fid.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


def test_closed_form_for_commuting_covariances(rng):
    # Sigma_i = Q diag(s_i) Q^T share eigenvectors, so (Sigma_1 Sigma_2)^{1/2} = Q diag(sqrt(s_1 s_2)) Q^T
    # and the trace term is sum_k (sqrt(s_1k) - sqrt(s_2k))^2: a formula with no matrix square root.
    dims = 16
    q, _ = np.linalg.qr(rng.standard_normal((dims, dims)))
    s1, s2 = rng.uniform(0.1, 4, dims), rng.uniform(0.1, 4, dims)
    mu1, mu2 = rng.standard_normal(dims), rng.standard_normal(dims)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    assert fid.frechet_distance(mu1, q * s1 @ q.T, mu2, q * s2 @ q.T) == pytest.approx(expected, rel=1e-9)


def test_singular_covariances_give_the_closed_form_not_nan():
    # Fewer samples than dimensions makes covariances singular: zero variances here.
    s1, s2 = np.array([2.0, 0.0, 1.0, 0.0]), np.array([0.5, 0.0, 0.0, 3.0])
    expected = np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    value = fid.frechet_distance(np.zeros(4), np.diag(s1), np.zeros(4), np.diag(s2))
    assert value == pytest.approx(expected, rel=1e-12)


def test_symmetric(rng):
    mu1, mu2 = rng.standard_normal(24), rng.standard_normal(24)
    sigma1, sigma2 = random_covariance(rng, 24), random_covariance(rng, 24, rank=30)
    assert fid.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(
        fid.frechet_distance(mu2, sigma2, mu1, sigma1), rel=1e-9)


def test_translating_a_mean_adds_its_squared_norm(rng):
    mu, sigma1, sigma2 = rng.standard_normal(20), random_covariance(rng, 20), random_covariance(rng, 20)
    shift = rng.standard_normal(20)
    base = fid.frechet_distance(mu, sigma1, mu, sigma2)
    shifted = fid.frechet_distance(mu + shift, sigma1, mu, sigma2)
    assert shifted - base == pytest.approx(np.sum(shift ** 2), rel=1e-9)


def test_accepts_torch_statistics(rng):
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    sigma1, sigma2 = random_covariance(rng, 8), random_covariance(rng, 8)
    as_torch = [torch.from_numpy(a) for a in (mu1, sigma1, mu2, sigma2)]
    assert fid.frechet_distance(*as_torch) == pytest.approx(fid.frechet_distance(mu1, sigma1, mu2, sigma2))


def test_distance_rejects_mismatched_or_nan_statistics(rng):
    mu, sigma = rng.standard_normal(8), random_covariance(rng, 8)
    with pytest.raises(ValueError, match="same feature dimension"):
        fid.frechet_distance(mu, sigma, mu[:4], sigma[:4, :4])
    bad = sigma.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fid.frechet_distance(mu, bad, mu, sigma)


def test_statistics_are_mean_and_unbiased_covariance(rng):
    x = rng.standard_normal((50, 6))
    mu, sigma = fid.statistics(torch.from_numpy(x))
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, (x - x.mean(0)).T @ (x - x.mean(0)) / 49, rtol=1e-10)


def test_statistics_warn_when_covariance_is_singular(rng):
    with pytest.warns(UserWarning, match="singular"):
        fid.statistics(rng.standard_normal((10, 16)))
    with pytest.raises(ValueError, match="at least 2"):
        fid.statistics(rng.standard_normal((1, 16)))


def test_result_reports_its_sample_sizes():
    result = fid.FIDResult(23.4, 10_000, "mnist/test", 10_000, 2048)
    assert str(result) == "FID 23.4 (10,000 generated vs 10,000 mnist/test, 2048-d)"
    assert result.as_dict() == {"value": 23.4, "n_generated": 10_000, "reference": "mnist/test",
                                "n_reference": 10_000, "dims": 2048}
    # 64-d FIDs are small numbers: they keep three significant digits instead of rounding to 0.0
    assert str(fid.FIDResult(0.001453, 500, "mnist/test", 10_000, 64)).startswith("FID 0.00145 (500 generated")


# ---------------------------------------------------------------- input checks (no network needed)

@pytest.mark.parametrize("images, message", [
    (torch.rand(4, 2, 32, 32), "C = 1"),
    (torch.rand(4, 32, 32), "N x C x H x W"),
    (torch.rand(4, 1, 32, 32) * 2 - 1, r"\[0, 1\].*\(x \+ 1\) / 2"),
    (torch.full((4, 1, 32, 32), float("nan")), "NaN"),
    (torch.rand(1, 1, 32, 32), "at least 2"),
    (torch.randint(0, 255, (4, 1, 32, 32), dtype=torch.int64), "uint8"),
])
def test_bad_images_are_rejected_before_inception_runs(images, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fid.features(images, dims=64)


def test_sampler_needs_n():
    with pytest.raises(ValueError, match="needs n"):
        fid.features(lambda b: torch.rand(b, 1, 32, 32), dims=64)


def test_unknown_dims_are_rejected():
    with pytest.raises(ValueError, match="2048"):
        fid.inception(dims=1000)


# ---------------------------------------------------------------- the network

def digits(n):
    """n small grayscale images (the synthetic stand-in: no dataset needed), uint8 n x 1 x 32 x 32."""
    return helpers.data.synthetic("mnist", "test", n=n).images


def pytorch_fid_features(images_unit, dims):
    """pytorch-fid's own path: 3 channels, its InceptionV3 (which resizes and rescales), spatial mean."""
    net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()
    with torch.no_grad():
        out = net(images_unit.expand(-1, 3, -1, -1))[0]
    return F.adaptive_avg_pool2d(out, 1).flatten(1).double()


@pytest.mark.parametrize("dims, n", [(64, 4), (2048, 2)])
def test_fast_features_equal_pytorch_fid_features(dims, n):
    images = digits(n)
    ours = fid.features(images, dims=dims, device="cpu")
    expected = pytorch_fid_features(images.float() / 255, dims)
    assert ours.shape == (n, dims) and ours.dtype == torch.float64
    # Folding batch norm into the convolutions changes float rounding only.
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_grayscale_uint8_float_and_rgb_give_the_same_features():
    images = digits(3)
    unit = images.float() / 255
    reference = fid.features(images, dims=64, device="cpu")
    torch.testing.assert_close(fid.features(unit, dims=64, device="cpu"), reference)
    torch.testing.assert_close(fid.features(unit.repeat(1, 3, 1, 1), dims=64, device="cpu"), reference)


def test_sampler_is_called_until_n_images():
    images = digits(5).float() / 255
    calls = []

    def sampler(batch_size):
        start = sum(calls)
        calls.append(batch_size)
        return images[start: start + batch_size]

    from_sampler = fid.features(sampler, n=5, dims=64, batch_size=2, device="cpu")
    assert calls == [2, 2, 1]
    torch.testing.assert_close(from_sampler, fid.features(images, dims=64, device="cpu"))


def test_missing_weights_offline_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    expected = tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(fid.WeightsNotFoundError) as error:
        fid.inception(dims=64, device="cpu")
    assert str(expected) in str(error.value)
    assert fid.weights_path() == expected


# ---------------------------------------------------------------- the reference cache

@pytest.fixture
def counted_features(tmp_path, monkeypatch):
    """An empty cache, the synthetic stand-in as data, and fake features that count their calls."""
    monkeypatch.setenv("DGM_CACHE", str(tmp_path))
    monkeypatch.setattr(helpers.data, "load",
                        lambda dataset, split, size=None, limit=None: helpers.data.synthetic(dataset, split, n=limit or 300))
    calls = []

    def fake_features(images, n=None, dims=2048, **how):
        count = len(images[:n])
        calls.append((count, dims))
        return torch.from_numpy(np.random.default_rng(len(calls)).standard_normal((count, dims)))

    monkeypatch.setattr(fid, "features", fake_features)
    return calls


@pytest.mark.filterwarnings("ignore:.*singular")  # 100 fake samples of 192-d features
def test_reference_statistics_are_computed_once_per_key(counted_features, tmp_path):
    first = fid.reference_statistics("mnist", "test", n=100, dims=64)
    again = fid.reference_statistics("mnist", "test", n=100, dims=64)
    assert counted_features == [(100, 64)]  # the second call read the cache
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    fid.reference_statistics("mnist", "test", n=None, dims=64)   # the whole (300-image) split
    fid.reference_statistics("mnist", "test", n=300, dims=64)    # the same images: same entry
    fid.reference_statistics("mnist", "test", n=100, dims=192)
    fid.reference_statistics("mnist", "val", n=100, dims=64)
    assert counted_features == [(100, 64), (300, 64), (100, 192), (100, 64)]
    assert len(list((tmp_path / "fid").glob("stats-*.npz"))) == 4
    assert not list((tmp_path / "fid").glob("*.tmp"))


def test_fid_result_names_its_reference(counted_features):
    result = fid.fid(torch.rand(80, 1, 32, 32), dataset="mnist", split="test", n=70, n_reference=120, dims=64)
    assert (result.n_generated, result.n_reference, result.dims) == (70, 120, 64)
    assert result.reference.startswith("mnist/test")
    assert result.value > 0


def test_bad_generated_images_fail_before_the_reference_is_computed(counted_features):
    with pytest.raises(ValueError, match="C = 1"):
        fid.fid(torch.rand(10, 2, 32, 32), n=10, dims=64)
    assert counted_features == []
