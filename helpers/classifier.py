"""A small MNIST digit classifier, trained once and cached: a cheap judge of generated digits.

A generator can score a fair FID and still produce mostly 1s; a classifier makes that
visible. :func:`class_counts` is the histogram of the digits a sampler draws (mode
collapse shows up as missing or dominant classes), and :func:`classifier_score` sums it
up in one number, the Inception Score computed with this network instead of Inception:
``exp(E_x KL(p(y|x) || p(y)))``, 10 for confident predictions spread evenly over the ten
classes, 1 for a single class or for predictions that are uniform for every image.

The network is trained on the report's 50,000 training digits (never on the test
split that FID and these histograms are compared against) and saved to
``checkpoints/mnist-classifier-<hash>/``, so every chapter after the first that asks for
it loads it in a second. Training resumes from its last finished epoch if stopped.
"""
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from . import checkpoints, data
from .fid import check_images
from .profile import device as default_device
from .train import derive_seed, epoch_batches

BATCH = 500  # for prediction only; memory, not results, depends on it


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything that determines the classifier (and so names its checkpoint folder)."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    train_limit: int = None
    val_limit: int = None

    def validate(self) -> None:
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be a positive integer.")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} must be positive.")


def mnist_classifier() -> nn.Sequential:
    """Two 3x3 conv blocks and a linear head: N x 1 x 32 x 32 in [0, 1] -> N x 10 logits.

    About 1.1 M parameters, 99 % test accuracy after a few epochs; small enough to
    train on a CPU in minutes.
    """
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 16 x 16
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 64 x 8 x 8
        nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, 10),
    )


def load(config: ClassifierConfig = None, *, device=None, progress: bool = True) -> nn.Module:
    """The trained classifier of ``config`` (default: :class:`ClassifierConfig`), in eval mode.

    Loaded from its checkpoint when it exists; otherwise trained on the MNIST training
    split (continuing a stopped run) and saved after every epoch. The per-epoch
    validation accuracy is kept in ``classifier.history``.
    """
    config = config or ClassifierConfig()
    config.validate()
    device = torch.device(device) if device else default_device()
    identity = {"model": "mnist-classifier", **dataclasses.asdict(config), "data": data.source("mnist")}
    folder = checkpoints.run_folder(identity)
    with checkpoints.lock(folder):  # one process trains or loads a given classifier at a time
        checkpoints.check_folder(folder, identity)
        return _train_or_load(config, identity, folder, device, progress)


def _train_or_load(config: ClassifierConfig, identity: dict, folder, device, progress: bool) -> nn.Module:
    """The body of :func:`load`, inside the run folder's lock."""
    torch.manual_seed(derive_seed(config.seed, "init"))
    net = mnist_classifier().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    history = []
    state = checkpoints.load(folder, map_location=device)
    if state is not None:
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        history = state["history"]
    if len(history) < config.epochs:
        train = data.load("mnist", "train", limit=config.train_limit)
        val = data.load("mnist", "val", limit=config.val_limit)
        for epoch in range(len(history) + 1, config.epochs + 1):
            _train_epoch(net, optimizer, train, config, epoch, device, progress)
            history.append({"epoch": epoch, "val_accuracy": accuracy(net, val, device=device)})
            checkpoints.save(folder, identity, {"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                                                "history": history})
    net.eval()
    net.history = history
    return net


def _train_epoch(net, optimizer, train: data.Split, config, epoch, device, progress) -> None:
    net.train()
    batches = epoch_batches(len(train), config.batch_size, derive_seed(config.seed, "shuffle", epoch))
    images, labels = train.images.to(device), train.labels.to(device)
    for idx in tqdm(batches, desc=f"classifier epoch {epoch}", disable=not progress):
        loss = nn.functional.cross_entropy(net(images[idx].float().div_(255)), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def _check_mnist(images: torch.Tensor, where: str) -> None:
    check_images(images, where)
    if images.shape[1:] != (1, 32, 32):
        raise ValueError(f"The MNIST classifier takes N x 1 x 32 x 32 images; got shape {tuple(images.shape)}.")


@torch.no_grad()
def _apply(layers: nn.Module, images: torch.Tensor, device) -> torch.Tensor:
    """``layers`` on N x 1 x 32 x 32 images (uint8, or float in [0, 1]) in batches, on ``device``; the
    outputs concatenated on the CPU."""
    outputs = []
    for batch in images.split(BATCH):
        x = batch.to(device)
        outputs.append(layers(x.float().div(255) if x.dtype == torch.uint8 else x.float()).cpu())
    return torch.cat(outputs)


def predict(net: nn.Module, images: torch.Tensor, device=None) -> torch.Tensor:
    """Class probabilities p(y|x): N x 10, for images N x 1 x 32 x 32 (uint8, or float in [0, 1]),
    checked as FID checks them (:func:`helpers.fid.check_images`)."""
    _check_mnist(images, "classifier.predict")
    return _apply(net, images, device or next(net.parameters()).device).softmax(-1)


def embed(net: nn.Module, images: torch.Tensor, device=None) -> torch.Tensor:
    """The classifier's features of N x 1 x 32 x 32 images: the activations of its last hidden
    layer, N x 256, where the ten classes are linearly separable (the head is one linear layer)."""
    _check_mnist(images, "classifier.embed")
    return _apply(net[:-1], images, device or next(net.parameters()).device)


def accuracy(net: nn.Module, split: data.Split, device=None) -> float:
    """Fraction of ``split`` whose most probable class is the true label."""
    return (predict(net, split.images, device).argmax(-1) == split.labels).float().mean().item()


def class_counts(probs: torch.Tensor) -> torch.Tensor:
    """How many images fall in each class by their most probable label: probs N x K -> K counts."""
    return torch.bincount(probs.argmax(-1), minlength=probs.shape[1])


def classifier_score(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) with p(y) the mean of p(y|x): between 1 and K (probs N x K).

    Equal to exp(H(p(y)) - E_x H(p(y|x))): high when the label distribution is diverse
    (no mode collapse) *and* each image is classified confidently (recognisable digits).
    """
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(-1)
    return kl.mean().exp().item()


def within_class_spread(features: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Mean Euclidean distance between the features of two different images of the same class.

    features: N x F; labels: N class indices (true or predicted). Returns K float64 values, NaN for a class
    with fewer than two images. A generator that draws one prototype per class scores near 0 however
    good its digits are; compare with the same measure on real digits, labelled the same way.
    """
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"Expected features N x F and N labels; got {tuple(features.shape)} and {tuple(labels.shape)}.")
    spread = torch.full((num_classes,), float("nan"), dtype=torch.double)
    for k in range(num_classes):
        members = features[labels == k].double()
        m = len(members)
        if m >= 2:  # the m x m distance matrix has m (zero) diagonal entries and m (m - 1) pairs off it
            spread[k] = torch.cdist(members, members).sum() / (m * (m - 1))
    return spread
