"""Training throughput of the report's MNIST VAE: the book's loop vs the usual tutorial loop.

(a) helpers: uint8 split in memory, batches by indexing, helpers.train.train_epoch
    (with the book's fused Adam).
(b) tutorial: torchvision DataLoader over datasets.MNIST with per-sample transforms and
    the default torch.optim.Adam, as tutorials write it.

Both train the same model (encoder 1024-1024-512-256, latent 100, batch 64) for the
same number of steps, alternating a/b several times in one process; medians are reported
because this machine's timings vary by about 20 % from run to run. The fp32 matmul peak
is measured in the same process, and (a)'s achieved GFLOP/s is given as a fraction of it.

    DGM_DATA=../shared/data python bench/train_throughput.py [--steps 300] [--rounds 5]
"""
import argparse
import statistics
import time

import torch
from torch import nn
from torchvision import datasets, transforms
from tqdm import tqdm

from helpers import data, models, objectives, paths, train

BATCH = 64


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best observed fp32 GFLOP/s of an n x n matrix product (2 n^3 flops)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def training_flops_per_image(model: nn.Module) -> float:
    """Matrix-product flops of one training step per image: forward 2*in*out per Linear,
    backward twice that (gradients w.r.t. inputs and weights), so 3x the forward."""
    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    return 3 * 2 * macs


def fresh_vae() -> models.VAE:
    torch.manual_seed(0)
    return models.mnist_vae()


def helpers_loop(images: torch.Tensor, steps: int) -> float:
    """Images/s of ``steps`` steps through the book's training loop."""
    objective = objectives.VAEObjective(fresh_vae(), lr=1e-4)
    batches = train.epoch_batches(len(images), BATCH, epoch_seed=0)[:steps]
    start = time.perf_counter()
    train.train_epoch(objective, images, batches, 1, "(bench)", tqdm(disable=True))
    return steps * BATCH / (time.perf_counter() - start)


def tutorial_loop(dataset, steps: int) -> float:
    """Images/s of ``steps`` steps of the DataLoader-with-transforms pattern."""
    vae = fresh_vae()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True)
    start = time.perf_counter()
    for step, (x, _) in enumerate(loader, start=1):
        loss = vae(x)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == steps:
            break
    return steps * BATCH / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    images = data.load("mnist", "train").images
    tutorial_data = datasets.MNIST(paths.data_root(), train=True, download=True,
                                   transform=transforms.Compose([transforms.Pad(2), transforms.ToTensor()]))
    helpers_loop(images, 20), tutorial_loop(tutorial_data, 20)  # warm-up both

    a, b = [], []
    for _ in range(args.rounds):
        a.append(helpers_loop(images, args.steps))
        b.append(tutorial_loop(tutorial_data, args.steps))
    peak = matmul_peak_gflops()
    a_med, b_med = statistics.median(a), statistics.median(b)
    achieved = a_med * training_flops_per_image(models.mnist_vae()) / 1e9

    print(f"threads={torch.get_num_threads()} steps={args.steps} batch={BATCH} rounds={args.rounds}")
    print(f"(a) helpers : median {a_med:7.0f} images/s   runs {[round(v) for v in a]}")
    print(f"(b) tutorial: median {b_med:7.0f} images/s   runs {[round(v) for v in b]}")
    print(f"ratio (a)/(b): {a_med / b_med:.2f}x")
    print(f"fp32 matmul peak: {peak:.0f} GFLOP/s; (a) achieves {achieved:.0f} GFLOP/s = {achieved / peak:.0%} of peak")


if __name__ == "__main__":
    main()
