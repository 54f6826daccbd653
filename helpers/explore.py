"""Walking through latent space: interpolation, principal directions and a live explorer.

Every model is explored in its *base space*, where the prior is a standard Gaussian:
z itself for a VAE with a Gaussian prior and for a GAN, u = F(z) for a VAE with a flow
prior (:class:`helpers.flows.RealNVPPrior`, p(z) = N(F(z); 0, I) |det dF/dz|). There a
seed's code is plain N(0, I) noise, straight lines and great-circle arcs mean the same
for every model, and one network (:class:`BaseDecoder`) maps a code to an image.

Shapes: N codes, D latent dimensions, T interpolation points, K principal directions.
"""
import io
import time

import torch
from torch import nn

KINDS = ("linear", "spherical")


def interpolate(z0: torch.Tensor, z1: torch.Tensor, t, kind: str = "linear") -> torch.Tensor:
    """Points at fractions ``t`` (T values in [0, 1], or one number) between codes z0 and z1 (both D): T x D.

    ``kind="linear"``: (1 - t) z0 + t z1. ``kind="spherical"``: the great-circle arc from z0 to z1
    (Shoemake's slerp), whose norm interpolates smoothly between the two norms. Under a standard Gaussian
    prior almost all mass lies near the sphere of radius sqrt(D); the midpoint of a straight line between
    two such codes is much shorter than that (a region the decoder rarely saw), while the arc keeps the
    norm. Spherical falls back to linear for (nearly) parallel codes, where the arc is undefined.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: use one of {KINDS}.")
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, 1)
    if kind == "spherical":
        cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
        omega = torch.arccos(cos.clamp(-1, 1))
        if omega >= 1e-4:
            return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
    return (1 - t) * z0 + t * z1


def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the segment from z0 to z1 (both D), ends included: steps x D."""
    return interpolate(z0, z1, torch.linspace(0, 1, steps), "linear")


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the great-circle arc from z0 to z1 (both D), ends included: steps x D."""
    return interpolate(z0, z1, torch.linspace(0, 1, steps), "spherical")


# ---------------------------------------------------------------- codes in the base space

def _flow_prior(model):
    """The VAE's flow prior (anything with ``inverse``), or None for a Gaussian prior or a GAN."""
    prior = getattr(model, "prior", None)
    return prior if hasattr(model, "encoder") and hasattr(prior, "inverse") else None


class BaseDecoder(nn.Module):
    """A base code to its image: N x D -> N x C x H x W in [0, 1].

    VAE: sigmoid(decoder(z)) with z = u, or z = F^-1(u) under a flow prior. GAN: sigmoid(G(u)).
    One plain module, so it exports to ONNX as a single network (:mod:`helpers.onnx_export`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if hasattr(model, "decoder"):
            self.net, self.flow = model.decoder, _flow_prior(model)
        elif hasattr(model, "generator"):
            self.net, self.flow = model.generator, None
        else:
            raise TypeError(f"{type(model).__name__} has neither a decoder nor a generator: not a VAE or GAN.")
        self.latent_dim = model.prior.dim  # not read off the first layer: a transposed conv's weight is in x out

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        z = self.flow.inverse(u) if self.flow is not None else u
        return torch.sigmoid(self.net(z))


@torch.no_grad()
def encode(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Base codes of images: the posterior mean mu(x), mapped through F under a flow prior. x: N x C x H x W -> N x D."""
    if not hasattr(model, "encoder"):
        raise TypeError(f"{type(model).__name__} has no encoder: pick its endpoints by seed (seed_code).")
    mu = model.encoder(x)[0]
    flow = _flow_prior(model)
    return flow(mu)[0] if flow is not None else mu


def seed_code(seed: int, dim: int) -> torch.Tensor:
    """The base code of a seed: a draw from N(0, I) with that seed, the same on every machine: D."""
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed))


def principal_directions(codes: torch.Tensor, k: int) -> tuple:
    """The aggregate posterior's leading directions: principal components of N x D codes.

    Returns (mean D, directions K x D orthonormal rows, scales K standard deviations along them),
    so ``mean + (s * scales) @ directions`` is the code s (K numbers) standard deviations away.
    """
    if not 1 <= k <= min(codes.shape):
        raise ValueError(f"k={k}: need 1 <= k <= min(N, D) = {min(codes.shape)} for {tuple(codes.shape)} codes.")
    mean = codes.mean(0)
    _, singular, vt = torch.linalg.svd(codes - mean, full_matrices=False)
    return mean, vt[:k], singular[:k] / (len(codes) - 1) ** 0.5


# ---------------------------------------------------------------- the live explorer (Jupyter)

def png(image: torch.Tensor, scale: int = 4) -> bytes:
    """One image C x H x W in [0, 1] as PNG bytes, each pixel a scale x scale block."""
    from PIL import Image

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()
    picture = Image.fromarray(pixels).resize((image.shape[-1] * scale, image.shape[-2] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


class Explorer:
    """Sliders that decode live: pick a model and two endpoints, slide t from one to the other.

    ``models``: name -> VAE or GAN (eval mode). ``images``: M x C x H x W test images whose codes
    are the VAEs' endpoints (GANs have no encoder: their endpoints are seeds, as are every model's
    under "seed"). ``directions``: how many principal directions of the encoded ``images`` get a
    slider (VAEs only), each in standard deviations from the mean code. ``widget`` is the
    ipywidgets box to display; ``update_seconds`` holds the time of every redraw.
    """

    def __init__(self, models: dict, images: torch.Tensor, directions: int = 4, scale: int = 4):
        import ipywidgets as w

        if not models:
            raise ValueError("No models to explore: pass at least one trained VAE or GAN by name.")
        self.decoders = {name: BaseDecoder(model).eval() for name, model in models.items()}
        self.codes = {name: encode(model, images) for name, model in models.items() if hasattr(model, "encoder")}
        self.pca = {name: principal_directions(codes, directions) for name, codes in self.codes.items()}
        self.scale, self.update_seconds = scale, []

        layout = {"style": {"description_width": "90px"}, "layout": w.Layout(width="420px")}
        self.model = w.Dropdown(options=list(models), description="model", **layout)
        self.source = w.ToggleButtons(options=["test image", "seed"], description="endpoints", **layout)
        self.start = w.BoundedIntText(value=0, min=0, max=len(images) - 1, description="from", **layout)
        self.end = w.BoundedIntText(value=1, min=0, max=len(images) - 1, description="to", **layout)
        self.kind = w.ToggleButtons(options=KINDS, description="path", **layout)
        self.t = w.FloatSlider(value=0.5, min=0, max=1, step=0.01, description="t", continuous_update=True, **layout)
        self.mode = w.ToggleButtons(options=["interpolate", "principal directions"], description="mode", **layout)
        self.pcs = [w.FloatSlider(value=0, min=-3, max=3, step=0.05, description=f"PC {i + 1} (sd)", **layout)
                    for i in range(directions)]
        self.image = w.Image(format="png")
        self.status = w.Label()
        for control in [self.model, self.source, self.start, self.end, self.kind, self.t, self.mode, *self.pcs]:
            control.observe(lambda change: self.update(), names="value")
        controls = w.VBox([self.model, self.mode, self.source, self.start, self.end, self.kind, self.t, *self.pcs])
        self.widget = w.HBox([controls, w.VBox([self.image, self.status])])
        self.update()

    def endpoint(self, index: int) -> torch.Tensor:
        """The base code D of endpoint ``index``: test image ``index`` encoded, or seed ``index``."""
        name = self.model.value
        if self.source.value == "test image":
            if name not in self.codes:
                raise ValueError(f"{name} has no encoder: pick its endpoints by seed.")
            return self.codes[name][index]
        return seed_code(index, self.decoders[name].latent_dim)

    def code(self) -> torch.Tensor:
        """The base code D the controls select."""
        name = self.model.value
        if self.mode.value == "interpolate":
            return interpolate(self.endpoint(self.start.value), self.endpoint(self.end.value), self.t.value, self.kind.value)[0]
        if name not in self.pca:
            raise ValueError(f"{name} has no encoder, so no aggregate posterior: use the interpolate mode.")
        mean, directions, scales = self.pca[name]
        return mean + (torch.tensor([s.value for s in self.pcs]) * scales) @ directions

    @torch.no_grad()
    def update(self) -> None:
        """Decode the selected code and redraw the image (or say why not); time it."""
        began = time.perf_counter()
        try:
            image = self.decoders[self.model.value](self.code()[None])[0]
        except ValueError as problem:
            self.status.value = str(problem)
            return
        self.image.value = png(image, self.scale)
        self.update_seconds.append(time.perf_counter() - began)
        self.status.value = f"decoded and drawn in {1000 * self.update_seconds[-1]:.1f} ms"

