"""Parzen-window log-likelihood (the paper's Table 1 protocol), sigma selection, nearest neighbours.

The estimator (Goodfellow et al. 2014, section 5; goodfeli/adversarial ``parzen_ll.py``): put an
isotropic Gaussian of width ``sigma`` on each of the M generated samples ``s_j`` and score a
test point ``x`` (dimension d) by the log density of that mixture,

    log p(x) = logmeanexp_j [ -||x - s_j||^2 / (2 sigma^2) ] - (d/2) log(2 pi sigma^2)

How it is computed (every array comes from ``backend.xp``; this module imports neither numpy
nor cupy, so it runs unchanged on CuPy):

* Both sets are shifted by a common vector (the samples' mean): distances do not change, the
  norms shrink, and so does the float32 cancellation below.
* Squared distances are a matrix product: ||x - s||^2 = ||x||^2 + ||s||^2 - 2 x.s. Test points
  go ``batch_size`` at a time, so the one big temporary is a (batch_size, M) block (or
  (batch_size, sample_batch_size) with sample chunking); an (N, M, d) array never exists.
* ||x_i||^2 is the same for every j and leaves the logsumexp; 1/sigma^2 and the ||s_j||^2
  term ride inside the GEMM (the samples carry ||s_j||^2 as an extra column, each test row
  carries -1/(2 sigma^2)), so the block comes out of the product as
  a_ij = (x_i.s_j - ||s_j||^2 / 2) / sigma^2, and -||x_i - s_j||^2 / (2 sigma^2) = a_ij - h_i
  with h_i = ||x_i||^2 / (2 sigma^2).
* Stable logsumexp in place (``out=``), on cache-sized slabs of rows: row argmax, subtract it,
  exp, row sum. Sample chunks are merged with the streaming (online) logsumexp.
* The winning term of each row is recomputed directly, -sum((x_i - s_j*)^2) / (2 sigma^2),
  which has no cancellation, and replaces its GEMM-rounded value in the sum. For small sigma
  that term dominates, so float32 loses almost nothing to the ||x||^2 + ||s||^2 - 2 x.s
  cancellation. This costs O(batch x d) per block, against the GEMM's O(batch x M x d).
* Rounding can make a squared distance slightly negative (a sample equal to the test point):
  it is clamped to 0 (a_ij is clamped to h_i).

Accuracy (float32 against float64, MNIST test digits against 2,000 others, 784 dims):
about 5e-4 nats per point at worst at sigma = 0.1 and 2e-4 at sigma = 0.2 (without the
winner's recomputation it was 5e-3 and 1.3e-3). The GEMM error grows like 1/sigma^2: use
``dtype="float64"`` for much smaller sigmas.

Cost: the GEMM plus four light passes over each block. On a 2-core CPU (NumPy, float32,
10,000 x 10,000 x 784) the whole estimator took 1.17 to 1.30 times the bare matrix products
(median of interleaved rounds on a busy machine; ``python benchmarks/parzen.py``).
"""

import math
from dataclasses import dataclass, field

from ..backend import Backend, default_backend, get_backend
from ..errors import ConfigError, check_int

DEFAULT_BATCH_SIZE = 1024

__all__ = ["parzen_log_likelihood", "mean_and_stderr", "select_sigma", "parzen_evaluate",
           "ParzenResult", "nearest_neighbours", "paper_sigmas", "DEFAULT_BATCH_SIZE"]


# --- helpers -------------------------------------------------------------------------------

def paper_sigmas(num=10):
    """The paper's sigma grid, ``numpy.logspace(-1, 0, num)``, computed with ``math``.

    Mirrors numpy's arithmetic (``10 ** (k * step + start)``, last point exactly 1.0).
    """
    if num == 1:
        return [0.1]
    start, stop = -1.0, 0.0
    step = (stop - start) / (num - 1)
    exps = [k * step + start for k in range(num)]
    exps[-1] = stop
    return [10.0 ** e for e in exps]


def _get_backend(backend):
    if backend is None:
        return default_backend("float32")
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, str):
        return get_backend(backend, verbose=False)
    raise ConfigError("backend must be a tinygan Backend, a backend name or None, "
                      f"not {type(backend).__name__}")


def _compute_dtype(be, dtype):
    name = be.dtype.name if dtype is None else getattr(dtype, "name", str(dtype))
    if name not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', not {dtype!r}")
    return be.xp.dtype(name)


def _matrix(be, a, dt, what):
    """Host or backend data -> C-contiguous (N, D) backend array of dtype ``dt``; validated."""
    if a is None:
        raise ConfigError(f"{what} is None: pass an (N, D) array")
    try:
        a = be.asarray(a, dtype=dt)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} could not be converted to a {dt.name} array on the "
                          f"{be.name} backend ({type(exc).__name__}: {exc})") from None
    if a.ndim < 2:
        raise ConfigError(f"{what} must have shape (N, D) (or (N, ...) images, flattened), got "
                          f"shape {tuple(a.shape)}; a single point is x.reshape(1, -1)")
    if a.ndim > 2:
        a = a.reshape(a.shape[0], -1)
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ConfigError(f"{what} is empty (shape {tuple(a.shape)})")
    # min and max propagate nan and show inf: two fast passes, no (N, D) boolean temporary
    if not (math.isfinite(float(a.min())) and math.isfinite(float(a.max()))):
        raise ConfigError(f"{what} contains nan or inf")
    return be.xp.ascontiguousarray(a)


def _sigma(value):
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"sigma must be a positive number, not {value!r}") from None
    if not math.isfinite(s) or s <= 0:
        raise ConfigError(f"sigma must be a finite number > 0, not {value!r}")
    return s


def _sigma_list(sigmas):
    if sigmas is None:
        return paper_sigmas()
    try:
        out = [_sigma(s) for s in sigmas]
    except TypeError:
        raise ConfigError(f"sigmas must be a sequence of positive numbers, "
                          f"not {sigmas!r}") from None
    if not out:
        raise ConfigError("sigmas is empty: pass at least one sigma (or None for the paper's grid)")
    return out


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


class _PlainLines:
    """Progress in a log file or a pipe: a plain line at most every ``every_s`` seconds, no
    carriage returns (as the training loop's ProgressReporter does)."""

    def __init__(self, total, desc, every_s=30.0):
        import time
        self.clock, self.total, self.desc, self.every_s = time.perf_counter, total, desc, every_s
        self.done, self.last = 0, self.clock()

    def update(self, n=1):
        import sys
        self.done += n
        now = self.clock()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            print(f"  {self.desc}: {self.done}/{self.total} batches "
                  f"({100 * self.done / max(self.total, 1):.0f}%)", file=sys.stderr, flush=True)

    def close(self):
        pass


def _progress(enabled, total, desc):
    """When ``enabled``: a tqdm bar on a terminal, plain lines every 30 s elsewhere (a log
    file); otherwise (or without tqdm on a terminal) a silent stand-in."""
    if not enabled:
        return _NoBar()
    import sys
    if not sys.stderr.isatty():
        return _PlainLines(total, desc)
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="batch", leave=False, mininterval=0.5)


def _sq_norms(xp, a, tmp):
    """Row squared norms ||a_i||^2 of ``a`` (n, d) -> (n,); ``tmp`` (k, d) is scratch."""
    n = a.shape[0]
    out = xp.empty((n,), dtype=a.dtype)
    step = tmp.shape[0]
    for i in range(0, n, step):
        j = min(i + step, n)
        t = tmp[: j - i]
        xp.multiply(a[i:j], a[i:j], out=t)
        t.sum(axis=1, out=out[i:j])
    return out


class _Samples:
    """The samples (M, d) made ready once for any number of sigmas and test sets.

    ``center`` (d,) is the samples' mean; ``s`` (M, d + 1) holds the centred samples
    s_j - center in its first d columns and ||s_j - center||^2 in the last, so that one GEMM
    with a test row [x / sigma^2, -1 / (2 sigma^2)] gives (x.s_j - ||s_j||^2 / 2) / sigma^2.
    """

    def __init__(self, be, samples, dt):
        xp = be.xp
        self.be, self.xp, self.dt = be, xp, dt
        s = _matrix(be, samples, dt, "samples")
        self.m, self.d = s.shape
        self.center = s.mean(axis=0).astype(dt)
        self.s = xp.empty((self.m, self.d + 1), dtype=dt)   # never a view of the caller's array
        xp.subtract(s, self.center, out=self.s[:, : self.d])
        tmp = xp.empty((min(self.m, 1024), self.d), dtype=dt)
        self.s[:, self.d] = _sq_norms(xp, self.s[:, : self.d], tmp)

    def check(self, x, what):
        if x.shape[1] != self.d:
            raise ConfigError(f"{what} has {x.shape[1]} dimensions per point but the samples have "
                              f"{self.d}: both must be (N, D) with the same D")


def _row_chunk(be, width, itemsize):
    """Rows per elementwise pass: on NumPy a slab of ~1 MiB (stays in L2 between the passes);
    elsewhere (CuPy) the whole block, since fewer, larger kernels are what a GPU wants."""
    if be.name != "numpy":
        return None
    return max(1, (1 << 20) // (width * itemsize))


def _score(prep, x, sigma, batch_size, sample_batch_size, bar):
    """Per-point Parzen log-likelihood of the (N, d) backend array ``x`` -> (N,) array.

    Per block (b test rows x one chunk of samples) of a_ij = (x_i.s_j - ||s_j||^2 / 2) / sigma^2:
    c_i = min(max_j a_ij, h_i) (h_i = ||x_i||^2 / (2 sigma^2); the min is the clamp of
    negative squared distances), S_i = sum_j exp(a_ij - c_i). The winning term j* of each row
    is then recomputed exactly as t_i = -sum((x_i - s_j*)^2) / (2 sigma^2) (no cancellation)
    and S_i += expm1(t_i + h_i - c_i), replacing its GEMM-rounded value. Then
    log sum_j exp(term_ij) = log S_i + c_i - h_i, merged across chunks by a streaming logsumexp.
    """
    be, xp, dt = prep.be, prep.xp, prep.dt
    n, d, m = x.shape[0], prep.d, prep.m
    bs = min(batch_size, n)
    mc = m if sample_batch_size is None else min(sample_batch_size, m)
    inv = 1.0 / (sigma * sigma)
    const = math.log(m) + 0.5 * d * math.log(2.0 * math.pi * sigma * sigma)
    f64 = xp.dtype("float64")
    on_host = be.name == "numpy"    # a host bool costs a device sync on CuPy: clamp always there
    rows = _row_chunk(be, mc, dt.itemsize) or bs

    xa_buf = xp.empty((bs, d + 1), dtype=dt)  # [x_i - center] / sigma^2 | -1 / (2 sigma^2)
    xa_buf[:, d] = -0.5 * inv
    xc_buf = xp.empty((bs, d), dtype=dt)      # x_i - center
    tmp = xp.empty((bs, d), dtype=dt)
    block = xp.empty((bs * mc,), dtype=dt)    # the one big temporary: batch_size x sample chunk
    arange = xp.arange(bs)
    top = xp.empty((bs,), dtype=arange.dtype)
    cmax = xp.empty((bs,), dtype=dt)
    csum = xp.empty((bs,), dtype=dt)
    ones = xp.ones((mc,), dtype=dt) if on_host else None   # row sums as a BLAS mat-vec
    out = xp.empty((n,), dtype=dt)
    s = prep.s

    def light(g, h, w, b):
        """The light passes over a block: shift by the (clamped) row max, exp, row sums."""
        for r0 in range(0, b, rows):                 # cache-sized slabs
            r1 = min(r0 + rows, b)
            gr, cm, hr = g[r0:r1], cmax[r0:r1], h[r0:r1]
            gr.argmax(axis=1, out=top[r0:r1])
            cm[...] = gr[arange[: r1 - r0], top[r0:r1]]
            clamp = bool((cm > hr).any()) if on_host else True
            if clamp:                                # squared distance < 0 from rounding -> 0
                xp.minimum(cm, hr, out=cm)
            xp.subtract(gr, cm[:, None], out=gr)
            if clamp:
                xp.minimum(gr, 0.0, out=gr)
            xp.exp(gr, out=gr)
            if on_host:                              # a BLAS mat-vec: faster than .sum on NumPy
                xp.matmul(gr, ones[:w], out=csum[r0:r1])
            else:                                    # CuPy 13's matmul(out=) fails on a 1-D operand
                gr.sum(axis=1, out=csum[r0:r1])

    for i in range(0, n, bs):
        j = min(i + bs, n)
        b = j - i
        xa, xc, t = xa_buf[:b], xc_buf[:b], tmp[:b]
        xp.subtract(x[i:j], prep.center, out=xc)
        xp.multiply(xc, xc, out=t)
        h = t.sum(axis=1).astype(f64)
        h *= 0.5 * inv                            # h_i = ||x_i||^2 / (2 sigma^2)
        hd = h.astype(dt)                         # (for the clamp, in the block's dtype)
        xp.multiply(xc, inv, out=xa[:, :d])       # x_i / sigma^2
        run_max = run_sum = None
        for k0 in range(0, m, mc):
            k1 = min(k0 + mc, m)
            g = block[: b * (k1 - k0)].reshape(b, k1 - k0)
            xp.matmul(xa, s[k0:k1].T, out=g)         # a_ij = (x_i.s_j - ||s_j||^2 / 2) / sigma^2
            light(g, hd, k1 - k0, b)
            c = cmax[:b].astype(f64)
            if run_max is None:
                run_max, run_sum, win = c, csum[:b].astype(f64), top[:b].copy()
            else:                                     # streaming logsumexp across chunks
                new_max = xp.maximum(run_max, c)
                run_sum *= xp.exp(run_max - new_max)
                run_sum += csum[:b] * xp.exp(c - new_max)
                win = xp.where(c > run_max, top[:b] + k0, win)
                run_max = new_max
        # the winner of each row, exactly: t_i = -||x_i - s_j*||^2 / (2 sigma^2); it added
        # exp(0) = 1 to run_sum (its chunk has the largest shift), replace that by exp(t + h - c)
        xp.subtract(xc, s[win, :d], out=t)
        xp.multiply(t, t, out=t)
        delta = t.sum(axis=1).astype(f64)
        delta *= -0.5 * inv
        delta += h
        delta -= run_max
        run_sum += xp.expm1(delta)
        ll = xp.log(run_sum)
        ll += run_max
        ll -= h
        ll -= const
        out[i:j] = ll
        bar.update(1)
    return out


# --- public API ----------------------------------------------------------------------------

def parzen_log_likelihood(test, samples, sigma, backend=None, batch_size=DEFAULT_BATCH_SIZE,
                          sample_batch_size=None, progress=False, dtype=None):
    """Per-point Parzen-window log-likelihood of ``test`` under Gaussians of width ``sigma``
    centred on ``samples``.

        log p(x_i) = logmeanexp_j [ -||x_i - s_j||^2 / (2 sigma^2) ] - (d/2) log(2 pi sigma^2)

    Args:
        test:    (N, d) points to score (host numpy or backend array; (N, ...) is flattened).
        samples: (M, d) generated samples (the kernel centres).
        sigma:   kernel width, > 0.
        backend: a Backend, a backend name, or None (NumPy, float32).
        batch_size: test points per block; memory is about batch_size x M (or x
            sample_batch_size) values of ``dtype``.
        sample_batch_size: None (all samples in one block) or a chunk size; chunks are merged
            with a streaming logsumexp.
        progress: show a tqdm bar over batches (silently off when tqdm is missing).
        dtype: compute and result dtype, "float32" or "float64"; default the backend's.

    Returns:
        (N,) backend array of log p(x_i), in ``dtype``.

    Raises:
        ConfigError: empty or non-finite inputs, dimension mismatch, sigma <= 0, bad sizes.
    """
    sigma = _sigma(sigma)
    be, dt, batch_size, sample_batch_size, prep = _setup(backend, dtype, batch_size,
                                                         sample_batch_size, samples)
    x = _matrix(be, test, dt, "test")
    prep.check(x, "test")
    bar = _progress(progress, -(-x.shape[0] // min(batch_size, x.shape[0])),
                    f"parzen sigma={sigma:.4g}")
    try:
        return _score(prep, x, sigma, batch_size, sample_batch_size, bar)
    finally:
        bar.close()


def mean_and_stderr(values):
    """(mean, std / sqrt(N)) of a 1-D array or sequence, as Python floats.

    The standard deviation is the population one (ddof=0), as in the paper's ``parzen_ll.py``.
    Synchronises on CuPy.
    """
    if hasattr(values, "astype") and hasattr(values, "std"):
        v = values.astype("float64").ravel()
        n = int(v.size)
        if n == 0:
            raise ConfigError("mean_and_stderr: values is empty")
        return float(v.mean()), float(v.std()) / math.sqrt(n)
    try:
        vals = [float(a) for a in values]
    except (TypeError, ValueError):
        raise ConfigError("mean_and_stderr needs an array or a sequence of numbers, "
                          f"not {values!r}") from None
    if not vals:
        raise ConfigError("mean_and_stderr: values is empty")
    n = len(vals)
    mean = math.fsum(vals) / n
    std = math.sqrt(math.fsum((a - mean) ** 2 for a in vals) / n)
    return mean, std / math.sqrt(n)


def select_sigma(validation, samples, sigmas=None, backend=None, batch_size=DEFAULT_BATCH_SIZE,
                 sample_batch_size=None, progress=False, dtype=None):
    """Pick the kernel width with the highest mean validation log-likelihood (paper protocol).

    Args:
        validation: (N_val, d) held-out points (the paper: 1,000 MNIST validation images).
        samples:    (M, d) generated samples.
        sigmas:     candidate widths; None -> the paper's grid ``logspace(-1, 0, 10)``.
        (other arguments as in :func:`parzen_log_likelihood`)

    Returns:
        (best_sigma, {sigma: mean log-likelihood on validation}) with Python floats.
    """
    sigmas = _sigma_list(sigmas)
    be, dt, batch_size, sample_batch_size, prep = _setup(backend, dtype, batch_size,
                                                         sample_batch_size, samples)
    v = _matrix(be, validation, dt, "validation")
    prep.check(v, "validation")
    return _select(prep, v, sigmas, batch_size, sample_batch_size, progress)


def _setup(backend, dtype, batch_size, sample_batch_size, samples):
    """The checked arguments every entry point shares, and the prepared samples."""
    be = _get_backend(backend)
    dt = _compute_dtype(be, dtype)
    batch_size = check_int("batch_size", batch_size)
    sample_batch_size = (None if sample_batch_size is None
                         else check_int("sample_batch_size", sample_batch_size))
    return be, dt, batch_size, sample_batch_size, _Samples(be, samples, dt)


def _select(prep, v, sigmas, batch_size, sample_batch_size, progress):
    nb = -(-v.shape[0] // min(batch_size, v.shape[0]))
    bar = _progress(progress, nb * len(sigmas), "parzen: choosing sigma")
    means = {}
    try:
        for s in sigmas:
            ll = _score(prep, v, s, batch_size, sample_batch_size, bar)
            means[s] = float(ll.astype("float64").mean())
    finally:
        bar.close()
    best = max(sigmas, key=lambda s: means[s])
    return best, means


@dataclass
class ParzenResult:
    """What :func:`parzen_evaluate` found.

    Attributes:
        mean, stderr: mean test log-likelihood (nats) and its standard error std / sqrt(N).
        sigma: the kernel width chosen on the validation set.
        sigma_means: {sigma: mean validation log-likelihood} for every candidate.
        n_test, n_samples: sizes used.
        log_likelihoods: the (N_test,) per-point values (backend array).
    """

    mean: float
    stderr: float
    sigma: float
    sigma_means: dict
    n_test: int
    n_samples: int
    log_likelihoods: object = field(default=None, repr=False)

    def __str__(self):
        return f"{self.mean:.1f} +- {self.stderr:.1f} (Parzen, sigma={self.sigma:.4g})"

    def as_dict(self):
        """JSON-able summary (no per-point values)."""
        return {"mean": self.mean, "stderr": self.stderr, "sigma": self.sigma,
                "sigma_means": {repr(k): v for k, v in self.sigma_means.items()},
                "n_test": self.n_test, "n_samples": self.n_samples}


def parzen_evaluate(test, validation, samples, sigmas=None, backend=None, progress=True,
                    batch_size=DEFAULT_BATCH_SIZE, sample_batch_size=None, dtype=None):
    """The paper's protocol: choose sigma on ``validation``, then score ``test`` with it.

    Args:
        test:       (N_test, d) points (the paper: the 10,000 MNIST test images).
        validation: (N_val, d) points used only to choose sigma.
        samples:    (M, d) generated samples (the paper: 10,000).
        sigmas:     candidate widths; None -> ``logspace(-1, 0, 10)``.

    Returns:
        :class:`ParzenResult` (mean, stderr, sigma, per-sigma validation means, ...).
    """
    sigmas = _sigma_list(sigmas)
    be, dt, batch_size, sample_batch_size, prep = _setup(backend, dtype, batch_size,
                                                         sample_batch_size, samples)
    v = _matrix(be, validation, dt, "validation")
    prep.check(v, "validation")
    x = _matrix(be, test, dt, "test")
    prep.check(x, "test")
    best, means = _select(prep, v, sigmas, batch_size, sample_batch_size, progress)
    bar = _progress(progress, -(-x.shape[0] // min(batch_size, x.shape[0])),
                    f"parzen: test, sigma={best:.4g}")
    try:
        ll = _score(prep, x, best, batch_size, sample_batch_size, bar)
    finally:
        bar.close()
    mean, se = mean_and_stderr(ll)
    return ParzenResult(mean=mean, stderr=se, sigma=best, sigma_means=means,
                        n_test=int(x.shape[0]), n_samples=prep.m, log_likelihoods=ll)


def nearest_neighbours(queries, references, backend=None, batch_size=DEFAULT_BATCH_SIZE,
                       reference_batch_size=1024):
    """Nearest reference (squared Euclidean) of each query, e.g. the training image closest to
    each generated sample (the paper's Figure 2).

    The search uses ||q - r||^2 = ||q||^2 + ||r||^2 - 2 q.r (points centred on the references'
    mean), in blocks of ``batch_size`` queries x ``reference_batch_size`` references: memory
    about (batch_size + reference_batch_size) x d beyond the inputs, never a copy of the
    references (the training set, 0.5 GB for CIFAR-10). The distance returned for the winner
    is then recomputed directly as sum((q - r)^2), so it is exact to rounding (0 for a
    duplicate). Ties go to the first reference; near-ties closer than the GEMM's rounding may
    pick either of the tied references.

    Args:
        queries:    (N, d) points.
        references: (M, d) points to search.

    Returns:
        (indices, sq_distances): (N,) integer backend array of positions in ``references``
        and (N,) array of squared distances, in the backend's dtype.
    """
    be = _get_backend(backend)
    xp, dt = be.xp, be.dtype
    batch_size = check_int("batch_size", batch_size)
    reference_batch_size = check_int("reference_batch_size", reference_batch_size)
    r = _matrix(be, references, dt, "samples")          # the caller's array, not a copy
    q = _matrix(be, queries, dt, "queries")
    m, d = r.shape
    if q.shape[1] != d:
        raise ConfigError(f"queries has {q.shape[1]} dimensions per point but the samples have "
                          f"{d}: both must be (N, D) with the same D")
    n = q.shape[0]
    bs, rs = min(batch_size, n), min(reference_batch_size, m)
    center = r.mean(axis=0).astype(dt)
    s_buf = xp.empty((rs, d + 1), dtype=dt)     # [r_j - center | ||r_j - center||^2]
    tmp = xp.empty((min(rs, 1024), d), dtype=dt)
    block = xp.empty((bs * rs,), dtype=dt)      # viewed (b, c): contiguous for the GEMM's out
    qa_buf = xp.empty((bs, d + 1), dtype=dt)    # [q_i - center | -1/2]
    qa_buf[:, d] = -0.5
    best = xp.empty((bs,), dtype=dt)
    idx = xp.empty((n,), dtype=xp.dtype("int64"))
    dist = xp.empty((n,), dtype=dt)
    for i in range(0, n, bs):
        j = min(i + bs, n)
        b = j - i
        qa = qa_buf[:b]
        qb = qa[:, :d]
        xp.subtract(q[i:j], center, out=qb)
        top, k = best[:b], idx[i:j]
        for a in range(0, m, rs):
            c = min(a + rs, m) - a
            s = s_buf[:c]
            xp.subtract(r[a:a + c], center, out=s[:, :d])
            s[:, d] = _sq_norms(xp, s[:, :d], tmp)
            g = block[:b * c].reshape(b, c)
            xp.matmul(qa, s.T, out=g)    # q.r - ||r||^2/2 = (||q||^2 - ||q - r||^2) / 2
            if a == 0:
                k[...] = g.argmax(axis=1)
                top[...] = g.max(axis=1)
                continue
            kc, gc = g.argmax(axis=1), g.max(axis=1)
            better = gc > top                   # strictly: a tie keeps the earlier reference
            k[...] = xp.where(better, kc + a, k)
            top[...] = xp.where(better, gc, top)
        diff = xp.subtract(qb, r[k] - center)
        xp.multiply(diff, diff, out=diff)
        dist[i:j] = diff.sum(axis=1)
    return idx, dist
