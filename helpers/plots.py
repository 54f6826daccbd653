"""Figures shared by the chapters: image grids, per-epoch curves and animation players."""
import math
import re

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid


def show_images(images: torch.Tensor, nrow: int = 8, title: str = None, ax=None, scale: float = 1.0):
    """Draw a batch as one grid.

    Args:
        images: N x C x H x W, uint8 (0..255) or float in [0, 1]; C is 1 or 3.
        nrow: images per row.
        title: optional axes title.
        ax: matplotlib axes to draw into (a new figure when None).
        scale: inches per image column, for the figure size.
    """
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        images = images.float() / 255
    grid = make_grid(images.clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    if ax is None:
        rows = (len(images) + nrow - 1) // nrow
        _, ax = plt.subplots(figsize=(scale * nrow, scale * rows))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray" if images.shape[1] == 1 else None,
              interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_history(history: list, terms: list, ax=None, title: str = None, ylabel: str = None):
    """Train (solid) and validation (dashed) curves of loss terms per epoch.

    history: the list of per-epoch dicts of :class:`helpers.train.Run` (keys ``train_<term>``,
    ``val_<term>``); terms: which terms to draw.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [r["epoch"] for r in history]
    for i, term in enumerate(terms):
        colour = f"C{i}"
        ax.plot(epochs, [r[f"train_{term}"] for r in history], color=colour, label=f"train {term}")
        ax.plot(epochs, [r[f"val_{term}"] for r in history], color=colour, linestyle="--", label=f"val {term}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or ", ".join(terms))
    ax.set_title(title or "")
    ax.legend(fontsize=8)
    return ax


def plot_gan_history(history: list, name: str):
    """A GAN run in one row: discriminator loss (with log 4, its value at equilibrium), the generator's
    own loss, and the mean verdicts D(x) and D(G(z)) on a log scale. Returns the three axes."""
    _, axes = plt.subplots(1, 3, figsize=(15, 3.3))
    plot_history(history, ["d_loss"], ax=axes[0], title=f"{name}: discriminator loss", ylabel="nats")
    axes[0].axhline(math.log(4), color="grey", lw=0.8, ls=":")
    plot_history(history, ["g_loss"], ax=axes[1], title=f"{name}: generator loss", ylabel="nats")
    plot_history(history, ["d_real", "d_fake"], ax=axes[2], title=f"{name}: mean D(x) and D(G(z))", ylabel="mean D")
    axes[2].set_yscale("log")
    plt.tight_layout()
    return axes


def plot_fid_curve(history: list, ax=None, label: str = None, reference: str = "test"):
    """FID per epoch from a run's history (epochs where it was computed), N in the label."""
    points = [(r["epoch"], r["fid"], r["fid_n"], r["fid_n_reference"]) for r in history if "fid" in r]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    if points:
        epochs, values, n, n_ref = zip(*points)
        ax.plot(epochs, values, marker="o", label=label or f"{n[0]:,} samples vs {n_ref[0]:,} {reference} images")
    ax.set_xlabel("epoch")
    ax.set_ylabel("FID")
    ax.legend(fontsize=8)
    return ax


def animation_html(anim):
    """A matplotlib animation as a self-contained JavaScript player, for notebooks and the book.

    ``anim.to_jshtml()`` embeds every frame, so the slider works with no kernel; but it also
    links Font Awesome (the button icons) from a CDN, which an offline page cannot load. The
    book's theme and JupyterLab ship Font Awesome themselves, so the link is dropped.
    Close the animation's figure (``plt.close(fig)``) so it is not drawn a second time.
    """
    from IPython.display import HTML

    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", anim.to_jshtml())
    return HTML(html)
