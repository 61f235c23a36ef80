"""Mode-collapse lab: small GANs on 2-D Gaussian mixtures, objectives and schedules compared.

    python examples/modes_2d.py                          # ring and grid, 6 settings x 3 seeds
    python examples/modes_2d.py --mixture ring --steps 2000 --seeds 2     # quicker
    python examples/modes_2d.py --backend cupy

Data: "ring" = 8 Gaussians of std 0.02 on a circle of radius 2; "grid" = 25 Gaussians of std
0.05 on {-4, -2, 0, 2, 4}^2 (tinygan.tools.metrics.ring_mixture / grid_mixture).

Settings: both generator objectives (nonsaturating -log D(G(z)), the paper's minimax
log(1 - D(G(z)))) x the update schedules (simultaneous k = 1, alternating k = 1, alternating
k = 5: Algorithm 1's k D-steps per G-step), each from --seeds seeds (0, 1, ...). G and D are
tinygan MLPs (2 hidden layers of --hidden ReLU units; G: --noise-dim Gaussian noise -> 2, D:
2 -> 1 logit), both trained with Adam (lr --lr, beta1 0.5, beta2 0.999), --steps generator
steps of --batch-size samples (k = 5 uses 5 real batches per generator step). The default
budget, ring 4,000 steps at lr 1e-3 and grid 8,000 steps at lr 3e-3, takes about 5 and 9
minutes on two busy CPU cores.

Metrics (tinygan.tools.metrics.mode_metrics on --eval-samples samples, at --checkpoints evenly
spaced steps): modes covered (a mode counts when it holds >= 20% of its fair share N / K of
high-quality samples), the fraction of high-quality samples (within 3 std of the nearest mode)
and KL(p || uniform) of the high-quality samples' mode histogram.

Outputs: a markdown table (mean +- std over seeds at the last step) on stdout and in
--table-dir/modes_2d_<mixture>.md; a PNG of the first seed's sample clouds over training
(rows = settings, columns = checkpoints) in --image-dir/modes_2d_<mixture>.png.
"""

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tinygan.tools.cli import Parser, positive_float, positive_int, report_error  # noqa: E402
from tinygan.backend import BACKENDS, get_backend  # noqa: E402
from tinygan.errors import TinyGANError  # noqa: E402
from tinygan.tools.plot import atomic_write  # noqa: E402
from tinygan.tools.metrics import MIXTURES, mode_metrics, sample_mixture  # noqa: E402
from tinygan.fast import GAN, Adam, mlp  # noqa: E402
from tinygan.tools.signals import DeferredInterrupt, run_main  # noqa: E402

# (objective, schedule, k), in the table's and the picture's order
SETTINGS = [
    ("nonsaturating", "simultaneous", 1),
    ("nonsaturating", "alternating", 1),
    ("nonsaturating", "alternating", 5),
    ("minimax", "simultaneous", 1),
    ("minimax", "alternating", 1),
    ("minimax", "alternating", 5),
]


def parse_args(argv=None):
    p = Parser(prog="modes_2d.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--mixture", choices=("ring", "grid", "both"), default="both",
                   help="which 2-D mixture: ring of 8 or grid of 25 Gaussians")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="generator steps per run (default: ring 4000, grid 8000)")
    p.add_argument("--seeds", type=positive_int, default=3, help="runs per setting (seeds 0..n-1)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="minibatch size")
    p.add_argument("--noise-dim", type=positive_int, default=16, help="dimension of G's noise z")
    p.add_argument("--hidden", type=positive_int, default=128, help="units per hidden layer")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="Adam learning rate of G and D (default: ring 1e-3, grid 3e-3)")
    p.add_argument("--checkpoints", type=positive_int, default=5,
                   help="evaluate (and draw) at this many evenly spaced steps, the last included")
    p.add_argument("--eval-samples", type=positive_int, default=2500,
                   help="G samples drawn to count modes and high-quality samples")
    p.add_argument("--plot-samples", type=positive_int, default=1000,
                   help="G samples drawn in each picture")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library: numpy (CPU), cupy (CUDA GPU), auto (cupy when usable)")
    p.add_argument("--image-dir", default="runs/modes_2d",
                   help="where the PNGs go (the README's: docs/images)")
    p.add_argument("--table-dir", default="runs/modes_2d",
                   help="where the Markdown tables modes_2d_<mixture>.md go")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    return p.parse_args(argv)


def run_one(mixture, objective, schedule, k, seed, args, stop=lambda: False):
    """Train one GAN; returns [(step, metrics dict, host samples (n, 2) or None)], or None when
    ``stop()`` (Ctrl-C) said to stop before the run finished."""
    be = get_backend(args.backend, seed=seed, verbose=False)
    h = args.hidden
    G = mlp([args.noise_dim, h, h, 2], backend=be)
    D = mlp([2, h, h, 1], backend=be)

    def adam(net):
        return Adam(net, lr=args.lr, beta1=0.5, beta2=0.999)
    gan = GAN(G, D, adam(G), adam(D), noise_dim=args.noise_dim, noise="normal",
              objective=objective, schedule=schedule, k=k)
    marks = sorted({round(args.steps * (i + 1) / args.checkpoints)
                    for i in range(args.checkpoints)})
    out = []
    for step in range(1, args.steps + 1):
        if stop():
            return None
        gan.train_step(sample_mixture(mixture, args.batch_size * k, be))
        if step in marks:
            samples = be.to_numpy(gan.sample(args.eval_samples))
            if np.isfinite(samples).all():
                metrics = mode_metrics(samples, mixture)
            else:
                metrics = {"n_modes": len(mixture.centers), "modes_covered": 0,
                           "high_quality_fraction": 0.0, "kl_uniform": math.nan,
                           "diverged": True}
            out.append((step, metrics, samples[:args.plot_samples]))
    return out


def _mean_std(values, fmt):
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "n/a"
    text = format(statistics.fmean(vals), fmt)
    if len(vals) > 1:
        text += " ± " + format(statistics.stdev(vals), fmt)
    if len(vals) < len(values):
        text += f" ({len(values) - len(vals)} n/a)"
    return text


def markdown_table(mixture, results, args):
    """results[(objective, schedule, k)] = [run, ...] -> a markdown table of the last step."""
    k_modes = len(mixture.centers)
    lines = [f"{mixture.name}: {k_modes} modes, std {mixture.std}; {args.steps} generator steps "
             f"of batch {args.batch_size}, Adam lr {args.lr:g}; {args.seeds} seeds (mean ± std); "
             f"metrics on {args.eval_samples} samples at the last step.",
             "",
             f"| objective | schedule | k | modes covered (of {k_modes}) | per seed "
             "| high-quality samples | KL(modes ‖ uniform) | seconds per run |",
             "|---|---|---|---|---|---|---|---|"]
    for setting in [s for s in SETTINGS if results.get(s)]:      # the runs finished so far
        runs = results[setting]
        last = [run["history"][-1][1] for run in runs]
        covered = [m["modes_covered"] for m in last]
        hq = [100 * m["high_quality_fraction"] for m in last]
        kl = [m["kl_uniform"] for m in last]
        secs = [run["seconds"] for run in runs]
        per_seed = ", ".join(str(c) + ("†" if m.get("diverged") else "")
                             for c, m in zip(covered, last))
        lines.append(f"| {setting[0]} | {setting[1]} | {setting[2]} | "
                     f"{_mean_std(covered, '.1f')} | {per_seed} | {_mean_std(hq, '.1f')} % | "
                     f"{_mean_std(kl, '.2f')} | {statistics.fmean(secs):.0f} |")
    if any(m.get("diverged") for runs in results.values() for run in runs
           for _, m, _ in run["history"][-1:]):
        lines += ["", "† diverged (non-finite samples)."]
    return "\n".join(lines) + "\n"




def save_picture(mixture, results, args, path):
    """Rows = settings, columns = checkpoints: the first seed's samples over the modes."""
    centers = np.asarray(mixture.centers)
    lim = float(np.abs(centers).max()) * 1.35
    n_rows, n_cols = len(SETTINGS), len(next(iter(results.values()))[0]["history"])
    cell = 2.0
    fig = Figure(figsize=(1.3 + cell * n_cols, 0.7 + cell * n_rows), dpi=90, facecolor="white")
    FigureCanvasAgg(fig)
    left, top = 1.3 / (1.3 + cell * n_cols), 1 - 0.55 / (0.7 + cell * n_rows)
    fig.subplots_adjust(left=left, right=0.995, top=top, bottom=0.01, wspace=0.04, hspace=0.04)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, setting in enumerate(SETTINGS):
        history = results[setting][0]["history"]
        for c, (step, metrics, samples) in enumerate(history):
            ax = axes[r][c]
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.scatter(centers[:, 0], centers[:, 1], s=60, facecolors="none",
                       edgecolors="0.6", linewidths=0.8)
            if samples is not None:
                s = samples[np.isfinite(samples).all(axis=1)]
                ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:blue", alpha=0.35, linewidths=0)
            label = ("diverged" if metrics.get("diverged") else
                     f"{metrics['modes_covered']}/{metrics['n_modes']} modes, "
                     f"{100 * metrics['high_quality_fraction']:.0f}% HQ")
            ax.text(0.03, 0.03, label, transform=ax.transAxes, fontsize=8, va="bottom",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
            if r == 0:
                ax.set_title(f"step {step}", fontsize=10)
            if c == 0:
                obj, sched, k = setting
                ax.set_ylabel(f"{obj}\n{sched}\nk = {k}", fontsize=9, rotation=0,
                              ha="right", va="center", labelpad=6)
    fig.suptitle(f"{mixture.name} mixture: {len(centers)} modes (grey circles, std {mixture.std}), "
                 f"seed {results[SETTINGS[0]][0]['seed']}; HQ = within 3 std of a mode",
                 fontsize=11, x=0.5 + left / 2, y=0.999, va="top")
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))


DEFAULTS = {"ring": {"steps": 4000, "lr": 1e-3}, "grid": {"steps": 8000, "lr": 3e-3}}


def write_table(name, mixture, results, args):
    """The table of the runs finished so far, written to --table-dir (after every run, so an
    interrupted lab keeps its results). Returns (path, table)."""
    done = {k: v for k, v in results.items() if v}
    table = markdown_table(mixture, done, args)
    path = Path(args.table_dir) / f"modes_2d_{name}.md"
    atomic_write(path, lambda f: f.write(table.encode()))
    return path, table


def run_mixture(name, args, interrupt=None):
    """Every setting and seed on mixture ``name``: the table after every run, the picture at
    the end. After a Ctrl-C (``interrupt.requested``) the unfinished run is dropped, the table
    holds the finished ones, no picture is drawn (it needs every setting); returns None."""
    stop = (lambda: interrupt.requested) if interrupt is not None else (lambda: False)
    mixture = MIXTURES[name]()
    args = argparse.Namespace(**vars(args))
    for key, value in DEFAULTS[name].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    results = {}
    start = time.perf_counter()
    for setting in SETTINGS:
        results[setting] = []
        for seed in range(args.seeds):
            t = time.perf_counter()
            history = run_one(mixture, *setting, seed, args, stop=stop)
            if history is None:
                done = sum(len(v) for v in results.values())
                print(f"modes_2d.py: interrupted ({interrupt.signal_name}) in {name} "
                      f"{'/'.join(map(str, setting))} seed {seed}; the {done} finished runs "
                      f"are in {Path(args.table_dir) / f'modes_2d_{name}.md'}, no picture drawn",
                      flush=True)
                return None
            secs = time.perf_counter() - t
            results[setting].append({"seed": seed, "history": history, "seconds": secs})
            write_table(name, mixture, results, args)        # what has finished, kept now
            if not args.quiet:
                m = history[-1][1]
                print(f"{name} {setting[0]:>13} {setting[1]:>12} k={setting[2]} seed {seed}: "
                      f"{m['modes_covered']}/{m['n_modes']} modes, "
                      f"{100 * m['high_quality_fraction']:.1f}% HQ, KL {m['kl_uniform']:.3f} "
                      f"({secs:.1f} s)", file=sys.stderr, flush=True)
    table_path, table = write_table(name, mixture, results, args)
    print(table)
    image = save_picture(mixture, results, args, Path(args.image_dir) / f"modes_2d_{name}.png")
    print(f"wrote {table_path} and {image} ({time.perf_counter() - start:.0f} s)\n",
          file=sys.stderr)
    return results


def main(argv=None):
    args = parse_args(argv)
    from tinygan.tools.threads import blas_threads, mlp_gemm, threads_for
    gemm = mlp_gemm([args.noise_dim, args.hidden, args.hidden, 2], 5 * args.batch_size)
    try:
        # small MLPs: one BLAS thread (tools/threads.py); numbers then do not hang on the count
        with blas_threads(threads_for(gemm) if args.backend == "numpy" else None), \
                DeferredInterrupt() as interrupt:
            for name in (("ring", "grid") if args.mixture == "both" else (args.mixture,)):
                if run_mixture(name, args, interrupt) is None:
                    break
    except TinyGANError as exc:
        return report_error("modes_2d.py", exc)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "modes_2d.py"))
