"""Models that several test files build the same way."""
import torch

from helpers import flows, models


def flow_vae():
    """A flow-prior VAE whose couplings are not the identity (a new flow's last layers start at zero)."""
    torch.manual_seed(1)
    vae = models.mnist_vae(prior=flows.RealNVPPrior(100))
    for coupling in vae.prior.couplings:
        torch.nn.init.normal_(coupling.net[-1].weight, std=0.05)
    return vae.eval()
