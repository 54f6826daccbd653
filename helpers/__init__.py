"""Shared code of the book: everything two chapters need lives here, once.

Modules, one concept each:

- ``profile``: the ``BOOK_PROFILE`` switch (quick | full) and the device
- ``run_banner``: the line every chapter prints first (profile, device, data, torch)
- ``paths``: where data, caches, checkpoints and results live
- ``data``: MNIST and Imagenette as in-memory uint8 tensors with the report's splits
- ``losses``: ELBO terms (closed-form and Monte Carlo KL, Bernoulli and discretized likelihoods), GAN losses on logits
- ``models``: priors with ``sample``/``log_prob`` (Gaussian, ex-post mixture), decoder likelihoods (Bernoulli, discretized logistic or normal), the report's MLP VAE and MLP GAN
- ``conv_models``: the report's Imagenette convolutional encoder/decoder and GAN, as written and corrected; the MNIST conv VAE and DCGAN
- ``flows``: RealNVP affine coupling layers and the flow prior built from them
- ``objectives``: one training step per model family (VAE, GAN), and the average of a generator's weights
- ``registry``: the trainable models by name: dataset, settings, network and objective
- ``checkpoints``: run folders keyed by configuration, atomic checkpoint writes
- ``train``: the one training loop (progress, resume, divergence guard, torchrun/DDP) and its CLI
- ``gan_diagnostics``: per-epoch measurements of a GAN generator's saturation, gradients and Adam step
- ``augment``: differentiable augmentation of the images a GAN's discriminator sees (DiffAugment), and random flips
- ``fid``: the Fréchet Inception Distance and KID in memory, with cached reference features and statistics
- ``classifier``: a small MNIST digit classifier, trained once and cached, to judge generated digits (classes, within-class spread)
- ``neighbours``: nearest training neighbours of generated images, and the distance ratio that exposes copies
- ``evaluation``: a trained VAE's test-set bounds (ELBO, importance-weighted) with standard errors, its active dimensions, bits per dimension
- ``results``: ``results/<name>.json`` of full-profile runs, and the mean and spread over seeds
- ``results_table``: every results file read, checked and tabulated for the Results chapter
- ``pretrained``: the shipped weights in ``pretrained/`` and their SHA-256 manifest
- ``plots``, ``explore``, ``source``: figures, latent interpolation and the widget explorer, showing the book's code in a chapter
- ``onnx_export``, ``explorer_page``: the shipped decoders as ONNX files, and the explorer that runs them in the browser
"""
from .profile import PROFILE, device, pick
from .run_banner import banner

__all__ = ["PROFILE", "banner", "device", "pick"]
