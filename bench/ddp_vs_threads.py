"""Data parallelism on one CPU: 2 processes x 1 thread (torchrun, gloo) vs 1 process x 2 threads.

Both setups train the report's MNIST VAE through the book's command line, ``python -m helpers.train``,
with the same global batch (64) on the same images, so they take the same optimizer steps; the two
processes each compute half of every batch and average gradients with an all-reduce. Reported per
setup (median over rounds, setups alternated within each round so that machine load hits both):

* training images/s, from the run's own per-epoch timings (training steps only);
* wall time of the whole command, process start-up, data loading and validation included;
* the training loss of each epoch, and the wall time to reach the loss the slower setup ends at.

    DGM_DATA=../shared/data python bench/ddp_vs_threads.py [--epochs 3] [--train-limit 10000] [--rounds 2]

The machine should be otherwise idle: both setups use both cores.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SETUPS = {
    "1 process x 2 threads": (["-m", "helpers.train"], 2),
    "2 processes x 1 thread": (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "helpers.train"], 1),
}


def train_once(launcher: list, threads: int, train_args: list) -> dict:
    """Run one training command in a fresh checkpoint folder; return its timings and losses."""
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "DGM_CHECKPOINTS": folder}
        start = time.perf_counter()
        subprocess.run([sys.executable, *launcher, *train_args], env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        (checkpoint,) = Path(folder).glob("*/checkpoint.pt")
        state = torch.load(checkpoint, weights_only=False)
    train_seconds = [t["train_seconds"] for t in state["timings"]]
    return {"wall": wall, "images_per_second": statistics.median(t["images_per_second"] for t in state["timings"]),
            "cumulative_seconds": [sum(train_seconds[: i + 1]) for i in range(len(train_seconds))],
            "train_loss": [h["train_loss"] for h in state["history"]]}


def seconds_to_reach(run: dict, target: float) -> float:
    """Training seconds until the epoch-mean training loss first reaches ``target`` (inf if never)."""
    return next((t for t, loss in zip(run["cumulative_seconds"], run["train_loss"]) if loss <= target), float("inf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    train_args = ["--model", "mnist-vae", "--epochs", str(args.epochs), "--train-limit", str(args.train_limit),
                  "--val-limit", "1000", "--fid-every", "0", "--seed", "0", "--no-resume"]
    runs = {name: [] for name in SETUPS}
    for round_ in range(args.rounds):
        for name, (launcher, threads) in SETUPS.items():
            runs[name].append(train_once(launcher, threads, train_args))
            print(f"round {round_ + 1}, {name}: {runs[name][-1]['images_per_second']:.0f} images/s", flush=True)

    print(f"\nMNIST VAE, batch 64, {args.epochs} epochs of {args.train_limit:,} images, median of {args.rounds} rounds; "
          f"{os.cpu_count()} CPUs")
    median = {name: {key: statistics.median(r[key] for r in rs) for key in ("images_per_second", "wall")}
              for name, rs in runs.items()}
    target = max(rs[0]["train_loss"][-1] for rs in runs.values())
    baseline = next(iter(SETUPS))
    for name, rs in runs.items():
        reach = statistics.median(seconds_to_reach(r, target) for r in rs)
        print(f"{name:24s} {median[name]['images_per_second']:6.0f} images/s "
              f"(x{median[name]['images_per_second'] / median[baseline]['images_per_second']:.2f}), "
              f"command {median[name]['wall']:5.1f} s, {reach:5.1f} s of training to loss {target:.2f}; "
              f"train loss per epoch (round 1): {', '.join(f'{v:.2f}' for v in rs[0]['train_loss'])}")


if __name__ == "__main__":
    main()
