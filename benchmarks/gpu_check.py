"""The one GPU run: versions, the gpu tests, the benchmark, a 3-epoch MNIST training on CuPy.

    bash benchmarks/gpu_check.sh                  # about 5-8 minutes on one data-centre GPU
    bash benchmarks/gpu_check.sh --out DIR        # default benchmarks/gpu_check

Prints the device, driver, CUDA and CuPy versions; runs tests/core/test_gpu.py and
tests/tools/test_cuda_graph.py against real CuPy;
runs benchmarks/run.py at batch 100, 1000 and 4096 for NumPy and CuPy (PyTorch CUDA beside
them when torch sees the GPU; the GEMM bound on each device; on CuPy also the step replayed as a
CUDA graph, the row "cupy (CUDA graph)"), and with --model cifar10 (the paper's 126 M-parameter
CIFAR-10 model) at batch 100 and 1000; trains examples/mnist.py
--backend cupy for 3 epochs (the MNIST test split from ../shared/data/mnist when present).
Writes DIR/gpu_check.json and DIR/gpu_check.md (a table for benchmarks/README.md). Exits 1 in
one line when no usable GPU is there, 1 when a step fails.

``--emulation 14`` (or 13) runs the same steps on tinygan's CuPy emulation with tiny sizes:
the script's own end-to-end test, without a GPU. Its figures mean nothing.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MNIST = REPO.parent / "shared" / "data" / "mnist"


def versions():
    import cupy
    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]

    def ver(v):
        return f"{v // 1000}.{v % 1000 // 10}"
    return {"device": name, "driver": ver(rt.driverGetVersion()), "cuda_runtime": ver(rt.runtimeGetVersion()),
            "cupy": cupy.__version__, "memory_gib": round(props.get("totalGlobalMem", 0) / 2 ** 30, 1),
            "emulated": bool(getattr(cupy, "EMULATED", False))}


def step(name, cmd, env, timeout, log):
    """Run one step, its output to DIR/<name>.log; (ok, seconds, stdout)."""
    print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        ok, out = proc.returncode == 0, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        ok, out = False, f"timed out after {timeout} s\n{exc.stdout or ''}"
    seconds = time.perf_counter() - t0
    (log / f"{name}.log").write_text(out)
    print(f"[{name}] {'ok' if ok else 'FAILED'} in {seconds:.0f} s (log: {log / (name + '.log')})",
          flush=True)
    return ok, seconds, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "gpu_check"),
                   help="directory for the logs and results (default: benchmarks/gpu_check)")
    p.add_argument("--emulation", type=int, choices=(13, 14), default=None,
                   help="run on the emulation of this CuPy version with tiny sizes (tests this "
                        "script; default: the real GPU)")
    a = p.parse_args(argv)

    env = dict(os.environ)
    if a.emulation:
        from tinygan.testing import cupy_emulation as emu
        env = emu.subprocess_env(a.emulation)
        emu.install(a.emulation)
    else:
        env.pop("TINYGAN_CUPY_EMULATION", None)
    from tinygan.backend import cupy_usable
    usable, reason = cupy_usable()
    if not usable:
        print(f"gpu_check: no usable GPU: {reason}", file=sys.stderr)
        return 1
    info = versions()
    if info["emulated"] and not a.emulation:
        print("gpu_check: cupy is tinygan's emulation here, not a GPU (unset PYTHONPATH's shim)",
              file=sys.stderr)
        return 1
    print("gpu_check:", json.dumps(info), flush=True)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    quick = a.emulation is not None
    py = sys.executable
    result = {"versions": info, "steps": {}}

    ok, sec, text = step("gpu_tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                                       "tests/core/test_gpu.py", "tests/tools/test_gpu_checkpoint.py",
                                       "tests/tools/test_cuda_graph.py"], env, 240, out)
    m = re.search(r"(\d+) passed", text)
    result["steps"]["gpu_tests"] = {"ok": ok and bool(m), "seconds": sec,
                                    "summary": text.strip().splitlines()[-1] if text.strip() else ""}

    sizes = ["8", "16"] if quick else ["100", "1000", "4096"]
    timing = ["--blocks", "1", "--iters", "1", "--warmup", "1", "--no-torch"] if quick else \
        ["--blocks", "5", "--iters", "10", "--warmup", "3"]
    ok, sec, text = step("benchmark", [py, "benchmarks/run.py", "--backends", "numpy", "cupy",
                                       "--batch-sizes", *sizes, *timing, "--out", str(out / "bench")],
                         env, 300, out)
    rows = json.loads((out / "bench" / "results.json").read_text())["rows"] if ok else []
    table = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    result["steps"]["benchmark"] = {"ok": ok, "seconds": sec, "rows": rows}

    # the CIFAR-10 model: where a GPU matters (emulation: a shrunken one, the same code)
    sizes = ["8", "--hidden", "64", "--units", "16"] if quick else ["100", "1000"]
    timing_c = timing if quick else ["--blocks", "3", "--iters", "5", "--warmup", "2"]
    ok, sec, text = step("benchmark_cifar10", [py, "benchmarks/run.py", "--model", "cifar10",
                                               "--backends", "numpy", "cupy", "--batch-sizes",
                                               *sizes, *timing_c, "--out", str(out / "bench")],
                         env, 600, out)
    rows = json.loads((out / "bench" / "results_cifar10.json").read_text())["rows"] if ok else []
    table += "\n\n" + "\n".join(line for line in text.splitlines() if line.startswith("|"))
    result["steps"]["benchmark_cifar10"] = {"ok": ok, "seconds": sec, "rows": rows}

    mnist = ["--split", "test", "--data-dir", str(MNIST)] if (MNIST / "t10k-images-idx3-ubyte.gz").exists() else []
    extra = ["--limit", "200", "--batch-size", "50"] if quick else []
    ok, sec, text = step("mnist_cupy", [py, "examples/mnist.py", "--backend", "cupy", "--epochs", "3",
                                        *mnist, *extra, "--no-progress", "--out", str(out / "mnist")],
                         env, 240, out)
    epochs = []
    if ok:
        with open(out / "mnist" / "metrics.csv") as f:
            epochs = [{k: r[k] for k in ("epoch", "d_loss", "g_loss", "seconds", "samples_per_s")}
                      for r in csv.DictReader(f)]
    result["steps"]["mnist_cupy"] = {"ok": ok and len(epochs) == 3, "seconds": sec, "epochs": epochs,
                                     "data": "mnist test split" if mnist else "mnist (default data)"}

    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    md = [f"GPU check: {info['device']} ({info['memory_gib']} GiB), driver {info['driver']}, "
          f"CUDA runtime {info['cuda_runtime']}, CuPy {info['cupy']}", "",
          f"gpu tests: {result['steps']['gpu_tests']['summary']}", "", table, "",
          "| epoch | d_loss | g_loss | seconds | samples/s |", "|---|---|---|---|---|"]
    md += [f"| {e['epoch']} | {float(e['d_loss']):.4f} | {float(e['g_loss']):.4f} | "
           f"{float(e['seconds']):.1f} | {float(e['samples_per_s']):.0f} |" for e in epochs]
    (out / "gpu_check.md").write_text("\n".join(md) + "\n")
    failed = [k for k, v in result["steps"].items() if not v["ok"]]
    print(f"gpu_check: wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}"
          + (f"; FAILED: {', '.join(failed)}" if failed else "; all steps passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
