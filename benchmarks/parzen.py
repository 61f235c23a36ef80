"""How close is the Parzen estimator to the cost of its matrix products?

For one sigma, ``parzen_log_likelihood`` on N test points and N samples of dimension D does
N x N x D multiply-adds (the GEMM) plus a few light passes over each (batch, N) block. This
script times, interleaved over ``--repeats`` rounds (median of each):

  (a) the bare GEMMs one sigma needs: the same (batch, D) x (D, N) shapes, into a
      preallocated block with ``out=``;
  (b) the full ``parzen_log_likelihood`` for one sigma (input checks, centering, logsumexp);

and prints (b) / (a). It also times a naive broadcasting version (an (n, m, D) difference
array, then logsumexp) on a small subset and extrapolates it to N x N.

    python benchmarks/parzen.py                      # 10,000 x 10,000 x 784, numpy
    python benchmarks/parzen.py --backend cupy --repeats 10
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinygan.backend import get_backend  # noqa: E402
from tinygan.errors import TinyGANError  # noqa: E402
from tinygan.tools.cli import Parser, positive_float, positive_int, report_error  # noqa: E402
from tinygan.tools.evaluate import DEFAULT_BATCH_SIZE, parzen_log_likelihood  # noqa: E402


def bare_gemm(be, t, s, g, batch_size):
    xp = be.xp
    n = t.shape[0]
    sT = s.T
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        xp.matmul(t[i:j], sT, out=g[: j - i])


def naive(be, t, s, sigma):
    """Direct broadcasting: an (n, m, d) array of differences, then a stable logsumexp."""
    xp = be.xp
    d2 = ((t[:, None, :] - s[None, :, :]) ** 2).sum(axis=2)
    v = -d2 / (2 * sigma ** 2)
    mx = v.max(axis=1, keepdims=True)
    lse = xp.log(xp.exp(v - mx).sum(axis=1)) + mx[:, 0]
    return lse - xp.log(s.shape[0]) - 0.5 * t.shape[1] * xp.log(2 * xp.pi * sigma ** 2)


def timed(be, fn):
    be.synchronize()
    t0 = time.perf_counter()
    fn()
    be.synchronize()
    return time.perf_counter() - t0


def main(argv=None):
    p = Parser(prog="parzen.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=positive_int, default=10_000, help="test points and samples")
    p.add_argument("--dim", type=positive_int, default=784, help="dimensions of each point")
    p.add_argument("--repeats", type=positive_int, default=5,
                   help="interleaved rounds; medians reported")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "auto"],
                   help="array library")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="floating-point type")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                   help="test points per matrix product")
    p.add_argument("--sigma", type=positive_float, default=0.2, help="Parzen window width")
    p.add_argument("--naive-n", type=positive_int, default=200,
                   help="test points of the naive version (extrapolated to --n)")
    p.add_argument("--naive-m", type=positive_int, default=2000,
                   help="samples of the naive version (extrapolated to --n)")
    a = p.parse_args(argv)
    try:
        be = get_backend(a.backend, dtype=a.dtype, seed=0)
    except TinyGANError as exc:
        return report_error("parzen.py", exc)
    xp = be.xp
    n, d = a.n, a.dim
    bs = min(a.batch_size, n)
    t = be.rng.random((n, d), dtype=be.dtype)
    s = be.rng.random((n, d), dtype=be.dtype)
    g = xp.empty((bs, n), dtype=be.dtype)

    # warm-up (BLAS threads, CuPy kernels and memory pool)
    bare_gemm(be, t[:bs], s, g, bs)
    parzen_log_likelihood(t[:bs], s, a.sigma, backend=be, batch_size=bs)
    be.synchronize()

    ta, tb = [], []
    for r in range(a.repeats):
        ta.append(timed(be, lambda: bare_gemm(be, t, s, g, bs)))
        tb.append(timed(be, lambda: parzen_log_likelihood(t, s, a.sigma, backend=be,
                                                          batch_size=bs)))
        print(f"  round {r + 1}/{a.repeats}: gemm {ta[-1]:.3f} s, parzen {tb[-1]:.3f} s "
              f"(ratio {tb[-1] / ta[-1]:.3f})", file=sys.stderr, flush=True)
    ma, mb = statistics.median(ta), statistics.median(tb)

    nn, nm = min(a.naive_n, n), min(a.naive_m, n)
    tn = [timed(be, lambda: naive(be, t[:nn], s[:nm], a.sigma)) for _ in range(3)]
    mn = statistics.median(tn) * (n * n) / (nn * nm)

    gflop = 2.0 * n * n * d / 1e9
    print(f"\nParzen estimator, one sigma: {n} test x {n} samples x {d} dims, {be.name} "
          f"{be.dtype.name}, batch {bs}, median of {a.repeats} interleaved rounds "
          f"(naive: median of 3 on {nn} x {nm}, extrapolated)\n")
    print("| what | median time (s) | GFLOP/s | vs (a) |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| (a) bare GEMMs | {ma:.3f} | {gflop / ma:.1f} | 1.00 |")
    print(f"| (b) parzen_log_likelihood | {mb:.3f} | {gflop / mb:.1f} | {mb / ma:.2f} |")
    print(f"| (c) naive broadcasting (extrapolated) | {mn:.1f} | {gflop / mn:.2f} "
          f"| {mn / ma:.1f} |")
    paired = sorted(y / x for x, y in zip(ta, tb))
    print(f"\nratio (b)/(a) = {mb / ma:.3f} (ratio of medians); per-round ratios: median "
          f"{statistics.median(paired):.3f}, range {paired[0]:.3f} to {paired[-1]:.3f}. "
          f"The naive version is {mn / mb:.0f}x slower than (b).")


if __name__ == "__main__":
    sys.exit(main())
