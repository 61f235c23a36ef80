"""Benchmark one training iteration of the paper's MNIST GAN: tinygan vs PyTorch vs the GEMM bound.

    python benchmarks/run.py                          # batch 100 and 1000, every usable backend
    python benchmarks/run.py --batch-sizes 100 --blocks 9 --iters 20
    python benchmarks/run.py --sweep                  # time per iteration vs batch size, PNG
    python benchmarks/run.py --parzen                 # also the Parzen-window benchmark

One iteration is what ``GAN.train_step`` does with examples/mnist.py's defaults (simultaneous
update, dropout on in D, SGD with momentum and lr decay), float32. Beside it, in the same
run and interleaved in blocks:
  torch  the same model and step in PyTorch eager on the same device (if torch is installed;
         on CPU with torch.set_num_threads equal to NumPy's BLAS threads), checked first to
         compute the same thing (same weights, inputs and dropout masks -> same parameters);
  gemm   exactly the matrix products one iteration needs, alone, on preallocated arrays.
Each block times ``--iters`` iterations of each variant in turn; medians (min, max) over
blocks are reported, and the ratios tinygan/torch and tinygan/gemm are taken block by block.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygan.backend import cupy_usable, get_backend  # noqa: E402
from tinygan.tools.files import atomic_write  # noqa: E402
from tinygan.tools.train import TrainConfig, build_gan  # noqa: E402

NOISE, HIDDEN, PIXELS, UNITS, PIECES = 100, 1200, 784, 240, 5


# --- the variants ------------------------------------------------------------------------
def tinygan_variant(be, m, seed=0):
    """A callable running one tinygan training iteration on a fixed real batch."""
    gan = build_gan(TrainConfig(batch_size=m, seed=seed), be, np.full(PIXELS, 0.13))
    real = be.asarray(np.random.default_rng(seed).random((m, PIXELS), dtype=np.float32))

    def run():
        gan.train_step(real)
    return run, gan


def torch_variant(be, m, seed=0, threads=None):
    import torch
    from torch_gan import TorchGAN
    if be.name == "numpy" and threads:
        torch.set_num_threads(threads)
    device = "cuda" if be.name == "cupy" else "cpu"
    _, gan = tinygan_variant(get_backend("numpy", seed=seed), m, seed)
    model = TorchGAN([a for _, a in gan.G.params], [a for _, a in gan.D.params], device=device)
    real = torch.tensor(np.random.default_rng(seed).random((m, PIXELS), dtype=np.float32),
                        device=device)
    return lambda: model.train_step(real)


def gemm_shapes(m):
    """(M, K, N, transpose-a, transpose-b) of every matrix product in one simultaneous iteration.

    G forward, D forward on 2m rows (real and fake in one pass), D's weight and input gradients
    (no input gradient at its first layer), the G-loss gradient through D on the m fake rows
    only (no weight gradients), G's backward (no gradient for z).
    """
    n, H, P, U, D = 2 * m, HIDDEN, PIXELS, UNITS * PIECES, UNITS
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


def gemm_variant(be, m):
    xp = be.xp
    ops = []
    for M, K, N, ta, tb in gemm_shapes(m):
        a = be.uniform(0, 1, (K, M) if ta else (M, K))
        b = be.uniform(0, 1, (N, K) if tb else (K, N))
        ops.append((a.T if ta else a, b.T if tb else b, be.empty((M, N))))

    def run():
        for a, b, c in ops:
            xp.matmul(a, b, out=c)
    return run


def gemm_flops(m):
    return sum(2 * M * K * N for M, K, N, _, _ in gemm_shapes(m))


# --- timing ------------------------------------------------------------------------------
def time_block(fn, iters, be):
    be.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    be.synchronize()
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
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    if "cupy" in backends:
        import cupy
        info["cupy"] = cupy.__version__
        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info


# --- correctness of the peer ---------------------------------------------------------------
def check_torch_matches(be_name="numpy", m=50, steps=3, seed=0):
    """Same weights, inputs, noise and dropout masks: max |tinygan - torch| over all
    parameters after ``steps`` steps (float32). Returns the largest difference."""
    import torch
    from torch_gan import TorchGAN
    from tinygan.layers import Dropout
    be = get_backend(be_name, seed=seed)
    device = "cuda" if be.name == "cupy" else "cpu"
    _, gan = tinygan_variant(be, m, seed)
    model = TorchGAN([be.to_numpy(a) for _, a in gan.G.params],
                     [be.to_numpy(a) for _, a in gan.D.params], device=device)
    host = np.random.default_rng(seed + 1)
    drops = [layer for layer in gan.D.layers if isinstance(layer, Dropout)]
    for _ in range(steps):
        real = host.random((m, PIXELS), dtype=np.float32)
        z = host.uniform(-np.sqrt(3), np.sqrt(3), (m, NOISE)).astype(np.float32)
        masks = [(host.random((2 * m, w)) < d.keep_prob).astype(np.float32) / d.keep_prob
                 for d, w in zip(drops, (PIXELS, UNITS, UNITS))]
        for d, mask in zip(drops, masks):
            d.scaled_mask, d.fixed_mask = be.asarray(mask), True
        gan.sample_noise = lambda n, z=z: be.asarray(z)
        gan.train_step(be.asarray(real))
        model.train_step(torch.tensor(real, device=device), torch.tensor(z, device=device),
                         [torch.tensor(mk, device=device) for mk in masks])
    ours = [be.to_numpy(a) for _, a in gan.G.params + gan.D.params]
    theirs = [p.detach().cpu().numpy() for p in model.g + model.d]
    return max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))


# --- the run -------------------------------------------------------------------------------
def run_backend(name, batch_sizes, blocks, iters, warmup, with_torch):
    be = get_backend(name, seed=0)
    rows = []
    for m in batch_sizes:
        variants = {"tinygan": tinygan_variant(be, m)[0]}
        if with_torch:
            variants["torch"] = torch_variant(be, m, threads=blas_threads())
        variants["gemm"] = gemm_variant(be, m)
        t = measure(variants, be, blocks, max(1, iters * 100 // m), warmup)
        row = {"backend": name, "batch": m, "gflop_per_iter": gemm_flops(m) / 1e9}
        for k, v in t.items():
            row[k] = summary(v)
        row["samples_per_s"] = m / row["tinygan"]["median"] * 1e3
        row["ratio_gemm"] = summary([a / b for a, b in zip(t["tinygan"], t["gemm"])])
        if "torch" in t:
            row["ratio_torch"] = summary([a / b for a, b in zip(t["tinygan"], t["torch"])])
        rows.append(row)
        print(f"  {name} batch {m}: tinygan {row['tinygan']['median']:.2f} ms"
              + (f", torch {row['torch']['median']:.2f} ms" if "torch" in row else "")
              + f", gemm {row['gemm']['median']:.2f} ms", flush=True)
    return rows


def fmt(s):
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def table(rows):
    lines = ["| backend | batch | tinygan ms/iter | PyTorch ms/iter | GEMM bound ms | samples/s "
             "| tinygan / PyTorch | tinygan / GEMM |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        torch_ms = fmt(r["torch"]) if "torch" in r else "n/a"
        ratio_t = fmt(r["ratio_torch"]) if "ratio_torch" in r else "n/a"
        lines.append(f"| {r['backend']} | {r['batch']} | {fmt(r['tinygan'])} | {torch_ms} | "
                     f"{fmt(r['gemm'])} | {r['samples_per_s']:.0f} | {ratio_t} | {fmt(r['ratio_gemm'])} |")
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backends", nargs="+", default=None, help="default: numpy, and cupy when usable")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[100, 1000])
    p.add_argument("--blocks", type=int, default=7, help="interleaved blocks per variant")
    p.add_argument("--iters", type=int, default=10, help="iterations per block at batch 100 "
                   "(scaled by 100/batch)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--sweep", action="store_true", help="time vs batch size 32..4096, PNG")
    p.add_argument("--parzen", action="store_true", help="also run benchmarks/parzen.py")
    p.add_argument("--out", default="benchmarks/results", help="directory for JSON and PNG")
    args = p.parse_args(argv)

    backends = args.backends or (["numpy", "cupy"] if cupy_usable()[0] else ["numpy"])
    try:
        import torch  # noqa: F401
        with_torch = not args.no_torch
    except ImportError:
        with_torch = False
        print("torch not installed: no PyTorch column (pip install -e '.[bench]')")
    info = machine_info(backends)
    print("machine:", json.dumps(info))
    if with_torch:
        for name in backends:
            diff = check_torch_matches(name)
            print(f"PyTorch computes the same step on {name}: max |param difference| after 3 "
                  f"steps = {diff:.2e}")
            if diff > 1e-4:
                sys.exit(f"PyTorch variant disagrees with tinygan on {name} ({diff:.2e}): not comparable")
    rows = []
    for name in backends:
        rows += run_backend(name, args.batch_sizes, args.blocks, args.iters, args.warmup, with_torch)
    print()
    print(table(rows))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": info, "rows": rows}
    if args.sweep:
        sizes = [32, 64, 128, 256, 512, 1024, 2048, 4096]
        result["sweep"] = {"sizes": sizes, **sweep(backends, sizes, out / "scaling.png")}
        print(f"scaling plot: {out / 'scaling.png'}")
    if args.parzen:
        import parzen
        parzen.main([])
    with open(out / "results.json", "w") as f:
        json.dump(result, f, indent=1)
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
