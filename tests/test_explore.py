"""Latent-space tools: interpolation, base codes, principal directions, and the live explorer's widgets."""
import io

import pytest
import torch
from PIL import Image

from builders import flow_vae
from helpers import explore, models


def test_interpolation_starts_and_ends_at_the_endpoints():
    z0, z1 = torch.randn(2, 100, generator=torch.Generator().manual_seed(0))
    for kind in explore.KINDS:
        path = explore.interpolate(z0, z1, [0.0, 0.3, 1.0], kind)
        assert path.shape == (3, 100)
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[2], z1, atol=1e-5)
    assert torch.allclose(explore.interpolate(z0, z1, 0.5)[0], (z0 + z1) / 2)


def test_spherical_path_keeps_the_norm_where_the_line_shrinks_it():
    z0, z1 = torch.randn(2, 100, generator=torch.Generator().manual_seed(0))
    z1 = z1 / z1.norm() * z0.norm()
    arc = explore.interpolate(z0, z1, 0.5, "spherical")[0]
    line = explore.interpolate(z0, z1, 0.5, "linear")[0]
    assert arc.norm() == pytest.approx(z0.norm().item(), rel=1e-5)
    assert line.norm() < 0.8 * z0.norm(), "two near-orthogonal codes: the midpoint of the line is much shorter"


def test_unknown_path_is_refused():
    with pytest.raises(ValueError, match="linear"):
        explore.interpolate(torch.zeros(3), torch.ones(3), 0.5, "geodesic")


def test_flow_vae_codes_live_where_the_prior_is_gaussian():
    """Base code of an image: u = F(mu(x)); decoding it goes back through F^-1 to the VAE's own image."""
    vae = flow_vae()
    x = torch.rand(4, 1, 32, 32)
    u = explore.encode(vae, x)
    mu = vae.encoder(x)[0]
    assert torch.allclose(u, vae.prior(mu)[0]) and not torch.allclose(u, mu, atol=1e-3)
    assert torch.allclose(explore.BaseDecoder(vae)(u), vae.decode(mu), atol=1e-5)


def test_gan_has_no_encoder_and_seeds_are_reproducible():
    with pytest.raises(TypeError, match="seed"):
        explore.encode(models.mnist_gan_small_d(), torch.rand(2, 1, 32, 32))
    assert torch.equal(explore.seed_code(7, 100), explore.seed_code(7, 100))
    assert not torch.equal(explore.seed_code(7, 100), explore.seed_code(8, 100))


def test_principal_directions_recover_a_known_covariance():
    """Codes stretched 3x along one axis and 2x along another: those axes, in that order, with those spreads."""
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(20_000, 5, generator=g) * torch.tensor([1.0, 3.0, 0.5, 2.0, 0.5]) + 4
    mean, directions, scales = explore.principal_directions(codes, 2)
    assert torch.allclose(mean, torch.full((5,), 4.0), atol=0.05)
    assert torch.allclose(directions @ directions.T, torch.eye(2), atol=1e-5)
    assert directions[0].abs().argmax() == 1 and directions[1].abs().argmax() == 3
    assert torch.allclose(scales, torch.tensor([3.0, 2.0]), rtol=0.03)
    with pytest.raises(ValueError, match="k=6"):
        explore.principal_directions(codes, 6)


def shown(explorer) -> torch.Tensor:
    """The explorer's current picture as an H x W tensor of grey levels."""
    return torch.from_numpy(__import__("numpy").array(Image.open(io.BytesIO(explorer.image.value)))).float()


@pytest.fixture
def explorer():
    torch.manual_seed(0)
    images = torch.rand(8, 1, 32, 32)
    networks = {"vae": models.mnist_vae().eval(), "flow vae": flow_vae(), "gan": models.mnist_gan_small_d().eval()}
    with torch.no_grad():  # untrained decoders draw grey near 0.5: sharpen them so changes show in 8 bits
        for network in networks.values():
            explore.BaseDecoder(network).net.net[-1].weight *= 30
    return explore.Explorer(networks, images, directions=3)


def test_every_slider_and_endpoint_redraws_the_decoded_image(explorer):
    before = shown(explorer)
    assert before.shape == (128, 128)
    expected = explorer.decoders["vae"](explore.interpolate(explorer.codes["vae"][0], explorer.codes["vae"][1], 0.5))[0]
    assert torch.allclose(shown(explorer)[::4, ::4] / 255, expected[0], atol=1 / 255)
    for control, value in [(explorer.t, 0.9), (explorer.end, 5), (explorer.kind, "spherical"),
                           (explorer.model, "flow vae"), (explorer.source, "seed")]:
        control.value = value
        after = shown(explorer)
        assert not torch.equal(after, before), f"moving {control.description} did not change the image"
        before = after
    explorer.model.value, explorer.mode.value = "vae", "principal directions"
    for slider in explorer.pcs:
        before = shown(explorer)
        slider.value = 2.0
        assert not torch.equal(shown(explorer), before), f"{slider.description} did not change the image"


def test_a_gan_asks_for_seeds_instead_of_failing(explorer):
    explorer.model.value = "gan"
    assert "seed" in explorer.status.value
    explorer.source.value = "seed"
    assert explorer.status.value.startswith("decoded")


def test_an_update_takes_well_under_100_ms(explorer):
    explorer.update_seconds.clear()
    for i in range(30):
        explorer.t.value = i / 30
    assert sorted(explorer.update_seconds)[15] < 0.1
