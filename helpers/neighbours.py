"""Nearest training neighbours of generated images: a memorization check.

A generator that copies its training images can score a good FID. Two measurements expose it: show each
sample beside its nearest training image, and compare how far samples lie from the training set with how
far new real images (a held-out split) lie from it. Distances are Euclidean, on whatever vectors are
given: flattened pixels, or Inception features (``helpers.fid.features``), which compare content rather
than exact pixel positions.
"""
import torch


def nearest(queries: torch.Tensor, pool: torch.Tensor, batch: int = 1024) -> tuple:
    """The nearest neighbour in ``pool`` (N x D) of each row of ``queries`` (M x D).

    Returns (distances, indices), each of length M: the Euclidean distance to the nearest pool row and
    that row's index. The queries go through in chunks of ``batch`` rows, so the distance matrix held
    at once is ``batch`` x N, not M x N.
    """
    if queries.dim() != 2 or pool.dim() != 2 or queries.shape[1] != pool.shape[1]:
        raise ValueError(f"nearest needs M x D queries and N x D pool with the same D, got {tuple(queries.shape)} "
                         f"and {tuple(pool.shape)}: flatten images first (x.flatten(1)).")
    pool = pool.double()
    found = [torch.cdist(chunk.double(), pool).min(dim=1) for chunk in queries.split(batch)]
    return torch.cat([f.values for f in found]).float(), torch.cat([f.indices for f in found])


def distance_ratio(generated: torch.Tensor, held_out: torch.Tensor, train: torch.Tensor) -> float:
    """Median distance from generated rows to their nearest training row, divided by the same median
    for held-out real rows (all three M x D or N x D).

    Near 1: samples are as far from the training set as new real images are. Well below 1: samples sit
    closer to training images than real images do, the sign of copies. Above 1: samples are off the
    data (as blurry or broken images are), which says nothing about copying.
    """
    return (nearest(generated, train)[0].median() / nearest(held_out, train)[0].median()).item()
