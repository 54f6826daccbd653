"""Walking through latent space: linear and spherical interpolation between codes."""
import torch


def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the segment from z0 to z1 (both D), ends included: steps x D."""
    t = torch.linspace(0, 1, steps, device=z0.device).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the great-circle arc from z0 to z1 (both D): steps x D.

    Under a standard Gaussian prior almost all mass lies near the sphere of radius sqrt(D);
    the midpoint of a straight line between two such codes is much shorter than that (a
    region the decoder rarely saw), while the arc keeps the norm. Falls back to ``lerp``
    for (nearly) parallel codes, where the arc is undefined.
    """
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega < 1e-4:
        return lerp(z0, z1, steps)
    t = torch.linspace(0, 1, steps, device=z0.device).unsqueeze(1)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
