"""tinygan's step with its large elementwise passes on 1 thread and on N (tinygan/fast_threads.py),
timed in the same interleaved blocks beside JAX and the GEMM bound: is the split faster here?

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/threads_ab.py
    python benchmarks/threads_ab.py --batch-sizes 1000 --threads 2 --blocks 9

Results are bit for bit the same with any thread count (tests/core/test_fast_threads.py); only the
time differs. Prints per batch size the medians and the ratios taken block by block; run it on
a quiet machine (another process's BLAS threads make every CPU number here meaningless).
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

from tinygan.fast import fast_threads  # noqa: E402
from tinygan.backend import get_backend  # noqa: E402
from tinygan.tools import bench  # noqa: E402
from tinygan.tools.cli import Parser, positive_int  # noqa: E402


def main(argv=None):
    p = Parser(prog="threads_ab.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", nargs="+", type=positive_int, default=[100, 1000])
    p.add_argument("--threads", type=positive_int, default=2, help="the split's thread count")
    p.add_argument("--blocks", type=positive_int, default=7)
    p.add_argument("--iters", type=positive_int, default=10, help="per block at batch 100")
    p.add_argument("--no-jax", action="store_true")
    args = p.parse_args(argv)
    info = bench.machine_info(["numpy"])
    print(bench.blas_line(info), f"| cpu {info['cpu']}, {info['cores']} cores", flush=True)
    be = get_backend("numpy", seed=0)
    try:
        with bench.Interrupt() as stop:
            for m in args.batch_sizes:
                step, _ = bench.tinygan_variant(be, m)

                def on(k, step=step):
                    def run():
                        fast_threads.set_threads(k)
                        step()
                    return run
                variants = {"1 thread": on(1), f"{args.threads} threads": on(args.threads)}
                if not args.no_jax:
                    variants["jax"] = bench.jax_variant(m)
                variants["gemm"] = bench.gemm_variant(be, m)
                t = bench.measure(variants, be, args.blocks, max(1, args.iters * 100 // m), 2, stop)
                if not t["gemm"]:
                    break
                split = f"{args.threads} threads"
                ratio = lambda a, b: bench.fmt(bench.summary([x / y for x, y in zip(t[a], t[b])]))
                print(f"batch {m} ({len(t['gemm'])} blocks): "
                      + ", ".join(f"{k} {statistics.median(v):.2f} ms" for k, v in t.items()))
                print(f"  {split} / 1 thread {ratio(split, '1 thread')}; "
                      f"/ gemm: 1 thread {ratio('1 thread', 'gemm')}, {split} {ratio(split, 'gemm')}"
                      + (f"; / jax: 1 thread {ratio('1 thread', 'jax')}, {split} {ratio(split, 'jax')}"
                         if "jax" in t else ""), flush=True)
    except KeyboardInterrupt:
        print("threads_ab.py: stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
