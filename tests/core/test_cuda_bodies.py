"""Every CUDA body in tinygan/fast/kernels.py, compiled for the host (the CuPy emulation's
host_kernels.py, g++) and run: each equals its reference_* (float64 to 1e-12, float32 to a few
ulp, exactly where it selects: ties, NaN, +-inf, denormals); a one-character fault in any body
fails its check; CUDA's -ftz shows only where the reference is denormal. The NumPy twins pass
the same checks on their own. Skipped, in one line, where no C++ compiler exists."""

import numpy as np
import pytest

from tinygan.fast import kernels
from tinygan.testing import cupy_emulation as emu
from tinygan.testing.cupy_emulation import host_kernels as hk

pytestmark = pytest.mark.skipif(hk.COMPILER is None, reason=hk.NO_COMPILER)

DTYPES = ["float64", "float32"]
RTOL = {"float64": 1e-12, "float32": 4 * np.finfo(np.float32).eps}
TINY = {"float64": np.finfo(np.float64).tiny, "float32": np.finfo(np.float32).tiny}


def compiled(kernel, body=None, ftz=False):
    """A runner f(*inputs, *outputs) of the kernel's CUDA body (or ``body``) built for the host."""
    return hk.HostKernel(kernel.in_params, kernel.out_params, body or kernel.cuda, kernel.name,
                         ftz=ftz)


def twin(kernel):
    return kernel.numpy_twin


def close(got, want, dtype, scale=0.0):
    """A few ulp of the value (and of ``scale``, where the formula rounds absolutely); NaN
    where NaN, inf where inf."""
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def special(dtype, n=None):
    """Values a body must get right: zeros of both signs, +-inf, NaN, denormals, the extremes."""
    f = np.finfo(dtype)
    return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, f.tiny / 4, -f.tiny / 4, f.tiny,
                     f.max, -f.max, 1.0, -1.0], dtype)


# --- one check per kernel: run(*inputs, *outputs) against the reference --------------------------
def check_logistic(run, dtype):
    l = np.concatenate([np.linspace(-100, 100, 401), [-1e4, -20, 20, 1e4],
                        special(dtype)]).astype(dtype)
    for sign, scale in ((1.0, 1.0), (-1.0, -0.5 / 7), (1.0, 0.25)):
        sp, grad = np.empty_like(l), np.empty_like(l)
        run(l, sign, scale, sp, grad)
        sp_ref, grad_ref = kernels.reference_logistic(l, sign, scale)
        close(sp, sp_ref, dtype)
        close(grad, grad_ref, dtype)


def maxout_inputs(dtype):
    rng = np.random.default_rng(0)
    n, pieces, units = 6, 4, 12
    z = rng.standard_normal((n, pieces * units)).astype(dtype)
    z3 = z.reshape(n, pieces, units)
    z3[:, 1, :3] = z3[:, 0, :3]                       # ties between pieces 0 and 1
    z3[:, 2, 3:5] = z3[:, 3, 3:5] = 9                 # ties between pieces 2 and 3, the max
    z3[0, 0, 5], z3[1, 2, 5], z3[2, 1, 6], z3[2, 3, 6] = np.nan, np.nan, np.nan, np.nan
    z3[3, 1, 7], z3[3, 2, 7], z3[4, 0, 8] = np.inf, np.inf, -np.inf
    z3[:, :, 9] = -np.inf                             # every piece -inf
    z3[:, :, 10] = np.finfo(dtype).tiny / 4           # every piece the same denormal
    z3[:, 1, 11] = np.finfo(dtype).tiny / 2           # a denormal above another
    b = np.zeros(pieces * units, dtype)
    b[2 * units:2 * units + 3] = -0.5
    return z, b, pieces, units


def check_maxout(run, dtype):
    z, b, pieces, units = maxout_inputs(dtype)
    y, k = np.empty((z.shape[0], units), dtype), np.empty((z.shape[0], units), "int32")
    run(z, b, pieces, units, y, k)
    y_ref, k_ref = kernels.reference_maxout(z, b, pieces)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(k, k_ref)


def check_maxout_backward(run, dtype):
    z, b, pieces, units = maxout_inputs(dtype)
    k = kernels.reference_maxout(z, b, pieces)[1]
    dy = np.random.default_rng(1).standard_normal((z.shape[0], units)).astype(dtype)
    dy[0, :3] = [np.nan, np.inf, np.finfo(dtype).tiny / 4]
    dz = np.empty_like(z)
    run(dy, k, pieces, units, dz)
    np.testing.assert_array_equal(dz, kernels.reference_maxout_backward(dy, k, pieces))


def check_relu(run, dtype):
    x = np.concatenate([np.random.default_rng(2).standard_normal(40) * 10, special(dtype)]).astype(dtype)
    mask, y = np.empty(x.shape, bool), np.empty_like(x)
    run(x, mask, y)
    y_ref, mask_ref = kernels.reference_relu(x)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert np.isnan(y[np.isnan(x)]).all()              # a NaN stays NaN (the divergence check)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(y_ref))


def check_sigmoid_layer(run, dtype):
    x = np.concatenate([np.linspace(-60, 60, 241), special(dtype)]).astype(dtype)
    y = np.empty_like(x)
    run(x, y)
    close(y, kernels.reference_sigmoid_layer(x), dtype, scale=1)


def check_sigmoid_backward(run, dtype):
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.random(50), [0, 1, np.nan]]).astype(dtype)
    dy = np.concatenate([rng.standard_normal(50), [np.inf, -np.inf, 1]]).astype(dtype)
    dx = np.empty_like(y)
    with np.errstate(invalid="ignore"):
        run(dy, y, dx)
        close(dx, kernels.reference_sigmoid_backward(dy, y), dtype, scale=1)


def check_dropout(run, dtype):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.standard_normal(200), special(dtype)]).astype(dtype)
    u = rng.random(x.shape).astype(dtype)
    for keep in (0.8, 0.5):
        u[:3] = [keep, np.nextafter(dtype_(dtype)(keep), 0), 0]     # the boundary: u < keep
        mask, y = np.empty_like(x), np.empty_like(x)
        run(x, u, keep, 1.0 / keep, mask, y)
        with np.errstate(invalid="ignore"):
            y_ref, m_ref = kernels.reference_dropout(x, u < dtype_(dtype)(keep), keep)
        close(mask, m_ref, dtype)
        close(y, y_ref, dtype)


def dtype_(dtype):
    return np.dtype(dtype).type


def check_sgd(run, dtype):
    rng = np.random.default_rng(5)
    p, v, g = (rng.standard_normal(300).astype(dtype) for _ in range(3))
    for lr, mu in ((0.1, 0.7), (0.05, 0.0)):
        P, V = p.copy(), v.copy()
        run(g, lr, mu, V, P)
        p_ref, v_ref = kernels.reference_sgd(p, v, g, lr, mu)
        close(V, v_ref, dtype, scale=1)
        close(P, p_ref, dtype, scale=4)


def check_adam(run, dtype):
    rng = np.random.default_rng(6)
    p, m, v, g = (rng.standard_normal(300).astype(dtype) for _ in range(4))
    v = np.abs(v)
    lr_t, eps_t = kernels.adam_step_sizes(1e-3, 0.5, 0.999, 1e-8, 3)
    P, M, V = p.copy(), m.copy(), v.copy()
    run(g, 0.5, 1 - 0.5, 0.999, 1 - 0.999, lr_t, eps_t, M, V, P)
    p_ref, m_ref, v_ref = kernels.reference_adam(p, m, v, g, 0.5, 0.999, lr_t, eps_t)
    close(M, m_ref, dtype, scale=1)
    close(V, v_ref, dtype, scale=1)
    close(P, p_ref, dtype, scale=1)


def check_gemm(run, dtype):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((9, 30)).astype(dtype), rng.standard_normal((30, 7)).astype(dtype)
    for x, w in ((a, b), (np.ascontiguousarray(b.T), np.ascontiguousarray(a.T)), (b.T, a.T)):
        c = np.empty((x.shape[0], w.shape[1]), dtype)
        run(x, w, x.shape[1], w.shape[1], c)
        # a sum of 30 products in another order: a few ulp of the sum of |products|
        bound = np.abs(x) @ np.abs(w)
        np.testing.assert_array_less(np.abs(c - kernels.reference_matmul(x, w)),
                                     8 * 30 * np.finfo(dtype).eps * bound + np.finfo(dtype).tiny)


CHECKS = {"tinygan_logistic": check_logistic, "tinygan_maxout": check_maxout,
          "tinygan_maxout_backward": check_maxout_backward, "tinygan_relu": check_relu,
          "tinygan_sigmoid_layer": check_sigmoid_layer,
          "tinygan_sigmoid_backward": check_sigmoid_backward, "tinygan_dropout": check_dropout,
          "tinygan_sgd_momentum": check_sgd, "tinygan_adam": check_adam, "tinygan_gemm": check_gemm}


def test_every_kernel_has_a_check():
    assert set(CHECKS) == set(kernels.KERNELS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_cuda_body_equals_its_reference(name, dtype):
    with np.errstate(all="ignore"):
        CHECKS[name](compiled(kernels.KERNELS[name]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_numpy_twin_equals_its_reference(name, dtype):
    with np.errstate(all="ignore"):
        CHECKS[name](twin(kernels.KERNELS[name]), dtype)


# --- a one-character fault in a body is caught ---------------------------------------------------
MUTATIONS = [
    ("tinygan_maxout", "v > best", "v >= best"),                      # ties to the last piece
    ("tinygan_maxout", "!isnan(best)", " isnan(best)"),               # a later NaN ignored
    ("tinygan_sgd_momentum", "- lr * g", "+ lr * g"),
    ("tinygan_dropout", "u < keep_prob", "u > keep_prob"),
    ("tinygan_dropout", "u < keep_prob", "u <=keep_prob"),            # the boundary
    ("tinygan_logistic", "(t >= 0 ? (T)1 : e)", "(t >= 0 ? e : (T)1)"),   # branches swapped
    ("tinygan_logistic", "t >= 0", "t <= 0"),
    ("tinygan_logistic", "exp(-fabs(t))", "exp(+fabs(t))"),
    ("tinygan_logistic", "fmax(t, (T)0)", "fmin(t, (T)0)"),
    ("tinygan_maxout_backward", "== p", "!= p"),
    ("tinygan_relu", "x > (T)0", "x >=(T)0"),
    ("tinygan_relu", "x * (T)0", "(T)0*(T)0"),                        # NaN turned into 0
    ("tinygan_sigmoid_layer", "(T)0.5 * x", "(T)0.6 * x"),
    ("tinygan_sigmoid_backward", "(T)1 - y", "(T)1 + y"),
    ("tinygan_adam", "b1 * m + c1", "b1 * m - c1"),
    ("tinygan_adam", "c2 * g * g", "c1 * g * g"),
    ("tinygan_gemm", "s += a", "s -= a"),
    ("tinygan_gemm", "k * cols + j", "k * cols - j"),
]


def test_every_kernel_has_a_mutation():
    assert {m[0] for m in MUTATIONS} == set(kernels.KERNELS)


@pytest.mark.parametrize("name, old, new", MUTATIONS,
                         ids=[f"{n}:{o}->{w}" for n, o, w in MUTATIONS])
def test_a_fault_in_a_body_is_caught(name, old, new):
    kernel = kernels.KERNELS[name]
    assert kernel.cuda.count(old) == 1, (name, old)
    mutated = compiled(kernel, kernel.cuda.replace(old, new))
    with np.errstate(all="ignore"):
        with pytest.raises(AssertionError):
            for dtype in DTYPES:
                CHECKS[name](mutated, dtype)


# --- CUDA's -ftz: where the GPU and NumPy may differ ------------------------------------------------
def test_ftz_flushes_float32_denormals_only():
    """CuPy compiles with -ftz=true (cupy/cuda/compiler.py): float32 results below the smallest
    normal become 0 and denormal inputs read as 0. The logistic gradient for |logit| > ~87 is
    denormal in float32: 0 on a GPU, kept by NumPy. Everywhere else the two agree; float64 is
    not flushed."""
    l = np.linspace(-110, 110, 441).astype("float32")
    sp, grad = np.empty_like(l), np.empty_like(l)
    compiled(kernels.KERNELS["tinygan_logistic"], ftz=True)(l, 1.0, 1.0, sp, grad)
    for got, ref in zip((sp, grad), kernels.reference_logistic(l, 1.0, 1.0)):
        differ = ~np.isclose(got, ref, rtol=RTOL["float32"], atol=0)
        denormal = (ref != 0) & (np.abs(ref) < TINY["float32"])
        assert denormal.any() and differ.any()
        np.testing.assert_array_equal(differ, denormal)      # exactly the denormal results
        assert (got[differ] == 0).all() and (l[differ] < -87).all()
    x = np.array([TINY["float32"] / 4, -TINY["float32"] / 4, 1.0], "float32")
    mask, y = np.empty(3, bool), np.empty_like(x)
    compiled(kernels.KERNELS["tinygan_relu"], ftz=True)(x, mask, y)
    np.testing.assert_array_equal(mask, [False, False, True])       # a denormal reads as 0
    l64 = np.linspace(-800, 800, 161)
    sp64, grad64 = np.empty_like(l64), np.empty_like(l64)
    compiled(kernels.KERNELS["tinygan_logistic"], ftz=True)(l64, 1.0, 1.0, sp64, grad64)
    close(grad64, kernels.reference_logistic(l64, 1.0, 1.0)[1], "float64")


# --- the emulated ElementwiseKernel: CuPy's rules, the compiled body, the cache ----------------------
def test_emulated_kernel_runs_the_compiled_body_and_type_checks_like_cupy():
    with emu.installed(14) as cupy:
        assert emu.compiled_bodies()
        x = cupy.asarray(np.array([np.nan, -1.0, 2.0], "float32"))
        y, mask = cupy.empty_like(x), cupy.empty((3,), "bool")
        kernels.relu(x, out=y)
        assert np.isnan(cupy.asnumpy(y)[0])                    # the twin's NaN, from the CUDA body
        k = cupy.ElementwiseKernel("T x, T s", "T y", "y = x * s;", name="tinygan_test_scale")
        with pytest.raises(TypeError, match="^Type is mismatched. x float64 float32 T$"):
            k(cupy.ones(3, dtype="float64"), 2.0, cupy.empty(3, dtype="float32"))
        with pytest.raises(TypeError, match="^Type is mismatched. s float64 float32 T$"):
            k(cupy.ones(3, dtype="float32"), cupy.ones(3), cupy.empty(3, dtype="float32"))
        with pytest.raises(TypeError, match="^Type is mismatched. k float32 int32$"):
            kernels._MAXOUT(cupy.ones((2, 4), dtype="float32"), cupy.zeros(4, dtype="float32"),
                            2, 2, cupy.empty((2, 2), dtype="float32"),
                            cupy.empty((2, 2), dtype="float32"))
        with pytest.raises(ValueError, match="Out shape is mismatched"):
            k(cupy.ones((2, 3), dtype="float32"), 2.0, cupy.empty(3, dtype="float32"))
        # scalars take T, 0-d arrays broadcast, outputs may be allocated, strided ones written back
        got = k(cupy.arange(6, dtype="float32").reshape(2, 3), cupy.asarray(np.float32(3)))
        np.testing.assert_array_equal(cupy.asnumpy(got), np.arange(6).reshape(2, 3) * 3)
        out = cupy.zeros((3, 2), dtype="float32")
        k(cupy.arange(6, dtype="float32").reshape(2, 3), 0.5, out.T)
        np.testing.assert_array_equal(cupy.asnumpy(out), (np.arange(6).reshape(2, 3) * 0.5).T)


def test_a_kernel_compiles_once_and_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGAN_HOST_KERNEL_CACHE", str(tmp_path))
    k = compiled(kernels.KERNELS["tinygan_sigmoid_backward"],
                 body="dx = dy * y * ((T)1 - y);  // cache test")
    before = len(hk.COMPILES)
    for _ in range(3):
        k(np.ones(4), np.full(4, 0.5), np.empty(4))
    assert len(hk.COMPILES) == before + 1
    assert len(list(tmp_path.glob("tinygan_sigmoid_backward-*.so"))) == 1


def test_twins_run_where_there_is_no_compiler(monkeypatch):
    """The fallback: without g++ the emulation runs the kernels' NumPy twins."""
    monkeypatch.setattr(emu.STATE, "compile", False)
    with emu.installed(14) as cupy:
        assert not emu.compiled_bodies()
        sp, grad = kernels.logistic(cupy.asarray(np.array([-1.0, 2.0])), 1.0, 1.0)
        np.testing.assert_allclose(cupy.asnumpy(grad), kernels.reference_sigmoid(np.array([-1.0, 2.0])))
        k = cupy.ElementwiseKernel("T x", "T y", "y = x;", name="tinygan_no_twin")
        with pytest.raises(NotImplementedError, match="no NumPy twin"):
            k(cupy.ones(2), cupy.empty(2))


# --- on a real GPU: the same checks through CuPy itself -------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_cuda_body_on_the_gpu_equals_its_reference(name):
    """float64 (no -ftz there: float32 differs at denormals by design, see above)."""
    import cupy
    if getattr(cupy, "EMULATED", False):
        pytest.skip("cupy is the emulation here: the host-compiled tests above cover it")
    k = kernels.KERNELS[name]
    kernel = cupy.ElementwiseKernel(k.in_params, k.out_params, k.cuda, name=k.name)

    def run(*args):
        dev = [cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
        kernel(*dev)
        for a, d in zip(args, dev):
            if isinstance(a, np.ndarray):
                a[...] = cupy.asnumpy(d)
    with np.errstate(all="ignore"):
        CHECKS[name](run, "float64")
