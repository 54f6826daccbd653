"""The MNIST classifier that judges generated digits: its metrics, its training and its cache."""
import pytest
import torch
from torch import distributions as dist

from helpers import classifier, data, fid

QUICK = classifier.ClassifierConfig(epochs=2, train_limit=2_000, val_limit=500)


pytestmark = pytest.mark.usefixtures("own_checkpoints")  # run folders in a temporary directory


def one_hot(labels, k=10):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), k).float()


def test_score_is_k_for_confident_balanced_labels_and_1_for_one_class():
    assert classifier.classifier_score(one_hot(list(range(10)) * 5)) == pytest.approx(10.0)
    assert classifier.classifier_score(one_hot([3] * 50)) == pytest.approx(1.0), "mode collapse scores 1"
    assert classifier.classifier_score(torch.full((50, 10), 0.1)) == pytest.approx(1.0), \
        "unrecognisable images (uniform p(y|x)) score 1 however diverse they are"
    assert classifier.classifier_score(one_hot([0, 1] * 25)) == pytest.approx(2.0), "two modes score 2"


def test_score_is_exp_of_marginal_entropy_minus_mean_conditional_entropy():
    probs = torch.randn(200, 10, generator=torch.Generator().manual_seed(0)).mul(2).softmax(-1).double()
    marginal = dist.Categorical(probs=probs.mean(0)).entropy()
    conditional = dist.Categorical(probs=probs).entropy().mean()
    assert classifier.classifier_score(probs) == pytest.approx((marginal - conditional).exp().item(), rel=1e-9)


def test_class_counts_count_the_most_probable_label():
    probs = one_hot([2, 2, 7, 0]) * 0.6 + 0.04
    counts = classifier.class_counts(probs)
    assert counts.tolist() == [1, 0, 2, 0, 0, 0, 0, 1, 0, 0]


def test_predict_refuses_images_of_the_wrong_shape():
    with pytest.raises(ValueError, match="N x 1 x 32 x 32"):
        classifier.predict(classifier.mnist_classifier(), torch.zeros(4, 3, 32, 32))


@pytest.mark.parametrize("images", [
    torch.rand(4, 1, 32, 32) * 255,
    torch.randint(0, 255, (4, 1, 32, 32)),
    torch.rand(4, 1, 32, 32) * 2 - 1,
    torch.full((4, 1, 32, 32), float("nan")),
    torch.empty(0, 1, 32, 32),
], ids=["float-0-255", "int64", "tanh-range", "nan", "empty"])
def test_predict_refuses_the_images_fid_refuses_with_the_same_message(images):
    # NaN images would otherwise all be classified as one digit, and 0..255 floats saturate.
    with pytest.raises((ValueError, TypeError)) as from_fid:
        fid.check_images(images, "fid")
    with pytest.raises(type(from_fid.value), match="^classifier.predict: ") as from_predict:
        classifier.predict(classifier.mnist_classifier(), images)
    assert str(from_predict.value).removeprefix("classifier.predict") == str(from_fid.value).removeprefix("fid")


def test_bad_configuration_fails_before_training():
    with pytest.raises(ValueError, match="epochs=0"):
        classifier.load(classifier.ClassifierConfig(epochs=0))


def test_trained_classifier_beats_chance_and_reads_uint8_and_float_alike():
    net = classifier.load(QUICK, progress=False)
    val = data.load("mnist", "val", limit=1_000)
    assert classifier.accuracy(net, val) > 0.7, "2 epochs on 2,000 digits must classify far above chance (0.1)"
    assert [r["epoch"] for r in net.history] == [1, 2]
    assert torch.allclose(classifier.predict(net, val.images[:50]), classifier.predict(net, val.float()[:50]))


def test_cached_classifier_is_loaded_without_training(monkeypatch):
    trained = classifier.load(QUICK, progress=False)
    monkeypatch.setattr(classifier, "_train_epoch", lambda *a: pytest.fail("a finished classifier was retrained"))
    loaded = classifier.load(QUICK, progress=False)
    for a, b in zip(trained.parameters(), loaded.parameters()):
        assert torch.equal(a, b)


def test_stopped_training_resumes_and_matches_an_uninterrupted_run(monkeypatch, tmp_path):
    real_epoch = classifier._train_epoch

    def stop_in_epoch_2(net, optimizer, train, config, epoch, *rest):
        if epoch == 2:
            raise KeyboardInterrupt
        real_epoch(net, optimizer, train, config, epoch, *rest)

    monkeypatch.setattr(classifier, "_train_epoch", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        classifier.load(QUICK, progress=False)
    monkeypatch.setattr(classifier, "_train_epoch", real_epoch)
    resumed = classifier.load(QUICK, progress=False)

    monkeypatch.setenv("DGM_CHECKPOINTS", str(tmp_path / "uninterrupted"))
    uninterrupted = classifier.load(QUICK, progress=False)
    assert resumed.history == uninterrupted.history
    for a, b in zip(resumed.parameters(), uninterrupted.parameters()):
        assert torch.equal(a, b), "resuming from the epoch-1 checkpoint must replay epoch 2 exactly"


def test_a_classifier_held_by_another_run_is_refused_before_training(monkeypatch):
    import dataclasses

    from helpers import checkpoints, data

    monkeypatch.setattr(classifier, "_train_epoch", lambda *a: pytest.fail("a held run folder must not be trained"))
    identity = {"model": "mnist-classifier", **dataclasses.asdict(QUICK), "data": data.source("mnist")}
    with checkpoints.lock(checkpoints.run_folder(identity)):
        with pytest.raises(checkpoints.RunInProgressError, match="pid"):
            classifier.load(QUICK, progress=False)


def test_within_class_spread_is_the_mean_distance_over_pairs_of_one_class():
    # Class 0: points 0, 1, 3 on a line, pairwise distances 1, 3, 2 -> mean 2. Class 1: one point -> NaN.
    # Class 2: two identical points -> 0 (a collapsed class).
    features = torch.tensor([[0.0, 0], [1, 0], [3, 0], [5, 5], [2, 2], [2, 2]])
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    spread = classifier.within_class_spread(features, labels, num_classes=3)
    assert spread[0].item() == pytest.approx(2.0)
    assert spread[1].isnan()
    assert spread[2].item() == 0.0


def test_within_class_spread_matches_a_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    features, labels = torch.randn(40, 5, generator=g), torch.randint(0, 4, (40,), generator=g)
    spread = classifier.within_class_spread(features, labels, num_classes=4)
    for k in range(4):
        members = features[labels == k].double()
        pairs = [(members[i] - members[j]).norm() for i in range(len(members)) for j in range(len(members)) if i != j]
        assert spread[k].item() == pytest.approx(torch.stack(pairs).mean().item(), rel=1e-9)


def test_within_class_spread_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="N x F and N labels"):
        classifier.within_class_spread(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long))


def test_embedding_is_the_input_of_the_linear_head():
    net = classifier.mnist_classifier().eval()
    images = torch.rand(7, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    features = classifier.embed(net, images)
    assert features.shape == (7, 256)
    assert torch.allclose(net[-1](features).softmax(-1), classifier.predict(net, images), atol=1e-6)
    with pytest.raises(ValueError, match="^classifier.embed: "):
        classifier.embed(net, images * 255)
