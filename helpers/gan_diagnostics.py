"""Why a GAN's generator stops learning, measured: saturated pixels, its gradient, and Adam's step.

Chapter 6 diagnoses its collapsed runs from these numbers. :func:`generator_diagnostics` gathers
them for one batch of latents; :class:`helpers.objectives.GANObjective` returns them from its
``eval_step``, so the training loop records them every epoch as ``val_<name>``.

Everything here is free of side effects: no random draws, no ``.grad`` written (gradients come
from ``torch.autograd.grad``), no parameter, buffer or optimizer state changed, and both networks
are run in eval mode (no batch-norm statistics or spectral-norm power iterations updated), so a
run trains bit for bit the same with or without these measurements.

Shapes: N batch, D latent dimension, P pixels.
"""
import contextlib
import math

import torch
from torch import nn

# A pixel whose output sigmoid has a slope below this passes on (almost) no gradient: |logit| > 9.2.
SLOPE_THRESHOLD = 1e-4


# ---------------------------------------------------------------- the generator's output sigmoid

def sigmoid_slope(logits: torch.Tensor) -> torch.Tensor:
    """sigma'(t) = sigma(t) (1 - sigma(t)), elementwise, computed as sigma(t) sigma(-t): in float32,
    1 - sigma(t) rounds to 0 above t of about 17, while sigma(-t) keeps its value (e.g. 2e-22 at 50)."""
    return torch.sigmoid(logits) * torch.sigmoid(-logits)


def share_with_slope_above(logits: torch.Tensor, threshold: float = SLOPE_THRESHOLD) -> torch.Tensor:
    """The share of entries (e.g. N x P generated pixels) whose sigmoid slope exceeds ``threshold``:
    the pixels through which a gradient can still reach the generator. Returns a scalar in [0, 1]."""
    return (sigmoid_slope(logits) > threshold).float().mean()


def median_abs(logits: torch.Tensor) -> torch.Tensor:
    """The median of |t| over all entries (the lower middle value for an even count). Returns a scalar."""
    return logits.abs().median()


# ---------------------------------------------------------------- gradients and Adam's step

def global_norm(tensors) -> torch.Tensor:
    """The L2 norm of all entries of a list of tensors together, as if concatenated into one vector."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def share_above(tensors, threshold: float) -> torch.Tensor:
    """The share of all entries of a list of tensors whose magnitude exceeds ``threshold``."""
    above = sum((t.abs() > threshold).sum() for t in tensors)
    return above / sum(t.numel() for t in tensors)


def adam_last_update(optimizer: torch.optim.Adam) -> list:
    """The change Adam made to each parameter at its last step, recomputed from its state.

    After step t Adam keeps m_t, v_t and t; that step moved each parameter by

        -lr * m_hat / (sqrt(v_hat) + eps),   m_hat = m_t / (1 - beta1^t),  v_hat = v_t / (1 - beta2^t)

    (Kingma & Ba, Algorithm 1; PyTorch's fused kernel computes the same). The state is what a
    checkpoint saves, so this holds after a resume too. Returns one tensor per parameter that has
    been stepped (an empty list before the first step). Plain Adam only: no weight decay, no AMSGrad.
    """
    updates = []
    for group in optimizer.param_groups:
        if group.get("weight_decay") or group.get("amsgrad") or group.get("maximize"):
            raise ValueError("adam_last_update recomputes plain Adam only (no weight decay, AMSGrad or maximize).")
        (beta1, beta2), lr, eps = group["betas"], float(group["lr"]), group["eps"]
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            t = float(state["step"])
            denominator = state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2 ** t) + eps
            updates.append(-lr / (1 - beta1 ** t) * state["exp_avg"] / denominator)
    return updates


@contextlib.contextmanager
def eval_mode(*modules: nn.Module):
    """Run ``modules`` in eval mode, then restore every submodule's own mode."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def generator_gradients(generator: nn.Module, discriminator: nn.Module, z: torch.Tensor, losses: dict) -> tuple:
    """G's pixel logits on the latents z (N x D) and the gradient of each generator loss with
    respect to G's parameters, all on the same batch: ``losses`` maps a name to a function of D's
    logits on the generated images (N) -> scalar. Returns (pixel logits, {name: [gradient per parameter]}).
    """
    parameters = [p for p in generator.parameters() if p.requires_grad]
    with torch.enable_grad(), eval_mode(generator, discriminator):
        pixel_logits = generator(z)
        fake_logits = discriminator(torch.sigmoid(pixel_logits))
        gradients = {name: torch.autograd.grad(loss(fake_logits), parameters, retain_graph=True)
                     for name, loss in losses.items()}
    return pixel_logits.detach(), gradients


# ---------------------------------------------------------------- all of it, for one batch

def generator_diagnostics(generator: nn.Module, discriminator: nn.Module, z: torch.Tensor, losses: dict,
                          trained_loss: str, optimizer: torch.optim.Adam) -> dict:
    """The generator's health on one batch of latents z (N x D), as scalars:

    - ``g_logit_abs_median``: median |t| over the N x P generated pixel logits;
    - ``g_slope_share``: the share of those pixels whose sigmoid slope exceeds 1e-4 (|t| < 9.2);
    - ``g_grad_norm_<name>``: the global L2 norm of G's gradient under each of ``losses``;
    - ``g_grad_share_above_eps``: the share of G's parameters whose gradient under the loss that
      trains it (``trained_loss``) exceeds Adam's eps in magnitude;
    - ``g_update_norm``: the global norm of the change Adam made to G at its last step
      (not of this batch: of the last training step before the call; 0 before any step).
    """
    pixel_logits, gradients = generator_gradients(generator, discriminator, z, losses)
    eps = optimizer.param_groups[0]["eps"]
    updates = adam_last_update(optimizer)
    terms = {"g_logit_abs_median": median_abs(pixel_logits),
             "g_slope_share": share_with_slope_above(pixel_logits)}
    terms.update({f"g_grad_norm_{name}": global_norm(g) for name, g in gradients.items()})
    terms["g_grad_share_above_eps"] = share_above(gradients[trained_loss], eps)
    terms["g_update_norm"] = global_norm(updates) if updates else z.new_zeros(())
    return terms
