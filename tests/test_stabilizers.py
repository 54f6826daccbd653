"""The GAN stabilizers of the Imagenette chapter, each against what it promises: batch norm in G,
spectral normalization in D, the hinge loss, an average of G's weights, and differentiable
augmentation; then the registry's ablation ladder, and the existing entries left as they were.

Networks are the report's small widths, at 16 or 64 px, and runs a few steps, so the file takes seconds.
"""
import io

import pytest
import torch

from helpers import augment, conv_models, data, losses, objectives, registry, train

from builders import fingerprint, interrupted_and_uninterrupted, registered as build

LADDER = list(registry.IMAGENETTE_GAN_LADDER)


pytestmark = pytest.mark.usefixtures("own_checkpoints")  # run folders in a temporary directory



def small_gan(size=16, **options):
    torch.manual_seed(0)
    return conv_models.imagenette_gan(size, latent_dim=8, **options)


def real_images(n, size, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


# ------------------------------------------------------------------ the hinge loss

def test_hinge_losses_on_hand_picked_logits():
    real = torch.tensor([2.0, 1.0, 0.5, -1.0], requires_grad=True)
    fake = torch.tensor([-2.0, -1.0, 0.0, 1.5], requires_grad=True)
    d_loss = losses.discriminator_loss_hinge(real, fake)
    # max(0, 1 - r) = 0, 0, 0.5, 2 (mean 0.625); max(0, 1 + f) = 0, 0, 1, 2.5 (mean 0.875)
    assert d_loss.item() == pytest.approx(1.5), "D's hinge: mean max(0, 1 - D(x)) + mean max(0, 1 + D(G(z)))"
    d_loss.backward()
    # Only the logits inside the margin pass a gradient, -1/N for real and +1/N for fake.
    assert real.grad.tolist() == [0, 0, -0.25, -0.25] and fake.grad.tolist() == [0, 0, 0.25, 0.25]
    g_loss = losses.generator_loss_hinge(fake)
    assert g_loss.item() == pytest.approx(0.375), "G's hinge: -mean D(G(z)) = -(-2 - 1 + 0 + 1.5) / 4"


def test_hinge_discriminator_loss_is_zero_beyond_the_margins():
    generator = torch.Generator().manual_seed(0)
    real = 1 + 5 * torch.rand(100, generator=generator)       # every real logit >= 1
    fake = -1 - 5 * torch.rand(100, generator=generator)      # every fake logit <= -1
    real[0], fake[0] = 1.0, -1.0                              # exactly on the margin counts as beyond it
    assert losses.discriminator_loss_hinge(real, fake).item() == 0
    assert losses.discriminator_loss_hinge(real, fake + 1.5).item() > 0, "a fake logit above -1 costs D"
    assert losses.discriminator_loss_hinge(real - 1.5, fake).item() > 0, "a real logit below 1 costs D"


def test_hinge_generator_gradient_never_saturates():
    fake = torch.tensor([-50.0, -5.0, 0.0, 5.0, 50.0], requires_grad=True)
    losses.generator_loss_hinge(fake).backward()
    assert torch.equal(fake.grad, torch.full_like(fake, -1 / 5)), \
        "-mean D(G(z)) gives every sample the same push, however confidently D rejects it"


def test_hinge_objective_trains_and_evaluates_d_on_the_hinge_and_refuses_noisy_labels():
    objective = objectives.GANObjective(small_gan(), 1e-4, "hinge")
    assert objective.discriminator_loss is losses.discriminator_loss_hinge
    x = real_images(6, 16)
    objective.model.eval()
    torch.manual_seed(1)
    terms = objective.eval_step(x)
    torch.manual_seed(1)
    with torch.no_grad():
        fake = objective.model.sample(6)
        logits = objective.model.discriminator(torch.cat([x, fake]))
    assert torch.equal(terms["d_loss"], losses.discriminator_loss_hinge(logits[:6], logits[6:]))
    assert "g_grad_norm_hinge" in terms and "g_grad_norm_ns" in terms
    with pytest.raises(ValueError, match="noisy_labels.*minimax or ns"):
        objectives.GANObjective(small_gan(), 1e-4, "hinge", noisy_labels=True)


def test_cross_entropy_gans_keep_their_two_diagnosed_losses():
    objective = objectives.GANObjective(small_gan(), 1e-4, "ns")
    objective.model.eval()
    terms = objective.eval_step(real_images(4, 16))
    assert {k for k in terms if k.startswith("g_grad_norm")} == {"g_grad_norm_minimax", "g_grad_norm_ns"}, \
        "the existing GANs' histories keep exactly their keys"


# ------------------------------------------------------------------ batch norm in G (DCGAN)

def layer_types(network):
    return [type(m).__name__ for m in network.net]


def test_dcgan_generator_has_batch_norm_after_every_transposed_conv_but_the_last():
    generator = conv_models.ConvDecoder(64, batch_norm=True)
    assert layer_types(generator) == ["ConvTranspose2d", "BatchNorm2d", "ReLU"] * 4 + ["ConvTranspose2d"]
    convs = [m for m in generator.net if isinstance(m, torch.nn.ConvTranspose2d)]
    norms = [m for m in generator.net if isinstance(m, torch.nn.BatchNorm2d)]
    assert [n.num_features for n in norms] == [c.out_channels for c in convs[:-1]] == [64, 32, 32, 16]
    assert [c.bias is None for c in convs] == [True] * 4 + [False], "a bias before batch norm is cancelled by it"
    assert layer_types(conv_models.ConvDecoder(64)) == ["ConvTranspose2d", "ReLU"] * 4 + ["ConvTranspose2d"], \
        "the default generator has no batch norm"


def test_batch_norm_makes_the_generator_blind_to_the_scale_of_its_weights():
    torch.manual_seed(0)
    z = torch.randn(8, 100)
    outputs = {}
    for batch_norm in (True, False):
        generator = conv_models.ConvDecoder(64, batch_norm=batch_norm)  # training mode: the batch's statistics
        before = generator(z)
        with torch.no_grad():
            generator.net[0].weight.mul_(10)
        outputs[batch_norm] = (before, generator(z))
    assert torch.allclose(*outputs[True], atol=1e-4), "batch norm divides the scale of the first layer out"
    assert not torch.allclose(*outputs[False], atol=1e-2), "without it the scale passes to the images"


def test_dcgan_generator_samples_in_eval_mode_with_one_latent():
    gan = small_gan(batch_norm=True)
    gan.eval()
    assert gan.sample(1).shape == (1, 3, 16, 16), "eval mode uses running statistics, so one image works"


# ------------------------------------------------------------------ spectral norm in D

def spectral_norms(discriminator):
    """The largest singular value of every conv's weight, as the layer uses it (C_out x C_in*k*k)."""
    return [torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
            for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("size", [64, 160])
def test_spectral_norm_gives_every_layer_of_d_a_largest_singular_value_of_one(size):
    torch.manual_seed(0)
    discriminator = conv_models.ConvDiscriminator(size, spectral_norm=True)
    for m in discriminator.modules():
        if isinstance(m, torch.nn.Conv2d):
            with torch.no_grad():
                m.parametrizations.weight.original.mul_(30)  # the raw weights grow; what D uses must not
    x = real_images(1, size)
    for _ in range(300):  # each training-mode call refines the estimate by one power iteration
        discriminator(x)
    discriminator.eval()
    assert len(spectral_norms(discriminator)) == 5, "all five layers, the fifth included"
    assert spectral_norms(discriminator) == pytest.approx([1.0] * 5, abs=1e-3)
    assert discriminator(x).shape == (1,)
    plain = conv_models.ConvDiscriminator(size)
    assert not any(hasattr(m, "parametrizations") for m in plain.modules()), "no spectral norm by default"


# ------------------------------------------------------------------ the average of G's weights

def generator_weights(objective):
    return params(objective.model.generator).double()


def test_the_average_after_k_steps_is_the_closed_form_weighted_sum():
    decay, k = 0.7, 5  # a short horizon, so every step's weights count visibly (and d != 1 - d)
    objective = objectives.StabilizedGANObjective(small_gan(batch_norm=True), 1e-3, "ns", ema_decay=decay)
    x = real_images(4, 16)
    torch.manual_seed(2)
    history = []
    for _ in range(k):
        objective.train_step(x)
        history.append(generator_weights(objective))
    # W_ema after k updates = d^(k-1) W_1 + sum_{j=2..k} (1 - d) d^(k-j) W_j  (the first update copies W_1)
    expected = decay ** (k - 1) * history[0] + sum((1 - decay) * decay ** (k - j) * history[j - 1]
                                                   for j in range(2, k + 1))
    average = params(objective.generator_ema.module).double()
    assert torch.allclose(average, expected, atol=1e-6), "the average is not W <- d W + (1 - d) W_model"
    assert not torch.allclose(average, history[-1], atol=1e-4), "the average must lag the current weights"
    assert objective.generator_ema.n_averaged.item() == k, "one update per generator step"
    for name, buffer in objective.model.generator.named_buffers():
        assert torch.equal(objective.generator_ema.module.get_buffer(name), buffer), \
            f"batch norm's {name} is copied from G at every update, not averaged"


def test_sample_draws_from_the_average_once_it_exists():
    objective = objectives.StabilizedGANObjective(small_gan(batch_norm=True), 1e-3, "ns", ema_decay=0.5)
    objective.model.eval()
    torch.manual_seed(3)
    before = objective.sample(4)
    torch.manual_seed(3)
    assert torch.equal(before, objective.model.sample(4)), "before its first update the average is G itself"
    objective.model.train()
    for _ in range(3):
        objective.train_step(real_images(4, 16))
    objective.model.eval()
    torch.manual_seed(3)
    from_average = objective.sample(4)
    torch.manual_seed(3)
    with torch.no_grad():
        expected = torch.sigmoid(objective.generator_ema.module(objective.model.prior.sample(4)))
    torch.manual_seed(3)
    assert torch.equal(from_average, expected), "sample uses the averaged generator"
    assert not torch.allclose(from_average, objective.model.sample(4)), "... not G's current weights"
    torch.manual_seed(3)
    from_generator = objective.sample(4, average=False)
    torch.manual_seed(3)
    assert torch.equal(from_generator, objective.model.sample(4)), "average=False draws from G itself"
    assert not objective.generator_ema.training, "the average is never trained: batch norm in eval mode"


def test_the_average_is_saved_and_resumed_identically():
    x = real_images(4, 16)

    def objective():
        return objectives.StabilizedGANObjective(small_gan(batch_norm=True), 1e-3, "hinge", ema_decay=0.5,
                                                 augment=True)

    torch.manual_seed(4)
    uninterrupted = objective()
    for _ in range(4):
        uninterrupted.train_step(x)
    torch.manual_seed(4)
    stopped = objective()
    for _ in range(2):
        stopped.train_step(x)
    buffer = io.BytesIO()
    torch.save(stopped.state_dict(), buffer)
    rng = torch.get_rng_state()
    torch.manual_seed(99)  # another initialization: everything must come from the checkpoint
    resumed = objective()
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    torch.set_rng_state(rng)
    for _ in range(2):
        resumed.train_step(x)
    for name, value in uninterrupted.generator_ema.state_dict().items():
        assert torch.equal(resumed.generator_ema.state_dict()[name], value), f"{name} differs after resume"
    assert "generator_ema" in stopped.state_dict(), "the checkpoint carries the average"


def test_an_interrupted_run_resumes_the_average_exactly(monkeypatch, tmp_path):
    name = "imagenette-gan-hinge-dcgan-sn-ema-diffaug"
    config = train.config_for(name, epochs=2, train_limit=16, val_limit=8, batch_size=8)
    resumed, uninterrupted = interrupted_and_uninterrupted(monkeypatch, tmp_path, objectives.StabilizedGANObjective,
                                                           config, stop_at_call=3)  # the first step of epoch 2
    assert resumed.origin == "resumed" and resumed.history == uninterrupted.history
    for key, value in uninterrupted.objective.generator_ema.state_dict().items():
        assert torch.equal(resumed.objective.generator_ema.state_dict()[key], value), f"{key} differs"
    assert resumed.objective.generator_ema.n_averaged.item() == 4, "2 epochs of 2 steps"


def test_ema_decay_outside_0_1_is_refused():
    for decay in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="ema_decay.*between 0 and 1"):
            objectives.StabilizedGANObjective(small_gan(), 1e-3, "ns", ema_decay=decay)


# ------------------------------------------------------------------ differentiable augmentation

def numbered(n, size):
    """n images whose pixels all differ and are positive: pixel (i, j) of image k, channel c is
    1 + index, so a moved pixel tells where it came from and a zero can only be padding or a hole."""
    return 1 + torch.arange(n * 3 * size * size, dtype=torch.float64).view(n, 3, size, size)


def test_translation_moves_whole_images_by_at_most_an_eighth_and_fills_with_zeros():
    size, n = 64, 300
    x = numbered(n, size)
    y = augment.translation(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    shifts = []
    for k in range(n):
        kept = y[k, 0] != 0
        rows, cols = kept.nonzero(as_tuple=True)
        source = (y[k, 0][kept] - x[k, 0, 0, 0]).long()          # index of the source pixel in image k
        dy, dx = (rows - source // size).unique(), (cols - source % size).unique()
        assert len(dy) == len(dx) == 1, "one shift for the whole image"
        dy, dx = dy.item(), dx.item()
        shifts.append((dy, dx))
        zeros = (y[k] == 0).sum().item() / (3 * size * size)
        assert zeros == 1 - (size - abs(dy)) * (size - abs(dx)) / size**2, "exactly the uncovered border is zero"
        assert torch.equal(y[k, :, :, :][:, kept], x[k][:, rows - dy, cols - dx]), "every channel moves alike"
    dys, dxs = zip(*shifts)
    assert set(dys) == set(dxs) == set(range(-8, 9)), "shifts of up to 64 / 8 = 8 pixels, each way"


def test_cutout_zeros_one_square_of_half_the_side_clipped_at_the_borders():
    size, n = 64, 2000
    y = augment.cutout(torch.ones(n, 3, size, size), generator=torch.Generator().manual_seed(0))
    holes = y[:, 0] == 0
    assert torch.equal(y == 0, holes.unsqueeze(1).expand_as(y)), "all channels are cut alike"
    heights, widths = holes.any(2).sum(1), holes.any(1).sum(1)
    assert torch.equal(holes.sum((1, 2)), heights * widths), "the hole is one rectangle"
    assert heights.min() == widths.min() == 16 and heights.max() == widths.max() == 32, \
        "a side of 32 = 64 / 2, clipped to 16 when the centre sits on the border"
    # Centre c uniform on {0, ..., 64}: the hole covers [c - 16, c + 16) within [0, 64) in each direction.
    covered = [min(c + 16, size) - max(c - 16, 0) for c in range(size + 1)]
    expected = (sum(covered) / len(covered) / size) ** 2
    assert (1 - y).mean().item() == pytest.approx(expected, abs=0.01), "the documented share of zeros"


def test_colour_transforms_stay_within_their_documented_ranges():
    g = torch.Generator().manual_seed(0)
    x = real_images(500, 16)
    shift = augment.brightness(x, generator=g) - x
    assert torch.allclose(shift, shift[:, :1, :1, :1].expand_as(x), atol=1e-6), "one shift per image"
    assert shift.abs().max() <= 0.25 and shift.abs().max() > 0.24
    grey = x.mean(1, keepdim=True).expand_as(x)
    assert torch.allclose(augment.saturation(grey, generator=g), grey, atol=1e-6), "a grey image has no colour to scale"
    contrasted = augment.contrast(x, generator=g)
    assert torch.allclose(contrasted.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5), "contrast keeps each mean"
    ratio = (contrasted - x.mean((1, 2, 3), keepdim=True)).std((1, 2, 3)) / x.std((1, 2, 3))
    assert ratio.min() >= 0.5 - 1e-4 and ratio.max() <= 1.5 + 1e-4


def test_gradients_reach_the_generator_through_the_augmentation():
    gan = small_gan()
    fake = gan.generate(torch.randn(6, 8))
    fake.retain_grad()
    augmented = augment.diff_augment(fake, generator=torch.Generator().manual_seed(0))
    losses.generator_loss_hinge(gan.discriminator(augmented)).backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and (fake.grad != 0).any()
    assert all(p.grad is not None and (p.grad != 0).any() for p in gan.generator.parameters()), \
        "every weight of G receives the gradient through T"


def test_translation_and_cutout_pass_the_gradient_to_exactly_the_pixels_left_in_view():
    x = torch.rand(20, 3, 32, 32).add_(0.1).requires_grad_()  # positive: a zero out is a pixel not shown
    g = torch.Generator().manual_seed(0)
    y = augment.cutout(augment.translation(x, generator=g), generator=g)
    y.sum().backward()
    assert set(x.grad.unique().tolist()) == {0.0, 1.0}, "each input pixel is shown once or not at all"
    assert x.grad.sum() == (y != 0).sum(), "... and the gradient reaches exactly the ones shown"


def test_a_seeded_generator_replays_the_same_draws_and_images_get_their_own():
    x = real_images(1, 32).expand(8, -1, -1, -1)  # one image, eight times
    first = augment.diff_augment(x, generator=torch.Generator().manual_seed(5))
    again = augment.diff_augment(x, generator=torch.Generator().manual_seed(5))
    other = augment.diff_augment(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again), "the same seed, the same transformations"
    assert not torch.equal(first, other)
    assert all(not torch.equal(first[0], first[k]) for k in range(1, 8)), "each image draws its own"
    torch.manual_seed(5)
    global_first = augment.diff_augment(x)
    torch.manual_seed(5)
    assert torch.equal(global_first, augment.diff_augment(x)), "without a generator: torch's seeded global one"


def test_flips_mirror_about_half_the_images_and_leave_symmetric_ones_alone():
    x = real_images(400, 16)
    symmetric = torch.cat([x[..., :8], x[..., :8].flip(-1)], dim=-1)
    assert torch.equal(augment.random_flip(symmetric, generator=torch.Generator().manual_seed(0)), symmetric)
    y = augment.random_flip(x, generator=torch.Generator().manual_seed(0))
    kept = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert torch.equal(kept | mirrored, torch.ones(400, dtype=torch.bool)), "each image whole, as is or mirrored"
    assert 160 < mirrored.sum() < 240, f"about half mirrored, got {mirrored.sum().item()} of 400"


# ------------------------------------------------------------------ the stabilized objective

def test_without_options_the_stabilized_step_is_the_plain_one():
    x = real_images(4, 16)
    steps = {}
    for make in (objectives.GANObjective, objectives.StabilizedGANObjective):
        objective = make(small_gan(batch_norm=True, spectral_norm=True), 1e-3, "hinge")
        torch.manual_seed(5)
        terms = [objective.train_step(x) for _ in range(2)]
        steps[make] = (params(objective.model), terms)
    (plain, plain_terms), (stabilized, stabilized_terms) = steps.values()
    assert torch.equal(plain, stabilized) and plain_terms == stabilized_terms


def test_augmentation_shows_d_transformed_images_in_both_steps_and_flips_the_real_ones(monkeypatch):
    seen, flipped = [], []
    transform, flip = augment.diff_augment, augment.random_flip
    monkeypatch.setattr(augment, "diff_augment", lambda x: seen.append(x) or transform(x))
    monkeypatch.setattr(augment, "random_flip", lambda x: flipped.append(x) or flip(x))
    objective = objectives.StabilizedGANObjective(small_gan(), 1e-3, "ns", augment=True)
    x = real_images(4, 16)
    objective.train_step(x)
    assert [len(images) for images in seen] == [8, 4], "D's step: real and fake together; G's step: fake"
    assert not seen[0].requires_grad and seen[1].requires_grad, "D's step is cut from G; G's step is not"
    assert len(flipped) == 1 and torch.equal(flipped[0], x), "only the real images are flipped"
    objective.model.eval()
    objective.eval_step(x)
    assert len(seen) == 2 and len(flipped) == 1, "evaluation is unaugmented"


# ------------------------------------------------------------------ the registry

def describe(name):
    objective = build(name)
    generator, discriminator = objective.model.generator, objective.model.discriminator
    ema = getattr(objective, "generator_ema", None)
    return {"loss": objective.generator_loss_name,
            "batch_norm": any(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules()),
            "spectral_norm": any(hasattr(m, "parametrizations") for m in discriminator.modules()),
            "ema": ema is not None,
            "augment": getattr(objective, "augment", False)}


def test_each_rung_of_the_ladder_adds_one_stabilizer_to_the_one_before():
    rungs = ["imagenette-gan-ns", *LADDER]
    described = [describe(name) for name in rungs]
    assert described[0] == {"loss": "ns", "batch_norm": False, "spectral_norm": False, "ema": False, "augment": False}
    added = ["batch_norm", "spectral_norm", "loss", "ema", "augment"]
    for before, after, change, name in zip(described, described[1:], added, LADDER):
        assert {k for k in after if after[k] != before[k]} == {change}, f"{name} changes more than {change}"
    assert described[-1] == {"loss": "hinge", "batch_norm": True, "spectral_norm": True, "ema": True, "augment": True}


@pytest.mark.parametrize("name", LADDER)
def test_each_rung_at_both_sizes_with_the_report_settings(name):
    for size, entry in ((64, name), (160, f"{name}-160")):
        spec = registry.spec(entry)
        assert spec.dataset == "imagenette" and spec.image_size == size
        assert spec.defaults == {"epochs": 150, "batch_size": 50, "lr": 5e-5}, "one change per rung: the report's settings"
        assert describe(entry) == describe(name)
    if "-ema" in name:
        objective = build(name)
        generator, average = objective.model.generator, objective.generator_ema
        average.update_parameters(generator)  # the first update copies W_1
        w_1 = params(generator)
        with torch.no_grad():
            for p in generator.parameters():
                p.add_(1.0)
        average.update_parameters(generator)  # W_2 = W_1 + 1
        assert torch.allclose(params(average.module), w_1 + (1 - 0.999), atol=1e-6), \
            "the rungs average with decay 0.999: 0.999 W_1 + 0.001 W_2"


@pytest.mark.parametrize("name", LADDER)
def test_each_rung_takes_a_finite_step_and_samples(name):
    objective = build(name)
    x = data.synthetic("imagenette", "train", size=64, n=4).float().div(255)
    before = params(objective.model)
    terms = objective.train_step(x)
    assert all(torch.isfinite(v) for v in terms.values()) and not torch.equal(params(objective.model), before)
    objective.model.eval()
    assert objective.sample(2).shape == (2, 3, 64, 64)


# sha256 (first 16 hex digits) of each Imagenette entry's initial state_dict under its default config and
# seed 0, recorded before the stabilizers were added: the chapter's runs were made from these weights.
IMAGENETTE_INITIAL_WEIGHTS = {
    "imagenette-vae-report": "7b474489a55ba09a", "imagenette-vae-report-160": "3cbc74cbe6403c0e",
    "imagenette-vae": "7b474489a55ba09a", "imagenette-vae-160": "3cbc74cbe6403c0e",
    "imagenette-gan-report": "4a6ca82a414c9e11", "imagenette-gan-report-160": "ee4175b4ab3bb7ff",
    "imagenette-gan-minimax": "4a6ca82a414c9e11", "imagenette-gan-minimax-160": "ee4175b4ab3bb7ff",
    "imagenette-gan-ns": "4a6ca82a414c9e11", "imagenette-gan-ns-160": "ee4175b4ab3bb7ff",
}


@pytest.mark.parametrize("name", sorted(IMAGENETTE_INITIAL_WEIGHTS))
def test_existing_imagenette_entries_start_from_the_same_weights_and_class(name):
    objective = build(name)
    assert fingerprint(objective.model) == IMAGENETTE_INITIAL_WEIGHTS[name], \
        f"{name} now starts from other weights: the options must leave the existing builders alone"
    assert type(objective) in (objectives.VAEObjective, objectives.GANObjective)


def test_the_average_samples_with_batch_statistics_of_its_own_weights():
    # An average whose weights differ from G's: G's first layer is tripled after the first update,
    # so with decay 1/2 the average holds twice the original weights while G's copied running
    # statistics describe three times. Sampling must recompute them: in eval mode the average then
    # draws what it draws with a large batch's own statistics; with G's statistics it would not.
    torch.manual_seed(0)
    objective = objectives.StabilizedGANObjective(small_gan(batch_norm=True), 1e-3, "ns", ema_decay=0.5)
    generator = objective.model.generator
    objective.generator_ema.update_parameters(generator)
    with torch.no_grad():
        generator.net[0].weight.mul_(3)
        generator.train()(torch.randn(512, objective.model.prior.dim))  # G's running statistics: of 3 W
    objective.generator_ema.update_parameters(generator)
    average = objective.generator_ema.module
    z = torch.randn(2048, objective.model.prior.dim)
    with torch.no_grad():
        own_batch = torch.sigmoid(average.train()(z))
        average.eval()
        stale = torch.sigmoid(average(z))
        refreshed = torch.sigmoid(objective.averaged_generator()(z))
    assert not objective.generator_ema.training
    assert (refreshed - own_batch).abs().mean() < 0.2 * (stale - own_batch).abs().mean(), \
        "the recomputed statistics must match the average's own activations far better than G's"
    before = [b.clone() for b in average.buffers()]
    objective.averaged_generator()
    assert all(torch.equal(a, b) for a, b in zip(before, average.buffers())), "recomputed only when the average changed"
