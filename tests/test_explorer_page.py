"""The static explorer's page: the data the browser decodes from is the models' own, and survives the HTML."""
import json
import re

import torch

from helpers import conv_models, explore, explorer_page, models


def entries():
    torch.manual_seed(0)
    vae, gan = models.mnist_vae().eval(), models.mnist_gan_small_d().eval()
    images = torch.rand(3, 1, 32, 32)
    return {"vae": vae, "gan": gan}, images, [
        explorer_page.model_entry("vae", "VAE", vae, "ab" * 32, images, ["a", "b", "c"], [0, 1], images, directions=2),
        explorer_page.model_entry("gan", "GAN </script>", gan, "cd" * 32, images, ["a", "b", "c"], [0, 1], images)]


def test_endpoints_are_encoded_images_then_seeds_and_a_gan_has_seeds_only():
    networks, images, (vae, gan) = entries()
    assert [e["label"] for e in vae["endpoints"]] == ["a", "b", "c", "seed 0", "seed 1"]
    assert torch.allclose(torch.tensor(vae["endpoints"][1]["code"]), explore.encode(networks["vae"], images)[1], atol=1e-5)
    assert torch.allclose(torch.tensor(gan["endpoints"][1]["code"]), explore.seed_code(1, 100), atol=1e-5)
    assert [e["label"] for e in gan["endpoints"]] == ["seed 0", "seed 1"] and gan["pca"] is None
    assert len(vae["pca"]["directions"]) == 2 and len(vae["pca"]["directions"][0]) == 100


def test_page_carries_the_data_intact_and_the_animation():
    networks, _, both = entries()
    animation = explorer_page.fallback_animation(networks, both, frames=3)
    assert animation.data.count("data:image/png;base64") == 3, "one frame per step"
    html = explorer_page.page(both, animation).data
    block = re.search(r'<script type="application/json" class="latent-explorer-data">(.*?)</script>', html, re.S)
    data = json.loads(block.group(1))  # a "</script>" in a label must not end the block early
    assert data["models"] == both and data["kinds"] == list(explore.KINDS)
    assert 'class="latent-explorer-fallback"' in html


def test_a_colour_model_carries_its_image_shape_and_animates_in_colour():
    """The browser sizes its canvas and reads red, green and blue planes from each model's own image shape."""
    torch.manual_seed(0)
    grey, colour = models.mnist_vae().eval(), conv_models.imagenette_vae(64).eval()
    images = torch.rand(3, 3, 64, 64)
    entry = explorer_page.model_entry("c", "colour VAE", colour, "ef" * 32, images, ["a", "b", "c"], [0], images, 2)
    assert entry["image_shape"] == [3, 64, 64]
    assert explorer_page.model_entry("g", "VAE", grey, "ab" * 32, torch.rand(2, 1, 32, 32), ["a", "b"], [0],
                                     torch.rand(3, 1, 32, 32), 2)["image_shape"] == [1, 32, 32]
    frames = explorer_page.interpolation_frames(colour, entry, 0, 1, "linear", 3)
    assert frames.shape == (3, 3, 64, 64)
    animation = explorer_page.fallback_animation({"c": colour}, [entry], frames=3)
    assert animation.data.count("data:image/png;base64") == 3
