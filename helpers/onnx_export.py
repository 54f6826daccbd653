"""The shipped decoders as ONNX files, so a web page runs them in the reader's browser.

``python -m helpers.onnx_export OUT`` (``make explorer-assets``) writes, for every explorable
model in ``pretrained/``, ``OUT/<name>.onnx``: its :class:`helpers.explore.BaseDecoder`
(base code N x D -> image N x C x H x W in [0, 1]) exported with ``torch.onnx.export``, and
checked against PyTorch with onnxruntime on CPU before it is kept. The files are derived from
the weights alone, so they are rebuilt, never committed.
"""
import argparse
import json
from pathlib import Path

import torch

from . import explore, pretrained, train

# Models with a decoder from base codes, as the static explorer names them: registry name, seed and the
# epochs of the shipped run (a chapter may ship the same model and seed at two budgets).
EXPLORABLE = {"vae": ("mnist-vae", 0, 50), "flow-vae": ("mnist-flow-vae", 0, 50),
              "imagenette-vae": ("imagenette-vae-logistic", 0, 50),
              "imagenette-gan": ("imagenette-gan-hinge-dcgan-sn-ema-diffaug", 0, 150)}
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
    """(model in eval mode, SHA-256 of its weights file) of an explorer name (see ``EXPLORABLE``), or None
    when ``pretrained/`` has no full-data run of that model, seed and epoch count. The model is what the run samples
    from (for a GAN with an average of G's weights, that average). Reads only ``pretrained/``: never a
    local checkpoint, never trains. Settings that do not change the weights' meaning (e.g. how often
    FID was measured) are not matched; two candidate runs are an error rather than a guess."""
    model, seed, epochs = EXPLORABLE[name]
    entries = [e for e in pretrained.manifest()["runs"] if e["identity"]["model"] == model
               and e["identity"]["seed"] == seed and e["identity"]["epochs"] == epochs
               and e["identity"].get("train_limit") is None]
    if len(entries) > 1:
        raise pretrained.PretrainedError(f"{len(entries)} shipped runs of {model} seed {seed}, {epochs} epochs "
                                         f"({', '.join(e['file'] for e in entries)}): which one the explorer shows "
                                         f"is ambiguous; ship one.")
    state = pretrained.load(entries[0]["identity"], map_location="cpu") if entries else None
    if state is None:
        return None
    return train.shipped_objective(entries[0]["identity"], state).sampling_model().eval(), entries[0]["sha256"]


def main(argv=None) -> dict:
    """Export every shipped explorable model to OUT; write OUT/decoders.json: name -> file, SHA-256 of the
    weights it came from (the page checks it against the codes it embeds), D and the max difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the .onnx files")
    out = parser.parse_args(argv).out
    written = {}
    for name in EXPLORABLE:
        shipped = shipped_model(name)
        if shipped is None:
            print(f"{name}: no shipped weights in {pretrained.folder()}, not exported")
            continue
        decoder = explore.BaseDecoder(shipped[0])
        difference = export_checked(decoder, out / f"{name}.onnx")
        written[name] = {"file": f"{name}.onnx", "weights": shipped[1], "latent_dim": decoder.latent_dim,
                         "max_difference": difference}
        print(f"{name}: {out / f'{name}.onnx'} (max |ONNX - PyTorch| = {difference:.1e})")
    out.mkdir(parents=True, exist_ok=True)
    (out / "decoders.json").write_text(json.dumps(written, indent=1) + "\n")
    return written


if __name__ == "__main__":
    main()
