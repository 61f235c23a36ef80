"""The digit classifier: softmax cross-entropy (values, stability, gradient), the network's
gradients, hidden features, training, checkpoints and the training example."""

import math
from pathlib import Path

import numpy as np
import pytest

from tinygan import get_backend
from tinygan.tools.checkpoint import save_checkpoint
from tinygan.tools.classifier import (Classifier, fit, load_classifier, log_softmax, softmax,
                                softmax_cross_entropy)
from tinygan.errors import CheckpointError, ConfigError
from tinygan.gradcheck import check_array, check_module, max_error
from tinygan.tools.gradcheck_cli import format_table

REPO = Path(__file__).resolve().parents[2]
from conftest import MNIST_DIR  # noqa: E402


# --- softmax cross-entropy ----------------------------------------------------------------

def test_softmax_cross_entropy_hand_values(be64):
    logits = be64.asarray([[0.0, 0.0], [math.log(3.0), 0.0]])
    loss, grad = softmax_cross_entropy(logits, np.array([0, 1]))
    # row 0: p = (1/2, 1/2), -log 1/2; row 1: p = (3/4, 1/4), -log 1/4
    assert float(loss) == pytest.approx(0.5 * (math.log(2) + math.log(4)), rel=1e-12)
    np.testing.assert_allclose(grad, [[-0.25, 0.25], [0.375, -0.375]], rtol=1e-12)


def test_softmax_cross_entropy_matches_a_direct_computation(be64):
    logits = be64.normal((7, 5)) * 3
    y = np.array([0, 4, 2, 2, 1, 3, 0])
    loss, grad = softmax_cross_entropy(logits, y)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert float(loss) == pytest.approx(-np.log(p[np.arange(7), y]).mean(), rel=1e-12)
    np.testing.assert_allclose(grad, (p - np.eye(5)[y]) / 7, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(softmax(logits), p, rtol=1e-12)
    np.testing.assert_allclose(log_softmax(logits), np.log(p), rtol=1e-12)


def test_softmax_cross_entropy_is_stable_for_huge_logits(be32):
    logits = be32.asarray([[1e4, -1e4, 0.0], [-3e4, 3e4, 3e4]])
    loss, grad = softmax_cross_entropy(logits, np.array([0, 2]))
    assert np.isfinite(float(loss)) and np.isfinite(grad).all()
    assert float(loss) == pytest.approx(0.5 * math.log(2), rel=1e-6)   # row 1: two tied maxima


def test_softmax_cross_entropy_gradient_check_per_coordinate(be64):
    logits = be64.normal((6, 4)) * 2
    y = np.array([3, 0, 1, 1, 2, 0])
    _, grad = softmax_cross_entropy(logits, y)
    row = check_array(lambda: softmax_cross_entropy(logits, y)[0], logits, grad,
                      name="logits")
    print(format_table([row]))
    assert row.method == "coordinates"
    assert row.passed and row.rel_error < 1e-8, format_table([row])


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 1]), "shape"), (np.array([0, 1, 5]), "0..3"), (np.array([0, -1, 1]), "0..3"),
    (np.array([0.0, 1.0, 1.0]), "integers")])
def test_softmax_cross_entropy_rejects_bad_labels(be64, labels, match):
    with pytest.raises(ConfigError, match=match):
        softmax_cross_entropy(be64.normal((3, 4)), labels)


def test_softmax_cross_entropy_rejects_bad_logits(be64):
    with pytest.raises(ConfigError, match="logits"):
        softmax_cross_entropy(be64.normal((3,)), np.array([0, 1, 2]))


# --- the network ----------------------------------------------------------------------------

def small(be, keep_prob=0.7):
    clf = Classifier(in_dim=6, hidden=(5, 4), n_classes=3, keep_prob=keep_prob, backend=be)
    clf.net.param_vector[...] = be.normal(clf.net.param_vector.shape) * 0.7
    return clf


def test_classifier_layers_gradient_check(be64):
    clf = small(be64)
    x = be64.normal((5, 6))
    rows = check_module(clf.net, x)
    print(format_table(rows))
    assert all(r.method == "coordinates" for r in rows)
    assert max_error(rows) < 1e-7, format_table(rows)


def test_classifier_loss_gradient_check_through_the_network(be64):
    """dL/dtheta for L = softmax_cross_entropy(net(x), y), dropout masks frozen."""
    clf = small(be64)
    x, y = be64.normal((5, 6)), np.array([0, 2, 1, 1, 0])
    clf.net.forward(x)
    with clf.net.frozen_dropout():       # keep the mask just drawn
        _, dl = softmax_cross_entropy(clf.net.forward(x), y)
        clf.net.backward(dl)
        analytic = {k: g.copy() for k, g in clf.net.grads}

        def loss():
            return softmax_cross_entropy(clf.net.forward(x), y)[0]
        rows = [check_array(loss, p, analytic[k], name=k) for k, p in clf.net.params]
    print(format_table(rows))
    assert all(r.method == "coordinates" for r in rows)
    assert max_error(rows) < 1e-7, format_table(rows)


def test_hidden_features_are_the_last_relu_with_dropout_off(be64):
    clf = small(be64)
    x = be64.normal((9, 6))
    (w1, b1), (w2, b2) = [(clf.net.layers[i].params["W"], clf.net.layers[i].params["b"])
                          for i in (0, 3)]
    expected = np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0)
    np.testing.assert_allclose(clf.hidden_features(x, batch_size=4), expected, rtol=1e-12)
    assert clf.net.training                                  # the mode is restored
    p = clf.predict_proba(x, batch_size=2)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(x), p.argmax(1))
    np.testing.assert_allclose(clf.logits(x), clf.logits(x))  # dropout off: deterministic


def test_fit_learns_a_separable_problem():
    be = get_backend("numpy", seed=3)
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(3, 6)) * 3
    y = rng.integers(0, 3, 600)
    x = (centers[y] + rng.normal(size=(600, 6))).astype(np.float32)
    clf = Classifier(in_dim=6, hidden=(32, 16), n_classes=3, backend=be)
    seen = []
    losses = fit(clf, x[:500], y[:500], epochs=8, batch_size=50, lr=3e-3, lr_decay=0.9,
                 callback=lambda e, loss: seen.append(e))
    assert seen == list(range(1, 9)) and len(losses) == 8
    assert losses[-1] < 0.5 * losses[0]
    assert clf.accuracy(x[500:], y[500:]) > 0.9


def test_fit_with_an_sgd_optimizer():
    """fit sets optimizer.lr each epoch: SGD's lr was a read-only property (AttributeError:
    property 'lr' of 'SGD' object has no setter); now both optimizers take it."""
    from tinygan.fast import SGD
    be = get_backend("numpy", seed=3)
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(3, 6)) * 3
    y = rng.integers(0, 3, 300)
    x = (centers[y] + rng.normal(size=(300, 6))).astype(np.float32)
    clf = Classifier(in_dim=6, hidden=(16,), n_classes=3, backend=be)
    opt = SGD(clf.net, lr=0.05, momentum=0.5)
    losses = fit(clf, x, y, epochs=4, batch_size=50, lr_decay=0.5, optimizer=opt)
    assert opt.lr == pytest.approx(0.05 * 0.5 ** 4)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kw, match", [
    ({"epochs": 0}, "epochs"), ({"batch_size": 1000}, "larger"), ({"lr_decay": 1.5}, "lr_decay")])
def test_fit_rejects_bad_settings(be32, kw, match):
    clf = Classifier(in_dim=6, hidden=(4,), n_classes=3, backend=be32)
    with pytest.raises(ConfigError, match=match):
        fit(clf, np.zeros((20, 6), np.float32), np.zeros(20, np.int64), **kw)


def test_classifier_rejects_bad_inputs(be32):
    with pytest.raises(ConfigError, match="hidden"):
        Classifier(hidden=(), backend=be32)
    with pytest.raises(ConfigError, match="keep_prob"):
        Classifier(keep_prob=0, backend=be32)
    clf = Classifier(in_dim=6, hidden=(4,), n_classes=3, backend=be32)
    with pytest.raises(ConfigError, match=r"\(N, 6\)"):
        clf.hidden_features(np.zeros((3, 5), np.float32))


def test_checkpoint_round_trip(tmp_path, be32):
    clf = small(be32)
    arrays = {f"net/{k}": be32.to_numpy(v).copy() for k, v in clf.state().items()}
    save_checkpoint(tmp_path / "checkpoint", arrays, {"architecture": clf.config, "accuracy": 0.5})
    back, meta = load_classifier(tmp_path / "checkpoint", backend=be32)
    x = be32.normal((4, 6))
    np.testing.assert_array_equal(back.logits(x), clf.logits(x))
    assert meta["accuracy"] == 0.5
    save_checkpoint(tmp_path / "bad", arrays, {"epoch": 3})
    with pytest.raises(CheckpointError, match="architecture"):
        load_classifier(tmp_path / "bad")


def test_train_classifier_example_runs(tmp_path, capsys):
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists() and \
            not (MNIST_DIR / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST test split not found in {MNIST_DIR}")
    import importlib.util
    spec = importlib.util.spec_from_file_location("train_classifier",
                                                  REPO / "examples" / "train_classifier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "clf"
    rc = mod.main(["--data-dir", str(MNIST_DIR), "--split", "test", "--out", str(out), "--epochs", "2",
                   "--hidden", "64", "--limit", "3000", "--lr", "0.003"])
    assert rc == 0
    clf, meta = load_classifier(out / "checkpoint")
    assert meta["architecture"]["hidden"] == [64]
    assert meta["trained_on"] == "mnist test[0:8000], first 3000"
    assert meta["evaluated_on"] == "mnist test[8000:10000]"
    assert meta["accuracy"] > 0.8                       # 2 epochs on 3,000 digits: about 0.88
    assert "held-out accuracy" in capsys.readouterr().out
    # --score-gan: an untrained paper generator, saved as a Trainer checkpoint would be
    from tinygan.network import paper_generator
    G = paper_generator(noise_dim=100, pixel_mean=0.13, backend=get_backend("numpy", seed=5))
    save_checkpoint(tmp_path / "gan", {f"G/{k}": v.copy() for k, v in G.params},
                    {"config": {"noise_dim": 100}, "epoch": 7, "step": 560})
    rc = mod.main(["--data-dir", str(MNIST_DIR), "--out", str(out), "--score-gan",
                   str(tmp_path / "gan"), "--n-samples", "1500"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "| GAN samples (epoch 7) | 1500 |" in text
    # the real reference: the classifier's own training images (its split and --limit)
    assert "| real: mnist test[0:8000], first 3000 | 3000 | 10 / 10 |" in text
