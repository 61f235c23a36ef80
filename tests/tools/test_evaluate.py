"""Parzen-window evaluation: against a direct scipy computation, closed forms, float32 vs
float64 on MNIST-sized data, sigma selection, nearest neighbours, bad inputs."""

import ast
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

from tinygan import get_backend
from tinygan.errors import ConfigError
from tinygan.tools.evaluate import (ParzenResult, mean_and_stderr, nearest_neighbours,
                              paper_sigmas, parzen_evaluate, parzen_log_likelihood,
                              select_sigma)

MODULE = Path(__file__).resolve().parents[2] / "tinygan" / "tools" / "evaluate.py"
from conftest import MNIST_DIR  # noqa: E402
MNIST_T10K = MNIST_DIR / "t10k-images-idx3-ubyte.gz"


@pytest.fixture(scope="module")
def b64():
    return get_backend("numpy", dtype="float64")


@pytest.fixture(scope="module")
def b32():
    return get_backend("numpy", dtype="float32")


def sq_dists(test, samples):
    """(N, M) squared distances from an (N, M, d) difference array, in float64."""
    test = np.asarray(test, np.float64)
    samples = np.asarray(samples, np.float64)
    return ((test[:, None, :] - samples[None, :, :]) ** 2).sum(axis=2)


def from_sq_dists(d2, d, sigma):
    return (logsumexp(-d2 / (2 * sigma ** 2), axis=1) - math.log(d2.shape[1])
            - 0.5 * d * math.log(2 * math.pi * sigma ** 2))


def direct(test, samples, sigma):
    """The estimator written out: an (N, M, d) difference array and scipy's logsumexp."""
    return from_sq_dists(sq_dists(test, samples), np.shape(test)[1], sigma)


def direct_gemm64(test, samples, sigma):
    """Float64 reference for data too big for an (N, M, d) array (cancellation ~1e-13 here)."""
    t = np.asarray(test, np.float64)
    s = np.asarray(samples, np.float64)
    d2 = (t * t).sum(1)[:, None] + (s * s).sum(1)[None, :] - 2 * t @ s.T
    d2 = np.maximum(d2, 0)
    return (logsumexp(-d2 / (2 * sigma ** 2), axis=1) - math.log(len(s))
            - 0.5 * t.shape[1] * math.log(2 * math.pi * sigma ** 2))


def load_mnist_t10k():
    if not MNIST_T10K.exists():
        pytest.skip(f"MNIST test images not found at {MNIST_T10K}")
    raw = gzip.open(MNIST_T10K, "rb").read()
    assert raw[:4] == b"\x00\x00\x08\x03"
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)


# --- against the direct computation ---------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0, 4.0])
@pytest.mark.parametrize("batch_size,sample_batch_size",
                         [(1, None), (7, None), (37, None), (500, None),
                          (7, 1), (10, 11), (16, 53), (37, 1000)])
def test_matches_scipy_float64(b64, sigma, batch_size, sample_batch_size):
    rng = np.random.default_rng(0)
    test = rng.normal(size=(37, 5))
    samples = rng.normal(size=(53, 5)) * 0.7 + 0.2
    got = parzen_log_likelihood(test, samples, sigma, backend=b64, batch_size=batch_size,
                                sample_batch_size=sample_batch_size)
    assert got.shape == (37,) and got.dtype == np.float64
    np.testing.assert_allclose(got, direct(test, samples, sigma), rtol=0, atol=1e-9)


def test_matches_scipy_offset_data_and_tiny_sigma(b64):
    """Far from the origin (exercises the centring) and with terms around -1e5 (no underflow),
    where the winning sample sits in the last chunk."""
    rng = np.random.default_rng(1)
    samples = 100.0 + rng.random((40, 8)) * 10
    test = samples[[39, 38, 5]] + rng.normal(scale=0.3, size=(3, 8))
    test = np.vstack([test, 100.0 + rng.random((4, 8)) * 10])
    for sigma in (0.01, 0.1, 2.0):
        got = parzen_log_likelihood(test, samples, sigma, backend=b64, batch_size=3,
                                    sample_batch_size=7)
        np.testing.assert_allclose(got, direct(test, samples, sigma), rtol=1e-13, atol=1e-9)


def test_float32_small_data_close(b32):
    rng = np.random.default_rng(2)
    test = rng.random((20, 30))
    samples = rng.random((50, 30))
    got = parzen_log_likelihood(test, samples, 0.3, backend=b32, batch_size=6,
                                sample_batch_size=17)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, direct(test, samples, 0.3), rtol=0, atol=1e-4)


def test_dtype_argument_overrides_backend(b32):
    rng = np.random.default_rng(3)
    test, samples = rng.random((9, 4)), rng.random((11, 4))
    got = parzen_log_likelihood(test, samples, 0.2, backend=b32, dtype="float64")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, direct(test, samples, 0.2), rtol=0, atol=1e-9)


# --- closed forms -----------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 3, 784])
@pytest.mark.parametrize("sigma", [0.1, 0.7, 2.0])
def test_one_sample_one_point_is_a_gaussian(b64, d, sigma):
    rng = np.random.default_rng(d)
    x, s = rng.random((1, d)), rng.random((1, d))
    expected = (-((x - s) ** 2).sum() / (2 * sigma ** 2)
                - 0.5 * d * math.log(2 * math.pi * sigma ** 2))
    got = parzen_log_likelihood(x, s, sigma, backend=b64)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, rel=1e-13, abs=1e-10)


def test_point_on_a_sample_is_the_peak_density(b32, b64):
    """x == s: the distance is exactly 0 (no rounding below 0), even for large values in float32."""
    rng = np.random.default_rng(4)
    s = 1000.0 + rng.random((1, 784)).astype(np.float32)
    for be in (b32, b64):
        for sigma in (0.1, 1.0):
            got = float(parzen_log_likelihood(s, s, sigma, backend=be)[0])
            assert got == pytest.approx(-392 * math.log(2 * math.pi * sigma ** 2), abs=1e-3)


def test_identical_samples_equal_one_sample(b64):
    x = np.array([[0.3, -1.0, 2.0]])
    s = np.array([[0.0, 0.5, 1.0]])
    one = parzen_log_likelihood(x, s, 0.4, backend=b64)
    many = parzen_log_likelihood(x, np.repeat(s, 25, axis=0), 0.4, backend=b64,
                                 sample_batch_size=4)
    np.testing.assert_allclose(many, one, rtol=0, atol=1e-12)


def test_images_are_flattened_and_inputs_untouched(b64):
    rng = np.random.default_rng(5)
    test, samples = rng.random((6, 4, 4)), rng.random((9, 4, 4))
    keep = samples.copy()
    got = parzen_log_likelihood(test, samples, 0.3, backend=b64)
    np.testing.assert_allclose(got, direct(test.reshape(6, -1), samples.reshape(9, -1), 0.3),
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(samples, keep)


# --- float32 against float64 on MNIST-sized data ---------------------------------------------

SIGMAS_32 = (0.1, 0.2, 1.0)
TOL_32 = 0.01   # nats per point


def check_float32(test, samples, b32, b64):
    worst = {}
    for sigma in SIGMAS_32:
        ref = direct_gemm64(test, samples, sigma)
        ll64 = parzen_log_likelihood(test, samples, sigma, backend=b64)
        np.testing.assert_allclose(ll64, ref, rtol=0, atol=1e-8)
        ll32 = parzen_log_likelihood(test.astype(np.float32), samples.astype(np.float32),
                                     sigma, backend=b32, batch_size=128)
        worst[sigma] = float(np.abs(ll32.astype(np.float64) - ref).max())
        assert worst[sigma] < TOL_32, (sigma, worst)
    return worst


def test_float32_vs_float64_mnist(b32, b64):
    images = load_mnist_t10k()
    x = images.astype(np.float32) / 255          # the float32 values both runs see
    test, samples = x[:500].astype(np.float64), x[1000:3000].astype(np.float64)
    worst = check_float32(test, samples, b32, b64)
    # the winner's exact recomputation keeps float32 far inside the budget
    assert worst[0.1] < 2e-3, worst


def test_float32_vs_float64_synthetic_784(b32, b64):
    rng = np.random.default_rng(6)
    x = rng.random((2300, 784)).astype(np.float32).astype(np.float64)
    check_float32(x[:300], x[300:], b32, b64)


# --- sigma selection --------------------------------------------------------------------------

def test_paper_grid_is_numpy_logspace():
    assert paper_sigmas() == list(np.logspace(-1, 0, 10))
    assert paper_sigmas(4) == list(np.logspace(-1, 0, 4))


def test_select_sigma_gaussian_data(b64, b32):
    """Samples and validation from N(mu, 0.3^2 I): the pick is the grid's best by direct
    computation, and it sits next to the optimum found on a fine grid."""
    rng = np.random.default_rng(7)
    d, mu = 10, rng.normal(size=10)
    samples = mu + 0.3 * rng.standard_normal((500, d))
    valid = mu + 0.3 * rng.standard_normal((400, d))

    grid = paper_sigmas()
    best, means = select_sigma(valid, samples, backend=b64, batch_size=64)
    assert list(means) == grid
    d2 = sq_dists(valid, samples)
    direct_means = {s: from_sq_dists(d2, d, s).mean() for s in grid}
    for s in grid:
        assert means[s] == pytest.approx(direct_means[s], rel=0, abs=1e-9)
    assert best == max(grid, key=direct_means.get)

    fine = np.logspace(-1, 0, 91)
    fine_best = fine[np.argmax([from_sq_dists(d2, d, s).mean() for s in fine])]
    nearest = min(grid, key=lambda s: abs(math.log(s / fine_best)))
    assert best == nearest
    assert 0.1 < best < 0.3          # a kernel narrower than the data's own spread

    best32, means32 = select_sigma(valid, samples, backend=b32, sample_batch_size=100)
    assert best32 == best
    for s in grid:
        assert means32[s] == pytest.approx(means[s], abs=1e-3)


def test_select_sigma_custom_grid(b64):
    rng = np.random.default_rng(8)
    samples, valid = rng.normal(size=(60, 3)), rng.normal(size=(30, 3))
    best, means = select_sigma(valid, samples, sigmas=[0.01, 0.5, 50.0], backend=b64)
    assert best == 0.5 and set(means) == {0.01, 0.5, 50.0}


def test_parzen_evaluate(b64, capsys):
    rng = np.random.default_rng(9)
    samples = rng.normal(size=(300, 6))
    valid, test = rng.normal(size=(80, 6)), rng.normal(size=(120, 6))
    res = parzen_evaluate(test, valid, samples, backend=b64, batch_size=50)
    assert isinstance(res, ParzenResult)
    best, means = select_sigma(valid, samples, backend=b64)
    assert res.sigma == best and res.sigma_means == means
    ll = direct(test, samples, best)
    assert res.mean == pytest.approx(ll.mean(), abs=1e-9)
    assert res.stderr == pytest.approx(ll.std() / math.sqrt(len(ll)), rel=1e-9)
    assert (res.n_test, res.n_samples) == (120, 300)
    assert res.log_likelihoods.shape == (120,)
    assert "+-" in str(res) and res.as_dict()["sigma"] == best


# --- mean and standard error ------------------------------------------------------------------

def test_mean_and_stderr():
    v = np.random.default_rng(10).normal(size=1000).astype(np.float32)
    mean, se = mean_and_stderr(v)
    assert isinstance(mean, float) and isinstance(se, float)
    assert mean == pytest.approx(v.astype(np.float64).mean(), rel=1e-12)
    assert se == pytest.approx(v.astype(np.float64).std() / math.sqrt(1000), rel=1e-12)
    m2, s2 = mean_and_stderr([float(a) for a in v])
    assert m2 == pytest.approx(mean, rel=1e-12) and s2 == pytest.approx(se, rel=1e-12)
    assert mean_and_stderr([2.0]) == (2.0, 0.0)


# --- nearest neighbours -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nearest_neighbours_brute_force(dtype):
    be = get_backend("numpy", dtype=dtype)
    rng = np.random.default_rng(11)
    refs = rng.random((300, 20)) + 3.0
    queries = np.vstack([rng.random((47, 20)) + 3.0, refs[[5, 299]]])  # two exact copies
    idx, dist = nearest_neighbours(queries, refs, backend=be, batch_size=16)
    d2 = ((queries[:, None, :] - refs[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, d2.argmin(1))
    np.testing.assert_allclose(dist, d2.min(1), rtol=1e-5 if dtype == "float32" else 1e-12)
    assert dist.dtype == np.dtype(dtype)
    assert idx[-2] == 5 and idx[-1] == 299 and dist[-2] == 0 and dist[-1] == 0


@pytest.mark.parametrize("reference_batch_size", [1, 7, 64, 300, 1000])
def test_nearest_neighbours_in_reference_slabs(reference_batch_size):
    """Any slab size finds the brute-force answer; a reference repeated later loses the tie
    to its first copy, across slabs as within one."""
    be = get_backend("numpy", dtype="float64")
    rng = np.random.default_rng(13)
    refs = rng.random((300, 12)) + 2.0
    refs[250] = refs[3]
    queries = np.vstack([rng.random((40, 12)) + 2.0, refs[[3, 299, 0]]])
    idx, dist = nearest_neighbours(queries, refs, backend=be, batch_size=16,
                                   reference_batch_size=reference_batch_size)
    d2 = ((queries[:, None, :] - refs[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, d2.argmin(1))
    np.testing.assert_allclose(dist, d2.min(1), rtol=1e-12)
    assert list(idx[-3:]) == [3, 299, 0] and not dist[-3:].any()


def test_nearest_neighbours_makes_no_copy_of_the_references():
    import tracemalloc
    be = get_backend("numpy", dtype="float32")
    refs = np.random.default_rng(14).random((20000, 64), dtype=np.float32)   # 5.1 MB
    queries = refs[[7, 19999]] + np.float32(1e-3)
    tracemalloc.start()
    try:
        idx, _ = nearest_neighbours(queries, refs, backend=be, reference_batch_size=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert list(idx) == [7, 19999]
    assert peak < refs.nbytes / 8


# --- the compute-module rule ------------------------------------------------------------------

def test_evaluate_imports_neither_numpy_nor_cupy():
    tree = ast.parse(MODULE.read_text())
    banned = {"numpy", "cupy", "cupyx", "scipy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots = {(node.module or "").split(".")[0]}
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            roots = {getattr(node.args[0], "value", "")} if node.args else set()
        else:
            continue
        assert not roots & banned, f"line {node.lineno}: imports {roots & banned}"


# --- bad inputs -------------------------------------------------------------------------------

GOOD_T = np.zeros((4, 3))
GOOD_S = np.ones((5, 3))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("kwargs,match", [
    (dict(test=np.zeros((4, 2))), "dimensions"),
    (dict(test=np.zeros((0, 3))), "empty"),
    (dict(samples=np.zeros((0, 3))), "empty"),
    (dict(test=np.zeros((4, 0)), samples=np.zeros((5, 0))), "empty"),
    (dict(test=np.zeros(3)), r"\(N, D\)"),
    (dict(test=[[0.0, np.nan, 1.0]]), "nan or inf"),
    (dict(samples=np.full((2, 3), np.inf)), "nan or inf"),
    (dict(test=[[1e300, 0.0, 0.0]]), "nan or inf"),   # overflows float32
    (dict(test=None), "None"),
    (dict(sigma=0.0), "sigma"),
    (dict(sigma=-0.2), "sigma"),
    (dict(sigma=float("nan")), "sigma"),
    (dict(sigma=float("inf")), "sigma"),
    (dict(sigma="wide"), "sigma"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(sample_batch_size=0), "sample_batch_size"),
    (dict(dtype="int32"), "dtype"),
    (dict(backend=42), "backend"),
])
def test_bad_inputs_raise_config_error(kwargs, match):
    args = dict(test=GOOD_T, samples=GOOD_S, sigma=0.5)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        parzen_log_likelihood(**args)


def test_bad_inputs_other_functions():
    with pytest.raises(ConfigError, match="sigmas"):
        select_sigma(GOOD_T, GOOD_S, sigmas=[])
    with pytest.raises(ConfigError, match="sigma"):
        select_sigma(GOOD_T, GOOD_S, sigmas=[0.1, 0.0])
    with pytest.raises(ConfigError, match="dimensions"):
        parzen_evaluate(GOOD_T, np.zeros((2, 4)), GOOD_S, progress=False)
    with pytest.raises(ConfigError, match="dimensions"):
        nearest_neighbours(np.zeros((2, 4)), GOOD_S)
    with pytest.raises(ConfigError, match="empty"):
        mean_and_stderr([])
    with pytest.raises(ConfigError, match="empty"):
        mean_and_stderr(np.zeros(0))


# --- GPU parity ---------------------------------------------------------------------------------

@pytest.mark.gpu
def test_cupy_matches_numpy():
    gpu, cpu = get_backend("cupy", dtype="float64"), get_backend("numpy", dtype="float64")
    rng = np.random.default_rng(12)
    test, samples = rng.random((70, 50)), rng.random((90, 50))
    for sbs in (None, 25):
        a = gpu.to_numpy(parzen_log_likelihood(test, samples, 0.3, backend=gpu, batch_size=32,
                                               sample_batch_size=sbs))
        b = parzen_log_likelihood(test, samples, 0.3, backend=cpu)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    g32 = get_backend("cupy")
    a32 = g32.to_numpy(parzen_log_likelihood(test, samples, 0.3, backend=g32))
    np.testing.assert_allclose(a32, b, rtol=0, atol=1e-3)
    idx, dist = nearest_neighbours(gpu.asarray(test), gpu.asarray(samples), backend=gpu)
    idx_c, dist_c = nearest_neighbours(test, samples, backend=cpu)
    np.testing.assert_array_equal(gpu.to_numpy(idx), idx_c)
    np.testing.assert_allclose(gpu.to_numpy(dist), dist_c, rtol=1e-12)
