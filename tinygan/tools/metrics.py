"""Measuring what a GAN learned: mode coverage on 2-D toy mixtures, and sample quality of
image GANs through a digit classifier.

Every function takes backend arrays (NumPy or CuPy; the array module is read from the data
with ``array_module``) or, for the mixtures, a ``Backend``; this module imports neither numpy
nor cupy. The one exception is the matrix square root of the Frechet distance, taken by
``scipy.linalg.sqrtm`` on the host; scipy is imported on the first call of
``frechet_distance_from_statistics`` only (``_scipy_sqrtm``), so everything else works
without it.

2-D mixtures (the mode-collapse lab, ``examples/modes_2d.py``)
---------------------------------------------------------------
``ring_mixture()``: 8 Gaussians, std 0.02, evenly spaced on a circle of radius 2.
``grid_mixture()``: 25 Gaussians, std 0.05, on the grid {-4, -2, 0, 2, 4}^2.
Both are equal-weight mixtures. ``mode_metrics(samples, mixture)`` assigns every sample to its
nearest mode and reports (the protocol of VEEGAN, Srivastava et al. 2017, and PacGAN, Lin et
al. 2018):

* high-quality sample: one within ``n_std`` = 3 standard deviations of its nearest mode
  (Euclidean distance <= 3 std);
* ``high_quality_fraction``: high-quality samples / all samples;
* a mode is **covered** when at least ``min_share`` = 0.2 of its fair share of the samples,
  0.2 * N / K, are high-quality samples of that mode (PacGAN's rule: for 25 modes and 2,500
  samples, a mode with fewer than 20 of its expected 100 is lost). A mode that draws a stray
  sample or two is not covered;
* ``kl_uniform``: KL(p || u) = sum_k p_k log(K p_k) of the histogram p of high-quality samples
  over the K modes from the uniform u_k = 1/K, in nats; 0 when the high-quality samples are
  spread evenly, log K when they all sit on one mode; nan when there is no high-quality sample.

Sample quality through a classifier (``tinygan.tools.classifier.Classifier``)
------------------------------------------------------------------------
* ``class_histogram``: how many samples the classifier puts in each class (arg-max);
  ``classes_covered``: classes holding at least ``min_share`` (0.2) of the fair share N / C.
* ``inception_score``: exp(E_x KL(p(y|x) || p(y))) with p(y) = E_x p(y|x) (Salimans et al.
  2016), the classifier in place of Inception. 1 when every prediction is the same, C (the
  number of classes) when the predictions are confident (one-hot) and the classes balanced.
* ``frechet_distance``: ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between Gaussians
  fitted to two feature sets (Heusel et al. 2017's FID, with the classifier's last hidden
  layer in place of Inception's pool features).
* ``sample_quality(samples, real_images, classifier)``: all of the above in one dict.
"""

import importlib
import math
import warnings
from collections import namedtuple

from ..backend import array_module
from ..errors import (ConfigError, TinyGANError, check_int, check_non_negative,
                      check_positive)

__all__ = ["Mixture2D", "ring_mixture", "grid_mixture", "MIXTURES", "sample_mixture",
           "mode_metrics", "class_histogram", "classes_covered", "inception_score",
           "feature_statistics", "frechet_distance", "frechet_distance_from_statistics",
           "sample_quality", "MetricError", "DEFAULT_MIN_SHARE", "DEFAULT_N_STD"]

DEFAULT_N_STD = 3.0
DEFAULT_MIN_SHARE = 0.2


class MetricError(TinyGANError, ArithmeticError):
    """A metric could not be computed from these inputs (e.g. a matrix square root failed)."""


# --- 2-D mixtures ------------------------------------------------------------------------

Mixture2D = namedtuple("Mixture2D", "name centers std")
Mixture2D.__doc__ = """An equal-weight mixture of isotropic 2-D Gaussians: ``centers`` is a
tuple of (x, y) floats, ``std`` the standard deviation of every component."""


def ring_mixture(n_modes=8, radius=2.0, std=0.02):
    """``n_modes`` Gaussians evenly spaced on a circle of ``radius`` (the first at angle 0)."""
    n_modes = check_int("n_modes", n_modes)
    check_positive("radius", radius)
    centers = tuple((radius * math.cos(2 * math.pi * i / n_modes),
                     radius * math.sin(2 * math.pi * i / n_modes)) for i in range(n_modes))
    return Mixture2D("ring", centers, check_positive("std", std))


def grid_mixture(side=5, spacing=2.0, std=0.05):
    """side x side Gaussians on a square grid centred on 0 (default: {-4, -2, 0, 2, 4}^2)."""
    side = check_int("side", side)
    check_positive("spacing", spacing)
    coords = [spacing * (i - (side - 1) / 2) for i in range(side)]
    centers = tuple((x, y) for x in coords for y in coords)
    return Mixture2D("grid", centers, check_positive("std", std))


MIXTURES = {"ring": ring_mixture, "grid": grid_mixture}


def sample_mixture(mixture, n, backend):
    """n points (backend array (n, 2), the backend's dtype) from ``mixture``: a mode drawn
    uniformly for each point, then that mode's Gaussian."""
    n = check_int("n", n)
    centers = backend.asarray(mixture.centers)
    idx = backend.rng.integers(0, len(mixture.centers), size=n)
    return centers[idx] + backend.normal((n, 2), std=mixture.std)


def mode_metrics(samples, mixture, n_std=DEFAULT_N_STD, min_share=DEFAULT_MIN_SHARE):
    """Mode coverage and sample quality of 2-D ``samples`` (N, 2) for a :class:`Mixture2D`.

    Returns a dict of Python numbers: ``n_samples``, ``n_modes``, ``modes_covered`` (modes
    with >= min_share * N / K high-quality samples), ``high_quality_fraction`` (samples within
    n_std * std of their nearest mode), ``kl_uniform`` (KL of the high-quality samples' mode
    histogram from uniform, nats; nan when there are none) and ``mode_counts`` (high-quality
    samples per mode, a list in the order of ``mixture.centers``).
    """
    x = _matrix(samples, "samples", width=2)
    check_positive("n_std", n_std)
    min_share = check_non_negative("min_share", min_share)
    xp = array_module(x)
    x = x.astype("float64")
    centers = xp.asarray(mixture.centers, dtype="float64")               # (K, 2)
    k = centers.shape[0]
    d2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)         # (N, K)
    nearest = d2.argmin(axis=1)
    dist = xp.sqrt(d2.min(axis=1))
    good = dist <= n_std * mixture.std
    counts = [int(c) for c in _counts(xp, nearest, k, good).tolist()]      # the one sync
    n = int(x.shape[0])
    n_good = sum(counts)
    threshold = min_share * n / k
    covered = sum(1 for c in counts if c > 0 and c >= threshold)
    return {"n_samples": n, "n_modes": k, "modes_covered": covered,
            "high_quality_fraction": n_good / n, "kl_uniform": _kl_from_uniform(counts),
            "mode_counts": counts}


def _counts(xp, labels, k, where=None):
    """How many labels (N,) equal each of 0..k-1 (only where ``where``), on the device without
    a host sync: a one-hot (N, k) summed. Boolean-mask indexing and bincount would each read a
    size on the host first on CuPy (``int(mask_scanned[-1])``, ``int(cupy.max(x)) + 1``)."""
    hits = labels[:, None] == xp.arange(k)[None, :]
    if where is not None:
        hits &= where[:, None]
    return hits.sum(axis=0)


def _kl_from_uniform(counts):
    """KL(p || uniform) in nats for a histogram of counts (nan for an empty histogram)."""
    total = sum(counts)
    if total == 0:
        return math.nan
    k = len(counts)
    return sum((c / total) * math.log(k * c / total) for c in counts if c > 0)


# --- classifier-based sample quality --------------------------------------------------------

def class_histogram(probs, n_classes=None):
    """Counts of arg-max classes: ``probs`` (N, C) probabilities (or logits) -> list of C ints.
    ``n_classes`` defaults to C."""
    p = _matrix(probs, "probs")
    xp = array_module(p)
    c = p.shape[1] if n_classes is None else check_int("n_classes", n_classes)
    return [int(v) for v in _counts(xp, p.argmax(axis=1), c).tolist()]


def classes_covered(histogram, min_share=DEFAULT_MIN_SHARE):
    """Classes whose count is at least ``min_share`` times the fair share N / C (and > 0)."""
    counts = [int(c) for c in histogram]
    if not counts or any(c < 0 for c in counts):
        raise ConfigError(f"histogram must be a non-empty list of counts >= 0, got {histogram!r}")
    threshold = check_non_negative("min_share", min_share) * sum(counts) / len(counts)
    return sum(1 for c in counts if c > 0 and c >= threshold)


def inception_score(probs):
    """exp(mean_i KL(p_i || p_bar)) for class probabilities ``probs`` (N, C), rows summing to
    1, p_bar = the mean row. Computed in float64; terms with p_ic = 0 contribute 0.

    Hand values: identical rows give 1; one-hot rows spread evenly over C classes give C.
    """
    p = _matrix(probs, "probs")
    xp = array_module(p)
    p = p.astype("float64")
    if float(p.min()) < 0:
        raise ConfigError("probs must be probabilities (>= 0); pass softmax(logits), not logits")
    row = p.sum(axis=1)
    if float(abs(row - 1).max()) > 1e-3:
        raise ConfigError(f"each row of probs must sum to 1 (worst row sums to "
                          f"{float(row[abs(row - 1).argmax()]):.6g}); pass softmax(logits)")
    p_bar = p.mean(axis=0)
    tiny = 1e-300
    kl = (p * (xp.log(xp.maximum(p, tiny)) - xp.log(xp.maximum(p_bar, tiny))[None, :])).sum(axis=1)
    return float(math.exp(float(kl.mean())))


def feature_statistics(features):
    """(mu, S): the mean (D,) and the covariance (D, D) (unbiased, divided by N - 1) of
    ``features`` (N, D), in float64 on the features' backend."""
    f = _matrix(features, "features")
    if f.shape[0] < 2:
        raise ConfigError(f"features need at least 2 rows for a covariance, got {f.shape[0]}")
    f = f.astype("float64")
    mu = f.mean(axis=0)
    c = f - mu
    return mu, (c.T @ c) / (f.shape[0] - 1)


def frechet_distance(features1, features2):
    """Frechet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D):
    ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). Needs scipy (see the next function)."""
    f1, f2 = _matrix(features1, "features1"), _matrix(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ConfigError(f"feature sets differ in width: {f1.shape[1]} and {f2.shape[1]}")
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    return frechet_distance_from_statistics(mu1, s1, mu2, s2)


def frechet_distance_from_statistics(mu1, s1, mu2, s2, imag_tol=1e-3):
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)) for means (D,) and covariances
    (D, D).

    The square root is ``scipy.linalg.sqrtm(S1 @ S2)`` on the host in float64 (scipy is
    imported on the first call, and only for this). S1 S2 is similar to the positive semi-definite
    S1^(1/2) S2 S1^(1/2), so its square root has a real, non-negative trace; rounding can
    leave small imaginary parts, which are dropped (the real part is taken) as long as the
    imaginary part of the trace is at most ``imag_tol`` times (1 + |real part|). Otherwise, or
    when the result is not finite, MetricError (with what to try). Features with zero
    variance in both sets (dead ReLU units) are left out of the square root, where they
    contribute nothing; scipy's warning for a singular product is silenced, as the checks
    above catch a failed root. The distance is returned as computed: identical sets give 0
    up to rounding (possibly -1e-10).
    """
    xp = array_module(mu1)
    mu1, mu2 = xp.asarray(mu1, dtype="float64"), xp.asarray(mu2, dtype="float64")
    s1, s2 = xp.asarray(s1, dtype="float64"), xp.asarray(s2, dtype="float64")
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    for name, a, shape in (("mu2", mu2, (d,)), ("s1", s1, (d, d)), ("s2", s2, (d, d))):
        if d < 1 or tuple(a.shape) != shape:
            raise ConfigError(f"means must be (D,) and covariances (D, D): mu1 is "
                              f"{tuple(mu1.shape)}, {name} is {tuple(a.shape)}")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("s1", s1), ("s2", s2)):
        if not bool(xp.isfinite(a).all()):
            raise ConfigError(f"{name} contains nan or inf (are the features finite?)")
    # features constant in both sets (dead units) add nothing to the trace term: drop them
    # from the product, which makes it better conditioned (exactly the same distance)
    live = (xp.diag(s1) > 0) | (xp.diag(s2) > 0)
    trace = 0j
    if bool(live.any()):
        sqrtm = _scipy_sqrtm()
        product = _host(s1[live][:, live] @ s2[live][:, live])
        with warnings.catch_warnings():      # scipy warns on singular input; checked below
            warnings.simplefilter("ignore")
            trace = complex(sqrtm(product).trace())
    if not (math.isfinite(trace.real) and math.isfinite(trace.imag)):
        raise MetricError("the matrix square root of S1 S2 is not finite: the covariances are "
                          f"too ill-conditioned ({d} features). Use more samples than features, "
                          "or features with fewer dead (constant) units")
    if abs(trace.imag) > imag_tol * (1 + abs(trace.real)):
        raise MetricError(f"the matrix square root of S1 S2 has a large imaginary trace "
                          f"({trace.imag:.3g} against a real part of {trace.real:.3g}): the "
                          "covariances are (nearly) singular. Use more samples than features")
    diff = mu1 - mu2
    value = float((diff * diff).sum()) + float(xp.trace(s1)) + float(xp.trace(s2)) \
        - 2.0 * trace.real
    if not math.isfinite(value):
        raise MetricError(f"the Frechet distance came out as {value}")
    return value


def sample_quality(samples, real_images, classifier, batch_size=1000, min_share=DEFAULT_MIN_SHARE):
    """Score generated images with a trained :class:`tinygan.tools.classifier.Classifier`.

    samples:     (N, 784) generated images in [0, 1] (host or backend array).
    real_images: (M, 784) real images to compare with (e.g. 2,000 held-out test digits).

    Returns a dict: ``n_samples``; ``class_histogram`` (list of C ints: arg-max classes of
    the samples); ``classes_covered`` (classes with >= min_share of the fair share N / C);
    ``inception_score`` (exp E KL(p(y|x) || p(y)) over the samples); ``frechet_distance``
    (between the classifier's last hidden features of the real images and of the samples).
    """
    probs = classifier.predict_proba(samples, batch_size=batch_size)
    hist = class_histogram(probs)
    fake_features = classifier.hidden_features(samples, batch_size=batch_size)
    real_features = classifier.hidden_features(real_images, batch_size=batch_size)
    return {"n_samples": int(probs.shape[0]),
            "classes_covered": classes_covered(hist, min_share),
            "class_histogram": hist,
            "inception_score": inception_score(probs),
            "frechet_distance": frechet_distance(real_features, fake_features)}


# --- helpers -------------------------------------------------------------------------------

def _matrix(a, name, width=None):
    """A non-empty, finite 2-D array (backend or host); ConfigError otherwise."""
    if not hasattr(a, "ndim") or not hasattr(a, "dtype"):
        raise ConfigError(f"{name} must be an array of shape (N, D), got {type(a).__name__}")
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ConfigError(f"{name} must be a non-empty array of shape (N, D), got shape "
                          f"{tuple(a.shape)}")
    if width is not None and a.shape[1] != width:
        raise ConfigError(f"{name} must have shape (N, {width}), got {tuple(a.shape)}")
    if a.dtype.kind not in "biuf":
        raise ConfigError(f"{name} must be numeric, got dtype {a.dtype}")
    xp = array_module(a)
    if a.dtype.kind == "f" and not bool(xp.isfinite(a).all()):
        raise ConfigError(f"{name} contains nan or inf")
    return a


def _scipy_sqrtm():
    """scipy.linalg.sqrtm, imported on first use (by name, through importlib: this module's
    own imports stay free of numpy, cupy and scipy, which tests/tools/test_imports.py checks)."""
    try:
        return importlib.import_module("scipy.linalg").sqrtm
    except ImportError:
        raise ConfigError("the Frechet distance needs scipy (scipy.linalg.sqrtm): "
                          "pip install scipy") from None


def _host(a):
    """A backend array on the host (numpy): cupy arrays are copied over, numpy passes."""
    xp = array_module(a)
    return xp.asnumpy(a) if hasattr(xp, "asnumpy") else a

