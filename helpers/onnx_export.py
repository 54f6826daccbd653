"""The shipped decoders as ONNX files, so a web page runs them in the reader's browser.

``python -m helpers.onnx_export OUT`` (``make explorer-assets``) writes, for every explorable
model in ``pretrained/``, ``OUT/<name>.onnx``: its :class:`helpers.explore.BaseDecoder`
(base code N x D -> image N x C x H x W in [0, 1]) exported with ``torch.onnx.export``, and
checked against PyTorch with onnxruntime on CPU before it is kept. The files are derived from
the weights alone, so they are rebuilt, never committed.
"""
import argparse
import dataclasses
import json
from pathlib import Path

import torch

from . import data, explore, objectives, pretrained, train

# Models with a decoder from base codes, as the static explorer names them: registry name and seed.
EXPLORABLE = {"vae": ("mnist-vae", 0), "flow-vae": ("mnist-flow-vae", 0)}
TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An exported network disagrees with PyTorch."""


def export(decoder: explore.BaseDecoder, path: Path) -> Path:
    """Write ``decoder`` (N x D -> N x C x H x W) to ``path`` as ONNX, with a dynamic batch size N."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, decoder.latent_dim)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.onnx.export(decoder.eval(), (example,), input_names=["code"], output_names=["image"],
                                    dynamic_shapes={"u": {0: batch}}, dynamo=True, verbose=False)
    program.save(str(path))  # one file: the weights inside, not in a side file
    return path


def max_difference(decoder: explore.BaseDecoder, path: Path, codes: torch.Tensor) -> float:
    """Largest |ONNX - PyTorch| over the images of ``codes`` (N x D), the ONNX file run by onnxruntime on CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_images,) = session.run(["image"], {"code": codes.numpy()})
    with torch.no_grad():
        torch_images = decoder(codes)
    if onnx_images.shape != tuple(torch_images.shape):
        raise ExportError(f"{path}: ONNX images {onnx_images.shape}, PyTorch {tuple(torch_images.shape)}.")
    return float((torch.from_numpy(onnx_images) - torch_images).abs().max())


def export_checked(decoder: explore.BaseDecoder, path: Path) -> float:
    """:func:`export`, then compare with PyTorch on 64 prior draws; raise :class:`ExportError` above 1e-4.
    Returns the largest difference."""
    export(decoder, path)
    codes = torch.randn(64, decoder.latent_dim, generator=torch.Generator().manual_seed(0))
    difference = max_difference(decoder, path, codes)
    if difference > TOLERANCE:
        Path(path).unlink()
        raise ExportError(f"{path}: the ONNX decoder differs from PyTorch by up to {difference:.2e} "
                          f"(> {TOLERANCE}); the file was removed.")
    return difference


def shipped_model(name: str):
    """The shipped model of an explorer name (see ``EXPLORABLE``) in eval mode, or None when its weights
    are not in ``pretrained/``. Reads only ``pretrained/``: never a local checkpoint, never trains."""
    model, seed = EXPLORABLE[name]
    config = train.config_for(model, seed=seed)
    spec = objectives.spec(model)
    state = pretrained.load({**dataclasses.asdict(config), "data": data.source(spec.dataset)}, map_location="cpu")
    if state is None:
        return None
    torch.manual_seed(0)  # construction draws initial weights, all replaced below
    network = spec.build(config).model
    network.load_state_dict(state["model"])
    return network.eval()


def main(argv=None) -> dict:
    """Export every shipped explorable model to OUT; write OUT/decoders.json (name -> file, D, max difference)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the .onnx files")
    out = parser.parse_args(argv).out
    written = {}
    for name in EXPLORABLE:
        model = shipped_model(name)
        if model is None:
            print(f"{name}: no shipped weights in {pretrained.folder()}, not exported")
            continue
        decoder = explore.BaseDecoder(model)
        difference = export_checked(decoder, out / f"{name}.onnx")
        written[name] = {"file": f"{name}.onnx", "latent_dim": decoder.latent_dim, "max_difference": difference}
        print(f"{name}: {out / f'{name}.onnx'} (max |ONNX - PyTorch| = {difference:.1e})")
    out.mkdir(parents=True, exist_ok=True)
    (out / "decoders.json").write_text(json.dumps(written, indent=1) + "\n")
    return written


if __name__ == "__main__":
    main()
