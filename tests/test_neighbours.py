"""Nearest training neighbours: the search against brute force, and the memorization ratio."""
import pytest
import torch

from helpers import neighbours


def points(n, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_nearest_matches_a_brute_force_search_across_chunks():
    queries, pool = points(50, seed=1), points(200, seed=2)
    distances, indices = neighbours.nearest(queries, pool, batch=7)  # chunks of 7 rows: 8 chunks, the last short
    all_distances = ((queries[:, None, :] - pool[None, :, :]) ** 2).sum(-1).sqrt()  # 50 x 200
    assert torch.equal(indices, all_distances.argmin(1))
    assert torch.allclose(distances, all_distances.min(1).values, atol=1e-5)


def test_a_copy_of_a_training_row_is_found_at_distance_zero():
    pool = points(100)
    distances, indices = neighbours.nearest(pool[[3, 97, 41]], pool)
    assert indices.tolist() == [3, 97, 41]
    assert distances.abs().max().item() < 1e-6


def test_copies_of_training_rows_give_a_ratio_far_below_one_and_fresh_draws_near_one():
    train, held_out, fresh = points(2000, seed=0), points(500, seed=1), points(500, seed=2)
    copies = train[:500] + 0.01 * points(500, seed=3)
    assert neighbours.distance_ratio(copies, held_out, train) < 0.05
    assert neighbours.distance_ratio(fresh, held_out, train) == pytest.approx(1.0, abs=0.05)


def test_images_that_were_not_flattened_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="flatten"):
        neighbours.nearest(torch.rand(4, 3, 8, 8), torch.rand(10, 3, 8, 8))
