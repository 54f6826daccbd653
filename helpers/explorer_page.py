"""The latent explorer of the rendered book: the real decoders, run in the reader's browser.

A chapter cell displays :func:`page`. Its HTML output carries the data the browser needs (each
model's endpoint codes, its principal directions, the SHA-256 of the weights they came from)
and a frame-by-frame animation of the same interpolation. On the website, ``latent_explorer.js``
(``_ext/explorer/``) builds the controls, loads onnxruntime-web and the decoder exported from
the same weights (:mod:`helpers.onnx_export`), and decodes every move into a canvas; where the
runtime or a decoder cannot load, it says so and shows the animation instead. In Jupyter the
animation shows; the live explorer there is :class:`helpers.explore.Explorer`.

Shapes: D latent dimensions, M endpoint images, N images encoded for the principal directions,
K principal directions, T animation frames.
"""
import json

import torch

from . import explore, plots


def _rounded(values: torch.Tensor) -> list:
    """A tensor as nested lists of floats with 6 significant digits (the page is smaller; float32 keeps ~7)."""
    return [float(f"{v:.6g}") for v in values.tolist()] if values.dim() == 1 else [_rounded(row) for row in values]


def model_entry(name: str, label: str, model, weights: str, images: torch.Tensor, captions: list,
                seeds: list, population: torch.Tensor, directions: int = 4) -> dict:
    """One model's part of the page: its image shape, endpoints and (VAEs) principal directions, as plain JSON.

    ``name``: the ONNX file's name (``explorer/<name>.onnx``); ``weights``: SHA-256 of the shipped weights
    (the page refuses a decoder exported from other weights); ``images`` M x C x H x W test images and
    their ``captions``, encoded as endpoints for a VAE (a GAN has none); ``seeds``: seeds whose N(0, I)
    codes are further endpoints, the same for every model; ``directions``: K principal directions of
    the encoded ``population`` (N x C x H x W test images: the aggregate posterior).
    """
    decoder = explore.BaseDecoder(model)
    with torch.no_grad():
        image_shape = list(decoder(explore.seed_code(0, decoder.latent_dim)[None]).shape[1:])  # C, H, W
    endpoints = [{"label": f"seed {seed}", "code": _rounded(explore.seed_code(seed, decoder.latent_dim))} for seed in seeds]
    pca = None
    if hasattr(model, "encoder"):
        codes = explore.encode(model, images)
        endpoints = [{"label": caption, "code": _rounded(code)} for caption, code in zip(captions, codes)] + endpoints
        mean, vectors, scales = explore.principal_directions(explore.encode(model, population), directions)
        pca = {"mean": _rounded(mean), "directions": _rounded(vectors), "scales": _rounded(scales)}
    return {"name": name, "label": label, "weights": weights, "latent_dim": decoder.latent_dim,
            "image_shape": image_shape, "endpoints": endpoints, "pca": pca}


def _picture(image: torch.Tensor):
    """One image C x H x W as matplotlib draws it: H x W (grey, C = 1) or H x W x 3 (colour)."""
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).clamp(0, 1).numpy()


def interpolation_frames(model, entry: dict, start: int, end: int, kind: str, frames: int) -> torch.Tensor:
    """The images along the path between two endpoints of ``entry``: T x C x H x W."""
    z0, z1 = (torch.tensor(entry["endpoints"][i]["code"]) for i in (start, end))
    with torch.no_grad():
        return explore.BaseDecoder(model)(explore.interpolate(z0, z1, torch.linspace(0, 1, frames), kind))


def fallback_animation(models: dict, entries: list, start: int = 0, end: int = 1, frames: int = 11):
    """A frame-by-frame JavaScript slider of the page's first interpolation, for when the runtime cannot load:
    one column per model (``models``: entry name -> model), a row each for the linear and the spherical path."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    paths = {(e["name"], kind): interpolation_frames(models[e["name"]], e, start, end, kind, frames)
             for e in entries for kind in explore.KINDS}
    fig, axes = plt.subplots(2, len(entries), figsize=(1.4 * len(entries), 3.0), dpi=72, squeeze=False)
    pictures = []
    for col, entry in enumerate(entries):
        for row, kind in enumerate(explore.KINDS):
            ax = axes[row, col]
            pictures.append((ax.imshow(_picture(paths[entry["name"], kind][0]), cmap="gray", vmin=0, vmax=1),
                             paths[entry["name"], kind]))
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{entry['label']}\n{kind}" if row == 0 else kind, fontsize=8)
    fig.tight_layout()

    def draw(frame):
        for picture, path in pictures:
            picture.set_data(_picture(path[frame]))
        return [picture for picture, _ in pictures]

    animation = FuncAnimation(fig, draw, frames=frames, interval=120)
    player = plots.animation_html(animation)
    plt.close(fig)
    return player


def page(entries: list, fallback) -> "IPython.display.HTML":
    """The explorer's HTML: the data for ``latent_explorer.js`` and the ``fallback`` animation (HTML)."""
    from IPython.display import HTML

    data = json.dumps({"models": entries, "kinds": list(explore.KINDS)})
    data = data.replace("</", "<\\/")  # a JSON string may not close the <script> element
    return HTML(
        '<div class="latent-explorer">\n'
        f'<script type="application/json" class="latent-explorer-data">{data}</script>\n'
        '<p class="latent-explorer-status">The live explorer runs on the book\'s website (with its offline web '
        'assets). Here is the same interpolation, frame by frame:</p>\n'
        f'<div class="latent-explorer-fallback">{fallback.data}</div>\n'
        '</div>'
    )

