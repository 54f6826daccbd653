"""FID: the distance against closed forms and pytorch-fid, KID against scikit-learn's kernel
and pair-by-pair sums, the fast network against pytorch-fid's InceptionV3, input checks, the
weights file (missing, broken, offline), the reference cache, and the test command on a
machine without the weights.

Tests that run Inception use the real weights from $TORCH_HOME and tiny inputs: 64-d
features, a handful of images. Without the weights and without internet they are skipped
with a message naming the file (failed in CI); see the ``fid_weights`` fixture in conftest.py.
Cache tests replace the network with a small fake one and use a fake weights file.
"""
import json
import os
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import InceptionV3
from sklearn.metrics.pairwise import polynomial_kernel

import helpers.data
from helpers import fid

ROOT = Path(__file__).resolve().parent.parent


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


def test_distance_rejects_a_sigma_that_is_not_a_covariance(rng):
    # The eigensolvers read one triangle and clip negative eigenvalues: without a check, a
    # non-symmetric or indefinite matrix would give a number that means nothing.
    mu, sigma = rng.standard_normal(8), random_covariance(rng, 8)
    lopsided = sigma + np.triu(rng.standard_normal((8, 8)), 1)
    with pytest.raises(ValueError, match="sigma1 is not symmetric"):
        fid.frechet_distance(mu, lopsided, mu, sigma)
    indefinite = sigma - 2 * np.linalg.eigvalsh(sigma)[-1] * np.outer(np.eye(8)[0], np.eye(8)[0])
    with pytest.raises(ValueError, match="sigma2 is not positive semi-definite"):
        fid.frechet_distance(mu, sigma, mu, indefinite)


def test_distance_accepts_covariances_with_float32_round_off(rng):
    # Statistics stored or computed in float32 are symmetric and PSD only up to round-off, and
    # a singular covariance (fewer samples than dimensions) has eigenvalues of +-1e-16 at 0.
    mu1, mu2 = rng.standard_normal(64), rng.standard_normal(64)
    sigma1, sigma2 = random_covariance(rng, 64, rank=20), random_covariance(rng, 64)
    rounded = sigma1 + 1e-6 * np.abs(sigma1).max() * rng.standard_normal((64, 64))  # not exactly symmetric
    assert np.linalg.eigvalsh((rounded + rounded.T) / 2)[0] < 0, "the case to test: slightly negative eigenvalues"
    exact = fid.frechet_distance(mu1, sigma1, mu2, sigma2)
    assert fid.frechet_distance(mu1, rounded, mu2, sigma2) == pytest.approx(exact, rel=1e-3)


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


def test_result_with_kid_reports_it_and_reads_back_from_json():
    kid = fid.KIDResult(0.01234, 0.00045, 10, 1000)
    result = fid.FIDResult(23.4, 10_000, "mnist/test", 10_000, 2048, kid)
    assert str(result).endswith("2048-d); KID 0.0123 ± 0.00045 (10 subsets of 1,000)")
    saved = json.loads(json.dumps(result.as_dict()))
    assert saved["kid"] == {"value": 0.01234, "standard_error": 0.00045, "n_subsets": 10, "subset_size": 1000}
    assert fid.FIDResult(**saved) == result


# ---------------------------------------------------------------- KID

def mmd2_pair_by_pair(x, y):
    """The unbiased MMD^2 written out as sums over pairs, with scikit-learn's polynomial kernel."""
    kernel = lambda a, b: polynomial_kernel(a, b, degree=3, gamma=1 / x.shape[1], coef0=1)
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    n, m = len(x), len(y)
    within_x = sum(k_xx[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    within_y = sum(k_yy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    between = sum(k_xy[i, j] for i in range(n) for j in range(m)) / (n * m)
    return within_x + within_y - 2 * between


def test_mmd2_matches_scikit_learn_kernel_and_pair_sums(rng):
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((9, 5)) + 0.3  # unequal sizes: N and M not mixed up
    np.testing.assert_allclose(fid.polynomial_kernel(x, y),
                               polynomial_kernel(x, y, degree=3, gamma=1 / 5, coef0=1), rtol=1e-12)
    assert fid.mmd2_unbiased(x, y) == pytest.approx(mmd2_pair_by_pair(x, y), rel=1e-10)


def test_kid_is_the_mean_of_independent_subset_estimates(rng):
    # The documented subsets: one permutation of each set (the first set's drawn first), cut into
    # disjoint runs of subset_size; 60 and 75 samples give 3 subsets of 20 and leave samples over.
    x, y = rng.standard_normal((60, 4)), rng.standard_normal((75, 4)) + 0.5
    result = fid.kernel_inception_distance(torch.from_numpy(x), y, subset_size=20, seed=7)
    draw = np.random.default_rng(7)
    subsets_x, subsets_y = draw.permutation(60)[:60].reshape(3, 20), draw.permutation(75)[:60].reshape(3, 20)
    estimates = [mmd2_pair_by_pair(x[i], y[j]) for i, j in zip(subsets_x, subsets_y)]
    assert (result.n_subsets, result.subset_size) == (3, 20)
    assert result.value == pytest.approx(np.mean(estimates), rel=1e-10)
    assert result.standard_error == pytest.approx(np.std(estimates, ddof=1) / np.sqrt(3), rel=1e-10)


def test_kid_is_zero_within_its_error_for_one_distribution_and_clearly_positive_for_a_shift(rng):
    x, y = rng.standard_normal((2000, 8)), rng.standard_normal((2000, 8))
    same = fid.kernel_inception_distance(x, y, subset_size=200)
    shifted = fid.kernel_inception_distance(x, y + 0.5, subset_size=200)
    assert same.n_subsets == 10
    assert abs(same.value) < 3 * same.standard_error
    assert shifted.value > 10 * shifted.standard_error and shifted.value > 10 * abs(same.value)


def test_mmd2_is_unbiased_where_the_v_statistic_is_not(rng):
    # x, y ~ N(0, I_3): MMD^2 = 0. With t = x^T y / D, E k(x, x') = E (t + 1)^3 = 1 + 3 E t^2 = 1 + 3 / D,
    # and E k(x, x) follows from the chi-square moments E|x|^{2p} = D (D + 2) ... (D + 2p - 2). The
    # V-statistic keeps the N terms k(x_i, x_i) in each within-set mean: E V = 2 (E k(x, x) - E k(x, x')) / N.
    dims, n, repeats = 3, 8, 4000
    self_kernel = 1 + 3 * (dims + 2) / dims + dims * (dims + 2) * (dims + 4) / dims ** 3 + 3
    v_bias = 2 * (self_kernel - (1 + 3 / dims)) / n
    x, y = rng.standard_normal((2, repeats, n, dims))
    kernel_mean = lambda a, b: ((np.einsum("rid,rjd->rij", a, b) / dims + 1) ** 3).mean(axis=(1, 2))
    v = kernel_mean(x, x) + kernel_mean(y, y) - 2 * kernel_mean(x, y)
    u = [fid.mmd2_unbiased(x_r, y_r) for x_r, y_r in zip(x, y)]
    error_u, error_v = np.std(u) / np.sqrt(repeats), np.std(v) / np.sqrt(repeats)
    assert abs(np.mean(u)) < 4 * error_u
    assert abs(np.mean(v) - v_bias) < 4 * error_v and v_bias > 20 * error_v


def test_kid_standard_error_matches_the_spread_of_repeated_kids(rng):
    kids = [fid.kernel_inception_distance(rng.standard_normal((200, 4)), rng.standard_normal((200, 4)) + 0.3,
                                          subset_size=25, seed=k) for k in range(300)]
    spread = np.std([k.value for k in kids], ddof=1)
    assert 0.8 < np.mean([k.standard_error for k in kids]) / spread < 1.25


@pytest.mark.parametrize("x, y, subset_size, message", [
    (np.zeros((40, 4)), np.zeros((40, 5)), 10, "40 x 4 and features2 40 x 5: both sets need the same feature dim"),
    (np.full((40, 4), np.nan), np.zeros((40, 4)), 10, "features1 contains NaN or infinity"),
    (np.zeros((40, 4)), np.zeros((40, 4)), 30, "subset_size=30 .* at least 60 samples per set; got 40 and 40"),
    (np.zeros(40), np.zeros((40, 4)), 10, "features1 must have 2 dimension"),
    (np.zeros((40, 4)), np.zeros((40, 4)), 1, "at least 2 samples per subset"),
], ids=["dims", "nan", "too-few", "not-a-matrix", "subset-of-1"])
def test_kid_rejects_bad_features(x, y, subset_size, message):
    with pytest.raises(ValueError, match=message):
        fid.kernel_inception_distance(x, y, subset_size=subset_size)


# ---------------------------------------------------------------- input checks (no network needed)

@pytest.mark.parametrize("images, message", [
    (torch.rand(4, 2, 32, 32), "C = 1"),
    (torch.rand(4, 32, 32), "N x C x H x W"),
    (torch.rand(4, 1, 32, 32) * 2 - 1, r"\[0, 1\].*\(x \+ 1\) / 2"),
    (torch.full((4, 1, 32, 32), float("nan")), "NaN"),
    (torch.rand(1, 1, 32, 32), "at least 2"),
    (torch.randint(0, 255, (4, 1, 32, 32), dtype=torch.int64), "uint8"),
    (torch.rand(4, 1, 32, 32) * 255, "divided by 255"),
    (torch.empty(0, 1, 32, 32), "no images"),
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


@pytest.mark.usefixtures("fid_weights")
@pytest.mark.parametrize("dims, n", [(64, 4), (2048, 2)])
def test_fast_features_equal_pytorch_fid_features(dims, n):
    images = digits(n)
    ours = fid.features(images, dims=dims, device="cpu")
    expected = pytorch_fid_features(images.float() / 255, dims)
    assert ours.shape == (n, dims) and ours.dtype == torch.float64
    # Folding batch norm into the convolutions changes float rounding only.
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("fid_weights")
def test_grayscale_uint8_float_and_rgb_give_the_same_features():
    images = digits(3)
    unit = images.float() / 255
    reference = fid.features(images, dims=64, device="cpu")
    torch.testing.assert_close(fid.features(unit, dims=64, device="cpu"), reference)
    # The same numbers, but an RGB copy is laid out unlike a grayscale image expanded to 3 channels,
    # and oneDNN may then add in another order (seen with OMP_NUM_THREADS=1: 5e-7 apart in float32).
    rgb = fid.features(unit.repeat(1, 3, 1, 1), dims=64, device="cpu")
    torch.testing.assert_close(rgb, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fid_weights")
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


# ---------------------------------------------------------------- the weights file

@pytest.fixture
def offline(tmp_path, monkeypatch):
    """TORCH_HOME at an empty folder and no internet: the weights' expected path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_internet(url, *args, **kwargs):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_internet)
    return tmp_path / "torch_home" / "hub" / "checkpoints" / fid.WEIGHTS_FILE


def test_missing_weights_offline_name_the_file_and_how_to_get_it(offline):
    assert fid.weights_path() == offline
    for needs_weights in (fid.require_weights, lambda: fid.inception(dims=64, device="cpu")):
        with pytest.raises(fid.WeightsNotFoundError) as error:
            needs_weights()
        assert str(offline) in str(error.value) and "$TORCH_HOME/hub/checkpoints/" in str(error.value)
        assert fid.FID_WEIGHTS_URL in str(error.value), "the message says where to download the file"


def test_weights_are_downloaded_where_torch_hub_looks_for_them(offline, monkeypatch):
    def download(url, destination, **how):
        torch.save({"conv": torch.ones(2)}, destination)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    assert fid.require_weights() == offline and offline.exists()


@pytest.mark.parametrize("content", [b"", "truncated"], ids=["empty", "truncated"])
def test_broken_weights_file_says_delete_it(offline, content):
    # torch.hub downloads only a missing file: a 0-byte or torn one would fail forever.
    offline.parent.mkdir(parents=True)
    if content == "truncated":
        torch.save({"conv": torch.randn(1000)}, offline)
        content = offline.read_bytes()[:2000]
    offline.write_bytes(content)
    with pytest.raises(fid.BrokenWeightsError, match="delete it") as error:
        fid.require_weights()
    assert str(offline) in str(error.value)
    assert fid.main() == 1


@pytest.mark.parametrize("ci", [False, True], ids=["offline", "offline-ci"])
def test_fid_tests_skip_offline_without_weights_but_fail_in_ci(offline, monkeypatch, request, ci):
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match=re.escape(str(offline))):
        request.getfixturevalue("fid_weights")


def chapters_computing_fid() -> set:
    """The chapters whose code imports helpers.fid, read from the notebooks' JSON."""
    imports_fid = re.compile(r"^\s*(from helpers import .*\bfid\b|from helpers\.fid import|import helpers\.fid)", re.M)
    chapters = set()
    for path in (ROOT / "book").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        if any(imports_fid.search("".join(cell["source"])) for cell in cells if cell["cell_type"] == "code"):
            chapters.add(f"book/{path.name}")
    return chapters


def run_make(tmp_path, torch_home, ci: bool, *targets):
    """``make TARGETS`` with pytest replaced by a stub that logs its arguments, TORCH_HOME at
    ``torch_home`` and no network (https goes to a proxy port where nothing listens)."""
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (stub / "pytest").write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/pytest-calls"\n')
    for tool in stub.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "TORCH_HOME": str(torch_home), "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    done = subprocess.run(["make", "--no-print-directory", *targets, f"BIN={stub}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    calls = tmp_path / "pytest-calls"
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_make_test_offline_without_weights_skips_the_fid_chapters_loudly(tmp_path):
    # A fresh clone with TORCH_HOME at an empty folder and no network: the chapters without
    # FID still run; the FID chapters are left out, and the output says so.
    done, calls = run_make(tmp_path, tmp_path / "empty", False, "notebooks")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("!!! FID SKIPPED") == 1
    assert fid.WEIGHTS_FILE in done.stdout and "$TORCH_HOME/hub/checkpoints/" in done.stdout
    skipped = {arg.removeprefix("--ignore=") for arg in calls[0].split() if arg.startswith("--ignore=")}
    assert skipped == chapters_computing_fid() and skipped, "exactly the chapters that compute FID are left out"
    assert calls[0].split()[-1] == "book/"


def test_make_test_in_ci_without_weights_fails_before_the_unit_tests(tmp_path):
    done, calls = run_make(tmp_path, tmp_path / "empty", True, "unit-tests")
    assert done.returncode != 0 and calls == []
    assert fid.WEIGHTS_FILE in done.stderr and "CI" in done.stderr


def test_make_test_with_weights_runs_every_chapter(tmp_path):
    weights = tmp_path / "torch_home" / "hub" / "checkpoints" / fid.WEIGHTS_FILE
    weights.parent.mkdir(parents=True)
    torch.save({"conv": torch.ones(2)}, weights)  # any readable file passes the check
    done, calls = run_make(tmp_path, tmp_path / "torch_home", True, "notebooks")
    assert done.returncode == 0, done.stderr
    assert "SKIPPED" not in done.stdout and "--ignore" not in calls[0]


# ---------------------------------------------------------------- the reference cache

class FakeInception(torch.nn.Module):
    """Stands in for Inception in cache tests: a fixed random projection of 8 x 8 pooled RGB
    images to ``dims`` features, logging the shape of every batch it sees."""

    def __init__(self, dims, log):
        super().__init__()
        generator = torch.Generator().manual_seed(dims)
        self.projection = torch.nn.Parameter(torch.randn(3 * 64, dims, generator=generator))
        self.log = log

    def forward(self, x):
        self.log.append(tuple(x.shape))
        return F.adaptive_avg_pool2d(x.expand(-1, 3, -1, -1), 8).flatten(1) @ self.projection


@pytest.fixture
def fake_inception(tmp_path, monkeypatch):
    """An empty cache, a fake weights file and a fake network; returns the network's batch log."""
    monkeypatch.setenv("DGM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    fid.weights_path().parent.mkdir(parents=True)
    torch.save({"conv": torch.zeros(3)}, fid.weights_path())
    log = []
    monkeypatch.setattr(fid, "inception", lambda dims=2048, device=None: FakeInception(dims, log))
    return log


@pytest.fixture
def synthetic_data(monkeypatch):
    """helpers.data.load serving the synthetic stand-in (300 images a split); returns a dict whose
    ``"noise"`` entry changes the pixels, as another DGM_DATA would."""
    state = {"noise": 0}

    def load(dataset, split, size=None, limit=None):
        images = helpers.data.synthetic(dataset, split, size=size, n=limit or 300)
        images.images = (images.images.int() + state["noise"]).clamp(0, 255).to(torch.uint8)
        return images

    monkeypatch.setattr(helpers.data, "load", load)
    return state


def images_seen(log):
    return sum(shape[0] for shape in log)


@pytest.mark.filterwarnings("ignore:.*singular")  # 100 fake samples of 192-d features
@pytest.mark.usefixtures("synthetic_data")
def test_reference_statistics_are_computed_once_per_key(fake_inception, tmp_path):
    first = fid.reference_statistics("mnist", "test", n=100, dims=64)
    assert images_seen(fake_inception) == 100
    again = fid.reference_statistics("mnist", "test", n=100, dims=64)
    assert images_seen(fake_inception) == 100  # the second call read the cache
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    fid.reference_statistics("mnist", "test", n=None, dims=64)   # the whole (300-image) split
    fid.reference_statistics("mnist", "test", n=300, dims=64)    # the same images: same entry
    fid.reference_statistics("mnist", "test", n=100, dims=192)
    fid.reference_statistics("mnist", "val", n=100, dims=64)
    assert images_seen(fake_inception) == 100 + 300 + 100 + 100
    cached = sorted(path.name for path in (tmp_path / "cache" / "fid").iterdir())
    assert len(cached) == 8 and all(re.fullmatch(r"(stats-.*\.npz|features-.*\.pt)", name) for name in cached)


@pytest.mark.parametrize("change", ["data", "weights"])
def test_other_data_or_weights_never_reuse_cached_statistics(fake_inception, synthetic_data, change):
    before = fid.reference_statistics("mnist", "test", n=100, dims=64)
    if change == "data":
        synthetic_data["noise"] = 7   # the same split and count from other files
    else:
        torch.save({"conv": torch.ones(3)}, fid.weights_path())
    after = fid.reference_statistics("mnist", "test", n=100, dims=64)
    assert images_seen(fake_inception) == 200, "the new files were embedded, not served from the cache"
    if change == "data":
        assert not np.allclose(before[0], after[0])


@pytest.mark.usefixtures("synthetic_data")
@pytest.mark.parametrize("kind", ["stats", "features"])
def test_unreadable_cache_file_is_recomputed(fake_inception, tmp_path, kind):
    expected = fid.reference_statistics("mnist", "test", n=100, dims=64)
    for path in (tmp_path / "cache" / "fid").glob(f"{kind}-*"):
        path.write_bytes(path.read_bytes()[:100])  # torn, as by a crash mid-write
    if kind == "features":
        next((tmp_path / "cache" / "fid").glob("stats-*")).unlink()
    with pytest.warns(UserWarning, match=f"{kind}-.*cannot be read.*recomputing"):
        recomputed = fid.reference_statistics("mnist", "test", n=100, dims=64)
    np.testing.assert_allclose(recomputed[1], expected[1], rtol=1e-6)


@pytest.mark.usefixtures("synthetic_data")
def test_fid_result_names_its_reference(fake_inception):
    result = fid.fid(torch.rand(80, 1, 32, 32), dataset="mnist", split="test", n=70, n_reference=120, dims=64)
    assert (result.n_generated, result.n_reference, result.dims) == (70, 120, 64)
    assert result.reference.startswith("mnist/test")
    assert result.value > 0


@pytest.mark.usefixtures("synthetic_data")
def test_fid_loads_the_reference_at_the_size_of_the_generated_images(fake_inception):
    fid.fid(torch.rand(70, 3, 48, 48), dataset="imagenette", n=70, n_reference=80, dims=64)
    assert {shape[1:] for shape in fake_inception} == {(3, 48, 48)}
    assert images_seen(fake_inception) == 80 + 70


@pytest.mark.parametrize("images, dataset, message", [
    (torch.rand(10, 3, 64, 64), "mnist", "mnist/test for generated images of 3 x 64 x 64 cannot be loaded"),
    (torch.rand(10, 3, 32, 32), "mnist", "images are 3 x 32 x 32, but the reference mnist/test.* holds 1 x 32 x 32"),
    (torch.rand(10, 1, 64, 64), "imagenette", "images are 1 x 64 x 64, but the reference imagenette/test.* holds 3 x 64"),
], ids=["rgb-64px-vs-mnist", "rgb-vs-mnist", "gray-vs-imagenette"])
def test_images_unlike_the_reference_fail_before_any_feature(fake_inception, images, dataset, message):
    with pytest.raises(ValueError, match=message):
        fid.fid(images, dataset=dataset, n=10, n_reference=20, dims=64)
    assert fake_inception == []


@pytest.mark.usefixtures("synthetic_data")
def test_bad_generated_images_fail_before_the_reference_is_computed(fake_inception):
    with pytest.raises(ValueError, match="C = 1"):
        fid.fid(torch.rand(10, 2, 32, 32), n=10, dims=64)
    with pytest.raises(ValueError, match="sampler output: .* NaN"):
        fid.fid(lambda b: torch.full((b, 1, 32, 32), float("nan")), n=10, dims=64)
    assert fake_inception == []


@pytest.mark.usefixtures("synthetic_data")
def test_fid_with_kid_reuses_the_reference_features(fake_inception):
    generated = torch.rand(90, 1, 32, 32)
    result = fid.fid(generated, n=80, n_reference=120, dims=64, kid=True, kid_subset_size=30)
    assert images_seen(fake_inception) == 120 + 80, "each image went through the network once"
    expected = fid.kernel_inception_distance(fid.features(generated, n=80, dims=64),
                                             fid.reference_features("mnist", "test", n=120, dims=64), subset_size=30)
    assert result.kid == expected and expected.n_subsets == 2
    assert fid.fid(generated, n=80, n_reference=120, dims=64).kid is None


@pytest.mark.usefixtures("synthetic_data")
def test_fid_with_kid_refuses_too_few_images_before_any_feature(fake_inception):
    with pytest.raises(ValueError, match="at least 2,000 samples per set; got 50 and 120"):
        fid.fid(torch.rand(50, 1, 32, 32), n=50, n_reference=120, dims=64, kid=True)
    assert fake_inception == []


@pytest.mark.usefixtures("synthetic_data")
def test_kid_rebuilds_reference_features_missing_from_the_cache(fake_inception, tmp_path):
    # Statistics cached without their features (the features file deleted): FID still reads the
    # statistics, and KID embeds the reference once more and caches its features again.
    generated = torch.rand(80, 1, 32, 32)
    first = fid.fid(generated, n=80, n_reference=120, dims=64, kid=True, kid_subset_size=30)
    next((tmp_path / "cache" / "fid").glob("features-*")).unlink()
    again = fid.fid(generated, n=80, n_reference=120, dims=64, kid=True, kid_subset_size=30)
    assert images_seen(fake_inception) == 2 * 120 + 80, "the reference embedded again, the same generated images not"
    assert len(list((tmp_path / "cache" / "fid").glob("features-*"))) == 1
    assert again.value == first.value  # from the cached statistics
    assert again.kid.value == pytest.approx(first.kid.value, rel=1e-5)  # cached features are float32


@pytest.mark.usefixtures("synthetic_data")
def test_the_same_generated_images_are_embedded_once_and_other_images_again(fake_inception):
    def sampler(batch):  # a seeded sampler: the same images on every call of fid.fid
        return torch.rand(batch, 1, 32, 32, generator=generator)

    generator = torch.Generator().manual_seed(0)
    first = fid.fid(sampler, n=70, n_reference=100, dims=64)
    assert images_seen(fake_inception) == 100 + 70
    generator.manual_seed(0)
    again = fid.fid(sampler, n=70, n_reference=100, dims=64)
    assert images_seen(fake_inception) == 100 + 70, "the second call read the generated images' features"
    assert again.value == first.value
    other = fid.fid(sampler, n=70, n_reference=100, dims=64)  # the generator moved on: other images
    assert images_seen(fake_inception) == 100 + 70 + 70
    assert other.value != first.value
    fewer = fid.fid(torch.rand(60, 1, 32, 32, generator=torch.Generator().manual_seed(0)), n=60, n_reference=100, dims=64)
    assert images_seen(fake_inception) == 100 + 70 + 70 + 60, "the first 60 of the same images are another set"
    assert fewer.value != first.value


@pytest.mark.usefixtures("synthetic_data")
def test_without_cache_the_generated_features_stay_off_disk(fake_inception, tmp_path):
    images = torch.rand(70, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    uncached = fid.fid(images, n=70, n_reference=100, dims=64, cache=False)
    assert not list((tmp_path / "cache" / "fid").glob("generated-*"))
    assert fid.fid(images, n=70, n_reference=100, dims=64).value == uncached.value
    assert len(list((tmp_path / "cache" / "fid").glob("generated-*"))) == 1


@pytest.mark.usefixtures("fid_weights")
def test_building_the_network_leaves_a_seeded_samplers_draws_alone():
    fid._fast_network.cache_clear()  # the next call builds the network from scratch
    torch.manual_seed(0)
    expected = torch.rand(5)
    torch.manual_seed(0)
    fid.inception(64)
    assert torch.equal(torch.rand(5), expected), "building the network drew from the global random generator"
