"""Training throughput of the report's conv GAN and VAE on Imagenette: the book's loop vs the
tutorial loop, and contiguous (NCHW) vs channels_last (NHWC) memory.

(a) helpers: the training images decoded once into one uint8 tensor, batches by indexing,
    helpers.train.train_epoch over GANObjective (the book's fused Adam).
(b) tutorial: DataLoader(ImageFolder(train folder, Resize + CenterCrop + ToTensor + Normalize),
    shuffle=True), decoding and resizing every JPEG at every step, and a D step / G step loop
    with the default torch.optim.Adam, as the PyTorch DCGAN tutorial writes it.
(c) helpers as (a), with the model's weights and the images in channels_last;
(d) with only the weights in channels_last (the loop's batches as they are).
(e), (f) the VAE through the book's loop, contiguous and channels_last.
(g) with --compile: (a) with torch.compile on G and D.

All train the report's widths (16-32-32-64, latent 100) at the report's batch sizes (GAN 50,
VAE 80), the same number of steps, alternating in one process; medians are reported, since
this machine's timings vary by about 20 % from run to run. The last lines turn the medians
into epochs per hour of training steps alone (8,000 training images; evaluation not counted).
Only the first steps x 80 training images are decoded, so the bench writes no cache.

    DGM_DATA=../shared/data OMP_NUM_THREADS=1 python bench/imagenette_step.py [--size 64] [--steps 30] [--rounds 3] [--compile]
"""
import argparse
import statistics
import time

import torch
from torchvision import datasets, transforms
from tqdm import tqdm

from helpers import conv_models, data, losses, objectives, paths, train

GAN_BATCH, VAE_BATCH, GAN_LR, VAE_LR = 50, 80, 5e-5, 1e-4  # the report's Imagenette settings
TRAIN_IMAGES = data.IMAGENETTE_SIZES["train"]


def book_loop(objective, images: torch.Tensor, batch: int, steps: int) -> float:
    """Images/s of ``steps`` steps of ``objective`` through the book's training loop."""
    batches = train.epoch_batches(len(images), batch, epoch_seed=0)[:steps]
    start = time.perf_counter()
    train.train_epoch(objective, images, batches, 1, "(bench)", tqdm(disable=True))
    return steps * batch / (time.perf_counter() - start)


def gan_objective(size: int, memory_format=torch.contiguous_format) -> objectives.GANObjective:
    torch.manual_seed(0)
    gan = conv_models.imagenette_gan(size).to(memory_format=memory_format)
    return objectives.GANObjective(gan, GAN_LR, "minimax")


def vae_objective(size: int, memory_format=torch.contiguous_format) -> objectives.VAEObjective:
    torch.manual_seed(0)
    return objectives.VAEObjective(conv_models.imagenette_vae(size).to(memory_format=memory_format), VAE_LR)


def tutorial_loop(dataset, size: int, steps: int) -> float:
    """Images/s of ``steps`` GAN steps of the DataLoader-with-transforms pattern."""
    gan = gan_objective(size).model
    G, D = gan.generator, gan.discriminator
    opt_g = torch.optim.Adam(G.parameters(), lr=GAN_LR, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=GAN_LR, betas=(0.5, 0.999))
    loader = torch.utils.data.DataLoader(dataset, batch_size=GAN_BATCH, shuffle=True)
    start = time.perf_counter()
    for step, (real, _) in enumerate(loader, start=1):
        fake = torch.tanh(G(torch.randn(len(real), 100)))  # a tutorial's G ends in Tanh, to match Normalize's [-1, 1]
        d_loss = losses.discriminator_loss(D(real), D(fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = losses.generator_loss_minimax(D(fake))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        if step == steps:
            break
    return steps * GAN_BATCH / (time.perf_counter() - start)


def tutorial_dataset(size: int) -> datasets.ImageFolder:
    folder = paths.data_root() / data.IMAGENETTE_FOLDER / "train"
    return datasets.ImageFolder(folder, transform=transforms.Compose([
        transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side: 64, or the report's 160")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true",
                        help="also time (g): torch.compile on G and D (compiling takes a minute or more here)")
    args = parser.parse_args()
    size = conv_models.check_image_size(args.size)

    # Only the images the steps use, decoded afresh: no decoded copy of the whole split is written
    # (at 160 px it would take 730 MB of cache).
    images = data.load("imagenette", "train", size=size, limit=args.steps * VAE_BATCH).images
    images_last = images.contiguous(memory_format=torch.channels_last)
    dataset = tutorial_dataset(size)
    last = torch.channels_last
    runs = {
        "(a) GAN, book loop, contiguous": lambda n: book_loop(gan_objective(size), images, GAN_BATCH, n),
        "(b) GAN, tutorial DataLoader": lambda n: tutorial_loop(dataset, size, n),
        "(c) GAN, book loop, channels_last": lambda n: book_loop(gan_objective(size, last), images_last, GAN_BATCH, n),
        "(d) GAN, channels_last weights only": lambda n: book_loop(gan_objective(size, last), images, GAN_BATCH, n),
        "(e) VAE, book loop, contiguous": lambda n: book_loop(vae_objective(size), images, VAE_BATCH, n),
        "(f) VAE, book loop, channels_last": lambda n: book_loop(vae_objective(size, last), images_last, VAE_BATCH, n),
    }
    if args.compile:
        compiled = gan_objective(size)
        compiled.wrap(torch.compile)  # the steps run compiled copies of G and D
        runs["(g) GAN, book loop, torch.compile"] = lambda n: book_loop(compiled, images, GAN_BATCH, n)
    for run in runs.values():  # warm-up (and compilation)
        run(3)
    speeds = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            speeds[name].append(run(args.steps))
    median = {name[:3]: statistics.median(values) for name, values in speeds.items()}

    print(f"threads={torch.get_num_threads()} size={size} steps={args.steps} rounds={args.rounds} "
          f"batch GAN={GAN_BATCH} VAE={VAE_BATCH} torch={torch.__version__}")
    for name, values in speeds.items():
        print(f"{name:38s} median {statistics.median(values):6.1f} images/s   runs {[round(v, 1) for v in values]}")
    ratio = lambda a, b: f"{median[a] / median[b]:.2f}x"
    print(f"book loop / tutorial (a)/(b): {ratio('(a)', '(b)')}")
    print(f"channels_last / contiguous: GAN (c)/(a) {ratio('(c)', '(a)')}, weights only (d)/(a) "
          f"{ratio('(d)', '(a)')}; VAE (f)/(e) {ratio('(f)', '(e)')}")
    if args.compile:
        print(f"torch.compile / eager, both contiguous: (g)/(a) {ratio('(g)', '(a)')}")
    for model, keys in (("GAN", ("(a)", "(c)")), ("VAE", ("(e)", "(f)"))):
        epoch = TRAIN_IMAGES / max(median[key] for key in keys)
        print(f"{model} in its faster memory format: {epoch:.0f} s per {TRAIN_IMAGES:,}-image epoch of steps "
              f"-> {3600 / epoch:.0f} epochs per hour")

if __name__ == "__main__":
    main()
