"""G's gradient field in 2-D: what each generator objective tells G's samples to do.

    python examples/gradient_field.py                       # ring, 600 steps, ~1 minute
    python examples/gradient_field.py --steps 300 --frames 7 --out runs/quick_field

Two GANs on the ring of the mode-collapse lab (examples/modes_2d.py: 8 Gaussians of std 0.02
on a circle of radius 2), from the same start (same seed: same initial G and D, same data and
noise draws), one trained with the non-saturating objective -log D(G(z)), one with the
paper's minimax log(1 - D(G(z))). D first trains alone for --d-head-start steps (G fixed), so that
at step 0 it rejects G's samples with confidence, as the paper expects early in learning.
Both: tinygan MLPs (G: --noise-dim Gaussian noise -> 2
hidden layers of --hidden ReLU units -> 2; D: 2 -> same -> 1 logit), Adam (lr --lr, beta1
0.5), simultaneous updates, batch --batch-size.

Each frame (at --frames evenly spaced steps, step 0 included) shows, per objective: D(x) over
the plane as a heatmap (D in eval mode), the real samples (grey), G's samples on a fixed noise
batch (white dots) and at each of them the arrow -dl_i/dx_i: the gradient tinygan's backward
computes through D (tools/gradflow.generator_field: D.backward with the objective's dL/dl,
i.e. gan.grad_through_d), per sample, the direction G's step pushes that sample. One arrow
scale for the whole animation and both panels, so their lengths compare across objectives and
steps. Where D rejects a sample (dark blue, D ~ 0) the minimax arrow vanishes, by D / (1 - D)
relative to the non-saturating one: the paper's section 3 argument in the plane.

Outputs in --out: gradient_field.gif (the animation, matplotlib's PillowWriter) and
gradient_field.png (a still: --still-frames columns, one row per objective).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tinygan.backend import BACKENDS, get_backend  # noqa: E402
from tinygan.errors import TinyGANError  # noqa: E402
from tinygan.fast import GAN, Adam, mlp  # noqa: E402
from tinygan.tools.cli import (Parser, non_negative_int, positive_float, positive_int,  # noqa: E402
                              report_error)  # noqa: E402
from tinygan.tools.files import atomic_write  # noqa: E402
from tinygan.tools.gradflow import generator_field  # noqa: E402
from tinygan.tools.metrics import MIXTURES, sample_mixture  # noqa: E402
from tinygan.tools.signals import DeferredInterrupt, run_main  # noqa: E402

OBJECTIVES = ("nonsaturating", "minimax")
LABELS = {"nonsaturating": "non-saturating: G minimises -log D(G(z))",
          "minimax": "minimax (the paper's V): G minimises log(1 - D(G(z)))"}


def parse_args(argv=None):
    p = Parser(prog="gradient_field.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--mixture", choices=tuple(MIXTURES), default="ring",
                   help="the 2-D data: which mixture of Gaussians")
    p.add_argument("--steps", type=positive_int, default=600, help="training steps per run")
    p.add_argument("--frames", type=positive_int, default=13,
                   help="frames of the animation, evenly spaced from step 0 to --steps")
    p.add_argument("--still-frames", type=positive_int, default=4,
                   help="columns of the still (evenly chosen among the frames)")
    p.add_argument("--d-head-start", type=non_negative_int, default=100,
                   help="D-steps before G's first step (G fixed): D learns to reject G's first "
                        "samples, the situation of the paper's section 3 (0: none)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="minibatch size")
    p.add_argument("--noise-dim", type=positive_int, default=8, help="dimension of G's noise z")
    p.add_argument("--hidden", type=positive_int, default=64, help="units per hidden layer")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="Adam learning rate of G and D")
    p.add_argument("--arrows", type=positive_int, default=64, help="G samples drawn with arrows")
    p.add_argument("--grid", type=positive_int, default=90, help="heatmap resolution per axis")
    p.add_argument("--fps", type=positive_float, default=2.0, help="frames per second of the GIF")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library: numpy (CPU), cupy (CUDA GPU), auto (cupy when usable)")
    p.add_argument("--out", default="runs/gradient_field", help="output directory")
    return p.parse_args(argv)


def make_gan(objective, args):
    """G, D and Adam on a backend of seed ``args.seed``: the same start for every objective."""
    be = get_backend(args.backend, seed=args.seed, verbose=False)
    G = mlp([args.noise_dim, args.hidden, args.hidden, 2], backend=be)
    D = mlp([2, args.hidden, args.hidden, 1], backend=be)

    def adam(net):
        return Adam(net, lr=args.lr, beta1=0.5, beta2=0.999)
    return GAN(G, D, adam(G), adam(D), noise_dim=args.noise_dim, noise="normal",
               objective=objective)


def snapshot(gan, objective, z, plane, real_host):
    """Host arrays of one frame: G's samples on z, the arrows at them, D over the plane, and
    the real samples drawn under them."""
    be = gan.backend
    x = gan.sample(len(z), z=z)
    _, arrows = generator_field(gan.D, x, objective)
    d_plane, _ = generator_field(gan.D, be.asarray(plane), objective)
    return {"samples": be.to_numpy(x), "arrows": be.to_numpy(arrows),
            "d_plane": be.to_numpy(d_plane), "real": real_host}


def train(objective, args, marks, plane, real_host, stop=lambda: False):
    """One run; returns {step: frame} at the steps in ``marks`` (those reached before
    ``stop()``, Ctrl-C, said to stop)."""
    gan = make_gan(objective, args)
    be = gan.backend
    z = gan.sample_noise(args.arrows)
    frames = {}
    for _ in range(args.d_head_start):           # D alone first: "early in learning"
        if stop():
            return frames
        gan.discriminator_step(sample_mixture(args.mix, args.batch_size, be))
    for step in range(0, args.steps + 1):
        if stop():
            return frames
        if step:
            gan.train_step(sample_mixture(args.mix, args.batch_size, be))
        if step in marks:
            frames[step] = snapshot(gan, objective, z, plane, real_host)
    return frames


def plane_grid(lim, n):
    t = np.linspace(-lim, lim, n)
    xx, yy = np.meshgrid(t, t)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


class Drawing:
    """Draws frames into a row of axes (one per objective) with one arrow scale."""

    def __init__(self, args, lim, arrow_scale):
        self.args, self.lim, self.scale = args, lim, arrow_scale

    def panel(self, ax, frame, objective, step, title=True, cbar_fig=None):
        lim, n = self.lim, self.args.grid
        ax.clear()
        im = ax.imshow(frame["d_plane"].reshape(n, n), origin="lower", extent=(-lim, lim, -lim, lim),
                       cmap="RdBu_r", vmin=0, vmax=1, interpolation="bilinear")
        r = frame["real"]
        ax.scatter(r[:, 0], r[:, 1], s=3, c="0.35", linewidths=0, label="real")
        s, a = frame["samples"], frame["arrows"]
        keep = np.isfinite(s).all(axis=1) & np.isfinite(a).all(axis=1)
        ax.quiver(s[keep, 0], s[keep, 1], a[keep, 0], a[keep, 1], angles="xy",
                  scale_units="xy", scale=self.scale, width=0.006, color="black")
        ax.scatter(s[keep, 0], s[keep, 1], s=9, c="white", edgecolors="black", linewidths=0.4,
                   label="G(z)")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        median = float(np.median(np.hypot(a[keep, 0], a[keep, 1]))) if keep.any() else float("nan")
        ax.text(0.02, 0.02, f"median |arrow| {median:.2g}", transform=ax.transAxes, fontsize=8,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
        if title:
            ax.set_title(f"{LABELS[objective]}\nstep {step}", fontsize=9)
        return im


def arrow_scale(runs, lim):
    """Data units per plot unit: the 95th percentile arrow over every frame of both runs draws
    at 15% of the plane's width."""
    lengths = np.concatenate([np.hypot(f["arrows"][:, 0], f["arrows"][:, 1])
                              for frames in runs.values() for f in frames.values()])
    lengths = lengths[np.isfinite(lengths)]
    top = float(np.percentile(lengths, 95)) if lengths.size else 1.0
    return max(top, 1e-12) / (0.15 * 2 * lim)


def save_gif(runs, steps, drawing, path, fps):
    from matplotlib.animation import PillowWriter
    fig = Figure(figsize=(9.6, 5.0), dpi=70, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    fig.suptitle("G's gradient field: arrows -dl/dx at G's samples, heatmap D(x) (red 1, blue 0)",
                 fontsize=10)
    writer = PillowWriter(fps=fps)
    tmp = path.with_name(path.name + ".tmp.gif")
    with writer.saving(fig, str(tmp), dpi=70):
        for step in steps:
            for ax, objective in zip(axes, OBJECTIVES):
                drawing.panel(ax, runs[objective][step], objective, step)
            writer.grab_frame()
    tmp.replace(path)
    return path


def save_still(runs, steps, drawing, path, n_cols):
    pick = sorted({steps[round(i * (len(steps) - 1) / max(n_cols - 1, 1))] for i in range(n_cols)})
    fig = Figure(figsize=(2.6 * len(pick) + 0.6, 5.6), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(pick), squeeze=False)
    im = None
    for r, objective in enumerate(OBJECTIVES):
        for c, step in enumerate(pick):
            im = drawing.panel(axes[r][c], runs[objective][step], objective, step, title=False)
            if r == 0:
                axes[r][c].set_title(f"step {step}", fontsize=10)
        axes[r][0].set_ylabel("non-saturating\n-log D(G(z))" if objective == "nonsaturating"
                              else "minimax\nlog(1 - D(G(z)))", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.6, label="D(x)")
    fig.suptitle("G's gradient field on the ring, both objectives from the same start: "
                 "arrows -dl/dx at G's samples (one scale), heatmap D(x)", fontsize=10)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))


def main(argv=None):
    args = parse_args(argv)
    try:
        start = time.perf_counter()
        args.mix = MIXTURES[args.mixture]()
        lim = float(np.abs(np.asarray(args.mix.centers)).max()) * 1.6
        plane = plane_grid(lim, args.grid)
        marks = sorted({round(args.steps * i / max(args.frames - 1, 1)) for i in range(args.frames)})
        real = get_backend("numpy", seed=args.seed + 1, verbose=False)
        real_host = real.to_numpy(sample_mixture(args.mix, 400, real))
        runs = {}
        with DeferredInterrupt() as interrupt:
            print(f"gradient_field.py: training with each objective ({', '.join(OBJECTIVES)}), "
                  f"{args.steps} steps; Ctrl-C draws the frames both reached", file=sys.stderr,
                  flush=True)
            for objective in OBJECTIVES:
                t = time.perf_counter()
                runs[objective] = train(objective, args, set(marks), plane, real_host,
                                        stop=lambda: interrupt.requested)
                if interrupt.requested:
                    break
                print(f"{objective}: {args.steps} steps ({time.perf_counter() - t:.1f} s)",
                      file=sys.stderr, flush=True)
        if interrupt.requested:         # the frames both objectives reached are finished
            marks = sorted(set(marks).intersection(*runs.values())) \
                if len(runs) == len(OBJECTIVES) else []
            if not marks:
                print(f"gradient_field.py: interrupted ({interrupt.signal_name}) before both "
                      "objectives had a frame: nothing written", flush=True)
                return 0
        drawing = Drawing(args, lim, arrow_scale(runs, lim))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        still = save_still(runs, marks, drawing, out / "gradient_field.png", args.still_frames)
        gif = save_gif(runs, marks, drawing, out / "gradient_field.gif", args.fps)
        print(f"wrote {still} and {gif} ({gif.stat().st_size / 1e6:.2f} MB, "
              f"{time.perf_counter() - start:.0f} s)", file=sys.stderr)
        if interrupt.requested:
            print(f"gradient_field.py: interrupted ({interrupt.signal_name}); the pictures hold "
                  f"the {len(marks)} frames both objectives reached (to step {marks[-1]})",
                  flush=True)
    except (TinyGANError, OSError) as exc:
        return report_error("gradient_field.py", exc)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "gradient_field.py"))
