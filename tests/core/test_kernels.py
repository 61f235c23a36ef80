"""Every fast form in tinygan/fast/kernels.py equals its plain reference: float64 to 1e-12, float32
to a few ulp, exactly where it selects; on NumPy and, through the CuPy emulation, on the
kernels' CUDA bodies compiled for the host (the NumPy twins where no C++ compiler exists).
tests/core/test_cuda_bodies.py holds each body alone: special values, -ftz, one-character faults."""

import numpy as np
import pytest

from tinygan.fast import kernels
from tinygan.backend import get_backend
from tinygan.testing import cupy_emulation as emu

RTOL = {"float64": 1e-12, "float32": 4 * np.finfo(np.float32).eps}


@pytest.fixture(params=["numpy", "emulated-cupy"])
def lib(request):
    """(xp, to_host): NumPy itself, or the CuPy emulation (which runs the kernels' twins)."""
    if request.param == "numpy":
        yield np, np.asarray
    else:
        with emu.installed(14) as cupy:
            yield cupy, cupy.asnumpy


def close(got, want, dtype, scale=1e-30):
    """Equal to a few ulp of the values, or of ``scale`` where the formula's own rounding is
    absolute (0.5 tanh(x/2) + 0.5 is exact to an ulp of 1, not of its value near 0); float32
    values below the smallest normal may be 0 (CUDA's -ftz, emulated in the compiled bodies)."""
    got, want = np.asarray(got), np.asarray(want)
    if np.dtype(dtype) == np.float32:
        flushed = (np.abs(want) < np.finfo(np.float32).tiny) & (got == 0)
        want = np.where(flushed, 0, want)
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logistic_and_sigmoid(lib, dtype):
    xp, host = lib
    l_host = np.concatenate([np.linspace(-100, 100, 401), [-1e4, -20, 0, 20, 1e4]]).astype(dtype)
    l = xp.asarray(l_host)
    for sign, scale in ((1.0, 1.0), (-1.0, -0.5 / 7), (1.0, 0.25)):
        sp, grad = kernels.logistic(l, sign, scale)
        sp_ref, grad_ref = kernels.reference_logistic(l_host, sign, scale)
        close(host(sp), sp_ref, dtype)
        close(host(grad), grad_ref, dtype)
    close(host(kernels.sigmoid(l)), kernels.reference_sigmoid(l_host), dtype)
    assert host(kernels.sigmoid(l))[l_host == -20][0] > 0          # the left tail is kept


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_maxout_selects_exactly_and_routes_to_one_piece(lib, dtype):
    xp, host = lib
    rng = np.random.default_rng(0)
    n, pieces, units = 7, 5, 6
    z_host = rng.standard_normal((n, pieces * units)).astype(dtype)
    z_host[:, units:2 * units] = z_host[:, :units]                    # ties between pieces 0 and 1
    b_host = np.zeros(pieces * units, dtype)
    b_host[2 * units:] = rng.standard_normal(3 * units)
    dy_host = rng.standard_normal((n, units)).astype(dtype)
    y_ref, k_ref = kernels.reference_maxout(z_host, b_host, pieces)
    y, route = kernels.maxout(xp.asarray(z_host), xp.asarray(b_host), pieces)
    np.testing.assert_array_equal(host(y), y_ref)
    dz_ref = kernels.reference_maxout_backward(dy_host, k_ref, pieces)
    np.testing.assert_array_equal(host(kernels.maxout_backward(xp.asarray(dy_host), route, pieces)), dz_ref)
    assert (np.count_nonzero(dz_ref.reshape(n, pieces, units), axis=1) <= 1).all()


def test_numpy_maxout_breaks_a_tie_that_a_nan_elsewhere_balances_in_the_count():
    """NumPy's maxout skips its tie-breaking loop when every (n, u) has exactly one maximum;
    a NaN unit (no piece equal to its max) beside a tied unit must not pass for that."""
    pieces, units = 3, 2
    z = np.arange(12, dtype="float32").reshape(2, pieces * units)   # piece 2 wins everywhere
    z[0, 2 * units] = z[0, units] = 50.0                            # unit 0, row 0: pieces 1, 2 tie
    z[1, 1] = np.nan                                                # unit 1, row 1: NaN
    y, route = kernels.maxout(z.copy(), np.zeros(pieces * units, "float32"), pieces)
    assert np.count_nonzero(route) == 3             # 2 single maxima, the tie's first, the NaN none
    assert route[0, :, 0].tolist() == [False, True, False]
    assert not route[1, :, 1].any() and np.isnan(y[1, 1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_activations(lib, dtype):
    xp, host = lib
    x_host = np.random.default_rng(1).standard_normal((5, 9)).astype(dtype) * 10
    x_host[0, :3] = [0.0, -0.0, 1e-30]
    y, mask = kernels.relu(xp.asarray(x_host), out=xp.empty((5, 9), dtype))
    y_ref, mask_ref = kernels.reference_relu(x_host)
    np.testing.assert_array_equal(host(y), y_ref)
    np.testing.assert_array_equal(host(mask), mask_ref)
    s = kernels.sigmoid_layer(xp.asarray(x_host), out=xp.empty((5, 9), dtype))
    close(host(s), kernels.reference_sigmoid_layer(x_host), dtype, scale=1)
    dy_host = np.random.default_rng(2).standard_normal((5, 9)).astype(dtype)
    s_host = host(s)
    close(host(kernels.sigmoid_backward(xp.asarray(dy_host), s)),
          kernels.reference_sigmoid_backward(dy_host, s_host), dtype, scale=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dropout_against_the_same_draws(dtype):
    """NumPy: 16-bit bits against round(keep * 2^16); the mask equals the reference's exactly."""
    x = np.random.default_rng(3).standard_normal((50, 40)).astype(dtype)
    for keep in (0.8, 0.5, 0.3):
        rng = np.random.default_rng(4)
        bits = np.random.default_rng(4).integers(0, 1 << kernels.BITS, x.shape, dtype="uint16")
        y, m = kernels.dropout(x, keep, rng, out=np.empty_like(x))
        y_ref, m_ref = kernels.reference_dropout(x, bits < kernels.keep_threshold(keep), keep)
        close(m, m_ref, dtype)
        close(y, y_ref, dtype)
        assert abs((m > 0).mean() - keep) < 0.03


def test_dropout_twin_on_the_emulation():
    """The CuPy path: uniforms u, kept where u < keep; the twin equals the reference."""
    with emu.installed(14) as cupy:
        be = get_backend("cupy", dtype="float64", seed=0)
        x_host = np.random.default_rng(3).standard_normal((30, 20))
        with emu.counting() as c:
            y, m = kernels.dropout(be.asarray(x_host), 0.8, be.rng, out=be.empty((30, 20)))
        assert len(c.launches) == 2            # the draw and one kernel
        u = cupy.asnumpy(be.reseed() or be.rng.random((30, 20), dtype="float64"))
        y_ref, m_ref = kernels.reference_dropout(x_host, u < 0.8, 0.8)
        close(cupy.asnumpy(m), m_ref, "float64")
        close(cupy.asnumpy(y), y_ref, "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optimizer_updates(lib, dtype):
    xp, host = lib
    rng = np.random.default_rng(5)
    p, v, m, g = (rng.standard_normal(1000).astype(dtype) for _ in range(4))
    v2 = np.abs(v)
    P, V, G = (xp.asarray(a.copy()) for a in (p, v, g))     # NumPy: not the same arrays
    kernels.sgd(P, V, G, 0.1, 0.7, xp.empty_like(P))
    p_ref, v_ref = kernels.reference_sgd(p, v, g, 0.1, 0.7)
    close(host(P), p_ref, dtype)
    close(host(V), v_ref, dtype)
    lr_t, eps_t = kernels.adam_step_sizes(1e-3, 0.5, 0.999, 1e-8, 3)
    P, M, V2 = (xp.asarray(a.copy()) for a in (p, m, v2))
    kernels.adam(P, M, V2, G, 0.5, 0.999, lr_t, eps_t, xp.empty_like(P))
    p_ref, m_ref, v_ref = kernels.reference_adam(p, m, v2, g, 0.5, 0.999, lr_t, eps_t)
    close(host(M), m_ref, dtype)
    close(host(V2), v_ref, dtype)
    close(host(P), p_ref, dtype)


def test_numpy_updates_go_slab_by_slab_with_a_small_scratch():
    """A vector of several slabs (and a partial last one) through a one-slab scratch: the
    result is bit for bit that of whole-vector passes, and the scratch stays one slab."""
    rng = np.random.default_rng(6)
    n = 2 * kernels.SLAB + 123
    p, v, m, g = (rng.standard_normal(n).astype("float32") for _ in range(4))
    v2 = np.abs(v)
    scratch = kernels.scratch_for(p)
    assert scratch.shape == (kernels.SLAB,) and scratch.dtype == p.dtype
    assert kernels.scratch_for(p[:10]).shape == (10,)
    P, V = p.copy(), v.copy()
    kernels.sgd(P, V, g, np.float32(0.1), 0.7, scratch)
    V_whole = v * np.float32(0.7) - g * np.float32(0.1)        # the former whole-vector passes
    np.testing.assert_array_equal(V, V_whole)
    np.testing.assert_array_equal(P, p + V_whole)
    lr_t, eps_t = kernels.adam_step_sizes(1e-3, 0.5, 0.999, 1e-8, 3)
    P, M, V2 = p.copy(), m.copy(), v2.copy()
    kernels.adam(P, M, V2, g, 0.5, 0.999, lr_t, eps_t, scratch)
    Pw, Mw, Vw = p.copy(), m.copy(), v2.copy()
    kernels._adam_numpy(g, 0.5, 0.999, lr_t, eps_t, Mw, Vw, Pw, np.empty_like(g))
    for got, want in ((P, Pw), (M, Mw), (V2, Vw)):
        np.testing.assert_array_equal(got, want)


def test_each_kernel_is_one_launch_on_the_emulation():
    with emu.installed(14) as cupy:
        x, b = cupy.ones((4, 10), dtype="float32"), cupy.zeros(10, dtype="float32")
        with emu.counting() as c:
            kernels.logistic(x, 1.0, 1.0)
            kernels.maxout(x, b, 5)
            kernels.relu(x, out=cupy.empty_like(x))
            kernels.sgd(x, x.copy(), x.copy(), 0.1, 0.5, None)
        assert [w for w, _ in c.launches] == ["kernel:tinygan_logistic", "kernel:tinygan_maxout",
                                              "kernel:tinygan_relu", "copy", "copy",
                                              "kernel:tinygan_sgd_momentum"]


def test_the_emulated_elementwise_kernel_has_cupys_signature():
    import inspect
    params = list(inspect.signature(emu.ElementwiseKernel).parameters)
    assert params[:8] == ["in_params", "out_params", "operation", "name", "reduce_dims",
                          "preamble", "no_return", "return_tuple"]
    with pytest.raises(Exception, match="Syntax error: T"):          # CuPy's ParameterInfo
        emu.ElementwiseKernel("T", "T y", "y = 1;")
    with emu.installed(14) as cupy:
        with pytest.raises(TypeError, match=r"Wrong number of arguments for 'tinygan_logistic'\. "
                                            r"It must be either 3 or 5 \(with outputs\), but given 4"):
            kernels._LOGISTIC(cupy.ones(2), 1.0, 1.0, cupy.empty(2))


def test_every_kernel_has_cuda_and_a_twin():
    assert len(kernels.KERNELS) >= 9
    for name, k in kernels.KERNELS.items():
        assert name.startswith("tinygan_") and callable(k.numpy_twin)
        outs = [p.split()[-1] for p in k.out_params.split(",")]
        assert all(o in k.cuda for o in outs), name                 # every output is assigned
        assert k.cuda.count("{") == k.cuda.count("}") and k.cuda.count("(") == k.cuda.count(")")
