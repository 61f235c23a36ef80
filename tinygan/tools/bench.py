"""Benchmark one training iteration of the paper's MNIST GAN: tinygan vs PyTorch vs the GEMM bound.
The command ``tinygan bench`` (benchmarks/run.py in a clone is a thin script over :func:`main`).

    tinygan bench                          # batch 100 and 1000, every usable backend
    tinygan bench --model cifar10          # the paper's CIFAR-10 model (~126 M parameters)
    tinygan bench --batch-sizes 100 --blocks 9 --iters 20
    tinygan bench --sweep                  # time per iteration vs batch size, PNG
    tinygan bench --parzen                 # also benchmarks/parzen.py (in a clone)
    tinygan bench --count-launches         # kernel launches of one step (CuPy emulation)

PyTorch is optional (pip install torch, the CPU build on a machine without a GPU): without it
the PyTorch column reads n/a. The machine's BLAS (library, kernel, threads: threadpoolctl) is
recorded in the JSON and printed with the table; OPENBLAS_CORETYPE forces OpenBLAS's kernel
(e.g. Haswell on an AVX-512 CPU, about half the GEMM speed), and a warning says so.

One iteration is what ``GAN.train_step`` does with examples/mnist.py's defaults (simultaneous
update, dropout on in D, SGD with momentum and lr decay), float32. Beside it, in the same
run and interleaved in blocks:
  torch  the same model and step in PyTorch eager on the same device (if torch is installed;
         on CPU with torch.set_num_threads equal to NumPy's BLAS threads), checked first to
         compute the same thing (same weights, inputs and dropout masks -> same parameters);
  graph  (CuPy, where stream capture exists) the same step captured once as a CUDA graph and
         replayed (tools/cuda_graph.py, ``--cuda-graph`` of training): its own table row,
         "cupy (CUDA graph)", with the same PyTorch and GEMM columns;
  gemm   exactly the matrix products one iteration needs, alone, on preallocated arrays;
         the table splits tinygan's step into them and the rest (tinygan - GEMM, per block).
Each block times ``--iters`` iterations of each variant in turn; medians (min, max) over
blocks are reported, and the ratios tinygan/torch and tinygan/gemm are taken block by block.
"""

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ..backend import BACKENDS, cupy_usable, get_backend
from ..errors import BackendError, ConfigError, TinyGANError
from .cli import Parser, positive_int, report_error
from .files import atomic_write
from .threads import blas_info, coretype_override
from .train import TrainConfig, build_gan

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


# --- timing ------------------------------------------------------------------------------
def time_block(fn, iters, be):
    sync = getattr(fn, "sync", be.synchronize)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters * 1e3


def measure(variants, be, blocks, iters, warmup):
    """Interleaved blocks: {name: [ms per iteration, one per block]}."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in variants}
    for _ in range(blocks):
        for name, fn in variants.items():
            times[name].append(time_block(fn, iters, be))
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
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    if "cupy" in backends:
        cupy = get_backend("cupy", seed=0).xp          # only backend.py imports CuPy
        info["cupy"] = cupy.__version__
        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info


# --- correctness of the peer ---------------------------------------------------------------
def check_torch_matches(be_name="numpy", m=50, steps=3, seed=0, model="mnist"):
    """Same weights, inputs, noise and dropout masks: max |tinygan - torch| over all
    parameters after ``steps`` steps (float32). Returns the largest difference."""
    import torch
    from .torch_gan import TorchGAN
    from ..layers import Dropout
    spec = model_spec(model)
    be = get_backend(be_name, seed=seed)
    device = "cuda" if be.name == "cupy" else "cpu"
    _, gan = tinygan_variant(be, m, seed, spec)
    model = TorchGAN([be.to_numpy(a) for _, a in gan.G.params],
                     [be.to_numpy(a) for _, a in gan.D.params], device=device,
                     lr=gan.d_opt.lr, g_acts=(spec["g_mid"], spec["g_out"]))
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
        model.train_step(torch.tensor(real, device=device), torch.tensor(z, device=device),
                         [torch.tensor(mk, device=device) for mk in masks])
    ours = [be.to_numpy(a) for _, a in gan.G.params + gan.D.params]
    theirs = [p.detach().cpu().numpy() for p in model.g + model.d]
    return max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))


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


def run_backend(name, batch_sizes, blocks, iters, warmup, with_torch, model="mnist"):
    be = get_backend(name, seed=0)
    rows = []
    for m in batch_sizes:
        variants = {"tinygan": tinygan_variant(be, m, model=model)[0]}
        if with_torch:
            variants["torch"] = torch_variant(be, m, threads=blas_threads(), model=model)
        graphs = be.cuda_graph_problem() is None
        if graphs:
            variants["graph"] = graph_variant(be, m, model=model)
        variants["gemm"] = gemm_variant(be, m, model)
        t = measure(variants, be, blocks, max(1, iters * 100 // m), warmup)
        row = {"model": model_spec(model)["name"], "backend": name, "batch": m,
               "gflop_per_iter": gemm_flops(m, model) / 1e9}
        for k, v in t.items():
            row[k] = summary(v)
        row["samples_per_s"] = m / row["tinygan"]["median"] * 1e3
        row["ratio_gemm"] = summary([a / b for a, b in zip(t["tinygan"], t["gemm"])])
        # the step split: its matrix products (the GEMM bound) and the rest, block by block
        row["rest"] = summary([a - b for a, b in zip(t["tinygan"], t["gemm"])])
        if "torch" in t:
            row["ratio_torch"] = summary([a / b for a, b in zip(t["tinygan"], t["torch"])])
        rows.append(row)
        if graphs:
            rows.append(_graph_row(row, t, m))
        print(f"  {name} batch {m}: tinygan {row['tinygan']['median']:.2f} ms"
              + (f", CUDA graph {rows[-1]['tinygan']['median']:.2f} ms" if graphs else "")
              + (f", torch {row['torch']['median']:.2f} ms" if "torch" in row else "")
              + f", gemm {row['gemm']['median']:.2f} ms", flush=True)
    return rows


def _graph_row(row, t, m):
    """The CUDA-graph variant as its own row beside the eager CuPy row ``row``."""
    graph = {**row, "backend": f"{row['backend']} (CUDA graph)", "tinygan": summary(t["graph"])}
    graph["samples_per_s"] = m / graph["tinygan"]["median"] * 1e3
    graph["ratio_gemm"] = summary([a / b for a, b in zip(t["graph"], t["gemm"])])
    graph["rest"] = summary([a - b for a, b in zip(t["graph"], t["gemm"])])
    if "torch" in t:
        graph["ratio_torch"] = summary([a / b for a, b in zip(t["graph"], t["torch"])])
    graph["ratio_eager"] = summary([a / b for a, b in zip(t["graph"], t["tinygan"])])
    return graph


def fmt(s):
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def table(rows):
    lines = ["| model | backend | batch | tinygan ms/iter | PyTorch ms/iter | GEMM bound ms "
             "| rest (tinygan - GEMM) ms | samples/s | tinygan / PyTorch | tinygan / GEMM |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        torch_ms = fmt(r["torch"]) if "torch" in r else "n/a"
        ratio_t = fmt(r["ratio_torch"]) if "ratio_torch" in r else "n/a"
        lines.append(f"| {r.get('model', 'mnist')} | {r['backend']} | {r['batch']} | {fmt(r['tinygan'])} | {torch_ms} | "
                     f"{fmt(r['gemm'])} | {fmt(r['rest'])} | {r['samples_per_s']:.0f} | {ratio_t} | {fmt(r['ratio_gemm'])} |")
    return "\n".join(lines)


def sweep(backends, sizes, out, blocks=3):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    results = {}
    for name in backends:
        be = get_backend(name, seed=0)
        ms = []
        for m in sizes:
            fn = tinygan_variant(be, m)[0]
            g = gemm_variant(be, m)
            t = measure({"tinygan": fn, "gemm": g}, be, blocks, max(1, 400 // m), 2)
            ms.append((statistics.median(t["tinygan"]), statistics.median(t["gemm"])))
            print(f"  sweep {name} batch {m}: {ms[-1][0]:.2f} ms (gemm {ms[-1][1]:.2f})", flush=True)
        results[name] = ms
        ax.loglog(sizes, [a for a, _ in ms], "o-", label=f"tinygan ({name})")
        ax.loglog(sizes, [b for _, b in ms], "--", alpha=0.6, label=f"GEMM bound ({name})")
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per training iteration")
    ax.set_title("Paper's MNIST GAN, one simultaneous iteration, float32")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=110))
    return results


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
    p.add_argument("--batch-sizes", nargs="+", type=positive_int, default=[100, 1000],
                   help="batch sizes to time")
    p.add_argument("--blocks", type=positive_int, default=7, help="interleaved blocks per variant")
    p.add_argument("--iters", type=positive_int, default=10,
                   help="iterations per block at batch 100 (scaled by 100/batch)")
    p.add_argument("--warmup", type=positive_int, default=3, help="untimed iterations first")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--sweep", action="store_true", help="time vs batch size 32..4096, PNG")
    p.add_argument("--parzen", action="store_true",
                   help="also run benchmarks/parzen.py (in a clone of the repository)")
    p.add_argument("--out", default="benchmarks/results", help="directory for JSON and PNG")
    p.add_argument("--count-launches", action="store_true",
                   help="only print the kernel launches of one step at batch 100 (CuPy emulation)")
    return p


def main(argv=None, prog="run.py"):
    """The command line; returns the exit status (0, 1 error, 2 bad usage)."""
    args = parser(prog).parse_args(argv)
    try:
        return _run(args, prog)
    except (TinyGANError, OSError) as exc:
        return report_error(prog, exc)


def _run(args, prog):
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
    try:
        import torch  # noqa: F401
        with_torch = not args.no_torch
    except ImportError:
        with_torch = False
        print("torch not installed: no PyTorch column (pip install torch; on a machine without "
              "a GPU, PyTorch's CPU-only wheel: see PyTorch's install selector)")
    info = machine_info(backends)
    print("machine:", json.dumps({k: v for k, v in info.items() if k != "blas_loaded"}))
    print(blas_line(info))
    if info["blas_override"]:
        print(f"warning: {info['blas_override']} forces OpenBLAS's kernel: the CPU numbers are "
              "not the machine's best (run with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
              "for the native kernel)", file=sys.stderr)
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
    model = model_spec(args.model, hidden=args.hidden, units=args.units)
    rows = []
    for name in backends:
        rows += run_backend(name, args.batch_sizes, args.blocks, args.iters, args.warmup, torch_on[name],
                            model)
    print()
    print(table(rows))
    print(blas_line(info))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": info, "rows": rows}
    if args.sweep:
        sizes = [32, 64, 128, 256, 512, 1024, 2048, 4096]
        result["sweep"] = {"sizes": sizes, **sweep(backends, sizes, out / "scaling.png")}
        print(f"scaling plot: {out / 'scaling.png'}")
    if args.parzen:
        script = parzen_script()
        if script is None:
            print(f"{prog}: --parzen runs benchmarks/parzen.py, which is in a clone of the "
                  "repository, not in the installed package: skipped", file=sys.stderr)
        else:
            import importlib.util
            spec = importlib.util.spec_from_file_location("tinygan_parzen_benchmark", script)
            parzen = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(parzen)
            for name in backends:
                parzen.main(["--backend", name])
    path = out / ("results.json" if args.model == "mnist" else f"results_{args.model}.json")
    atomic_write(path, lambda f: f.write(json.dumps(result, indent=1).encode()))
    print(f"results: {path}")
    return 0
