"""The one training loop of the book, for every model, on one process or many.

Read :func:`run` as one sentence: *if a finished checkpoint of this configuration
exists, load it; otherwise train (continuing a stopped run) and save after every
epoch.* The loop itself knows nothing about VAEs or GANs: it draws batches from
in-memory uint8 tensors and calls the model's :class:`~helpers.objectives.Objective`.

Reproducibility: each epoch's randomness (shuffling, reparameterization noise,
GAN latents) is seeded from ``(seed, epoch, rank)`` at the start of the epoch.
A checkpoint therefore needs no RNG state: a run resumed from epoch k replays
epochs k+1... exactly as an uninterrupted run would, bit for bit on CPU.

Command line, on one process or with torchrun (DistributedDataParallel)::

    python -m helpers.train --model mnist-vae --epochs 5
    torchrun --nproc_per_node=2 -m helpers.train --model mnist-vae --epochs 5
"""
import argparse
import contextlib
import dataclasses
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import checkpoints, data, objectives, pretrained, registry
from .profile import device as default_device

EVAL_BATCH = 500


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run (and so names its checkpoint folder).

    ``train_limit`` / ``val_limit`` keep only the first images of a split (quick runs);
    ``fid_every`` > 0 computes FID of ``fid_n`` samples every that many epochs (and at the end).
    """

    model: str
    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    latent_dim: int = 100
    samples: int = 1
    train_limit: int = None
    val_limit: int = None
    fid_every: int = 0
    fid_n: int = 1000
    fid_reference_n: int = None
    fid_dims: int = 2048

    def validate(self) -> None:
        """Clear errors for impossible settings, before any data is loaded; with FID on, also
        for its settings and missing Inception weights, which would otherwise fail only at the
        first FID epoch, after that epoch's training."""
        registry.spec(self.model)
        for name, (smallest, optional) in _INTEGER_SETTINGS.items():
            value = getattr(self, name)
            if not (value is None and optional) and not (_is_int(value) and value >= smallest):
                raise ValueError(f"{name}={value!r} must be an integer >= {smallest}{' or None' if optional else ''}.")
        if not (isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool)
                and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr={self.lr!r} must be a positive number, e.g. 1e-4.")
        if self.fid_every:
            from . import fid

            fid.check_dims(self.fid_dims)
            fid.require_weights()


# Every integer setting: (smallest valid value, whether None is allowed).
_INTEGER_SETTINGS = {"epochs": (1, False), "batch_size": (1, False), "seed": (0, False), "latent_dim": (1, False),
                     "samples": (1, False), "train_limit": (1, True), "val_limit": (1, True), "fid_every": (0, False),
                     "fid_n": (2, False), "fid_reference_n": (2, True), "fid_dims": (1, False)}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int to Python, not an epoch count


def config_for(model: str, **overrides) -> RunConfig:
    """The report's settings for ``model`` (see ``registry.MODELS``), with overrides."""
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)}; RunConfig has {sorted(fields)}.")
    return RunConfig(model=model, **{**registry.spec(model).defaults, **overrides})


@dataclass
class Run:
    """A finished run: its model, per-epoch ``history`` (losses, FID: reproducible) and
    ``timings`` (wall time, images/s: not), and the folder of its checkpoint.

    ``origin`` says where the model came from: ``"trained"`` (every epoch in this call),
    ``"resumed"`` (a stopped run continued), ``"checkpoint"`` (a finished checkpoint loaded)
    or ``"pretrained"`` (the weights shipped in ``pretrained/``, stored in float16 or float32).
    """

    config: RunConfig
    objective: objectives.Objective
    history: list
    timings: list
    folder: Path
    origin: str = "trained"

    @property
    def model(self):
        return self.objective.model

    @property
    def train_seconds(self) -> float:
        """Wall time of all epochs, training, evaluation and FID included."""
        return sum(t["seconds"] for t in self.timings)

    def timing_summary(self) -> str:
        """One line for a chapter: epochs, total minutes (steps and FID) and the median images/s."""
        minutes = {key: sum(t[key] for t in self.timings) / 60 for key in ("train_seconds", "fid_seconds")}
        median = sorted(t["images_per_second"] for t in self.timings)[len(self.timings) // 2]
        return (f"{len(self.timings)} epochs, {self.train_seconds / 60:.1f} min in total "
                f"({minutes['train_seconds']:.1f} min of training steps, {minutes['fid_seconds']:.1f} min of FID), "
                f"median {median:,.0f} images/s")


# ---------------------------------------------------------------- randomness and batches

def derive_seed(*parts) -> int:
    """A 63-bit seed from any tuple, e.g. (seed, "shuffle", epoch): distinct parts, distinct streams."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def epoch_batches(n: int, batch_size: int, epoch_seed: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """This epoch's shuffled batches of indices for one rank: steps x (batch_size / world).

    Every rank draws the same permutation and takes its own columns, so the ranks see
    disjoint shards of each global batch. The last incomplete batch is dropped (a different
    remainder every epoch, since the order is reshuffled).
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed))
    steps = n // batch_size
    return order[: steps * batch_size].view(steps, batch_size)[:, rank::world]


# ---------------------------------------------------------------- distributed helpers

def world() -> tuple:
    """(rank, world size): (0, 1) unless running under torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity on one process)."""
    if world()[1] > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


# ---------------------------------------------------------------- one epoch

def _check_finite(terms: dict, epoch: int, step: int, folder: Path) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise DivergenceError(
                f"{name} became {value.item()} at epoch {epoch}, step {step}: training diverged and stopped. "
                f"The last good checkpoint in {folder} is intact. Lower the learning rate, or check the data "
                "for NaNs, and start again.")


def train_epoch(objective, images, batches, epoch, folder, bar) -> dict:
    """One pass over ``batches`` (steps x b indices into uint8 ``images``); returns summed terms."""
    sums, count = {}, 0
    for step, idx in enumerate(batches, start=1):
        x = images[idx].float().div_(255)
        terms = objective.train_step(x)
        _check_finite(terms, epoch, step, folder)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value * len(idx)
        count += len(idx)
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix({k: f"{v.item() / count:.4g}" for k, v in sums.items()}, refresh=False)
    return sums, count


@torch.no_grad()
def evaluate(objective, images, rank, world_size) -> dict:
    """Mean loss terms over a split (sharded across ranks, then summed)."""
    sums, count = {}, 0
    shard = torch.arange(rank, len(images), world_size)
    for idx in shard.split(EVAL_BATCH):
        x = images[idx].float().div_(255)
        for name, value in objective.eval_step(x).items():
            sums[name] = sums.get(name, 0.0) + value * len(idx)
        count += len(idx)
    return _means(sums, count)


def _means(sums: dict, count: int) -> dict:
    names = sorted(sums)
    totals = all_sum(torch.stack([sums[n] for n in names] + [torch.tensor(float(count), device=sums[names[0]].device)]))
    return {n: (totals[i] / totals[-1]).item() for i, n in enumerate(names)}


def epoch_fid(objective, config, dataset):
    """FID of ``fid_n`` samples drawn with fixed noise (comparable across epochs)."""
    from . import fid

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "fid"))
        return fid.fid(objective.sample, dataset=dataset, split="test", n=config.fid_n,
                       n_reference=config.fid_reference_n, dims=config.fid_dims, cache=False)  # never the same images twice


# ---------------------------------------------------------------- the run

def shipped_objective(identity: dict, state: dict) -> objectives.Objective:
    """The objective of a run ``identity`` (a manifest entry's) with the shipped sampling weights ``state``
    (:func:`helpers.pretrained.load`) in it, in eval mode: no data, no training. Its ``sampling_model()``
    is what the run samples from."""
    config = RunConfig(**{k: v for k, v in identity.items() if k != "data"})
    torch.manual_seed(0)  # construction draws initial weights, all replaced below
    objective = registry.spec(config.model).build(config)
    objective.load_sampling_weights(state)
    objective.model.eval()
    return objective



def run(config: RunConfig, *, resume: bool = True, folder=None, progress: bool = True, device=None) -> Run:
    """Train ``config`` (or load its finished checkpoint) and return the :class:`Run`.

    Args:
        config: what to train; see :func:`config_for` for the report's defaults.
        resume: reuse this configuration's checkpoint: a finished run is loaded without
            training, a stopped one continues from its last epoch. False starts afresh.
        folder: checkpoint folder (default: one per configuration under ``checkpoints/``).
        progress: show a tqdm progress bar (rank 0 only).
        device: overrides :func:`helpers.device`.
    """
    config.validate()
    spec = registry.spec(config.model)
    rank, world_size = world()
    device = torch.device(device) if device else _rank_device(rank, world_size)
    if config.batch_size % world_size:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the {world_size} processes.")
    identity = {**dataclasses.asdict(config), "data": data.source(spec.dataset)}
    folder = Path(folder) if folder else checkpoints.run_folder(identity)
    # Rank 0 alone writes the checkpoint, so it alone holds the folder against other runs.
    with checkpoints.lock(folder) if rank == 0 else contextlib.nullcontext():
        checkpoints.check_folder(folder, identity)
        return _train(config, spec, identity, folder, resume=resume, progress=progress, device=device)


def _train(config, spec, identity, folder, *, resume, progress, device) -> Run:
    """The body of :func:`run`, once the folder is known to be this configuration's and held."""
    rank, world_size = world()
    torch.manual_seed(derive_seed(config.seed, "init"))
    objective = spec.build(config)
    objective.model.to(device)
    state = checkpoints.load(folder, map_location=device) if resume else None
    if state is None and resume:
        shipped = pretrained.load(identity, map_location=device)  # no data, no training: seconds
        if shipped is not None:
            objective.load_sampling_weights(shipped)
            objective.model.eval()
            return Run(config, objective, shipped["history"], shipped["timings"], folder, origin="pretrained")
    history, timings, origin = [], [], "trained"
    if state is not None:
        objective.load_state_dict(state["objective"])
        history, timings = state["history"], state["timings"]
        origin = "checkpoint" if len(history) == config.epochs else "resumed"
    train_images, val_images = _splits(config, spec, device)
    if world_size > 1:
        objective.wrap(lambda m: DistributedDataParallel(m, device_ids=[device.index] if device.type == "cuda" else None))

    steps = len(train_images) // config.batch_size
    bar = tqdm(total=config.epochs * steps, initial=len(history) * steps, desc=config.model,
               disable=not progress or rank != 0, dynamic_ncols=True)
    for epoch in range(len(history) + 1, config.epochs + 1):
        record, timing = _one_epoch(objective, config, spec, train_images, val_images, epoch, folder, bar, rank, world_size)
        history.append(record)
        timings.append(timing)
        if rank == 0:
            checkpoints.save(folder, identity, {"epoch": epoch, "objective": objective.state_dict(),
                                                "history": history, "timings": timings})
        barrier()
    bar.close()
    objective.model.eval()  # ready to sample: batch norm uses its running statistics, not the batch's
    return Run(config, objective, history, timings, folder, origin)


def _splits(config, spec, device) -> tuple:
    """The training and validation images (uint8, on ``device``), at the model's image size,
    limited as the config says."""
    train_images = data.load(spec.dataset, "train", size=spec.image_size, limit=config.train_limit).images
    val_images = data.load(spec.dataset, "val", size=spec.image_size, limit=config.val_limit).images
    if config.batch_size > len(train_images):
        raise ValueError(f"batch_size={config.batch_size} is larger than the training split "
                         f"({len(train_images)} images); lower it or raise train_limit.")
    return train_images.to(device), val_images.to(device)


def _one_epoch(objective, config, spec, train_images, val_images, epoch, folder, bar, rank, world_size):
    objective.model.train()
    torch.manual_seed(derive_seed(config.seed, "noise", epoch, rank))
    batches = epoch_batches(len(train_images), config.batch_size,
                            derive_seed(config.seed, "shuffle", epoch), rank, world_size)
    start = time.perf_counter()
    sums, count = train_epoch(objective, train_images, batches, epoch, folder, bar)
    train_seconds = time.perf_counter() - start
    record = {"epoch": epoch, **{f"train_{k}": v for k, v in _means(sums, count).items()}}

    objective.model.eval()
    torch.manual_seed(derive_seed(config.seed, "eval", epoch, rank))
    record.update({f"val_{k}": v for k, v in evaluate(objective, val_images, rank, world_size).items()})
    fid_seconds = 0.0
    if config.fid_every and (epoch % config.fid_every == 0 or epoch == config.epochs):
        fid_start = time.perf_counter()
        if rank == 0:
            result = epoch_fid(objective, config, spec.dataset)
            record.update(fid=result.value, fid_n=result.n_generated, fid_n_reference=result.n_reference)
        fid_seconds = time.perf_counter() - fid_start
        barrier()
    seconds = time.perf_counter() - start
    timing = {"epoch": epoch, "seconds": seconds, "train_seconds": train_seconds, "fid_seconds": fid_seconds,
              "images_per_second": count * world_size / train_seconds, "threads": torch.get_num_threads()}
    return record, timing


def _rank_device(rank: int, world_size: int) -> torch.device:
    device = default_device()
    if device.type == "cuda" and world_size > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return device


# ---------------------------------------------------------------- command line

def _parse(argv=None) -> tuple:
    parser = argparse.ArgumentParser(prog="python -m helpers.train", description="Train one of the book's models.")
    parser.add_argument("--model", required=True, choices=sorted(registry.MODELS))
    for field in dataclasses.fields(RunConfig):
        if field.name != "model":
            parser.add_argument("--" + field.name.replace("_", "-"), type=float if field.name == "lr" else int)
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    args = vars(parser.parse_args(argv))
    resume = not args.pop("no_resume")
    overrides = {k: v for k, v in args.items() if v is not None and k != "model"}
    return config_for(args["model"], **overrides), resume


def main(argv=None) -> Run:
    config, resume = _parse(argv)
    config.validate()  # fail before starting process groups or loading data
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        result = run(config, resume=resume)
        if world()[0] == 0:
            last = result.history[-1]
            print(f"{config.model}: {len(result.history)} epochs in {result.train_seconds:.0f} s; last epoch "
                  + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k != "epoch") + f"; checkpoint in {result.folder}")
        return result
    finally:
        if distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
