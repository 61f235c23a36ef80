"""Large elementwise work on NumPy split over threads (the fast path; docs/design.md, section 3).

NumPy releases the GIL inside its ufuncs and reductions, so a pass over a large array split
into contiguous parts (rows of an activation, slabs of a flat parameter vector) runs on as many
cores as there are parts. Each part computes exactly what the whole pass computes for its
elements (no reduction crosses a part), so the results are bit for bit those of one thread,
whatever the thread count: tests/core/test_fast_threads.py holds the step to that.

Used by a few marked lines of kernels.py: the optimizers' updates (3.7 M parameters in the
paper's MNIST model: 75 MB moved per step), and at large batches maxout forward and backward
and dropout. Small arrays stay on the calling thread (a hand-off costs ~20 us).

    fast_threads.set_threads(2)        # split over two threads
    TINYGAN_THREADS=2 python ...       # the same, from the environment (default: 1, no split)

Off by default until it measures faster on a quiet machine: in isolation the splits are
faster (the update 3.12 -> 2.45 ms, maxout forward 3.8 -> 2.2 ms at batch 1000, issue 25), but
right after a matrix product OpenBLAS's worker threads keep spinning for a while and compete
with the second thread, and on a busy machine two threads lose
(benchmarks/threads_ab.py times both in interleaved blocks). Re-measured for issue 25b on the
shared 2-core machine (load average 2-3): 2 threads / 1 thread = 1.00 (0.93-1.09, 7 blocks)
and 1.05 (0.53-1.89, 21 blocks x 3 steps) at batch 1000, 1.08 and 0.96 at batch 100; with
the machine quieter (load 1.5-1.9, 11 blocks x 3 steps at 1000, x 30 at 100) 1.01 (0.92-1.69)
and 1.01 (0.23-1.09): no gain at either size, so no size threshold turns it on; it stays off.

CuPy arrays never come here (the GPU runs one kernel).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

MIN_ELEMENTS = 1 << 20
"""Arrays smaller than this (elements) are not split: 4 MB of float32, about 0.15 ms of one
core's memory bandwidth, where a split starts to pay for its hand-off."""


def _default_threads():
    env = os.environ.get("TINYGAN_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return 1


_threads = _default_threads()
_pool = None
_lock = threading.Lock()
_local = threading.local()


def set_threads(n):
    """Split large elementwise passes over ``n`` threads (1: none). Returns the previous count."""
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    with _lock:
        previous, _threads = _threads, n
        if _pool is not None and _pool._max_workers != n - 1:
            _pool.shutdown(wait=True)
            _pool = None
    return previous


def threads():
    """The thread count large elementwise passes are split over."""
    return _threads


def _get_pool():
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_threads - 1, thread_name_prefix="tinygan-elementwise")
        return _pool


def bounds(n, parts, align=1):
    """Part boundaries of [0, n): ``parts`` contiguous ranges, each start a multiple of
    ``align`` (so slab-wise work keeps its slabs)."""
    cuts = [min(n, (n * i // parts) // align * align) for i in range(parts)] + [n]
    return [(lo, hi) for lo, hi in zip(cuts, cuts[1:]) if hi > lo]


def run_split(fn, n, size, align=1):
    """``fn(lo, hi)`` over [0, n): at once when ``size`` (elements touched) is below
    MIN_ELEMENTS or one thread is set, else in contiguous parts on the threads, the first part
    on the calling thread. Returns when every part is done; a part's exception is raised."""
    parts = _threads if size >= MIN_ELEMENTS else 1
    ranges = bounds(n, parts, align) if parts > 1 else [(0, n)]
    if len(ranges) == 1:
        fn(0, n)
        return
    futures = [_get_pool().submit(fn, lo, hi) for lo, hi in ranges[1:]]
    try:
        fn(*ranges[0])
    finally:
        for f in futures:
            f.result()


def scratch(template):
    """``template`` on the calling (main) thread, else this worker thread's own array of the
    same shape and dtype (one per thread, kept)."""
    if threading.current_thread() is threading.main_thread():
        return template
    key = (template.shape, str(template.dtype), type(template).__module__)
    cache = getattr(_local, "scratch", None)
    if cache is None:
        cache = _local.scratch = {}
    if key not in cache:
        cache[key] = template.copy()
    return cache[key]
