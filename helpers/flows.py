"""A normalizing-flow prior: RealNVP affine coupling layers (Dinh et al., 2017).

The flow is an invertible map F from the latent space to a standard Gaussian,
u = F(z) ~ N(0, I). By the change of variables

    log p(z) = log N(F(z); 0, I) + log |det dF/dz|,

so the density of a latent code needs only the *forward* direction, and sampling
(u ~ N(0, I), z = F^-1(u)) is the one place the flow runs backwards.

Each coupling layer leaves one half of the coordinates (the mask) unchanged and
moves the other half by an affine map whose scale and shift are functions of the
unchanged half. Its Jacobian is therefore triangular, with exp(s) on the diagonal
of the moved half and 1 on the rest: log |det| is just the sum of the scales s.

:class:`RealNVPPrior` has the interface of :class:`helpers.models.StandardNormalPrior`
(``sample(n)``, ``log_prob(z)``), so :class:`helpers.models.VAE` takes it unchanged.

Shapes: ... any leading axes (N batch, or L x N samples), D latent dimension.
"""
import torch
from torch import nn

from . import losses

SCALE_BOUND = 2.0  # |s| < 2: each layer scales a coordinate by at most e^2 ~ 7.4 either way


def soft_clamp(s: torch.Tensor, bound: float = SCALE_BOUND) -> torch.Tensor:
    """bound * tanh(s / bound): the identity near 0, smoothly limited to (-bound, bound).

    Unbounded scales let one layer multiply a coordinate by exp(100): the log-determinant
    and the inverse (which divides by exp(s)) overflow to inf and the loss to NaN.
    """
    return bound * torch.tanh(s / bound)


def alternating_masks(dim: int, layers: int) -> torch.Tensor:
    """layers x D booleans, True where a layer passes the coordinate through unchanged.

    Even coordinates condition the odd ones, then the other way round, so after two
    layers every coordinate has been moved as a function of the others.
    """
    even = torch.arange(dim) % 2 == 0
    return torch.stack([even if k % 2 == 0 else ~even for k in range(layers)])


class AffineCoupling(nn.Module):
    """One RealNVP layer: u = z on the mask, u = z * exp(s) + t off it, with (s, t) = net(z * mask).

    The last linear layer starts at zero, so a new layer is the identity (s = t = 0) and a
    new flow prior is exactly N(0, I): training starts from the Gaussian VAE's prior.
    """

    def __init__(self, mask: torch.Tensor, hidden: int = 256):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.float())
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, kept: torch.Tensor) -> tuple:
        """(s, t), each ... x D and zero on the mask, from the kept coordinates ... x D."""
        s, t = self.net(kept).chunk(2, dim=-1)
        moved = 1 - self.mask
        return soft_clamp(s) * moved, t * moved

    def forward(self, z: torch.Tensor) -> tuple:
        """z: ... x D -> (u: ... x D, log |det du/dz|: ...)."""
        s, t = self._scale_shift(z * self.mask)
        return z * s.exp() + t, s.sum(-1)

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        """u: ... x D -> z: ... x D. The kept half of u equals that of z, so (s, t) are recomputed exactly."""
        s, t = self._scale_shift(u * self.mask)
        return (u - t) * (-s).exp()


class RealNVPPrior(nn.Module):
    """p(z) = N(F(z); 0, I) |det dF/dz| with F a stack of affine coupling layers.

    ``layers`` couplings with alternating masks, each with an MLP of ``hidden`` units.
    """

    def __init__(self, dim: int, layers: int = 8, hidden: int = 256):
        super().__init__()
        self.dim = dim
        self.couplings = nn.ModuleList(AffineCoupling(m, hidden) for m in alternating_masks(dim, layers))
        self.register_buffer("origin", torch.zeros(dim))  # follows the module to its device

    def forward(self, z: torch.Tensor) -> tuple:
        """u = F(z) and log |det dF/dz|: z ... x D -> (u ... x D, log_det ...).

        The log-determinants of the layers add up (chain rule; determinants multiply),
        one number per latent code.
        """
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for coupling in self.couplings:
            z, layer_log_det = coupling(z)
            log_det = log_det + layer_log_det
        return z, log_det

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        """z = F^-1(u): the layers undone in reverse order. u: ... x D -> ... x D."""
        for coupling in reversed(self.couplings):
            u = coupling.inverse(u)
        return u

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = log N(F(z); 0, I) + log |det dF/dz|. z: ... x D -> ...."""
        u, log_det = self(z)
        return losses.normal_log_prob(u, self.origin, torch.zeros_like(self.origin)) + log_det

    def sample(self, n: int) -> torch.Tensor:
        """n x D draws: u ~ N(0, I), then z = F^-1(u)."""
        return self.inverse(torch.randn(n, self.dim, dtype=self.origin.dtype, device=self.origin.device))
