"""The conv networks of the Imagenette chapter: their geometry (image -> 1 x 1 x D latent -> image),
the report's two errors and their corrections, the registry entries, and clear errors for bad sizes."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from helpers import conv_models, data, flows, losses, models, objectives, registry, train

from builders import registered as build

SIZES = [64, 160]
IMAGENETTE_MODELS = sorted(name for name in registry.MODELS if name.startswith("imagenette-"))


pytestmark = pytest.mark.usefixtures("own_checkpoints")  # run folders in a temporary directory


def images(n, size, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def sides(network, x):
    """The spatial side of every conv layer's output on input x, in order."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, out: seen.append(out.shape[-1]))
             for m in network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        network(x)
    for hook in hooks:
        hook.remove()
    return seen


# ------------------------------------------------------------------ geometry

@pytest.mark.parametrize("size", SIZES)
def test_four_halvings_and_one_full_kernel_reach_a_1x1_latent_and_come_back(size):
    torch.manual_seed(0)
    x = images(2, size)
    encoder, decoder = conv_models.ConvEncoder(size), conv_models.ConvDecoder(size)
    down = [size // 2, size // 4, size // 8, size // 16]
    assert sides(encoder, x) == down + [1, 1], "encoder: S -> S/2 -> ... -> S/16 -> 1 (mu and logvar heads)"
    assert sides(decoder, torch.randn(2, 100)) == [size // 16, size // 8, size // 4, size // 2, size], \
        "decoder: 1 -> S/16 -> ... -> S, the encoder mirrored"
    assert sides(conv_models.ReportConvEncoder(size), x) == down + [1]
    assert sides(conv_models.ConvDiscriminator(size), x) == down + [1]
    h = encoder.features(x)
    assert encoder.mu(h).shape == (2, 100, 1, 1), "the latent is a 1 x 1 map of 100 channels"
    mu, _ = encoder(x)
    assert decoder(mu).shape == x.shape, "image -> latent -> image of the same size"


def test_the_report_widths_in_order():
    out_channels = lambda net: [m.out_channels for m in net.modules()
                                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert out_channels(conv_models.ReportConvEncoder()) == [16, 32, 32, 64, 100], "eq. 3.5 / 3.7"
    assert out_channels(conv_models.ConvDecoder()) == [64, 32, 32, 16, 3], "eq. 3.6 / 3.8"
    assert out_channels(conv_models.ConvEncoder()) == [16, 32, 32, 64, 100, 100], "two heads instead of one"
    assert out_channels(conv_models.ConvDiscriminator()) == [16, 32, 32, 64, 1], "one logit instead of 100"
    slopes = {m.negative_slope for m in conv_models.ReportConvEncoder().modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}


def test_decoder_takes_any_leading_axes():
    torch.manual_seed(0)
    decoder = conv_models.ConvDecoder(64)
    z = torch.randn(3, 5, 100)
    logits = decoder(z)
    assert logits.shape == (3, 5, 3, 64, 64), "L samples x N latents, as the VAE's forward passes them"
    assert torch.allclose(logits[1, 2], decoder(z[1, 2:3])[0], atol=1e-5)


# ------------------------------------------------------------------ the report's errors and the corrections

def test_report_encoder_gives_one_bounded_vector_the_corrected_one_a_gaussian():
    torch.manual_seed(0)
    x = images(4, 64)
    report = conv_models.ReportConvEncoder(64)
    assert [type(m).__name__ for m in report.tail] == ["Conv2d", "LeakyReLU", "Tanh"], "eq. 3.5's last layer"
    h = report(x)
    assert isinstance(h, torch.Tensor) and h.shape == (4, 100), "the report's encoder: one vector per image"
    assert report(1e3 * x).abs().max() <= 1, "... squashed into [-1, 1] by Tanh: no room for a mean and a variance"
    mu, logvar = conv_models.ConvEncoder(64)(x)
    assert mu.shape == logvar.shape == (4, 100)
    assert not torch.equal(mu, logvar), "two separate heads"
    vae = conv_models.imagenette_vae(64)
    terms = vae(x)
    assert set(terms) == {"loss", "rec", "kl"} and torch.isfinite(terms["loss"])


def test_corrected_discriminator_gives_one_logit_per_image():
    torch.manual_seed(0)
    x = images(5, 160)
    assert conv_models.ConvDiscriminator(160)(x).shape == (5,)
    assert conv_models.ReportConvEncoder(160)(x).shape == (5, 100), "the report's D: 100 numbers, not a logit"


def fit_constant(decoder, z, value, steps=30):
    """Train the decoder's weights for ``steps`` Adam steps towards images that are all ``value``."""
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(steps):
        logits = decoder(z)
        loss = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, value))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return torch.sigmoid(decoder(z))


def darkest_latents(decoder, steps=50):
    """Latents found by gradient descent on the mean brightness of their images."""
    z = torch.randn(4, 100).mul_(3).requires_grad_()
    optimizer = torch.optim.Adam([z], lr=0.5)
    for _ in range(steps):
        brightness = torch.sigmoid(decoder(z)).mean()
        optimizer.zero_grad()
        brightness.backward()
        optimizer.step()
    return z.detach()


@pytest.mark.parametrize("size", SIZES)
def test_report_decoder_never_draws_below_mid_grey(size):
    torch.manual_seed(0)
    decoder = conv_models.ConvDecoder(size, report_tail=True)
    dark = darkest_latents(decoder)
    with torch.no_grad():
        for scale in (1, 10, 1000):
            assert torch.sigmoid(decoder(scale * torch.randn(8, 100))).min() >= 0.5, f"random latents x {scale}"
        assert torch.sigmoid(decoder(dark)).min() >= 0.5, "latents chosen to be dark"
    black = fit_constant(decoder, torch.randn(4, 100), 0.0)
    assert black.min() >= 0.5, "even weights trained towards black images: ReLU then Sigmoid stays >= 0.5"
    gan = conv_models.imagenette_gan(size, report_tail=True)
    assert gan.sample(6).min() >= 0.5, "the report's generator has the same floor"


def test_corrected_decoder_reaches_black_and_white():
    torch.manual_seed(0)
    z = torch.randn(4, 100)
    assert fit_constant(conv_models.ConvDecoder(64), z, 0.0).max() < 0.01, "all pixels near 0"
    assert fit_constant(conv_models.ConvDecoder(64), z, 1.0).min() > 0.99, "all pixels near 1"
    assert fit_constant(conv_models.ConvDecoder(64, report_tail=True), z, 1.0).min() > 0.99, \
        "the report's decoder can draw white: only the dark half is missing"


# ------------------------------------------------------------------ the registry


def params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_registry_names_sizes_tails_and_the_report_settings():
    assert len(IMAGENETTE_MODELS) == 14 + 2 * len(registry.IMAGENETTE_REPORT_IMPROVEMENTS) \
        + 2 * len(registry.IMAGENETTE_GAN_LADDER)
    for name in IMAGENETTE_MODELS:
        spec = registry.spec(name)
        objective = build(name)
        size = 160 if name.endswith("-160") else 64
        assert spec.dataset == "imagenette" and spec.image_size == size, name
        networks = [objective.model.decoder] if "-vae" in name else [objective.model.generator, objective.model.discriminator]
        assert {n.size for n in networks} == {size}, f"{name}: built for {size} px, as its data is loaded"
        decoder = networks[0]
        assert isinstance(decoder.net[-1], torch.nn.ReLU) == ("-report" in name), \
            f"{name}: the report's ReLU before the Sigmoid only in the -report entries"
        expected = {"epochs": 50, "batch_size": 80, "lr": 1e-4} if "-vae" in name else \
                   {"epochs": 150, "batch_size": 50, "lr": 5e-5}
        assert spec.defaults == expected, f"{name}: the report's settings"
        if "-gan" in name:
            expected_loss = "hinge" if "-hinge" in name else "ns" if "-ns" in name else "minimax"
            assert objective.generator_loss_name == expected_loss, name
            widths = [m.out_channels for m in objective.model.discriminator.trunk if isinstance(m, torch.nn.Conv2d)]
            assert widths == ([32, 64, 64, 128] if "-wide" in name else [16, 32, 32, 64]), \
                f"{name}: the report's widths, doubled in its 'wider feature maps' improvement"
            noisy = objective.discriminator_loss is losses.discriminator_loss_noisy_labels
            assert noisy == ("-noisy" in name), f"{name}: noisy target labels only where named"
        else:
            likelihood = objective.model.likelihood
            cdf = "normal" if "-normal" in name else "logistic" if "-logistic" in name else None
            assert getattr(likelihood, "cdf", None) == cdf, f"{name}: the report's Bernoulli, or the named discretized one"
            assert cdf is None or likelihood.log_scale.shape == (3,), "one scale per colour channel"


@pytest.mark.parametrize("name", IMAGENETTE_MODELS)
def test_registry_entry_takes_a_finite_step_on_synthetic_images(name):
    objective = build(name)
    size = registry.spec(name).image_size
    x = data.synthetic("imagenette", "train", size=size, n=4).float()
    before = params(objective.model)
    terms = objective.train_step(x)
    assert all(torch.isfinite(v).all() for v in terms.values()), f"{name}: {terms}"
    assert torch.isfinite(params(objective.model)).all()
    assert not torch.equal(params(objective.model), before), f"{name}: one step must change the weights"
    assert objective.sample(2).shape == (2, 3, size, size)


def test_the_loop_loads_imagenette_at_the_models_size():
    """The 160 px entry trains through helpers.train (64 px is the data's default: a 160 px model fed
    64 px images would stop with the networks' size error)."""
    config = train.config_for("imagenette-vae-160", epochs=1, train_limit=16, val_limit=8, batch_size=8)
    run = train.run(config, progress=False)
    record = run.history[0]
    assert record["train_loss"] == record["train_loss"] and record["val_loss"] == record["val_loss"]
    assert run.model.sample(1).shape == (1, 3, 160, 160)


def test_command_line_knows_the_imagenette_models():
    config, _ = train._parse(["--model", "imagenette-gan-ns-160", "--epochs", "2"])
    assert (config.model, config.epochs, config.batch_size, config.lr) == ("imagenette-gan-ns-160", 2, 50, 5e-5)


# ------------------------------------------------------------------ bad sizes

@pytest.mark.parametrize("size", [100, 8, 0, -64, 64.0, True, "64"])
def test_bad_image_size_is_refused_with_what_to_use(size):
    for make in (conv_models.ConvEncoder, conv_models.ConvDecoder, conv_models.ConvDiscriminator,
                 conv_models.ReportConvEncoder, conv_models.imagenette_vae, conv_models.imagenette_gan):
        with pytest.raises(ValueError, match="multiple of 16.*64.*160"):
            make(size)


def test_images_of_another_size_are_refused_before_any_layer_runs():
    encoder = conv_models.ConvEncoder(64)
    with pytest.raises(ValueError, match=r"built for N x 3 x 64 x 64 images, got \(2, 3, 160, 160\).*size=64"):
        encoder(images(2, 160))
    with pytest.raises(ValueError, match="built for N x 3 x 160 x 160"):
        conv_models.ConvDiscriminator(160)(torch.rand(2, 1, 160, 160))


def test_channels_give_one_halving_per_width():
    for make in (conv_models.ConvEncoder, conv_models.ConvDecoder, conv_models.ConvDiscriminator):
        for bad in [(), (16, 0, 64), (16, 32.0)]:
            with pytest.raises(ValueError, match="must list one positive width per halving layer"):
                make(64, channels=bad)
    wide = conv_models.ConvDiscriminator(64, channels=(64, 128, 256, 512))
    assert wide(images(2, 64)).shape == (2,), "any four widths work (DCGAN's, for instance)"
    three = conv_models.ConvDiscriminator(64, channels=(16, 32, 64))
    assert sides(three, images(2, 64)) == [32, 16, 8, 1], "three halvings, then an 8 x 8 kernel"
    assert conv_models.ConvDecoder(64, 10, channels=(16, 32, 64))(torch.randn(2, 10)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="halve the side 3 times, so it must be a multiple of 8"):
        conv_models.ConvDecoder(60, 10, channels=(16, 32, 64))


# ------------------------------------------------------------------ the MNIST conv models

MNIST_CONV_MODELS = ["mnist-conv-vae", "mnist-conv-flow-vae", "mnist-dcgan-ns", "mnist-dcgan-hinge"]


def test_mnist_conv_networks_read_and_draw_one_channel_at_32_px():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 32, 32)
    vae = conv_models.mnist_conv_vae()
    mu, logvar = vae.encoder(x)
    assert mu.shape == logvar.shape == (3, 16), "a 16-d latent by default"
    assert sides(vae.encoder, x) == [16, 8, 4, 2, 1, 1], "four halvings, then a 2 x 2 kernel down to 1 x 1"
    assert vae.decoder(mu).shape == (3, 1, 32, 32)
    gan = conv_models.mnist_dcgan()
    assert gan.generator(torch.randn(4, 100)).shape == (4, 1, 32, 32)
    assert gan.discriminator(x).shape == (3,)
    assert sides(gan.discriminator, x) == [16, 8, 4, 1], "D: three halvings, then a 4 x 4 kernel (DCGAN's D)"
    first = gan.generator.net[0]
    assert (first.kernel_size, first.out_channels) == ((4, 4), 256), "G starts from a 4 x 4 map, not 2 x 2"
    with pytest.raises(ValueError, match=r"built for N x 1 x 32 x 32 images, got \(2, 3, 32, 32\)"):
        vae.encoder(torch.rand(2, 3, 32, 32))


def test_mnist_dcgan_has_batch_norm_in_g_and_spectral_norm_on_every_layer_of_d():
    gan = conv_models.mnist_dcgan()
    g_convs = [m for m in gan.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    g_norms = [m for m in gan.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(g_norms) == len(g_convs) - 1, "batch norm after every transposed convolution but the last"
    assert [m.out_channels for m in g_convs] == [256, 128, 64, 1]
    d_convs = [m for m in gan.discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(d_convs) == 4 and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in d_convs)
    plain = conv_models.mnist_dcgan(spectral_norm=False)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m, "weight")
                   for m in plain.discriminator.modules() if isinstance(m, torch.nn.Conv2d))


def test_mnist_conv_registry_entries_and_their_settings():
    vae = train.config_for("mnist-conv-vae")
    assert (vae.latent_dim, vae.lr, vae.batch_size) == (16, 1e-3, 64)
    assert dataclasses.replace(train.config_for("mnist-conv-flow-vae"), model="mnist-conv-vae") == vae, \
        "the flow-prior conv VAE differs from the conv VAE in its prior only"
    flow_vae = build("mnist-conv-flow-vae").model
    assert isinstance(flow_vae.prior, flows.RealNVPPrior) and flow_vae.prior.dim == 16
    assert isinstance(build("mnist-conv-vae").model.prior, models.StandardNormalPrior)
    for name in ["mnist-dcgan-ns", "mnist-dcgan-hinge"]:
        objective = build(name)
        assert isinstance(objective, objectives.StabilizedGANObjective) and objective.generator_ema is not None
        assert objective.generator_loss_name == name.rsplit("-", 1)[1]
        assert not objective.augment, "no flips: a mirrored digit is not a digit"
    config, _ = train._parse(["--model", "mnist-dcgan-ns", "--seed", "2"])
    assert (config.epochs, config.batch_size, config.lr, config.seed) == (20, 64, 2e-4, 2)


@pytest.mark.parametrize("name", MNIST_CONV_MODELS)
def test_mnist_conv_entry_takes_a_finite_step_on_digit_sized_images(name):
    objective = build(name)
    x = data.synthetic("mnist", "train", n=4).float()
    assert x.shape[1:] == (1, 32, 32)
    before = params(objective.model)
    terms = objective.train_step(x)
    assert all(torch.isfinite(v).all() for v in terms.values()), f"{name}: {terms}"
    assert not torch.equal(params(objective.model), before), f"{name}: one step must change the weights"
    assert objective.sample(2).shape == (2, 1, 32, 32)


def test_mnist_conv_vae_fits_a_batch():
    """Thirty steps on one batch of 32 synthetic digits must lower its negative ELBO by a third: an
    encoder or decoder that lost its gradient (or a KL with the wrong sign) would not."""
    torch.manual_seed(0)
    objective = registry.spec("mnist-conv-vae").build(train.config_for("mnist-conv-vae"))
    x = data.synthetic("mnist", "train", n=32).float()
    first = objective.train_step(x)["loss"].item()
    for _ in range(29):
        last = objective.train_step(x)["loss"].item()
    assert last < first * 2 / 3, (first, last)


@pytest.mark.parametrize("name", [n for n in IMAGENETTE_MODELS if not n.endswith("-160")])
def test_imagenette_weights_are_channels_last_and_compute_what_contiguous_weights_do(name):
    channels_last, contiguous = build(name), build(name)  # build() seeds: the same initial weights
    contiguous.model.to(memory_format=torch.contiguous_format)
    convs = [m for m in channels_last.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    stored = [m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight for m in convs]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in stored)
    x = data.synthetic("imagenette", "train", size=registry.spec(name).image_size, n=4).float()
    terms = []
    for objective in (channels_last, contiguous):
        torch.manual_seed(1)
        terms.append(objective.train_step(x))
    for key, value in terms[0].items():
        assert torch.allclose(value, terms[1][key], rtol=1e-4, atol=1e-5), (name, key)
    assert torch.allclose(params(channels_last.model), params(contiguous.model), atol=1e-5), "the same step"


def test_imagenette_name_picks_the_registry_entry_of_a_size_and_refuses_others():
    from helpers import registry

    assert registry.imagenette_name("imagenette-gan-ns", 64) == "imagenette-gan-ns"
    assert registry.imagenette_name("imagenette-gan-ns", 160) == "imagenette-gan-ns-160"
    assert registry.spec(registry.imagenette_name("imagenette-vae", 160)).image_size == 160
    with pytest.raises(ValueError, match="64 px"):
        registry.imagenette_name("imagenette-vae", 128)
