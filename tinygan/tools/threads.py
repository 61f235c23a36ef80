"""BLAS threads for small models, and what BLAS runs (threadpoolctl).

A matrix product of a few hundred thousand multiply-adds takes microseconds on one core; split
over OpenBLAS's threads it pays their wake-up and spinning on every call, and on a busy machine
the threads oversubscribe the cores: small models then run 10-40x slower, and their results
depend on the thread count. The commands that train small networks (modes_2d, toy_1d,
train_classifier, and tinygan train at small --hidden/--units) therefore run their numpy work
inside ``blas_threads(threads_for(...))``. The paper-size models keep every thread.
"""

import contextlib
import os

SMALL_GEMM = 32_000_000    # multiply-adds of the largest matrix product: below it, one thread


def threads_for(largest_gemm):
    """BLAS threads for a model whose largest matrix product has ``largest_gemm``
    multiply-adds: 1 below SMALL_GEMM, else None (BLAS's own choice)."""
    return 1 if largest_gemm < SMALL_GEMM else None


def mlp_gemm(widths, batch):
    """Largest matrix product of an MLP with layer ``widths`` on ``batch`` rows."""
    return batch * max(a * b for a, b in zip(widths, widths[1:]))


@contextlib.contextmanager
def blas_threads(limit):
    """Run the block with at most ``limit`` BLAS threads (None: unchanged). Without
    threadpoolctl installed the block runs unchanged."""
    if limit is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield


def blas_info():
    """The BLAS libraries loaded, as threadpoolctl sees them: a list of dicts with
    ``internal_api`` (openblas, mkl, blis), ``version``, ``architecture`` (the kernel OpenBLAS
    chose, e.g. SkylakeX or Haswell), ``threading_layer``, ``num_threads``, ``filepath``."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return []
    keys = ("internal_api", "version", "architecture", "threading_layer", "num_threads",
            "filepath")
    return [{k: i.get(k) for k in keys} for i in threadpool_info() if i.get("user_api") == "blas"]


CORETYPE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def coretype_override():
    """``"OPENBLAS_CORETYPE=Haswell ..."`` when the environment forces OpenBLAS's kernel, else ''."""
    return " ".join(f"{v}={os.environ[v]}" for v in CORETYPE_VARS if os.environ.get(v))
