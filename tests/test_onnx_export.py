"""The ONNX decoders the web page runs agree with PyTorch (onnxruntime on CPU), for every kind of model."""
import dataclasses
import json

import pytest
import torch

from builders import flow_vae
from helpers import data, explore, models, onnx_export, pretrained, registry, train


@pytest.mark.parametrize("make", [lambda: models.mnist_vae().eval(), flow_vae,
                                  lambda: models.mnist_gan_small_d().eval()], ids=["vae", "flow-vae", "gan"])
def test_onnx_decoder_equals_pytorch_within_1e_4(make, tmp_path):
    decoder = explore.BaseDecoder(make())
    path = tmp_path / "decoder.onnx"
    assert onnx_export.export_checked(decoder, path) <= onnx_export.TOLERANCE
    for n in (1, 5):  # the batch size is not fixed by the export
        codes = 2 * torch.randn(n, 100, generator=torch.Generator().manual_seed(n))
        assert onnx_export.max_difference(decoder, path, codes) <= onnx_export.TOLERANCE


def test_flow_vae_decoder_passes_codes_through_the_inverse_flow(tmp_path):
    """Without F^-1 in the exported network the flow VAE's images would be those of u, not z = F^-1(u)."""
    vae = flow_vae()
    u = torch.randn(3, 100, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(explore.BaseDecoder(vae)(u), vae.decode(u), atol=1e-3)
    assert torch.allclose(explore.BaseDecoder(vae)(u), vae.decode(vae.prior.inverse(u)), atol=1e-6)


def test_a_file_of_other_weights_is_caught(tmp_path):
    vae = models.mnist_vae().eval()
    decoder = explore.BaseDecoder(vae)
    path = onnx_export.export(decoder, tmp_path / "decoder.onnx")
    with torch.no_grad():
        vae.decoder.net[-1].bias += 0.1
    assert onnx_export.max_difference(decoder, path, torch.randn(4, 100)) > 1e-2


def test_main_exports_exactly_the_shipped_models(tmp_path, monkeypatch):
    """Shipped mnist-vae weights (random ones, stored in fp16) and no flow VAE: one file, from those weights."""
    monkeypatch.setenv("DGM_PRETRAINED", str(tmp_path / "pretrained"))
    monkeypatch.setenv(pretrained.SWITCH, "1")
    config = train.config_for("mnist-vae", seed=0, fid_every=5, fid_n=500)  # FID settings do not matter
    torch.manual_seed(3)
    vae = models.mnist_vae()
    identity = {**dataclasses.asdict(config), "data": data.source(registry.spec("mnist-vae").dataset)}
    entry = pretrained.export({"objective": {"model": vae.state_dict()}, "history": [], "timings": []}, identity,
                              results=None, half=True)
    written = onnx_export.main([str(tmp_path / "out")])
    assert list(written) == ["vae"] and json.loads((tmp_path / "out" / "decoders.json").read_text()) == written
    assert not (tmp_path / "out" / "flow-vae.onnx").exists()
    assert written["vae"]["weights"] == entry["sha256"]
    shipped, sha = onnx_export.shipped_model("vae")
    assert sha == entry["sha256"]
    assert all(torch.equal(a, b.half().float()) for a, b in zip(shipped.parameters(), vae.parameters()))
    assert onnx_export.max_difference(explore.BaseDecoder(shipped), tmp_path / "out" / "vae.onnx",
                                      torch.randn(4, 100)) <= onnx_export.TOLERANCE
    pretrained.export({"objective": {"model": vae.state_dict()}, "history": [], "timings": []},
                      {**identity, "fid_every": 0}, results=None, half=True)
    with pytest.raises(pretrained.PretrainedError, match="ambiguous"):
        onnx_export.shipped_model("vae")


def test_a_gan_with_an_average_is_explored_and_exported_through_the_average(tmp_path, monkeypatch):
    """The explorer must draw what the chapters sample: for a GAN that samples from the average of G's
    weights, the shipped model's generator is that average (with its own batch-norm statistics)."""
    monkeypatch.setenv("DGM_PRETRAINED", str(tmp_path / "pretrained"))
    monkeypatch.setenv("DGM_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv(pretrained.SWITCH, "1")
    monkeypatch.setitem(onnx_export.EXPLORABLE, "dcgan", ("mnist-dcgan-ns", 0, 1))
    config = train.config_for("mnist-dcgan-ns", epochs=1, train_limit=64, val_limit=16, batch_size=16)
    run = train.run(config, progress=False)
    from helpers import checkpoints
    identity = {**dataclasses.asdict(config), "data": data.source("mnist")}
    pretrained.export(checkpoints.load(run.folder), {**identity, "train_limit": None}, results=None, half=False)
    explored, _ = onnx_export.shipped_model("dcgan")
    z = torch.randn(6, 100, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = torch.sigmoid(run.objective.averaged_generator()(z))
        assert torch.allclose(explored.decode(z), expected, atol=1e-6), "the explorer draws from the average"
        assert not torch.allclose(explored.decode(z), torch.sigmoid(run.model.generator(z)), atol=1e-3)
    assert onnx_export.export_checked(explore.BaseDecoder(explored), tmp_path / "dcgan.onnx") <= onnx_export.TOLERANCE
