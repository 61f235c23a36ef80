"""Benchmark one training iteration of the paper's MNIST GAN: tinygan vs PyTorch vs JAX vs its bounds.
The command ``tinygan bench`` (benchmarks/run.py in a clone is a thin script over :func:`main`).

    tinygan bench                          # batch 100 and 1000, every usable backend
    tinygan bench --model cifar10          # the paper's CIFAR-10 model (~126 M parameters)
    tinygan bench --batch-sizes 100 --blocks 9 --iters 20
    tinygan bench --sweep                  # only time vs batch size 32..4096: sweep.json, PNG
    tinygan bench --parzen                 # also benchmarks/parzen.py (in a clone)
    tinygan bench --count-launches         # kernel launches of one step (CuPy emulation)

Results go to --out (default runs/bench under the current directory): results.json (the
table), sweep.json and scaling.png (--sweep). PyTorch and JAX are optional (pip install
tinygan[bench]): without one, its column reads n/a and a line (and the JSON's "skipped") says
why, as for CuPy without a device. The machine's BLAS (library, kernel, threads:
threadpoolctl) is recorded in the JSON and printed with the table; OPENBLAS_CORETYPE forces
OpenBLAS's kernel (e.g. Haswell on an AVX-512 CPU, about half the GEMM speed), and a warning
says so. A first Ctrl-C stops after the current block and writes the finished rows (exit 0);
a second stops at once (exit 130).

One iteration is what ``GAN.train_step`` does with examples/mnist.py's defaults (simultaneous
update, dropout on in D, SGD with momentum and lr decay), float32. Beside it, in the same
run and interleaved in blocks:
  torch  the same model and step in PyTorch eager on the same device (if torch is installed;
         on CPU with torch.set_num_threads equal to NumPy's BLAS threads), checked first to
         compute the same thing (same weights, inputs and dropout masks -> same parameters);
  jax    the same step in JAX (tools/jax_gan.py), the whole step one jit with donated
         buffers, on the CPU beside the numpy rows, checked equal first the same way;
  graph  (CuPy, where stream capture exists) the same step captured once as a CUDA graph and
         replayed (tools/cuda_graph.py, ``--cuda-graph`` of training): its own table row,
         "cupy (CUDA graph)", with the same PyTorch and GEMM columns;
  gemm   exactly the matrix products one iteration needs, alone, on preallocated arrays;
         the table splits tinygan's step into them and the rest (tinygan - GEMM, per block);
  triad  (numpy) memory bandwidth on 192 MB of arrays, on 1 and on the BLAS thread count:
         roofline = GEMM bound + the step's least memory traffic (step_traffic) / bandwidth.
Each block times ``--iters`` iterations of each variant in turn; medians (min, max) over
blocks are reported, and the ratios tinygan/torch, tinygan/jax, tinygan/gemm and
tinygan/roofline are taken block by block. A ratio below 1.0 against a bound is impossible:
it is flagged ("the machine was busy: rerun").
"""

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ..fast import fast_threads
from ..backend import BACKENDS, cupy_usable, get_backend
from ..errors import BackendError, ConfigError, TinyGANError
from .cli import Parser, positive_int, report_error
from .files import atomic_write
from .threads import blas_info, coretype_override
from .config import TrainConfig, build_gan

NOISE, HIDDEN, PIXELS, UNITS, PIECES = 100, 1200, 784, 240, 5
# the paper's fully-connected models (mnist.yaml, cifar10_fully_connected.yaml); g_out is G's
# output activation (CIFAR-10: linear), g_mid the second hidden layer's (CIFAR-10: sigmoid)
MODELS = {
    "mnist": {"noise": NOISE, "hidden": HIDDEN, "pixels": PIXELS, "units": UNITS, "pieces": PIECES,
              "g_mid": "relu", "g_out": "sigmoid"},
    "cifar10": {"noise": 100, "hidden": 8000, "pixels": 3072, "units": 1600, "pieces": 5,
                "g_mid": "sigmoid", "g_out": None},
}


def model_spec(model="mnist", **sizes):
    """The dims of ``model`` (a name or a spec dict), with ``sizes`` (hidden=, units=) on top."""
    spec = dict(MODELS[model] if isinstance(model, str) else model)
    spec.update({k: v for k, v in sizes.items() if v})
    spec.setdefault("name", model if isinstance(model, str) else "custom")
    return spec


def _real_batch(spec, m, seed):
    rng = np.random.default_rng(seed)
    if spec["g_out"] == "sigmoid":                       # MNIST-like: pixels in [0, 1]
        return rng.random((m, spec["pixels"]), dtype=np.float32)
    return rng.normal(0, 1, (m, spec["pixels"])).astype(np.float32)   # GCN'd CIFAR-like


# --- the variants ------------------------------------------------------------------------
def tinygan_variant(be, m, seed=0, model="mnist"):
    """A callable running one tinygan training iteration on a fixed real batch."""
    spec = model_spec(model)
    dataset = "cifar10" if spec["g_out"] is None else "mnist"
    cfg = TrainConfig.paper(dataset, batch_size=m, seed=seed, hidden=spec["hidden"],
                            units=spec["units"])
    gan = build_gan(cfg, be, np.full(spec["pixels"], 0.13) if dataset == "mnist" else None)
    real = be.asarray(_real_batch(spec, m, seed))

    def run():
        gan.train_step(real)
    return run, gan


def graph_variant(be, m, seed=0, model="mnist"):
    """tinygan_variant's step captured once as a CUDA graph and replayed (CuPy only)."""
    from .cuda_graph import GraphedStep
    _, gan = tinygan_variant(be, m, seed, model)
    spec = model_spec(model)
    real = be.asarray(_real_batch(spec, m, seed))
    step = GraphedStep(gan, real.shape)

    def run():
        step(real)
    return run


def torch_variant(be, m, seed=0, threads=None, model="mnist"):
    import torch
    from .torch_gan import TorchGAN
    if be.name == "numpy" and threads:
        torch.set_num_threads(threads)
    device = "cuda" if be.name == "cupy" else "cpu"
    spec = model_spec(model)
    _, gan = tinygan_variant(get_backend("numpy", seed=seed), m, seed, spec)
    net = TorchGAN([a for _, a in gan.G.params], [a for _, a in gan.D.params], device=device,
                   lr=gan.d_opt.lr, g_acts=(spec["g_mid"], spec["g_out"]))
    del gan
    real = torch.tensor(_real_batch(spec, m, seed), device=device)

    def run():
        net.train_step(real)
    # PyTorch's own synchronisation: CuPy's stream sync covers torch's work only while both
    # use the legacy default stream
    run.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return run


def jax_variant(m, seed=0, model="mnist"):
    """The same step in JAX, jitted whole with donated buffers, on the CPU (tools/jax_gan.py)."""
    import jax.numpy as jnp
    from .jax_gan import JaxGAN
    spec = model_spec(model)
    _, gan = tinygan_variant(get_backend("numpy", seed=seed), m, seed, spec)
    net = JaxGAN([a for _, a in gan.G.params], [a for _, a in gan.D.params], lr=gan.d_opt.lr,
                 g_acts=(spec["g_mid"], spec["g_out"]), seed=seed)
    del gan
    real = jnp.asarray(_real_batch(spec, m, seed))

    def run():
        net.train_step(real)
    run.sync = net.sync              # JAX dispatches asynchronously: the block waits at its end
    return run


def gemm_shapes(m, model="mnist"):
    """(M, K, N, transpose-a, transpose-b) of every matrix product in one simultaneous iteration.

    G forward, D forward on 2m rows (real and fake in one pass), D's weight and input gradients
    (no input gradient at its first layer), the G-loss gradient through D on the m fake rows
    only (no weight gradients), G's backward (no gradient for z).
    """
    s = model_spec(model)
    n, H, P, U, D, NOISE = 2 * m, s["hidden"], s["pixels"], s["units"] * s["pieces"], s["units"], s["noise"]
    return [
        (m, NOISE, H, 0, 0), (m, H, H, 0, 0), (m, H, P, 0, 0),            # G forward
        (n, P, U, 0, 0), (n, D, U, 0, 0), (n, D, 1, 0, 0),                # D forward
        (D, n, 1, 1, 0), (n, 1, D, 0, 1),                                 # D backward: out layer
        (D, n, U, 1, 0), (n, U, D, 0, 1),                                 # maxout 2
        (P, n, U, 1, 0),                                                  # maxout 1 (no dx)
        (m, 1, D, 0, 1), (m, U, D, 0, 1), (m, U, P, 0, 1),                # G loss through D
        (H, m, P, 1, 0), (m, P, H, 0, 1), (H, m, H, 1, 0), (m, H, H, 0, 1),
        (NOISE, m, H, 1, 0),                                              # G backward
    ]


def gemm_variant(be, m, model="mnist"):
    xp = be.xp
    ops = []
    for M, K, N, ta, tb in gemm_shapes(m, model):
        a = be.uniform(0, 1, (K, M) if ta else (M, K))
        b = be.uniform(0, 1, (N, K) if tb else (K, N))
        ops.append((a.T if ta else a, b.T if tb else b, be.empty((M, N))))

    def run():
        for a, b, c in ops:
            xp.matmul(a, b, out=c)
    return run


def gemm_flops(m, model="mnist"):
    return sum(2 * M * K * N for M, K, N, _, _ in gemm_shapes(m, model))


# --- the roofline: memory bandwidth and the step's least memory traffic -------------------
TRIAD_FLOATS = 1 << 24           # 64 MB per array, 192 MB in all: far beyond any cache here


def triad_arrays(n=None):
    """The bandwidth kernel's three float32 arrays of ``n`` (default TRIAD_FLOATS) elements,
    every page touched."""
    return tuple(np.full(n or TRIAD_FLOATS, v, dtype=np.float32) for v in (0.0, 1.0, 2.0))


def triad_variant(be, threads=1, n=None, reps=2, arrays=None):
    """Memory bandwidth, STREAM-style: a = b + c on three float32 arrays of ``n`` elements
    (STREAM's "add": the triad's traffic, read b, read c, write a, in one NumPy call per slab;
    NumPy's triad a = b + q c would need a second pass or Python-level chunks, which measured
    slower than the memory). The arrays are split into ``threads`` contiguous slabs run on
    that many threads (NumPy releases the GIL). The callable runs ``reps`` passes;
    ``run.bytes`` is the traffic of one call (3 x 4 bytes x n x reps). ``arrays``: from
    :func:`triad_arrays` (shared between thread counts), else new ones of ``n`` elements."""
    from concurrent.futures import ThreadPoolExecutor
    a, b, c = arrays or triad_arrays(n)
    n = a.shape[0]
    bounds = [n * i // threads for i in range(threads + 1)]

    def slab(i):
        lo, hi = bounds[i], bounds[i + 1]
        np.add(b[lo:hi], c[lo:hi], out=a[lo:hi])
    pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def run():
        for _ in range(reps):
            if pool is None:
                slab(0)
            else:
                list(pool.map(slab, range(threads)))
    run.bytes = 3 * 4 * n * reps
    run.fixed_iters = 1              # one call per block, whatever the batch
    run.arrays = (a, b, c)
    return run


def step_traffic(m, model="mnist"):
    """The least memory traffic (bytes) of one simultaneous step beyond its matrix products:
    {"update": ..., "activations": ...}.

    update: SGD with momentum reads p, v, g and writes p, v: 5 passes over every parameter.
    activations: every elementwise stage done as one fused pass that reads its inputs and
    writes its output once (forward and backward; dropout masks regenerated, not stored; a
    maxout's winning piece kept as one byte per unit). The matrix products' own reads and
    writes are in the GEMM bound. Stages, with n = 2m rows through D:
      forward  G: bias+ReLU (m,H) x2 [2 passes each], bias+output activation (m,P) [2];
               D: dropout (n,P) [2], bias+maxout (n,kU) -> (n,U) [kU + U, + 1 byte], dropout
               (n,U) [2], bias+maxout again, dropout (n,U) [2];
      backward D on n rows: dropout (n,U), maxout (n,U) -> (n,kU), dropout, maxout;
               the G loss through D on m rows: the same four, then D's first dropout (m,P);
               G: the output activation and the two ReLUs (read dy and y, write dx: 3 passes).
    """
    s = model_spec(model)
    H, P, U, k, noise = s["hidden"], s["pixels"], s["units"], s["pieces"], s["noise"]
    n = 2 * m
    params = (noise * H + H) + (H * H + H) + (H * P + P) + (P * k * U + k * U) \
        + (U * k * U + k * U) + (U + 1)
    maxout_fwd = lambda r: r * (k * U + U) * 4 + r * U             # floats + the winner byte
    maxout_bwd = lambda r: r * (U + k * U) * 4 + r * U
    drop = lambda r, w: 2 * r * w * 4
    fwd = 2 * 2 * m * H * 4 + 2 * m * P * 4 + drop(n, P) + 2 * maxout_fwd(n) + 2 * drop(n, U)
    d_bwd = 2 * drop(n, U) + 2 * maxout_bwd(n)
    through_d = 2 * drop(m, U) + 2 * maxout_bwd(m) + drop(m, P)
    g_bwd = 3 * m * P * 4 + 2 * 3 * m * H * 4
    return {"update": 5 * 4 * params, "activations": fwd + d_bwd + through_d + g_bwd}


# --- timing ------------------------------------------------------------------------------
def time_block(fn, iters, be):
    sync = getattr(fn, "sync", be.synchronize)
    iters = getattr(fn, "fixed_iters", iters)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters * 1e3


class Interrupt:
    """The first SIGINT (Ctrl-C) or SIGTERM sets ``requested``, checked between blocks (the
    benchmark then writes what it has); a second one raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        import signal
        import threading
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        import signal
        for s, old in self._old.items():
            signal.signal(s, old)
        return False


NO_STOP = type("NoStop", (), {"requested": False})()


def measure(variants, be, blocks, iters, warmup, stop=NO_STOP):
    """Interleaved blocks: {name: [ms per iteration, one per block]}; after ``stop.requested``
    (a first Ctrl-C) only the blocks finished so far (possibly none)."""
    for fn in variants.values():
        for _ in range(0 if getattr(fn, "fixed_iters", 0) else warmup):
            fn()
            if stop.requested:
                return {name: [] for name in variants}
    times = {name: [] for name in variants}
    for _ in range(blocks):
        block = {name: time_block(fn, iters, be) for name, fn in variants.items()
                 if not stop.requested}
        if stop.requested:
            break
        for name, ms in block.items():
            times[name].append(ms)
    return times


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
        return max(i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas")
    except Exception:
        return int(os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", os.cpu_count())))


def machine_info(backends):
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "cores": os.cpu_count(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    cfg = np.show_config(mode="dicts") if "mode" in np.show_config.__code__.co_varnames else {}
    blas = cfg.get("Build Dependencies", {}).get("blas", {}) if isinstance(cfg, dict) else {}
    info["blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    info["blas_threads"] = blas_threads()
    loaded = blas_info()                   # what runs: library, kernel (architecture), threads
    info["blas_loaded"] = loaded
    info["blas_kernel"] = ", ".join(f"{i['internal_api']} {i['version']} {i['architecture']}"
                                    for i in loaded) or "unknown (threadpoolctl sees no BLAS)"
    info["blas_override"] = coretype_override()
    from importlib import metadata
    try:                                   # the installed version, without importing torch
        info["torch"] = metadata.version("torch")
    except metadata.PackageNotFoundError:
        info["torch"] = None
    if "cupy" in backends:
        cupy = get_backend("cupy", seed=0).xp          # only backend.py imports CuPy
        info["cupy"] = cupy.__version__
        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info


# --- correctness of the peers -------------------------------------------------------------
def _peer_check(make_peer, be_name="numpy", m=50, steps=3, seed=0, model="mnist"):
    """Same weights, inputs, noise and dropout masks in tinygan and the peer ``make_peer(g
    params, d params, lr, g_acts)`` (its ``train_step(real, z, masks)`` takes host float32
    arrays, its ``params()`` gives host arrays): max |tinygan - peer| over all parameters
    after ``steps`` steps (float32)."""
    from ..layers import Dropout
    spec = model_spec(model)
    be = get_backend(be_name, seed=seed)
    _, gan = tinygan_variant(be, m, seed, spec)
    peer = make_peer([be.to_numpy(a) for _, a in gan.G.params],
                     [be.to_numpy(a) for _, a in gan.D.params], gan.d_opt.lr,
                     (spec["g_mid"], spec["g_out"]))
    host = np.random.default_rng(seed + 1)
    drops = [layer for layer in gan.D.layers if isinstance(layer, Dropout)]
    P, U = spec["pixels"], spec["units"]
    for _ in range(steps):
        real = _real_batch(spec, m, int(host.integers(1 << 30)))
        z = host.uniform(-np.sqrt(3), np.sqrt(3), (m, spec["noise"])).astype(np.float32)
        masks = [(host.random((2 * m, w)) < d.keep_prob).astype(np.float32) / d.keep_prob
                 for d, w in zip(drops, (P, U, U))]
        for d, mask in zip(drops, masks):
            d.mask, d.fixed_mask = be.asarray(mask), True
        gan.sample_noise = lambda n, z=z: be.asarray(z)
        gan.train_step(be.asarray(real))
        peer.train_step(real, z, masks)
    ours = [be.to_numpy(a) for _, a in gan.G.params + gan.D.params]
    return max(float(np.abs(a - b).max()) for a, b in zip(ours, peer.params()))


def check_torch_matches(be_name="numpy", m=50, steps=3, seed=0, model="mnist"):
    """PyTorch's step against tinygan's (see _peer_check): the largest parameter difference."""
    import torch
    from .torch_gan import TorchGAN
    device = "cuda" if be_name == "cupy" else "cpu"

    class Peer:
        def __init__(self, g, d, lr, acts):
            self.net = TorchGAN(g, d, device=device, lr=lr, g_acts=acts)

        def train_step(self, real, z, masks):
            self.net.train_step(torch.tensor(real, device=device), torch.tensor(z, device=device),
                                [torch.tensor(mk, device=device) for mk in masks])

        def params(self):
            return [p.detach().cpu().numpy() for p in self.net.g + self.net.d]
    return _peer_check(Peer, be_name, m, steps, seed, model)


def check_jax_matches(m=50, steps=3, seed=0, model="mnist"):
    """JAX's jitted step against tinygan's NumPy step (see _peer_check)."""
    import jax.numpy as jnp
    from .jax_gan import JaxGAN

    class Peer:
        def __init__(self, g, d, lr, acts):
            self.net = JaxGAN(g, d, lr=lr, g_acts=acts)

        def train_step(self, real, z, masks):
            self.net.train_step(jnp.asarray(real), jnp.asarray(z), [jnp.asarray(k) for k in masks])

        def params(self):
            return [np.asarray(p) for p in self.net.g + self.net.d]
    return _peer_check(Peer, "numpy", m, steps, seed, model)


# --- kernel launches (CuPy emulation) ---------------------------------------------------------
def count_launches(m=100, schedule="simultaneous"):
    """Kernel launches, host syncs and uploads of one train_step on the CuPy emulation (paper
    model, batch m): (Counters, {call site: launches}). No GPU needed."""
    from ..testing import cupy_emulation as emu
    with emu.installed(14):
        be = get_backend("cupy", seed=0)
        gan = build_gan(TrainConfig(batch_size=m, seed=0, schedule=schedule), be, np.full(PIXELS, 0.13))
        real = be.asarray(np.random.default_rng(0).random((m, PIXELS), dtype=np.float32))
        gan.train_step(real)                       # the first step allocates
        with emu.counting() as c:
            gan.train_step(real)
    return c, {site: len(v) for site, v in c.by_site("launches").items()}


def print_launches(m=100):
    c, sites = count_launches(m)
    print(f"one train_step (paper model, batch {m}, simultaneous) on the CuPy emulation: "
          f"{len(c.launches)} kernel launches, {len(c.syncs)} host syncs, "
          f"{len(c.h2d)} host-to-device copies")
    for site, n in sorted(sites.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n:4d}  {site}")
    return len(c.launches)


# --- the run -------------------------------------------------------------------------------
def _torch_cuda():
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def _ratio(t, a, b):
    return summary([x / y for x, y in zip(t[a], t[b])])


def run_backend(name, batch_sizes, blocks, iters, warmup, with_torch, model="mnist",
                with_jax=False, stop=NO_STOP, triad=None):
    """Rows of the table for backend ``name``, one per batch size (two with a CUDA graph);
    ``triad``: {threads: triad_variant} timed in the same blocks (the roofline's bandwidth)."""
    be = get_backend(name, seed=0)
    rows = []
    for m in batch_sizes:
        if stop.requested:
            break
        variants = {"tinygan": tinygan_variant(be, m, model=model)[0]}
        if with_torch:
            variants["torch"] = torch_variant(be, m, threads=blas_threads(), model=model)
        if with_jax:
            variants["jax"] = jax_variant(m, model=model)
        graphs = be.cuda_graph_problem() is None
        if graphs:
            variants["graph"] = graph_variant(be, m, model=model)
        variants["gemm"] = gemm_variant(be, m, model)
        for threads, fn in (triad or {}).items():
            variants[f"triad{threads}"] = fn
        print(f"  {name} batch {m}: {blocks} blocks of {', '.join(variants)} ...", flush=True)
        t = measure(variants, be, blocks, max(1, iters * 100 // m), warmup, stop)
        if not t["tinygan"]:
            break                                  # interrupted before its first block
        row = {"model": model_spec(model)["name"], "backend": name, "batch": m,
               "gflop_per_iter": gemm_flops(m, model) / 1e9, "blocks": len(t["tinygan"])}
        for k, v in t.items():
            if not k.startswith("triad"):
                row[k] = summary(v)
        row["samples_per_s"] = m / row["tinygan"]["median"] * 1e3
        row["ratio_gemm"] = _ratio(t, "tinygan", "gemm")
        # the step split: its matrix products (the GEMM bound) and the rest, block by block
        row["rest"] = summary([a - b for a, b in zip(t["tinygan"], t["gemm"])])
        if "torch" in t:
            row["ratio_torch"] = _ratio(t, "tinygan", "torch")
        if "jax" in t:
            row["ratio_jax"] = _ratio(t, "tinygan", "jax")
            row["jax_over_gemm"] = _ratio(t, "jax", "gemm")     # how close JAX is to the bound
        if triad:
            _roofline(row, t, triad, m, model)
        rows.append(row)
        if graphs:
            rows.append(_graph_row(row, t, m))
        print(f"  {name} batch {m}: tinygan {row['tinygan']['median']:.2f} ms"
              + (f", CUDA graph {rows[-1]['tinygan']['median']:.2f} ms" if graphs else "")
              + (f", torch {row['torch']['median']:.2f} ms" if "torch" in row else "")
              + (f", jax {row['jax']['median']:.2f} ms" if "jax" in row else "")
              + f", gemm {row['gemm']['median']:.2f} ms"
              + (f", roofline {row['roofline']['median']:.2f} ms" if "roofline" in row else ""),
              flush=True)
    return rows


def _roofline(row, t, triad, m, model):
    """Bandwidth (GB/s per thread count) and roofline = GEMM + least traffic / bandwidth (the
    best thread count of the block), block by block, into ``row``."""
    traffic = step_traffic(m, model)
    row["traffic_mb"] = {k: v / 1e6 for k, v in traffic.items()}
    bw = {th: [fn.bytes / ms / 1e6 for ms in t[f"triad{th}"]] for th, fn in triad.items()}
    row["bandwidth_gb_s"] = {str(th): summary(v) for th, v in bw.items()}
    top = [max(per_block) for per_block in zip(*bw.values())]        # the best thread count
    total = sum(traffic.values())
    t["roofline"] = [g + total / (gbs * 1e6) for g, gbs in zip(t["gemm"], top)]
    row["roofline"] = summary(t["roofline"])
    row["ratio_roofline"] = _ratio(t, "tinygan", "roofline")


def _graph_row(row, t, m):
    """The CUDA-graph variant as its own row beside the eager CuPy row ``row``."""
    graph = {**row, "backend": f"{row['backend']} (CUDA graph)", "tinygan": summary(t["graph"])}
    graph["samples_per_s"] = m / graph["tinygan"]["median"] * 1e3
    graph["ratio_gemm"] = _ratio(t, "graph", "gemm")
    graph["rest"] = summary([a - b for a, b in zip(t["graph"], t["gemm"])])
    if "torch" in t:
        graph["ratio_torch"] = _ratio(t, "graph", "torch")
    if "roofline" in t:
        graph["ratio_roofline"] = _ratio(t, "graph", "roofline")
    graph.pop("jax", None), graph.pop("ratio_jax", None)
    graph["ratio_eager"] = _ratio(t, "graph", "tinygan")
    return graph


def busy_warnings(rows):
    """One line per impossible figure: tinygan faster than its GEMM bound or its roofline
    (a ratio below 1, a negative rest) in some block means another process took the machine
    during a bound's timing."""
    lines = []
    for r in rows:
        where = f"{r['backend']} batch {r['batch']}"
        for key, what in (("ratio_gemm", "tinygan / GEMM"), ("ratio_roofline", "tinygan / roofline")):
            if key in r and r[key]["min"] < 1.0:
                rest = " (a negative rest)" if key == "ratio_gemm" else ""
                lines.append(f"warning: {where}: {what} = {r[key]['min']:.2f}{rest} in one block "
                             f"(median {r[key]['median']:.2f}) is below 1.0, which no "
                             "implementation can reach: the machine was busy: rerun")
        r["busy"] = any(where in line for line in lines)
    return lines


def fmt(s):
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


COLUMNS = [
    ("model", "the paper's model timed (mnist: G 100-1200-1200-784, D maxout 240x5 twice)", None),
    ("backend", "tinygan's array library (numpy: CPU; cupy: CUDA GPU; CUDA graph: the step replayed as one graph)", None),
    ("batch", "real images per step (G draws as many samples; D sees twice as many rows)", None),
    ("tinygan ms/iter", "one GAN.train_step: median (min-max) over the interleaved blocks", "tinygan"),
    ("PyTorch ms/iter", "the same step in PyTorch eager, same threads, checked equal first", "torch"),
    ("JAX ms/iter", "the same step in JAX, the whole step jitted with donated buffers, checked equal first", "jax"),
    ("GEMM bound ms", "only the step's matrix products on preallocated arrays: no implementation beats it on this BLAS", "gemm"),
    ("roofline ms", "GEMM bound + the step's least memory traffic / bandwidth measured in the same block", "roofline"),
    ("rest ms", "tinygan - GEMM bound: everything that is not a matrix product", "rest"),
    ("samples/s", "batch / tinygan's median time", None),
    ("tinygan / PyTorch", "per block; below 1: tinygan is faster", "ratio_torch"),
    ("tinygan / JAX", "per block; below 1: tinygan is faster", "ratio_jax"),
    ("tinygan / GEMM", "per block; 1.0 is the floor", "ratio_gemm"),
    ("tinygan / roofline", "per block; 1.0 is the floor (below it: a busy machine, rerun)", "ratio_roofline"),
]


def table(rows):
    lines = ["| " + " | ".join(name for name, _, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for name, _, key in COLUMNS:
            if key is None:
                cells.append({"model": r.get("model", "mnist"), "backend": r["backend"],
                              "batch": str(r["batch"]),
                              "samples/s": f"{r['samples_per_s']:.0f}"}[name])
            else:
                cells.append(fmt(r[key]) + (" !" if key.startswith("ratio_g") and r[key]["min"] < 1
                                            or key == "ratio_roofline" and r[key]["min"] < 1 else "")
                             if key in r else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def legend():
    """One line per column of the table."""
    width = max(len(name) for name, _, _ in COLUMNS)
    return "\n".join(f"  {name:<{width}}  {text}" for name, text, _ in COLUMNS) + \
        "\n  (! marks a ratio below 1.0 in some block: impossible, the machine was busy: rerun)"


SWEEP_SIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096]


def _sweep_work(m, blocks):
    return m * (max(1, 400 // m) * blocks + 2)      # samples through the step (timed + warm-up)


def sweep(backends, sizes, out, blocks=3, stop=NO_STOP, model="mnist"):
    """tinygan and its GEMM bound against batch size: ({backend: [(tinygan ms, gemm ms)]},
    the plot's path or None). A line per size with the time left; a first Ctrl-C keeps the
    sizes finished."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    results = {}
    total = len(backends) * sum(_sweep_work(m, blocks) for m in sizes)
    done, t0 = 0, time.perf_counter()
    for name in backends:
        be = get_backend(name, seed=0)
        ms = []
        for m in sizes:
            fn = tinygan_variant(be, m, model=model)[0]
            g = gemm_variant(be, m, model)
            t = measure({"tinygan": fn, "gemm": g}, be, blocks, max(1, 400 // m), 2, stop)
            if not t["tinygan"]:
                break
            ms.append((statistics.median(t["tinygan"]), statistics.median(t["gemm"])))
            done += _sweep_work(m, blocks)
            left = (time.perf_counter() - t0) / done * (total - done)
            print(f"  sweep {name} batch {m}: {ms[-1][0]:.2f} ms (gemm {ms[-1][1]:.2f}); "
                  f"about {_duration(left)} left", flush=True)
        if ms:
            results[name] = ms
            ax.loglog(sizes[:len(ms)], [a for a, _ in ms], "o-", label=f"tinygan ({name})")
            ax.loglog(sizes[:len(ms)], [b for _, b in ms], "--", alpha=0.6,
                      label=f"GEMM bound ({name})")
        if stop.requested:
            break
    if not results:
        return results, None
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per training iteration")
    ax.set_title(f"{model_spec(model)['name']} GAN, one simultaneous iteration, float32")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=110))
    return results, out


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def blas_line(info):
    """One line: the BLAS that ran, and the override if one forced its kernel."""
    line = f"BLAS: {info['blas_kernel']}, {info['blas_threads']} threads"
    if info.get("blas_override"):
        line += f" (kernel forced by {info['blas_override']})"
    return line


def parzen_script():
    """benchmarks/parzen.py of the clone this package runs from, or None (an installed wheel)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "parzen.py"
    return path if path.is_file() else None


DEFAULT_OUT = "runs/bench"


def parser(prog="run.py"):
    p = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=None, metavar="BACKEND",
                   help="backends to time, of " + ", ".join(BACKENDS)
                        + " (default: numpy, and cupy when usable)")
    p.add_argument("--model", choices=sorted(MODELS), default="mnist",
                   help="the paper's MNIST model, or its CIFAR-10 fully-connected one (126 M parameters)")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="G's hidden width, smaller for quick runs (not the paper's model; "
                        "default: the model's)")
    p.add_argument("--units", type=positive_int, default=None,
                   help="D's maxout units, smaller for quick runs (default: the model's)")
    p.add_argument("--batch-sizes", nargs="+", type=positive_int, default=None,
                   help="batch sizes to time (default: 100 1000; with --sweep: "
                        + " ".join(map(str, SWEEP_SIZES)) + ")")
    p.add_argument("--blocks", type=positive_int, default=7, help="interleaved blocks per variant")
    p.add_argument("--iters", type=positive_int, default=10,
                   help="iterations per block at batch 100 (scaled by 100/batch)")
    p.add_argument("--warmup", type=positive_int, default=3, help="untimed iterations first")
    p.add_argument("--elementwise-threads", type=positive_int, default=None, metavar="N",
                   help="threads tinygan's large elementwise passes are split over "
                        "(tinygan/fast/fast_threads.py; default: TINYGAN_THREADS, else 1)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no-jax", action="store_true", help="skip the JAX comparison")
    p.add_argument("--no-roofline", action="store_true",
                   help="skip the bandwidth triad (192 MB of arrays) and the roofline column")
    p.add_argument("--sweep", action="store_true",
                   help="instead of the table: tinygan and the GEMM bound at batch 32..4096, "
                        "sweep.json and scaling.png in --out")
    p.add_argument("--parzen", action="store_true",
                   help="also run benchmarks/parzen.py (in a clone of the repository)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"directory for the JSON and PNG, created if missing (default: "
                        f"{DEFAULT_OUT} under the current directory)")
    p.add_argument("--count-launches", action="store_true",
                   help="only print the kernel launches of one step at batch 100 (CuPy emulation)")
    return p


def main(argv=None, prog="run.py"):
    """The command line; returns the exit status (0, 1 error, 2 bad usage; 0 after a first
    Ctrl-C with the finished blocks written, 130 after a second)."""
    args = parser(prog).parse_args(argv)
    try:
        with Interrupt() as stop:
            return _run(args, prog, stop)
    except (TinyGANError, OSError) as exc:
        return report_error(prog, exc)
    except KeyboardInterrupt:
        print(f"{prog}: stopped at once by a second interrupt; nothing more written",
              file=sys.stderr)
        return 130


def prepare_out(path):
    """``--out`` made ready before any timing: a directory (created), writable; one clear
    error otherwise (an existing file such as README.md is refused, never overwritten)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {path}: is an existing file, not a directory: name a "
                          f"directory for the results (default: {DEFAULT_OUT})")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"--out {path}: a part of the path is a file, not a directory") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: the directory is not writable")
    return out


def _peers(args, backends, usable, why):
    """(torch usable, jax usable, {what: why skipped}); prints one line per skipped backend."""
    skipped = {}
    if not usable:
        skipped["cupy"] = f"skipped ({why})"
    with_torch = with_jax = False
    if args.no_torch:
        skipped["torch"] = "skipped (--no-torch)"
    else:
        try:
            import torch  # noqa: F401
            with_torch = True
        except ImportError:
            skipped["torch"] = ("skipped (not installed: pip install torch, on a machine without "
                                "a GPU PyTorch's CPU-only wheel; or pip install tinygan[bench])")
    if args.no_jax:
        skipped["jax"] = "skipped (--no-jax)"
    elif backends == ["cupy"]:
        skipped["jax"] = "skipped (JAX runs on the CPU here: only beside numpy)"
    else:
        try:
            import jax  # noqa: F401
            with_jax = True
        except ImportError:
            skipped["jax"] = "skipped (not installed: pip install jax, or pip install tinygan[bench])"
    if args.no_roofline:
        skipped["roofline"] = "skipped (--no-roofline)"
    for name, reason in skipped.items():
        print(f"{name}: {reason}")
    return with_torch, with_jax, skipped


def _run(args, prog, stop):
    if args.count_launches:
        print_launches(100)
        return 0
    usable, why = cupy_usable()
    backends = args.backends or (["numpy", "cupy"] if usable else ["numpy"])
    # "auto" is labelled with what it resolves to
    backends = [("cupy" if usable else "numpy") if b == "auto" else b for b in backends]
    backends = list(dict.fromkeys(backends))
    if "cupy" in backends and not usable:
        raise BackendError(f"--backends cupy: no usable GPU ({why})")
    out = prepare_out(args.out)
    if args.elementwise_threads:
        fast_threads.set_threads(args.elementwise_threads)
    with_torch, with_jax, skipped = _peers(args, backends, usable, why)
    info = machine_info(backends)
    info.setdefault("gpu", None)
    info["elementwise_threads"] = fast_threads.threads()
    if with_jax:
        import jax
        info["jax"] = jax.__version__
        info["jax_devices"] = [str(d) for d in jax.devices()]
    print("machine:", json.dumps({k: v for k, v in info.items() if k != "blas_loaded"}))
    print(blas_line(info))
    if info["blas_override"]:
        print(f"warning: {info['blas_override']} forces OpenBLAS's kernel: the CPU numbers are "
              "not the machine's best (run with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
              "for the native kernel)", file=sys.stderr)
    result = {"machine": info, "gpu": info["gpu"], "skipped": skipped}
    if args.sweep:
        return _run_sweep(args, prog, stop, backends, out, result)
    torch_on = {name: with_torch and (name == "numpy" or _torch_cuda()) for name in backends}
    if with_torch:
        for name in [b for b in backends if torch_on[b]]:
            diff = check_torch_matches(name, model=args.model) if args.model == "mnist" else \
                check_torch_matches(name, m=8, steps=2, model=model_spec(args.model, hidden=256, units=64))
            print(f"PyTorch computes the same step on {name}: max |param difference| after "
                  f"a few steps = {diff:.2e}"
                  + (" (CIFAR-10 layout at hidden 256, units 64)" if args.model != "mnist" else ""))
            if diff > 1e-4:
                raise ConfigError(f"PyTorch variant disagrees with tinygan on {name} ({diff:.2e}): "
                                  "not comparable")
            if stop.requested:
                break
    if with_jax and not stop.requested:
        diff = check_jax_matches(model=args.model) if args.model == "mnist" else \
            check_jax_matches(m=8, steps=2, model=model_spec(args.model, hidden=256, units=64))
        print(f"JAX computes the same step: max |param difference| after a few steps = {diff:.2e}"
              + (" (CIFAR-10 layout at hidden 256, units 64)" if args.model != "mnist" else ""))
        if diff > 1e-4:
            raise ConfigError(f"JAX variant disagrees with tinygan ({diff:.2e}): not comparable")
    model = model_spec(args.model, hidden=args.hidden, units=args.units)
    rows = []
    for name in backends:
        triad = None
        if name == "numpy" and not args.no_roofline:
            threads, arrays = sorted({1, max(1, blas_threads())}), triad_arrays()
            triad = {th: triad_variant(None, th, arrays=arrays) for th in threads}
        rows += run_backend(name, args.batch_sizes or [100, 1000], args.blocks, args.iters, args.warmup,
                            torch_on[name], model, with_jax and name == "numpy", stop, triad)
        if stop.requested:
            break
    result["rows"] = rows
    if rows:
        print()
        print(table(rows))
        print(legend())
        print(blas_line(info))
        for line in busy_warnings(rows):
            if not stop.requested:              # interrupted: one line, the JSON keeps "busy"
                print(line, file=sys.stderr)
    if args.parzen and not stop.requested:
        _parzen(prog, backends)
    result["interrupted"] = stop.requested
    path = out / ("results.json" if args.model == "mnist" else f"results_{args.model}.json")
    if stop.requested:
        return _interrupted(prog, path, result, len(rows))
    atomic_write(path, lambda f: f.write(json.dumps(result, indent=1).encode()))
    print(f"results: {path}")
    return 0


def _interrupted(prog, path, result, finished):
    if finished:
        atomic_write(path, lambda f: f.write(json.dumps(result, indent=1).encode()))
        print(f"{prog}: interrupted: {finished} finished row(s) written to {path}", file=sys.stderr)
    else:
        print(f"{prog}: interrupted before the first block finished: nothing written",
              file=sys.stderr)
    return 0


def _run_sweep(args, prog, stop, backends, out, result):
    sizes = args.batch_sizes or SWEEP_SIZES
    model = model_spec(args.model, hidden=args.hidden, units=args.units)
    results, png = sweep(backends, sizes, out / "scaling.png", stop=stop, model=model)
    result["sweep"] = {"sizes": sizes, **results}
    result["interrupted"] = stop.requested
    path = out / "sweep.json"
    if stop.requested:
        return _interrupted(prog, path, result, sum(len(v) for v in results.values()))
    atomic_write(path, lambda f: f.write(json.dumps(result, indent=1).encode()))
    print(f"scaling plot: {png}\nresults: {path}")
    return 0


def _parzen(prog, backends):
    script = parzen_script()
    if script is None:
        print(f"{prog}: --parzen runs benchmarks/parzen.py, which is in a clone of the "
              "repository, not in the installed package: skipped", file=sys.stderr)
        return
    import importlib.util
    spec = importlib.util.spec_from_file_location("tinygan_parzen_benchmark", script)
    parzen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parzen)
    for name in backends:
        parzen.main(["--backend", name])
