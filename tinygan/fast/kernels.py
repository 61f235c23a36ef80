"""Fused forms of the hot elementwise work, each beside the plain formula it must equal.

Speed tricks live beside the formula, not in it. Each operation here comes twice:

  reference_NAME   the maths, written plainly with new arrays: what a learner reads and what
                   docs/gradients.md derives;
  NAME             the fast form the layers, losses and optimizers call: on CuPy one CUDA
                   kernel (``backend.elementwise_kernel``: one launch instead of one per
                   operator), on NumPy the fewest passes over memory that measured fastest.

tests/core/test_kernels.py holds every fast form equal to its reference (float64 to 1e-12,
float32 to a few ulp, exactly where it selects). A :class:`Kernel` keeps a CUDA body and its
NumPy twin together; the twin is what NumPy runs where it is also the fastest form. The CuPy
emulation (tinygan/testing/cupy_emulation) compiles the CUDA body itself for the host, so the
tests run the code a GPU runs (tests/core/test_cuda_bodies.py).
"""

import contextlib
import math

from . import fast_threads
from ..backend import array_module, elementwise_kernel

KERNELS = {}
"""name -> Kernel: every fused kernel (the CuPy emulation finds the NumPy twins here)."""


class Kernel:
    """One fused elementwise operation: CuPy ``ElementwiseKernel`` parameters and CUDA body,
    and ``numpy_twin(*inputs, *outputs)``, which computes the same with NumPy into the outputs."""

    def __init__(self, name, in_params, out_params, cuda, numpy_twin):
        self.name, self.in_params, self.out_params = name, in_params, out_params
        self.cuda, self.numpy_twin = cuda, numpy_twin
        KERNELS[name] = self

    def __call__(self, *args):
        """Run on the arrays' library: inputs, then the (preallocated) outputs."""
        return elementwise_kernel(array_module(args[0]), self)(*args)


def _on_cupy(a):
    return array_module(a).__name__ != "numpy"


# --- matrix products: the library's (cuBLAS), or one kernel where cuBLAS is refused --------------
def reference_matmul(a, b):
    """c = a b: c[r, j] = sum_k a[r, k] b[k, j]; a (M, K), b (K, N), c (M, N)."""
    return a @ b


def _gemm_twin(a, b, depth, cols, c):
    c[...] = a @ b


_GEMM = Kernel(
    "tinygan_gemm", "raw T a, raw T b, int64 depth, int64 cols", "T c",
    """
    const long long r = i / cols, j = i % cols;
    T s = (T)0;
    for (long long k = 0; k < depth; ++k) {
        s += a[r * depth + k] * b[k * cols + j];
    }
    c = s;
    """, _gemm_twin)
"""One thread per element of c, summing in T over k (as cuBLAS's float32 GEMM does, in another
order). A raw CArray reads a[idx] at the C-order index idx whatever its strides, so a and b
may be transposed views. Slower than cuBLAS: it is what a CUDA graph can capture (docs/design.md)."""

_PRODUCTS = {"kernel": False}


@contextlib.contextmanager
def products_in_kernels():
    """Inside the block, :func:`matmul` on CuPy runs the ``tinygan_gemm`` kernel instead of
    cuBLAS, which CuPy refuses on a capturing stream (tinygan/tools/cuda_graph.py)."""
    old, _PRODUCTS["kernel"] = _PRODUCTS["kernel"], True
    try:
        yield
    finally:
        _PRODUCTS["kernel"] = old


def matmul(a, b, out=None):
    """Fast form of :func:`reference_matmul`, into ``out`` when given (2-D operands): the
    library's matmul (BLAS, cuBLAS); on CuPy inside :func:`products_in_kernels`, one kernel."""
    xp = array_module(a)
    if _PRODUCTS["kernel"] and _on_cupy(a):
        if out is None:
            out = xp.empty((a.shape[0], b.shape[1]), a.dtype)
        _GEMM(a, b, a.shape[1], b.shape[1], out)
        return out
    return xp.matmul(a, b) if out is None else xp.matmul(a, b, out=out)


# --- the logistic function and the losses' terms --------------------------------------------------
def reference_logistic(l, sign, scale):
    """(softplus(s l), c sigmoid(s l)) with s = ``sign``, c = ``scale``:
    softplus(t) = log(1 + e^t), sigmoid(t) = 1 / (1 + e^-t); the stable forms
    logaddexp(0, t) and, with e = exp(-|t|), 1 / (1 + e) for t >= 0, e / (1 + e) for t < 0."""
    xp = array_module(l)
    t = sign * l
    e = xp.exp(-xp.abs(t))
    return xp.logaddexp(0, t), scale * xp.where(t >= 0, 1.0, e).astype(l.dtype) / (1 + e)


def _logistic_twin(l, sign, scale, softplus, grad):
    xp = array_module(l)
    t = xp.multiply(l, sign, out=grad)
    xp.logaddexp(0, t, out=softplus)
    e = xp.exp(-xp.abs(t))
    xp.divide(xp.where(t >= 0, scale, scale * e).astype(l.dtype), 1 + e, out=grad)


_LOGISTIC = Kernel(
    "tinygan_logistic", "T l, T sign, T scale", "T softplus, T grad",
    """
    const T t = sign * l;
    const T e = exp(-fabs(t));
    softplus = fmax(t, (T)0) + log1p(e);
    grad = scale * (t >= 0 ? (T)1 : e) / ((T)1 + e);
    """, _logistic_twin)


def logistic(l, sign, scale):
    """Fast form of :func:`reference_logistic`: one kernel on CuPy. Returns new arrays."""
    xp = array_module(l)
    softplus, grad = xp.empty_like(l), xp.empty_like(l)
    _LOGISTIC(l, sign, scale, softplus, grad)
    return softplus, grad


def reference_sigmoid(l):
    """1 / (1 + exp(-l)), stable: with e = exp(-|l|), 1 / (1 + e) for l >= 0, e / (1 + e) else."""
    return reference_logistic(l, 1.0, 1.0)[1]


def sigmoid(l):
    """Fast form of :func:`reference_sigmoid`: one kernel on CuPy."""
    return logistic(l, 1.0, 1.0)[1]


# --- maxout: the max over pieces, and where its gradient goes ------------------------------------
def reference_maxout(z, b, pieces):
    """With z + b viewed (N, P, U): y[n, u] = max_p (z + b)[n, p, u] and k[n, u] = the first p
    attaining it."""
    z3 = (z + b).reshape(z.shape[0], pieces, -1)
    return z3.max(axis=1), z3.argmax(axis=1).astype("int32")


def reference_maxout_backward(dy, k, pieces):
    """dz[n, p, u] = dy[n, u] * [p = k[n, u]], as (N, P * U)."""
    xp = array_module(dy)
    p = xp.arange(pieces).reshape(1, pieces, 1)
    return (dy[:, None, :] * (p == k[:, None, :])).reshape(dy.shape[0], -1)


def _maxout_twin(z, b, pieces, units, y, k):
    y[...], k[...] = reference_maxout(z, b, int(pieces))


def _maxout_backward_twin(dy, k, pieces, units, dz):
    dz[...] = reference_maxout_backward(dy, k, int(pieces))


_MAXOUT = Kernel(
    "tinygan_maxout", "raw T z, raw T b, int32 pieces, int32 units", "T y, int32 k",
    """
    const long long n = i / units, u = i % units;
    const long long base = n * pieces * units + u;
    T best = z[base] + b[u];
    int arg = 0;
    for (int p = 1; p < pieces; ++p) {
        const T v = z[base + (long long)p * units] + b[(long long)p * units + u];
        if (v > best || (isnan(v) && !isnan(best))) { best = v; arg = p; }
    }
    y = best;
    k = arg;
    """, _maxout_twin)                  # a NaN piece wins (the first of them), as max and argmax

_MAXOUT_BACKWARD = Kernel(
    "tinygan_maxout_backward", "raw T dy, raw int32 k, int32 pieces, int32 units", "T dz",
    """
    const long long n = i / ((long long)pieces * units);
    const long long r = i % ((long long)pieces * units);
    const long long p = r / units, u = r % units;
    dz = dy[n * units + u] * (T)(k[n * units + u] == p);
    """, _maxout_backward_twin)         # a product, not a select: NaN and inf spread as dy * [p = k]


def maxout(z, b, pieces):
    """Fast form of :func:`reference_maxout` (bias added, max taken): (y, route), route
    telling :func:`maxout_backward` where dy goes. CuPy: one kernel, route = k. NumPy
    (measured 4x faster than its argmax, which is slow across a middle axis): b added in
    place over z, route = the one-hot mask [p = k] from the max, ties to the first piece."""
    xp, n = array_module(z), z.shape[0]
    units = z.shape[1] // pieces
    if _on_cupy(z):
        y, k = xp.empty((n, units), z.dtype), xp.empty((n, units), "int32")
        _MAXOUT(z, b, pieces, units, y, k)
        return y, k
    y, mask = xp.empty((n, units), z.dtype), xp.empty((n, pieces, units), "bool")

    def rows(lo, hi):
        zr, yr, mr = z[lo:hi], y[lo:hi], mask[lo:hi]
        zr += b
        z3 = zr.reshape(hi - lo, pieces, units)
        z3.max(axis=1, out=yr)
        xp.equal(z3, yr[:, None, :], out=mr)
        if pieces > 1 and not (xp.count_nonzero(mr) == yr.size and not xp.isnan(yr).any()):
            # ties (one True per (n, u) unless some tie or a NaN has none): keep only the first
            # piece attaining the max; the check costs less than half of this loop
            taken = mr[:, 0, :].copy()
            for p in range(1, pieces):
                mr[:, p, :] &= ~taken
                taken |= mr[:, p, :]
    fast_threads.run_split(rows, n, 2 * z.size)                              # THREADS
    return y, mask


def maxout_backward(dy, route, pieces, out=None):
    """Fast form of :func:`reference_maxout_backward`, given the route :func:`maxout` returned;
    into ``out`` (N, P * U) when given."""
    xp, n = array_module(dy), dy.shape[0]
    if out is None:
        out = xp.empty((n, pieces * dy.shape[1]), dy.dtype)
    if _on_cupy(dy):
        _MAXOUT_BACKWARD(dy, route, pieces, dy.shape[1], out)
        return out
    dz = out.reshape(route.shape)

    def rows(lo, hi):                   # [p = k] as 0/1, then * dy: measured 15% faster than
        xp.copyto(dz[lo:hi], route[lo:hi])     # multiplying by the bool mask (the same bits)
        xp.multiply(dz[lo:hi], dy[lo:hi, None, :], out=dz[lo:hi])
    fast_threads.run_split(rows, n, 2 * dz.size)                                         # THREADS
    return dz.reshape(n, -1)


# --- elementwise activations ---------------------------------------------------------------------
def reference_relu(x):
    """y = max(x, 0) and the mask [x > 0] its backward multiplies by."""
    return x * (x > 0), x > 0


def _relu_twin(x, mask, y):
    xp = array_module(x)
    xp.greater(x, 0, out=mask)
    xp.multiply(x, mask, out=y)


_RELU = Kernel("tinygan_relu", "T x", "bool mask, T y",
               """
               mask = x > (T)0;
               y = mask ? x : x * (T)0;
               """, _relu_twin)             # x * 0, not 0: a NaN stays NaN, as x * [x > 0]


def relu(x, out):
    """Fast form of :func:`reference_relu`: (y, mask), y written into ``out`` (may be x).
    CuPy: one kernel; NumPy: two passes."""
    mask = array_module(x).empty(x.shape, "bool")
    _RELU(x, mask, out)
    return out, mask


def reference_sigmoid_layer(x):
    """y = 1 / (1 + exp(-x)) = 0.5 tanh(x / 2) + 0.5 (the form that never overflows)."""
    return 0.5 * array_module(x).tanh(0.5 * x) + 0.5


def _sigmoid_layer_twin(x, y):
    xp = array_module(x)
    xp.multiply(x, 0.5, out=y)
    xp.tanh(y, out=y)
    y *= 0.5
    y += 0.5


_SIGMOID_LAYER = Kernel("tinygan_sigmoid_layer", "T x", "T y",
                        "y = (T)0.5 * tanh((T)0.5 * x) + (T)0.5;", _sigmoid_layer_twin)


def sigmoid_layer(x, out):
    """Fast form of :func:`reference_sigmoid_layer` into ``out`` (may be x). CuPy: one
    kernel; NumPy: four in-place passes."""
    _SIGMOID_LAYER(x, out)
    return out


def reference_sigmoid_backward(dy, y):
    """dx = dy * y * (1 - y)."""
    return dy * y * (1 - y)


def _sigmoid_backward_twin(dy, y, dx):
    xp = array_module(dy)
    xp.subtract(1, y, out=dx)
    dx *= y
    dx *= dy


_SIGMOID_BACKWARD = Kernel("tinygan_sigmoid_backward", "T dy, T y", "T dx",
                           "dx = dy * y * ((T)1 - y);", _sigmoid_backward_twin)


def sigmoid_backward(dy, y):
    """Fast form of :func:`reference_sigmoid_backward`: one kernel on CuPy, three passes on NumPy."""
    dx = array_module(dy).empty_like(dy)
    _SIGMOID_BACKWARD(dy, y, dx)
    return dx


# --- dropout --------------------------------------------------------------------------------------
def reference_dropout(x, keep, keep_prob):
    """Inverted dropout: m = keep / keep_prob (keep a 0/1 array), y = x * m. Returns (y, m)."""
    m = keep.astype(x.dtype) / keep_prob
    return x * m, m


def _dropout_twin(x, u, keep_prob, scale, mask, y):
    xp = array_module(x)
    xp.multiply(u < keep_prob, scale, out=mask)
    xp.multiply(x, mask, out=y)


_DROPOUT = Kernel(
    "tinygan_dropout", "T x, T u, T keep_prob, T scale", "T mask, T y",
    """
    mask = u < keep_prob ? scale : (T)0;
    y = x * mask;
    """, _dropout_twin)

BITS = 16
"""NumPy draws dropout masks from 16-bit integers (measured 0.74x the time of float32 draws):
a unit is kept when its bits are < round(keep_prob * 2^16), so keep_prob is used to 2^-17."""


def dropout(x, keep_prob, rng, out):
    """Fast form of :func:`reference_dropout` with a fresh mask from ``rng``: returns (y, m),
    y written into ``out``. CuPy: one draw of uniforms and one kernel. NumPy: 16-bit integer
    bits against a threshold (see ``BITS``), then two passes."""
    xp = array_module(x)
    scale = 1.0 / keep_prob
    mask = xp.empty_like(x)
    if _on_cupy(x):
        _DROPOUT(x, rng.random(x.shape, dtype=x.dtype), keep_prob, scale, mask, out)
        return out, mask
    bits = rng.integers(0, 1 << BITS, x.shape, dtype="uint16")    # one draw: the same bits
    threshold, scale = keep_threshold(keep_prob), x.dtype.type(scale)

    def rows(lo, hi):
        m = mask[lo:hi]
        xp.copyto(m, bits[lo:hi] < threshold)       # 0/1, then * scale: measured 15% faster
        m *= scale                                  # than multiplying the bool array by scale
        xp.multiply(x[lo:hi], m, out=out[lo:hi])
    fast_threads.run_split(rows, x.shape[0], 3 * x.size)                     # THREADS
    return out, mask


def keep_threshold(keep_prob):
    """The integer threshold NumPy's 16-bit dropout draws are compared with."""
    return max(1, round(keep_prob * (1 << BITS)))


# --- the optimizers' updates --------------------------------------------------------------------
def reference_sgd(p, v, g, lr, mu):
    """Classical momentum: v' = mu v - lr g, p' = p + v'. Returns (p', v') as new arrays."""
    v_new = mu * v - lr * g
    return p + v_new, v_new


def _sgd_twin(g, lr, mu, v, p):
    xp = array_module(g)
    v *= mu
    v -= xp.multiply(g, lr)
    p += v


_SGD = Kernel(
    "tinygan_sgd_momentum", "T g, T lr, T mu", "T v, T p",
    """
    v = mu * v - lr * g;
    p = p + v;
    """, _sgd_twin)


SLAB = 1 << 18
"""NumPy runs the optimizers' updates slab by slab, this many elements at a time: a scratch
of one slab (1 MiB in float32) instead of one as large as the parameters (~0.5 GB for the
CIFAR-10 model), and each slab of p, v, g stays in the last-level cache across the passes.
Measured on the paper's MNIST update (3.7 M parameters, one thread, min of 30 interleaved
blocks): 2^16 elements 2.65 ms, 2^18 2.28 ms, 2^19 2.21 ms, the whole vector at once 2.84 ms
(fewer calls per slab against cache reuse; issue 25)."""


def scratch_for(p):
    """The scratch array :func:`sgd` and :func:`adam` take for the flat vector ``p``: one slab."""
    return array_module(p).empty((min(p.size, SLAB),), p.dtype)


def _slabs(n, scratch):
    """(start, stop, scratch view) over n elements, one slab of len(scratch) at a time."""
    step = scratch.shape[0]
    for i in range(0, n, step):
        j = min(i + step, n)
        yield i, j, scratch[:j - i]


def sgd(p, v, g, lr, mu, scratch):
    """Fast form of :func:`reference_sgd`, in place on the flat vectors p and v. CuPy: one
    kernel (lr and mu may be 0-d device arrays, as a CUDA graph needs; ``scratch`` unused).
    NumPy: four passes per slab of ``len(scratch)`` elements (:data:`SLAB`), none allocating;
    elementwise, so the result is bit for bit that of whole-vector passes."""
    if _on_cupy(p):
        _SGD(g, lr, mu, v, p)
        return
    xp = array_module(p)

    def part(lo, hi):
        for i, j, tmp in _slabs(hi - lo, fast_threads.scratch(scratch)):
            i, j = i + lo, j + lo
            vs = v[i:j]
            vs *= mu
            xp.multiply(g[i:j], lr, out=tmp)
            vs -= tmp
            p[i:j] += vs
    fast_threads.run_split(part, p.shape[0], 5 * p.shape[0], align=scratch.shape[0])  # THREADS


def reference_adam(p, m, v, g, b1, b2, lr_t, eps_t):
    """m' = b1 m + (1 - b1) g,  v' = b2 v + (1 - b2) g^2,  p' = p - lr_t m' / (sqrt(v') + eps_t).
    Returns (p', m', v') as new arrays."""
    xp = array_module(p)
    m_new = b1 * m + (1 - b1) * g
    v_new = b2 * v + (1 - b2) * g * g
    return p - lr_t * m_new / (xp.sqrt(v_new) + eps_t), m_new, v_new


def _adam_numpy(g, b1, b2, lr_t, eps_t, m, v, p, tmp):
    xp = array_module(g)
    m *= b1
    xp.multiply(g, 1 - b1, out=tmp)
    m += tmp
    v *= b2
    xp.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v += tmp
    xp.sqrt(v, out=tmp)
    tmp += eps_t
    xp.divide(m, tmp, out=tmp)
    tmp *= lr_t
    p -= tmp


_ADAM = Kernel(
    "tinygan_adam", "T g, T b1, T c1, T b2, T c2, T lr_t, T eps_t", "T m, T v, T p",
    """
    m = b1 * m + c1 * g;
    v = b2 * v + c2 * g * g;
    p = p - lr_t * m / (sqrt(v) + eps_t);
    """, lambda g, b1, c1, b2, c2, lr_t, eps_t, m, v, p: _adam_numpy(
        g, b1, b2, lr_t, eps_t, m, v, p, array_module(g).empty_like(g)))
"""c1 = 1 - b1 and c2 = 1 - b2 come from the host, in double: (T)1 - b2 in float32 is
1 - 0.99900001 = 0.00099998713, 1.3e-5 off the 0.001 the reference multiplies by."""


def adam(p, m, v, g, b1, b2, lr_t, eps_t, scratch):
    """Fast form of :func:`reference_adam`, in place on the flat vectors p, m, v. CuPy: one
    kernel (``scratch`` unused). NumPy: eleven in-place passes per slab of ``len(scratch)``
    elements (:data:`SLAB`) through that scratch."""
    if _on_cupy(p):
        _ADAM(g, b1, 1 - b1, b2, 1 - b2, lr_t, eps_t, m, v, p)
        return

    def part(lo, hi):
        for i, j, tmp in _slabs(hi - lo, fast_threads.scratch(scratch)):
            i, j = i + lo, j + lo
            _adam_numpy(g[i:j], b1, b2, lr_t, eps_t, m[i:j], v[i:j], p[i:j], tmp)
    fast_threads.run_split(part, p.shape[0], 7 * p.shape[0], align=scratch.shape[0])  # THREADS


def adam_step_sizes(lr, b1, b2, eps, t):
    """Adam's bias corrections folded into the step: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),
    eps_t = eps sqrt(1 - b2^t) (the same update as m_hat / (sqrt(v_hat) + eps))."""
    return lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t), eps * math.sqrt(1 - b2 ** t)


# --- the step's losses, gradients and statistics from D's logits in one call ---------------------
def _logistic_grad_numpy(t, e, den, scale, out):
    """As _logistic_twin's gradient, given e = exp(-|t|) and den = 1 + e: c sigmoid(t) into out."""
    xp = array_module(t)
    xp.divide(xp.where(t >= 0, scale, scale * e).astype(t.dtype), den, out=out)


def gan_losses(logits, n, objective):
    """The simultaneous step's losses from D's logits ``logits`` (N, 1) on [real (n rows); fake]:
    (d_loss, dL_D/dlogits (N, 1), g_loss, dL_G/dl_fake (N - n, 1), mean D(x), mean D(G(z))),
    bit for bit what losses.discriminator_loss, losses.generator_loss and the sigmoid's means
    give (tests/test_fast.py). CuPy: four launches of the logistic kernel on views; NumPy:
    e = exp(-|l|) and 1 + e computed once for every term (the same for l and -l)."""
    xp = array_module(logits)
    real, fake = logits[:n], logits[n:]
    m = fake.size
    g_sign = -1.0 if objective == "nonsaturating" else 1.0
    sp, d_grad, sig = xp.empty_like(logits), xp.empty_like(logits), xp.empty_like(logits)
    g_sp, g_grad = xp.empty_like(fake), xp.empty_like(fake)
    if _on_cupy(logits):
        _LOGISTIC(real, -1.0, -0.5 / real.size, sp[:n], d_grad[:n])
        _LOGISTIC(fake, 1.0, 0.5 / m, sp[n:], d_grad[n:])
        _LOGISTIC(fake, g_sign, -1.0 / m, g_sp, g_grad)
        _LOGISTIC(logits, 1.0, 1.0, xp.empty_like(logits), sig)
    else:
        e = xp.abs(logits)
        xp.negative(e, out=e)
        xp.exp(e, out=e)                              # exp(-|t|) for t = l and t = -l alike
        den = e + 1
        neg = xp.negative(logits)                     # t of D's real terms and G's nonsaturating
        t_d = xp.concatenate([neg[:n], fake])         # t of D's terms (sign -1 real, +1 fake)
        xp.logaddexp(0, t_d, out=sp)
        _logistic_grad_numpy(t_d[:n], e[:n], den[:n], -0.5 / real.size, d_grad[:n])
        _logistic_grad_numpy(fake, e[n:], den[n:], 0.5 / m, d_grad[n:])
        t_g = neg[n:] if g_sign < 0 else fake
        if g_sign < 0:
            xp.logaddexp(0, t_g, out=g_sp)
        else:
            g_sp[...] = sp[n:]                        # softplus(l_fake): D's fake term
        _logistic_grad_numpy(t_g, e[n:], den[n:], -1.0 / m, g_grad)
        _logistic_grad_numpy(logits, e, den, 1.0, sig)
    d_loss = 0.5 * (sp[:n].mean() + sp[n:].mean())
    g_loss = g_sp.mean() if g_sign < 0 else -g_sp.mean()
    return d_loss, d_grad, g_loss, g_grad, sig[:n].mean(), sig[n:].mean()
