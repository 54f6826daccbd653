"""Fréchet Inception Distance (FID), computed in memory.

FID (Heusel et al., 2017) embeds images with the Inception network that the
original TensorFlow code used, fits one Gaussian to the features of each image
set, and reports the Fréchet (2-Wasserstein) distance between the two Gaussians:

    FID = ||mu_1 - mu_2||^2 + tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2})

The Kernel Inception Distance (KID; Bińkowski et al., 2018) compares the same features
without fitting Gaussians: an unbiased estimate of the squared maximum mean discrepancy
(MMD^2) under the kernel k(x, y) = (x^T y / D + 1)^3, averaged over subsets of the samples.

The network and its weights are pytorch-fid's ``InceptionV3`` (loaded from the torch
hub cache, so ``TORCH_HOME`` decides where the file lives). Images never go to disk:
tensors or a sampling function go straight through the network, in batches. Features do:
those of a real split, and those of generated images keyed by a fingerprint of their pixels,
under ``.cache/fid/`` (``DGM_CACHE``), so that the same images are never embedded twice.
``python -m helpers.fid`` checks that the weights are in place (downloading them once
if they are not) and says what to do when they cannot be had.

Shapes: N images, C channels (1 or 3), H x W pixels, D feature dimensions
(2048 for the final pool layer; 64, 192 or 768 for earlier blocks).
"""
import hashlib
import itertools
import sys
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.inception import BasicConv2d
from tqdm.auto import tqdm

from . import data
from .checkpoints import atomic_write, torch_save
from .paths import cache_dir
from .profile import device as default_device

DIMS = tuple(InceptionV3.BLOCK_INDEX_BY_DIM)  # (64, 192, 768, 2048)
INPUT_SIZE = 299  # Inception's input side: every image is resized to 299 x 299
WEIGHTS_FILE = Path(FID_WEIGHTS_URL).name  # pt_inception-2015-12-05-6726825d.pth
MISSING_WEIGHTS_EXIT = 3  # exit status of ``python -m helpers.fid`` when the weights cannot be had
# How far a covariance may be from symmetric and positive semi-definite, relative to its largest
# entry or eigenvalue: float32 round-off reaches about 1e-5 at D = 2048; a matrix that is not a
# covariance is off by far more.
COVARIANCE_RTOL = 1e-4
KID_SUBSET_SIZE = 1000  # samples per KID subset: the usual size (Bińkowski et al.'s code, torchmetrics)


class WeightsNotFoundError(RuntimeError):
    """The FID Inception weights are not in the torch hub cache and could not be downloaded."""


class BrokenWeightsError(RuntimeError):
    """The FID Inception weights file exists but is empty or unreadable (an interrupted download or copy)."""


@dataclass
class KIDResult:
    """A KID estimate: the mean of unbiased MMD^2 estimates over disjoint subsets, and the
    standard error of that mean (see :func:`kernel_inception_distance`)."""

    value: float
    standard_error: float
    n_subsets: int
    subset_size: int

    def __str__(self) -> str:
        return (f"KID {self.value:.3g} ± {self.standard_error:.2g} "
                f"({self.n_subsets} subsets of {self.subset_size:,})")


@dataclass
class FIDResult:
    """One FID value and what it was computed from (the ``"fid"`` object of a results JSON),
    with the KID of the same features when it was asked for."""

    value: float
    n_generated: int
    reference: str  # the reference split, e.g. "mnist/test"
    n_reference: int
    dims: int
    kid: KIDResult = None

    def __post_init__(self):
        if isinstance(self.kid, dict):  # read back from a results JSON
            self.kid = KIDResult(**self.kid)

    def as_dict(self) -> dict:
        fields = asdict(self)
        if self.kid is None:  # results files written without KID keep their shape
            del fields["kid"]
        return fields

    def __str__(self) -> str:
        value = f"{self.value:.1f}" if self.value >= 1 else f"{self.value:.3g}"  # small-dims FIDs are tiny
        text = f"FID {value} ({self.n_generated:,} generated vs {self.n_reference:,} {self.reference}, {self.dims}-d)"
        return text if self.kid is None else f"{text}; {self.kid}"


# ---------------------------------------------------------------- the network

def weights_path() -> Path:
    """Where torch.hub keeps the weights: ``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def check_dims(dims: int) -> None:
    """Raise a clear error unless ``dims`` is one of the Inception blocks FID can use."""
    if dims not in DIMS:
        raise ValueError(f"dims={dims} is not an Inception block; use one of {DIMS} (2048 = pool3, the standard FID).")


def require_weights() -> Path:
    """The path of the FID weights, downloaded into ``$TORCH_HOME/hub/checkpoints/`` if missing.

    Cheap after the first call in a process (the check is cached per file size and time), so
    callers can run it before any long work. Raises :class:`WeightsNotFoundError` when the file
    is missing and cannot be downloaded (offline), :class:`BrokenWeightsError` when it is empty
    or torch cannot read it.
    """
    weights_fingerprint()
    return weights_path()


def weights_fingerprint() -> str:
    """SHA-256 of the weights file, downloaded and checked as by :func:`require_weights`:
    part of the key of every cached reference feature."""
    path = weights_path()
    if not path.exists():
        _download(path)
    stat = path.stat()
    return _checked_digest(str(path), stat.st_size, stat.st_mtime_ns)


def _download(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # torch.hub writes to a temporary file and renames it when complete: never a torn file.
        torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(path), progress=True)
    except Exception as cause:  # urllib, HTTP or file-system errors all mean: no weights here
        raise WeightsNotFoundError(
            f"The FID Inception weights {WEIGHTS_FILE} are not on this machine and could not be downloaded "
            f"({type(cause).__name__}: {str(cause).strip() or 'no detail'}).\n"
            f"Expected file: {path}  (that is $TORCH_HOME/hub/checkpoints/, TORCH_HOME={path.parent.parent.parent})\n"
            f"Fix: connect to the internet once (torch.hub downloads {FID_WEIGHTS_URL}), or copy {WEIGHTS_FILE} "
            f"into {path.parent}/, or set TORCH_HOME to a folder whose hub/checkpoints/ holds it."
        ) from cause


@lru_cache(maxsize=4)
def _checked_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a weights file that torch can load. ``size`` and ``mtime_ns`` are only cache
    keys: a replaced file is checked again."""
    # torch.hub downloads only a missing file: an empty or torn one stays until someone deletes it.
    fix = ("torch.hub never replaces a file that exists: delete it, then run again to download it "
           f"(internet needed) or copy a complete {WEIGHTS_FILE} in its place.")
    if size == 0:
        raise BrokenWeightsError(f"The FID Inception weights file {path} is empty (0 bytes), the trace of an "
                                 f"interrupted download or copy. {fix}")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as cause:  # a truncated zip or pickle fails in many ways; all mean the same here
        raise BrokenWeightsError(f"The FID Inception weights file {path} ({size:,} bytes) cannot be read "
                                 f"({type(cause).__name__}: {str(cause).strip()[:200]}). {fix}") from cause
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FastInception(nn.Module):
    """pytorch-fid's InceptionV3 up to the block of ``dims`` features, with its preprocessing,
    rearranged for speed on CPU; the arithmetic is the same up to float rounding.

    Input: N x C x H x W float in [0, 1], C in {1, 3}. Output: N x D float32.
    """

    def __init__(self, reference: InceptionV3):
        super().__init__()
        self.blocks = nn.Sequential(*reference.blocks).eval()
        # Each BasicConv2d is conv -> batch norm -> ReLU. In eval mode the batch norm is an
        # affine map per channel, so it folds into the convolution's weights and bias: one
        # pass over each activation map instead of two.
        for module in self.blocks.modules():
            if isinstance(module, BasicConv2d):
                module.conv = fuse_conv_bn_eval(module.conv, module.bn)
                module.bn = nn.Identity()
        # channels_last (NHWC) is the layout oneDNN's convolutions run fastest in on CPU.
        self.blocks.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # As pytorch-fid: bilinear resize to 299 x 299, then [0, 1] -> [-1, 1]. Resizing acts
        # on each channel separately, so a grayscale image is resized once and then repeated.
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = (2 * x - 1).expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
        # The 2048-d block ends in a global average pool; the earlier blocks are feature maps,
        # which pytorch-fid averages over space the same way.
        return self.blocks(x).mean(dim=(2, 3))


@lru_cache(maxsize=8)
def _fast_network(dims: int, device: str, weights: str) -> FastInception:
    # ``weights`` (the checked file's path) is part of the cache key, so changing TORCH_HOME
    # reloads. pytorch-fid's InceptionV3 loads that file: torch.hub finds it in place.
    return FastInception(InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()).to(device)


def inception(dims: int = 2048, device=None) -> nn.Module:
    """The fast FID network for ``dims`` on ``device``, built once per (dims, device).

    Returns a module mapping N x C x H x W float images in [0, 1] (C in {1, 3}) to N x D float32.
    """
    check_dims(dims)
    device = torch.device(device) if device is not None else default_device()
    # Building it initialises every layer at random before the weights load. In a forked random
    # generator, so that whether the network existed already never changes what a seeded sampler draws.
    with torch.random.fork_rng(devices=[]):
        return _fast_network(dims, str(device), str(require_weights()))


# ---------------------------------------------------------------- features

def check_images(images, where: str) -> None:
    """Raise a clear error unless ``images`` is a non-empty N x C x H x W tensor, C in {1, 3},
    uint8 (0..255) or finite float in [0, 1]: the image convention of every helper that takes
    generated images (FID here, :func:`helpers.classifier.predict`). ``where`` names the caller."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor of images, got {type(images).__name__}.")
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{where}: images must be N x C x H x W with C = 1 (grayscale) or 3 (RGB); "
                         f"got shape {tuple(images.shape)}.")
    if images.numel() == 0:
        raise ValueError(f"{where}: got no images (shape {tuple(images.shape)}); pass at least one.")
    if images.dtype == torch.uint8:
        return
    if not images.is_floating_point():
        raise TypeError(f"{where}: images must be uint8 (0..255) or float in [0, 1]; got {images.dtype}.")
    if not torch.isfinite(images).all():
        raise ValueError(f"{where}: images contain NaN or infinity; a diverged model produces these.")
    low, high = images.min().item(), images.max().item()
    if low < 0 or high > 1:
        raise ValueError(f"{where}: float images must lie in [0, 1]; got values in [{low:.3g}, {high:.3g}]. "
                         f"Outputs of tanh lie in [-1, 1]: map them with (x + 1) / 2; "
                         f"0..255 pixels are uint8 or divided by 255.")


def _unit_float(images: torch.Tensor) -> torch.Tensor:
    """Checked images as float32 in [0, 1]."""
    return images.float().div(255) if images.dtype == torch.uint8 else images.detach().float()


def _batches(images_or_sampler, n: int, batch_size: int):
    """Yield float batches in [0, 1], at most ``batch_size`` images each, ``n`` images in all
    (a tensor was checked as a whole by :func:`_check_input`; sampler batches are checked here)."""
    if not callable(images_or_sampler):
        images = images_or_sampler[:n]
        for start in range(0, len(images), batch_size):
            yield _unit_float(images[start: start + batch_size])
        return
    taken = 0
    while taken < n:
        batch = images_or_sampler(min(batch_size, n - taken))
        check_images(batch, "sampler output")
        batch = batch[: n - taken]
        taken += len(batch)
        yield _unit_float(batch)


def _check_input(images_or_sampler, n: int, batch_size: int) -> int:
    """Check the input before any long work starts; return how many images it will give."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be positive.")
    if n is not None and n < 2:
        raise ValueError(f"n={n}: FID needs at least 2 images to estimate a covariance.")
    if callable(images_or_sampler):
        if n is None:
            raise ValueError("A sampler needs n: how many images to draw for FID.")
        return n
    images = images_or_sampler[:n]
    check_images(images, "images")
    if len(images) < 2:
        raise ValueError(f"{len(images)} image(s): FID needs at least 2 to estimate a covariance.")
    return len(images)


def _embed(batches, total: int, dims: int, device, progress: bool) -> torch.Tensor:
    """Inception features of float batches in [0, 1] (``total`` images in all): N x D float64 on the CPU."""
    net = inception(dims, device)
    target = next(net.parameters()).device
    out = []
    with torch.inference_mode(), tqdm(total=total, desc=f"Inception {dims}-d", unit="img",
                                       disable=not progress) as bar:
        for batch in batches:
            out.append(net(batch.to(target)).double().cpu())
            bar.update(len(batch))
    return torch.cat(out)


def features(images_or_sampler, n: int = None, dims: int = 2048, batch_size: int = 50, device=None, *,
             progress: bool = False) -> torch.Tensor:
    """Inception features of a set of images.

    Args:
        images_or_sampler: N x C x H x W images, float in [0, 1] or uint8, C in {1, 3}; or a
            function ``sampler(batch_size)`` returning such a batch, called until ``n`` are collected.
        n: how many images: required for a sampler; for a tensor, use at most its first ``n``.
        dims: 64, 192, 768 or 2048 (pool3, the standard FID features).
        batch_size: images per forward pass.
        device: where Inception runs (default: :func:`helpers.device`).
        progress: show a progress bar (off by default: a closed widget bar would stay in a
            saved notebook as an empty widget).

    Returns:
        N x D float64 tensor on the CPU.
    """
    total = _check_input(images_or_sampler, n, batch_size)
    return _embed(_batches(images_or_sampler, n, batch_size), total, dims, device, progress)


# ---------------------------------------------------------------- the distance

def statistics(features) -> tuple:
    """Mean and covariance of N x D features (torch or numpy): ``(mu, sigma)``, numpy float64,
    shapes D and D x D. The covariance is the unbiased one (divides by N - 1), as in pytorch-fid."""
    x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be N x D; got shape {x.shape}.")
    n, dims = x.shape
    if n < 2:
        raise ValueError(f"{n} feature vector(s): a covariance needs at least 2.")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinity.")
    if n <= dims:
        warnings.warn(f"{n} samples of {dims}-d features: the covariance has rank at most {n - 1} < {dims} "
                      f"(singular), and FID is biased upward. Use more samples than dimensions "
                      f"(10,000 at 2048-d for final numbers).", stacklevel=2)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _as_numpy(a, name: str, ndim: int) -> np.ndarray:
    a = a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s); got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return a


def _check_covariance(sigma: np.ndarray, name: str) -> None:
    """Refuse a matrix that is not a covariance (up to round-off): the eigensolvers below read one
    triangle only, and would clip negative eigenvalues to 0 without a word."""
    scale = np.abs(sigma).max()
    asymmetry = np.abs(sigma - sigma.T).max()
    if asymmetry > COVARIANCE_RTOL * scale:
        raise ValueError(f"{name} is not symmetric: max |{name} - {name}^T| = {asymmetry:.3g}, largest entry "
                         f"{scale:.3g}. Pass a covariance matrix, e.g. the second output of statistics().")
    eigenvalues = np.linalg.eigvalsh(sigma)
    if eigenvalues[0] < -COVARIANCE_RTOL * max(eigenvalues[-1], 0):
        raise ValueError(f"{name} is not positive semi-definite: eigenvalue {eigenvalues[0]:.3g} (largest "
                         f"{eigenvalues[-1]:.3g}). Pass a covariance matrix, e.g. the second output of statistics().")


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance; round-off negative eigenvalues count as 0."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^{1/2}).

    mu: D, sigma: D x D (numpy or torch), each sigma symmetric and positive semi-definite up to
    round-off (a clear error otherwise). Returns a float >= 0.

    The product sigma1 sigma2 is not symmetric, so a general matrix square root of it
    (``scipy.linalg.sqrtm``, which pytorch-fid uses) works in complex arithmetic: round-off
    leaves small imaginary parts, and a singular product (fewer samples than dimensions) can
    make it fail, which pytorch-fid patches by adding 1e-6 to the diagonals. Only the trace is
    needed, though, and it is the sum of the square roots of the eigenvalues of sigma1 sigma2.
    With A = sigma1^{1/2} and B = sigma1^{1/2} sigma2, sigma1 sigma2 = AB and
    sigma1^{1/2} sigma2 sigma1^{1/2} = BA, and AB and BA have the same eigenvalues for any
    square A and B (the same characteristic polynomial; no inverse needed, so singular
    covariances are covered). BA is symmetric and positive semi-definite: a symmetric
    eigensolver returns its eigenvalues as real numbers >= 0 up to round-off, with no complex
    parts and no failure when singular. It is also faster than ``sqrtm``: chapter 7
    (book/07_fid.ipynb, section 4) times both, once each, on the 2048-d statistics of two halves
    of the MNIST test digits.
    """
    mu1, mu2 = _as_numpy(mu1, "mu1", 1), _as_numpy(mu2, "mu2", 1)
    sigma1, sigma2 = _as_numpy(sigma1, "sigma1", 2), _as_numpy(sigma2, "sigma2", 2)
    dims = len(mu1)
    if mu2.shape != (dims,) or sigma1.shape != (dims, dims) or sigma2.shape != (dims, dims):
        raise ValueError(f"Shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {sigma2.shape}; both sets need the same feature dimension.")
    _check_covariance(sigma1, "sigma1")
    _check_covariance(sigma2, "sigma2")
    root1 = _sqrt_psd(sigma1)
    eigenvalues = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    value = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(value, 0.0))  # a squared distance: only round-off can push it below 0


# ---------------------------------------------------------------- the kernel distance (KID)

def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x^T y / D + 1)^3 for every pair of rows: x N x D, y M x D -> N x M."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD^2 between the distributions of the rows of x (N x D) and y (M x D):

        MMD^2_u = 1/(N(N-1)) sum_{i != j} k(x_i, x_j) + 1/(M(M-1)) sum_{i != j} k(y_i, y_j)
                  - 2/(NM) sum_{i, j} k(x_i, y_j)

    with k the :func:`polynomial_kernel`. MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y) for
    independent draws; each sum above averages pairs of independent samples, so each term has
    the right expectation. Keeping the diagonal (i = j) would add the mean of k(x_i, x_i), whose
    expectation is not E k(x, x'), and bias the estimate upward by O(1/N); without it the
    estimate can be negative when the two distributions are close.
    """
    n, m = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within_x + within_y - 2 * polynomial_kernel(x, y).mean())


def kid_subsets(n1: int, n2: int, subset_size: int = KID_SUBSET_SIZE) -> int:
    """How many disjoint subsets of ``subset_size`` KID takes from sets of n1 and n2 samples;
    a clear error when there are fewer than 2 (no standard error from one subset)."""
    if subset_size < 2:
        raise ValueError(f"subset_size={subset_size}: the unbiased MMD^2 needs at least 2 samples per subset.")
    n_subsets = min(n1, n2) // subset_size
    if n_subsets < 2:
        raise ValueError(f"KID takes disjoint subsets of subset_size={subset_size:,} from each set and needs at "
                         f"least 2 of them for a standard error, so at least {2 * subset_size:,} samples per set; "
                         f"got {n1:,} and {n2:,}. Use more samples, or a smaller subset_size (the estimate "
                         f"stays unbiased; only its noise grows).")
    return n_subsets


def kernel_inception_distance(features1, features2, subset_size: int = KID_SUBSET_SIZE,
                              seed: int = 0) -> KIDResult:
    """KID between two sets of features: N1 x D and N2 x D (numpy or torch), finite.

    Each set is shuffled (two draws of ``numpy.random.default_rng(seed).permutation``, the first
    set's first: a split's order, such as MNIST's test writers, must not decide the subsets) and
    cut into S = min(N1, N2) // ``subset_size`` disjoint subsets; subset s of the first set is
    compared with subset s of the second by :func:`mmd2_unbiased`. Returns the mean of the S
    estimates, and their standard deviation over sqrt(S) as its standard error (the standard
    deviation itself is the noise of a KID from ``subset_size`` samples). Leftover samples are
    unused.

    Every subset's estimate is unbiased, so the mean is an unbiased estimate of MMD^2 whatever
    the subset size: comparable in expectation with KIDs computed from other subsets (the usual
    recipe, e.g. torchmetrics: 100 random subsets of 1,000, so that with 10,000 images each one
    is in about 10 of them). Disjoint subsets make the S estimates independent, so std / sqrt(S)
    is the standard error of their mean; with overlapping subsets it would understate the error.
    This is the block estimator of the ``kid`` function in Google's compare_gan
    (``compare_gan/src/fid_score.py``), which cites Zaremba et al. (2013) for it.
    """
    x, y = _as_numpy(features1, "features1", 2), _as_numpy(features2, "features2", 2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"features1 is {x.shape[0]} x {x.shape[1]} and features2 {y.shape[0]} x {y.shape[1]}: "
                         f"both sets need the same feature dimension (the same Inception block).")
    n_subsets = kid_subsets(len(x), len(y), subset_size)
    rng = np.random.default_rng(seed)
    subsets_x = rng.permutation(len(x))[: n_subsets * subset_size].reshape(n_subsets, subset_size)
    subsets_y = rng.permutation(len(y))[: n_subsets * subset_size].reshape(n_subsets, subset_size)
    estimates = np.array([mmd2_unbiased(x[i], y[j]) for i, j in zip(subsets_x, subsets_y)])
    standard_error = estimates.std(ddof=1) / np.sqrt(n_subsets)
    return KIDResult(float(estimates.mean()), float(standard_error), n_subsets, subset_size)


# ---------------------------------------------------------------- reference statistics

def _cached(path: Path, load, compute, save):
    """``load(path)`` when a readable cache file is there; otherwise ``compute()``, then
    ``save(value, tmp_path)`` atomically. A file that cannot be read is recomputed, with a warning."""
    if path.exists():
        try:
            return load(path)
        except Exception as damage:  # torn or corrupt (a crash mid-write, a full disk): a cache can be rebuilt
            warnings.warn(f"The FID cache file {path} cannot be read ({type(damage).__name__}: "
                          f"{str(damage)[:200]}); recomputing it.")
    value = compute()
    atomic_write(path, lambda tmp: save(value, tmp))
    return value


def _load_stats(path: Path) -> tuple:
    with np.load(path) as stats:
        return stats["mu"], stats["sigma"]


def _save_stats(stats: tuple, path: Path) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a temporary name
        np.savez(f, mu=stats[0], sigma=stats[1])


def _reference_split(dataset: str, split: str, n: int, size: int) -> tuple:
    """The reference images and the cache key that names them: dataset, split, source, size and
    count, plus a fingerprint of the pixels and of the weights file, so that other data (another
    ``DGM_DATA``) or other weights never meet features cached from the old ones."""
    images = data.load(dataset, split, size=size, limit=n)
    source = "" if data.source(dataset) == "real" else f"-{data.source(dataset)}"
    fingerprint = hashlib.sha256(images.images.contiguous().numpy())
    fingerprint.update(weights_fingerprint().encode())
    # The key holds the number of images actually loaded, so n=None and n=len(split) share it.
    key = f"{dataset}-{split}{source}-{images.images.shape[-1]}px-n{len(images)}-{fingerprint.hexdigest()[:12]}"
    return images, key


def _features_of(reference: data.Split, key: str, dims: int, batch_size: int = 50, progress: bool = False):
    """N x D float64 features of a reference split, cached on disk as float32 (what the network outputs)."""
    path = cache_dir("fid") / f"features-{key}-{dims}d.pt"

    def compute():
        print(f"[fid] computing {dims}-d Inception features of {len(reference):,} {reference.name} images "
              f"(once; cached in {path.parent})", flush=True)
        return features(reference.images, dims=dims, batch_size=batch_size, progress=progress)

    return _cached(path, lambda p: torch.load(p, weights_only=True).double(), compute,
                   lambda feats, tmp: torch_save(feats.float(), tmp))


def _generated_features(batches: list, total: int, dims: int, device) -> torch.Tensor:
    """Inception features of generated float batches (``total`` images), cached on disk under a
    fingerprint of their exact pixels and of the weights file. A chapter that is executed again draws
    the same samples from the same checkpoint and seed, and then reads its features instead of running
    Inception again: the longest part of re-running a chapter, and what lets a run that was stopped
    halfway resume. All generated images are held in memory at once to compute the fingerprint (10,000
    MNIST digits: 40 MB; 3,000 Imagenette images at 64 px: 150 MB)."""
    fingerprint = hashlib.sha256(weights_fingerprint().encode())
    for batch in batches:
        fingerprint.update(str(tuple(batch.shape)).encode())
        fingerprint.update(batch.detach().cpu().contiguous().numpy().tobytes())
    path = cache_dir("fid") / f"generated-n{total}-{fingerprint.hexdigest()[:16]}-{dims}d.pt"
    return _cached(path, lambda p: torch.load(p, weights_only=True).double(),
                   lambda: _embed(iter(batches), total, dims, device, progress=False),
                   lambda feats, tmp: torch_save(feats.float(), tmp))


def _statistics_of(reference: data.Split, key: str, dims: int) -> tuple:
    """``(mu, sigma)`` of a reference split's features, cached on disk."""
    path = cache_dir("fid") / f"stats-{key}-{dims}d.npz"
    return _cached(path, _load_stats, lambda: statistics(_features_of(reference, key, dims)), _save_stats)


def reference_features(dataset: str, split: str, n: int = None, dims: int = 2048, size: int = None,
                       batch_size: int = 50, *, progress: bool = False) -> torch.Tensor:
    """Inception features of the first ``n`` images of a split (all when None): N x D float64,
    computed once and cached on disk (float32, exactly what the network outputs). The cache key
    is the one of :func:`reference_statistics`; ``progress`` shows a bar while computing."""
    check_dims(dims)
    return _features_of(*_reference_split(dataset, split, n, size), dims, batch_size, progress)


def reference_statistics(dataset: str, split: str, n: int = None, dims: int = 2048, size: int = None) -> tuple:
    """``(mu, sigma)`` of the Inception features of a real split (first ``n`` images, all when None).

    Computed once from ``helpers.data.load(dataset, split, size=size, limit=n)`` and cached under
    ``.cache/fid/``, keyed by dataset, split, image size, number of images, dims, and a
    fingerprint of the images and of the weights file.
    """
    check_dims(dims)
    return _statistics_of(*_reference_split(dataset, split, n, size), dims)


def _matching_reference(shape: tuple, dataset: str, split: str, n: int) -> tuple:
    """The reference split (and its cache key) at the size of generated images of ``shape``
    (C x H x W); a clear error when its images differ from them in channels or size."""
    described = " x ".join(map(str, shape))
    try:
        reference, key = _reference_split(dataset, split, n, size=shape[-1])
    except ValueError as cause:  # e.g. MNIST exists only at 32 x 32
        raise ValueError(f"The reference {dataset}/{split} for generated images of {described} "
                         f"cannot be loaded: {cause}") from cause
    if tuple(reference.images.shape[1:]) != tuple(shape):
        raise ValueError(f"Generated images are {described}, but the reference {reference.name} holds "
                         f"{' x '.join(map(str, reference.images.shape[1:]))} images: FID would compare "
                         f"different kinds of images. Pass the dataset the model was trained on.")
    return reference, key


def fid(generated, *, dataset: str = "mnist", split: str = "test", n: int = 10_000, n_reference: int = None,
        dims: int = 2048, batch_size: int = 50, device=None, kid: bool = False,
        kid_subset_size: int = KID_SUBSET_SIZE, cache: bool = True) -> FIDResult:
    """FID of generated images against a real split, and their KID on request.

    Args:
        generated: N x C x H x W images (float in [0, 1] or uint8; the first ``n`` are used) or
            a function ``sampler(batch_size)`` returning batches (called until ``n`` images).
        dataset, split: the reference images (cached statistics; see :func:`reference_statistics`),
            loaded at the generated images' size; their channels and size must match.
        n: number of generated images. Final results use 10,000.
        n_reference: number of reference images (None: the whole split).
        dims: Inception feature dimension (2048 for results that can be compared).
        batch_size, device: how Inception runs.
        kid: also compute the KID of the same features against the reference's cached features
            (:func:`kernel_inception_distance`, in disjoint subsets of ``kid_subset_size``).
        cache: keep the generated images' features on disk, keyed by their pixels (see
            :func:`_generated_features`); off for images that will never recur, such as those of
            a training run's per-epoch FID, which then stream through the network.

    Returns:
        A :class:`FIDResult` that records the value, both N, the reference and the dimension
        (and ``kid``, a :class:`KIDResult`, when asked for).
    """
    check_dims(dims)
    total = _check_input(generated, n, batch_size)
    inception(dims, device)  # built (and its weights checked) before any long work
    batches = _batches(generated, n, batch_size)
    with torch.inference_mode():
        first = next(batches)  # checked, and its shape picks the reference: before any long work
    reference, key = _matching_reference(first.shape[1:], dataset, split, n_reference)
    if kid:
        kid_subsets(total, len(reference), kid_subset_size)  # too few images: say so before any long work
    mu_ref, sigma_ref = _statistics_of(reference, key, dims)
    if cache:
        with torch.inference_mode():
            generated = [first, *batches]
        feats = _generated_features(generated, total, dims, device)
    else:
        feats = _embed(itertools.chain([first], batches), total, dims, device, progress=False)
    mu, sigma = statistics(feats)
    # The reference features are cached next to their statistics: KID costs no second Inception pass.
    kid_result = kernel_inception_distance(feats, _features_of(reference, key, dims), kid_subset_size) if kid else None
    return FIDResult(frechet_distance(mu, sigma, mu_ref, sigma_ref), len(feats), reference.name, len(reference), dims,
                     kid_result)


def main() -> int:
    """``python -m helpers.fid``: make sure the FID weights are in place, downloading them if needed.

    Prints their path and returns 0; when they are missing and cannot be downloaded, prints what
    to do and returns :data:`MISSING_WEIGHTS_EXIT`; when the file is broken, says so and returns 1.
    """
    try:
        print(f"FID weights: {require_weights()}")
        return 0
    except WeightsNotFoundError as missing:
        print(missing, file=sys.stderr)
        return MISSING_WEIGHTS_EXIT
    except BrokenWeightsError as broken:
        print(broken, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
