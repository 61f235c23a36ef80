"""Metrics: mode coverage on 2-D mixtures, class histogram, Inception-Score-style score and
Frechet distance against hand-computed values, and the Frechet distance on real MNIST."""

import math

import numpy as np
import pytest

from tinygan import get_backend
from tinygan.tools.classifier import Classifier, fit
from tinygan.errors import ConfigError
from tinygan.tools.metrics import (MetricError, class_histogram, classes_covered, feature_statistics,
                             frechet_distance, frechet_distance_from_statistics, grid_mixture,
                             inception_score, mode_metrics, ring_mixture, sample_mixture,
                             sample_quality)

from conftest import SHARED  # noqa: E402
MNIST_DIR = SHARED / "data" / "mnist"


# --- 2-D mixtures ---------------------------------------------------------------------------

def test_mixtures_have_the_stated_modes():
    ring, grid = ring_mixture(), grid_mixture()
    assert len(ring.centers) == 8 and ring.std == 0.02
    np.testing.assert_allclose(np.hypot(*np.array(ring.centers).T), 2.0)
    assert ring.centers[0] == (2.0, 0.0)
    assert len(grid.centers) == 25 and grid.std == 0.05
    assert sorted({x for x, _ in grid.centers}) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    with pytest.raises(ConfigError, match="std"):
        ring_mixture(std=0)


@pytest.mark.parametrize("make", [ring_mixture, grid_mixture])
def test_real_mixture_samples_cover_every_mode(make):
    be = get_backend("numpy", seed=0)
    mix = make()
    x = sample_mixture(mix, 20000, be)
    assert x.shape == (20000, 2) and x.dtype == np.float32
    m = mode_metrics(x, mix)
    k = len(mix.centers)
    assert m["modes_covered"] == m["n_modes"] == k
    # a 2-D Gaussian puts 1 - exp(-9/2) = 0.9889 of its mass within 3 std
    assert m["high_quality_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.005)
    assert m["kl_uniform"] < 0.01
    assert sum(m["mode_counts"]) == round(m["high_quality_fraction"] * 20000)


def test_mode_metrics_hand_values():
    mix = ring_mixture()                       # 8 modes, std 0.02: high quality within 0.06
    c = np.array(mix.centers)
    # 70 samples on mode 0, 25 near mode 1 (0.05 = 2.5 std off), 5 on mode 2, none on the
    # others, and 100 samples far from every mode
    x = np.concatenate([np.repeat(c[:1], 70, 0), np.repeat(c[1:2] + [0.05, 0], 25, 0),
                        np.repeat(c[2:3], 5, 0), np.zeros((100, 2))])
    m = mode_metrics(x, mix)
    assert m["n_samples"] == 200
    assert m["mode_counts"] == [70, 25, 5, 0, 0, 0, 0, 0]
    assert m["high_quality_fraction"] == 0.5
    assert m["modes_covered"] == 3             # threshold 0.2 * 200 / 8 = 5: mode 2 just makes it
    p = np.array([0.7, 0.25, 0.05])
    assert m["kl_uniform"] == pytest.approx(float((p * np.log(8 * p)).sum()), rel=1e-12)
    # one mode only: KL = log K; a sample 0.07 off its mode is not high quality
    one = mode_metrics(np.repeat(c[3:4], 10, 0), mix)
    assert one["modes_covered"] == 1 and one["kl_uniform"] == pytest.approx(math.log(8))
    none = mode_metrics(c[:2] + [0.07, 0.0], mix)
    assert none["high_quality_fraction"] == 0 and none["modes_covered"] == 0
    assert math.isnan(none["kl_uniform"])
    strict = mode_metrics(x, mix, min_share=0.5)   # threshold 12.5: mode 2 is lost
    assert strict["modes_covered"] == 2


def test_mode_metrics_rejects_bad_input():
    mix = ring_mixture()
    with pytest.raises(ConfigError, match=r"\(N, 2\)"):
        mode_metrics(np.zeros((5, 3)), mix)
    with pytest.raises(ConfigError, match="nan"):
        mode_metrics(np.array([[0.0, np.nan]]), mix)
    with pytest.raises(ConfigError, match="n_std"):
        mode_metrics(np.zeros((5, 2)), mix, n_std=-1)


# --- classes and the Inception-Score-style score ------------------------------------------

def test_class_histogram_and_coverage():
    probs = np.eye(4)[[0, 0, 0, 1, 1, 2, 0, 0]]
    assert class_histogram(probs) == [5, 2, 1, 0]
    assert class_histogram(probs, n_classes=6) == [5, 2, 1, 0, 0, 0]
    # fair share 8 / 4 = 2: 0.2 * 2 = 0.4, so any non-empty class counts
    assert classes_covered([5, 2, 1, 0]) == 3
    assert classes_covered([5, 2, 1, 0], min_share=0.6) == 2      # threshold 1.2
    assert classes_covered([0, 0, 0]) == 0
    with pytest.raises(ConfigError):
        classes_covered([])


def test_inception_score_hand_values():
    # every prediction uniform -> p(y|x) = p(y): 1
    assert inception_score(np.full((6, 10), 0.1)) == pytest.approx(1.0, abs=1e-12)
    # confident and balanced: C
    assert inception_score(np.eye(10)[np.arange(30) % 10]) == pytest.approx(10.0, rel=1e-12)
    # confident but collapsed onto one class: 1
    assert inception_score(np.eye(10)[np.zeros(7, int)]) == pytest.approx(1.0, abs=1e-12)
    # confident on 2 of 10 classes, balanced: 2
    assert inception_score(np.eye(10)[[3, 7, 3, 7]]) == pytest.approx(2.0, rel=1e-12)
    # a hand case: p1 = (1, 0), p2 = (1/2, 1/2), p_bar = (3/4, 1/4)
    kl1 = math.log(4 / 3)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert inception_score(np.array([[1.0, 0.0], [0.5, 0.5]])) == \
        pytest.approx(math.exp((kl1 + kl2) / 2), rel=1e-12)


def test_inception_score_rejects_non_probabilities():
    with pytest.raises(ConfigError, match="sum to 1"):
        inception_score(np.ones((3, 4)))
    with pytest.raises(ConfigError, match=">= 0"):
        inception_score(np.array([[2.0, -1.0]]))


# --- Frechet distance -----------------------------------------------------------------------

def test_frechet_distance_1d_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 2.0, (500, 1))
    b = rng.normal(-0.5, 0.7, (300, 1))
    m1, m2 = a.mean(), b.mean()
    s1, s2 = a.std(ddof=1), b.std(ddof=1)
    assert frechet_distance(a, b) == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-10)


def test_frechet_distance_diagonal_and_commuting_covariances():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    got = frechet_distance_from_statistics(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-12)
    # the same covariances in a rotated basis: the distance does not change
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    got = frechet_distance_from_statistics(q @ mu1, q @ np.diag(v1) @ q.T,
                                           q @ mu2, q @ np.diag(v2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_identical_sets_is_zero_and_symmetric():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(size=(300, 8)) + 0.3
    assert abs(frechet_distance(a, a)) < 1e-8 * np.trace(np.cov(a.T))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    assert frechet_distance(a, b) > 0
    mu, s = feature_statistics(a)
    np.testing.assert_allclose(s, np.cov(a.T), rtol=1e-12)
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-12)


def test_frechet_distance_with_dead_features():
    """Features constant in both sets (dead ReLU units) change only the mean term."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(150, 4)) * 1.5
    base = frechet_distance(a, b)
    a5 = np.hstack([a, np.zeros((200, 2))])
    b5 = np.hstack([b, np.zeros((150, 1)), np.full((150, 1), 3.0)])
    assert frechet_distance(a5, b5) == pytest.approx(base + 9.0, rel=1e-10)
    assert frechet_distance(np.zeros((5, 3)), np.ones((4, 3))) == pytest.approx(3.0)


def test_frechet_distance_errors(monkeypatch):
    with pytest.raises(ConfigError, match="width"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ConfigError, match="nan"):
        frechet_distance(np.full((5, 3), np.inf), np.zeros((5, 3)))
    with pytest.raises(ConfigError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ConfigError, match=r"\(D, D\)"):
        frechet_distance_from_statistics(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    # not a covariance: S1 S2 has a negative eigenvalue, its square root an imaginary trace
    with pytest.raises(MetricError, match="imaginary"):
        frechet_distance_from_statistics(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
    import scipy.linalg
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a: np.full_like(a, np.nan))
    with pytest.raises(MetricError, match="not finite"):
        frechet_distance_from_statistics(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


# --- on real MNIST digits -------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_and_classifier():
    if not MNIST_DIR.is_dir():
        pytest.skip(f"shared MNIST data not found at {MNIST_DIR}")
    from tinygan.tools.data import load_mnist
    x, y = load_mnist("mnist", "test", data_dir=MNIST_DIR, download=False)
    be = get_backend("numpy", seed=0)
    # a small, quickly trained classifier is enough to test the metrics' behaviour
    clf = Classifier(hidden=(128, 64), keep_prob=1.0, backend=be)
    fit(clf, x[:4000], y[:4000], epochs=2, batch_size=100, lr=2e-3)
    return x, y, clf


def test_frechet_distance_real_against_real_is_near_zero(mnist_and_classifier):
    x, _, clf = mnist_and_classifier
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))                 # two random disjoint halves
    half_a = clf.hidden_features(x[order[:5000]])
    half_b = clf.hidden_features(x[order[5000:]])
    noise = clf.hidden_features(rng.random((5000, 784), dtype=np.float32))
    mean_img = x.mean(0)
    blurred = (mean_img + 0.05 * rng.standard_normal((5000, 784))).clip(0, 1).astype(np.float32)
    fd_real = frechet_distance(half_a, half_b)
    fd_noise = frechet_distance(half_a, noise)
    fd_mean = frechet_distance(half_a, clf.hidden_features(blurred))
    print(f"FD real/real {fd_real:.3f}, real/noise {fd_noise:.3f}, real/mean image {fd_mean:.3f}")
    assert 0 <= fd_real < 0.05 * min(fd_noise, fd_mean)


def test_sample_quality_of_real_digits(mnist_and_classifier):
    x, y, clf = mnist_and_classifier
    q = sample_quality(x[5000:7000], x[8000:], clf)
    assert set(q) >= {"classes_covered", "class_histogram", "inception_score", "frechet_distance"}
    assert q["n_samples"] == 2000 and sum(q["class_histogram"]) == 2000
    assert q["classes_covered"] == 10
    assert q["inception_score"] > 6                    # near 10 for a good classifier
    collapsed = np.repeat(x[y == 1][:1], 2000, 0) + np.float32(0)
    c = sample_quality(collapsed, x[8000:], clf)
    assert c["classes_covered"] == 1 and c["inception_score"] == pytest.approx(1.0, abs=1e-6)
    assert c["frechet_distance"] > 10 * q["frechet_distance"]
