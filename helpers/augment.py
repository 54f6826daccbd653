"""Differentiable augmentation for GANs on few images (Zhao et al., 2020, "Differentiable Augmentation
for Data-Efficient GAN Training"), and random horizontal flips of the real images.

On 8,000 images a discriminator soon memorizes the training set: it rejects everything else, and
the generator's gradient stops meaning anything. DiffAugment shows D only randomly transformed images,
real and generated alike, in both players' steps. Because every transform is differentiable, the
generator's loss still reaches G's weights through the transformed images; and because real and
generated images are transformed the same way, G is not pushed to draw the transformations itself
(which augmenting the real images alone would do).

The transforms are those of the paper's "color,translation,cutout" policy, in its order, each drawn
independently per image:

- brightness: add b ~ U(-1/4, 1/4) to every pixel;
- saturation: scale each pixel's distance from its grey (the mean over channels) by s ~ U(0, 2);
- contrast: scale each image's distance from its mean by c ~ U(1/2, 3/2);
- translation: shift by up to 1/8 of the side in each direction (whole pixels), filling with zeros;
- cutout: set a square of half the side to zero, its centre uniform over the image (so near a
  border part of it falls outside: a quarter of the image when inside, down to a sixteenth).

The paper's images lie in [-1, 1], the book's in [0, 1] (what D reads): its brightness shift of
up to 1/2 is half the width of its range, so here it is 1/4. Zeros, mid-grey in the paper's range,
are black here; D sees the same black borders and holes on real and generated images.

Every function takes an optional ``generator`` (a :class:`torch.Generator` on the images' device):
the same seed gives the same draws. Without one, torch's global generator is used, which the
training loop seeds per epoch. Shapes: x is N x C x H x W.
"""
import torch
import torch.nn.functional as F

BRIGHTNESS = 0.25   # half-width of the brightness shift, for images in [0, 1]
TRANSLATION = 1 / 8  # the largest shift, as a fraction of the side
CUTOUT = 1 / 2       # the side of the cut-out square, as a fraction of the image's side


def per_image_uniform(x, low: float, high: float, generator=None) -> torch.Tensor:
    """One draw from U(low, high) per image of x, shaped N x 1 x 1 x 1 to broadcast over it."""
    u = torch.rand(len(x), 1, 1, 1, generator=generator, dtype=x.dtype, device=x.device)
    return low + (high - low) * u


def per_image_integer(x, low: int, high: int, generator=None) -> torch.Tensor:
    """One integer uniform on {low, ..., high} per image of x, shaped N x 1 x 1."""
    return torch.randint(low, high + 1, (len(x), 1, 1), generator=generator, device=x.device)


def part_of(side: int, fraction: float) -> int:
    """``fraction`` of ``side`` in whole pixels, rounded half up as in the paper's code (8 of 64, 20 of 160)."""
    return int(side * fraction + 0.5)


# ---------------------------------------------------------------- colour

def brightness(x, generator=None) -> torch.Tensor:
    """x + b, b ~ U(-1/4, 1/4) per image."""
    return x + per_image_uniform(x, -BRIGHTNESS, BRIGHTNESS, generator)


def saturation(x, generator=None) -> torch.Tensor:
    """grey + s (x - grey), grey the mean over channels of each pixel, s ~ U(0, 2) per image:
    s = 0 is the grey image, s = 1 the image itself, s = 2 twice as colourful."""
    grey = x.mean(dim=1, keepdim=True)
    return grey + per_image_uniform(x, 0, 2, generator) * (x - grey)


def contrast(x, generator=None) -> torch.Tensor:
    """mean + c (x - mean), mean over each whole image, c ~ U(1/2, 3/2) per image."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + per_image_uniform(x, 0.5, 1.5, generator) * (x - mean)


# ---------------------------------------------------------------- geometry

def translation(x, fraction: float = TRANSLATION, generator=None) -> torch.Tensor:
    """Shift each image by whole pixels (dy, dx), each uniform on {-m, ..., m} with m = ``fraction`` of
    the side, filling what comes in from outside with zeros. Output pixel (i, j) is input pixel
    (i - dy, j - dx), read by indexing, so the gradient reaches every input pixel that stays in view.
    """
    n, _, h, w = x.shape
    dy = per_image_integer(x, -part_of(h, fraction), part_of(h, fraction), generator)
    dx = per_image_integer(x, -part_of(w, fraction), part_of(w, fraction), generator)
    # Pad by one zero pixel and send every index that falls outside to it (index 0 or side + 1).
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)                      # N x H+2 x W+2 x C
    rows = (torch.arange(h, device=x.device).view(1, h, 1) - dy + 1).clamp(0, h + 1)  # N x H x 1
    cols = (torch.arange(w, device=x.device).view(1, 1, w) - dx + 1).clamp(0, w + 1)  # N x 1 x W
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x, fraction: float = CUTOUT, generator=None) -> torch.Tensor:
    """Zero a square of ``fraction`` of the side in each image (all channels), its centre uniform on
    {0, ..., side} in each direction; the part outside the image is lost, so 1/16 to 1/4 of the
    image is cut at fraction 1/2."""
    n, _, h, w = x.shape
    cut_h, cut_w = part_of(h, fraction), part_of(w, fraction)
    top = per_image_integer(x, 0, h, generator) - cut_h // 2
    left = per_image_integer(x, 0, w, generator) - cut_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)  # N x H x W
    return x * (~inside).unsqueeze(1).to(x.dtype)


# ---------------------------------------------------------------- the policy, and flips

def diff_augment(x, generator=None) -> torch.Tensor:
    """The paper's "color,translation,cutout" policy: brightness, saturation, contrast, translation,
    cutout, in that order. Apply it to every image D sees, real or generated, in both players' steps."""
    for transform in (brightness, saturation, contrast, translation, cutout):
        x = transform(x, generator=generator)
    return x


def random_flip(x, generator=None) -> torch.Tensor:
    """Mirror each image left to right with probability 1/2: the usual augmentation of the real
    images (a mirrored photograph is as likely a photograph), applied before :func:`diff_augment`."""
    flip = torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device) < 0.5
    return torch.where(flip, x.flip(-1), x)
