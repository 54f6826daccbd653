"""FID throughput: pytorch-fid's default path against the book's fast path, in one process.

Both compute the FID between the first N MNIST test digits and the first N training digits
at 2048-d, from scratch (network construction included):

- pytorch-fid: ``calculate_fid_given_paths`` on PNG copies of the images, with its defaults
  (batch 50, NCHW float32, one loader worker);
- the book: ``helpers.fid`` on the same images as tensors (channels_last, batch norm folded
  into the convolutions, inference mode, the symmetric eigenvalue form of the trace).

The two alternate for a few rounds and the medians are reported, since timings on a shared
CPU vary by +-20 % from run to run. Prints both throughputs (images/s), their ratio, the two
FID values and their relative difference, and the largest feature difference.

    DGM_DATA=... TORCH_HOME=... python bench/fid_throughput.py [--n 100] [--rounds 3]
"""
import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image
from pytorch_fid.fid_score import calculate_fid_given_paths
from pytorch_fid.inception import InceptionV3

from helpers import data, fid


def write_pngs(images: torch.Tensor, folder: Path) -> None:
    """uint8 N x 1 x H x W -> folder/00000.png ... (lossless: pytorch-fid reads the same pixels)."""
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[0].numpy(), mode="L").save(folder / f"{i:05d}.png")


def pytorch_fid_run(folders: list) -> tuple:
    start = time.perf_counter()
    value = calculate_fid_given_paths([str(f) for f in folders], batch_size=50, device="cpu", dims=2048)
    return value, time.perf_counter() - start


def fast_run(a: torch.Tensor, b: torch.Tensor) -> tuple:
    fid._fast_network.cache_clear()  # build the network each round, as pytorch-fid does
    start = time.perf_counter()
    stats_a = fid.statistics(fid.features(a, device="cpu"))
    stats_b = fid.statistics(fid.features(b, device="cpu"))
    value = fid.frechet_distance(*stats_a, *stats_b)
    return value, time.perf_counter() - start


def max_feature_difference(images: torch.Tensor) -> float:
    """Largest |ours - pytorch-fid's| over the features of a few images, relative to the largest feature."""
    reference = InceptionV3([3]).eval()
    with torch.no_grad():
        expected = reference(images.float().div(255).repeat(1, 3, 1, 1))[0].flatten(1).double()
    ours = fid.features(images, device="cpu")
    return ((ours - expected).abs().max() / expected.abs().max()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="images per set (two sets)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*singular.*")  # N < 2048 here on purpose: speed, not FID
    a = data.load("mnist", "test", limit=args.n).images
    b = data.load("mnist", "train", limit=args.n).images
    images = 2 * args.n
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {images} images per run "
          f"({args.n} test vs {args.n} train MNIST digits), 2048-d, {args.rounds} rounds", flush=True)
    times = {"pytorch-fid": [], "fast": []}
    values = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / "a", Path(tmp) / "b"]
        write_pngs(a, folders[0])
        write_pngs(b, folders[1])
        for r in range(args.rounds):
            order = [("pytorch-fid", lambda: pytorch_fid_run(folders)), ("fast", lambda: fast_run(a, b))]
            for name, run in order if r % 2 == 0 else order[::-1]:
                values[name], seconds = run()
                times[name].append(seconds)
                print(f"round {r + 1} {name:12s} {images / seconds:6.2f} images/s  FID {values[name]:.6f}", flush=True)
    speed = {name: images / statistics.median(t) for name, t in times.items()}
    relative = abs(values["fast"] - values["pytorch-fid"]) / values["pytorch-fid"]
    print(f"\npytorch-fid default path : {speed['pytorch-fid']:6.2f} images/s (median of {args.rounds})")
    print(f"helpers.fid fast path    : {speed['fast']:6.2f} images/s (median of {args.rounds})")
    print(f"speed-up                 : {speed['fast'] / speed['pytorch-fid']:.2f}x")
    print(f"FID pytorch-fid {values['pytorch-fid']:.6f}, fast {values['fast']:.6f}, relative difference {relative:.2e}")
    print(f"largest feature difference (relative to the largest feature): {max_feature_difference(a[:8]):.2e}")


if __name__ == "__main__":
    main()
