"""Figures shared by the chapters: image grids and per-epoch curves."""
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
