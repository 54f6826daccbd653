"""Curves show the numbers of the run they are given, term by term."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers.plots import plot_gan_history  # noqa: E402


def test_gan_history_draws_each_term_of_each_split_where_it_belongs():
    history = [{"epoch": e, **{f"{split}_{term}": 10 * e + i + (0.5 if split == "val" else 0)
                               for i, term in enumerate(["d_loss", "g_loss", "d_real", "d_fake"])
                               for split in ("train", "val")}} for e in (1, 2, 3)]
    axes = plot_gan_history(history, "test")
    drawn = [{line.get_label(): list(line.get_ydata()) for line in ax.get_lines()} for ax in axes]
    plt.close("all")
    assert drawn[0]["train d_loss"] == [10, 20, 30] and drawn[0]["val d_loss"] == [10.5, 20.5, 30.5]
    assert [math.log(4)] * 2 in drawn[0].values(), "the equilibrium value log 4 is marked"
    assert drawn[1]["train g_loss"] == [11, 21, 31]
    assert drawn[2]["train d_real"] == [12, 22, 32] and drawn[2]["val d_fake"] == [13.5, 23.5, 33.5]
    assert axes[2].get_yscale() == "log"
