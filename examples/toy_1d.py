"""The paper's Figure 1 on a 1-D toy problem, computed with tinygan.

    python examples/toy_1d.py                                  # writes runs/toy_1d.png
    python examples/toy_1d.py --out docs/images/toy_1d.png     # the README's picture
    python examples/toy_1d.py --steps 8000 --seed 3 --backend cupy --out runs/toy_1d_gpu.png

As in the paper's figure: the data distribution p_data = N(-0.75, 0.5^2) is the black dotted
curve; G maps noise z, uniform on (-sqrt 3, sqrt 3) (the lower line), to x = G(z) (the upper
line; the arrows, at evenly spaced z, show how G squeezes and stretches the uniform z into its
density p_g, green). D is the blue dashed curve, and D*(x) = p_data / (p_data + p_g), the
discriminator that is optimal against the G of the moment, the thin blue line. Panels:

  (a) near convergence: p_g is close to p_data, D a partially accurate classifier
      (30 Adam steps);
  (b) Algorithm 1's inner loop: D trained to its optimum with G held fixed (2,000 Adam steps,
      learning rate annealed to 0): D = D*;
  (c) after an update to G (one SGD step on -log D(G(z)), D fixed): D's gradient has moved
      G(z) toward the region D calls data;
  (d) after --steps iterations of Algorithm 1 (k = 3 D-steps per G-step, the non-saturating
      objective, Adam with learning rates annealed to 0): p_g ~ p_data and D ~ 1/2.
  Each panel reports JSD(p_data || p_g) and the mean |D - D*| under (p_data + p_g) / 2.

G is tinygan's mlp [1, 32, 1] (tanh), D its mlp [1, 32, 32, 1] (LeakyReLU, logits). G's
starting point stands in for a G that has trained for a while: its hidden units are set to a
smooth basis tanh(w (z - c_j)) over the noise interval and its output layer to the least
squares fit of the map that sends the uniform z to N(0.5, 0.65^2), truncated at 2.25 standard
deviations; from there every parameter trains. p_g is a histogram of G on 200,000 evenly
spaced z (G's exact density up to the binning), smoothed by a Gaussian kernel of width 0.06
(a KDE) for the picture and for D*. D* is drawn where p_data + p_g is at least 2% of its
maximum (elsewhere it is 0 / 0); D is drawn faint where p_data + p_g is below 1% of its
maximum: no sample, real or generated, lands there, so nothing constrains D. The 1/2 line is
grey. About 7-10 s on one CPU core.
"""

import os

# Tiny matrices: OpenBLAS threads only add overhead, and on a busy machine a lot of it (a step
# can take 30x longer). One thread unless the user asked for more. Set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

from tinygan.tools.cli import report_error  # noqa: E402
from tinygan.tools.files import atomic_write  # noqa: E402
from tinygan.tools.signals import DeferredInterrupt, run_main  # noqa: E402
from tinygan.backend import BACKENDS, get_backend  # noqa: E402
from tinygan.errors import TinyGANError  # noqa: E402
from tinygan.fast import GAN, SGD, Adam, mlp  # noqa: E402
from tinygan.losses import discriminator_loss, generator_loss  # noqa: E402

DATA_MEAN, DATA_STD = -0.75, 0.5          # p_data
START_MEAN, START_STD = 0.5, 0.65         # what the starting G is fitted to
X_RANGE = (-3.0, 2.75)                    # the plotted x interval
BATCH = 256                               # real and fake samples per step, each
LR = 2e-3                                 # D's Adam learning rate (beta1 = 0.5)
SQRT3 = math.sqrt(3.0)
G_HIDDEN = 32                             # G = mlp [1, G_HIDDEN, 1], tanh
PARTIAL_D_STEPS = 30                      # panel (a)
OPTIMAL_D_STEPS = 2000                    # panel (b)
G_UPDATE_LR = 5e-3                        # panel (c): one SGD step of G
K = 3                                     # panel (d): D-steps per G-step
G_LR = 2.5e-4                             # panel (d): G's Adam learning rate (D's is LR)
BANDWIDTH = 0.06                          # the KDE's kernel width for p_g

DATA_COLOR, G_COLOR, D_COLOR = "black", "#1a9641", "#2b6cb0"


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args(argv=None):
    p = Parser(prog="toy_1d.py", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=positive_int, default=4000,
                   help="iterations of Algorithm 1 (3 D-steps, then one G-step) between panels "
                        "(c) and (d)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", default="runs/toy_1d.png", help="the PNG to write")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library: numpy (CPU), cupy (CUDA GPU), auto (cupy when usable)")
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"argument --seed: expected a non-negative integer, got {args.seed}")
    if Path(args.out).suffix.lower() != ".png":
        p.error(f"argument --out: expected a path ending in .png, got {args.out!r}")
    return args


# ------------------------------------------------------------------------------ densities

def normal_pdf(x, mean, std):
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def p_data(x):
    return normal_pdf(x, DATA_MEAN, DATA_STD)


def even_z(n):
    """n evenly spaced points of the noise interval (-sqrt 3, sqrt 3) (bin midpoints)."""
    return (np.arange(n) + 0.5) / n * 2 * SQRT3 - SQRT3


def generator_density(gan, edges, n=200_000, bandwidth=BANDWIDTH):
    """p_g on the bins ``edges`` (evenly spaced): a histogram of G on n evenly spaced z, divided
    by the bin width (the probability mass G puts in each bin, exactly up to the z spacing);
    with ``bandwidth`` > 0, smoothed by a Gaussian kernel of that standard deviation (a KDE)."""
    x = gan.backend.to_numpy(gan.sample(n, z=even_z(n)[:, None]))[:, 0]
    counts, _ = np.histogram(x, bins=edges)
    density = counts / (n * np.diff(edges))
    if bandwidth > 0:
        width = edges[1] - edges[0]
        k = np.arange(-int(4 * bandwidth / width) - 1, int(4 * bandwidth / width) + 2) * width
        kernel = np.exp(-0.5 * (k / bandwidth) ** 2)
        density = np.convolve(density, kernel / kernel.sum(), mode="same")
    return density


def d_star(pd, pg, floor):
    """p_data / (p_data + p_g), NaN where both densities are below ``floor`` (0 / 0)."""
    total = pd + pg
    return np.where(total > floor, pd / np.maximum(total, 1e-300), np.nan)


# ------------------------------------------------------------------------------- training

def sample_data(rng, n, be):
    return be.asarray(rng.normal(DATA_MEAN, DATA_STD, (n, 1)))


def d_step(gan, real):
    """One step of D on real and fresh fake samples (G fixed): Algorithm 1's inner loop."""
    xp, n = gan.xp, real.shape[0]
    fake = gan.G.forward(gan.sample_noise(n))
    logits = gan.D.forward(xp.concatenate([real, fake]))
    _, dl_real, dl_fake = discriminator_loss(logits[:n], logits[n:])
    gan.D.backward(xp.concatenate([dl_real, dl_fake]), input_grad=False)
    gan.d_opt.step()


def g_step(gan, n, optimizer):
    """One step of G through a fixed D (the GAN's objective, here -log D(G(z)))."""
    logits = gan.D.forward(gan.G.forward(gan.sample_noise(n)))
    _, dl = generator_loss(logits, gan.objective)
    gan.G.backward(gan.D.backward(dl, param_grads=False), input_grad=False)
    optimizer.step()


def start_generator(be, hidden=G_HIDDEN, overlap=0.6, tail=2.25):
    """G = mlp [1, hidden, 1] (tanh), set to map the uniform z to (about) N(START_MEAN,
    START_STD^2) truncated at +-``tail`` standard deviations.

    Hidden unit j computes tanh(w (z - c_j)), with centres c_j evenly spread over the noise
    interval and w = overlap / (c_{j+1} - c_j) (neighbours overlap: a smooth basis). The output
    layer is the least squares fit, over 1,000 evenly spaced z, of the quantile map
    z -> START_MEAN + START_STD Phi^-1(a + (b - a) u), u = (z + sqrt 3) / (2 sqrt 3),
    [a, b] = [Phi(-tail), Phi(tail)]. (Adam on the squared error stalls far from this fit: the
    map is steep at both ends.)
    """
    G = mlp([1, hidden, 1], activation="tanh", backend=be)
    centres = np.linspace(-SQRT3, SQRT3, hidden)
    w = overlap / (centres[1] - centres[0])
    z = even_z(1000)
    unit = statistics.NormalDist()
    a, b = unit.cdf(-tail), unit.cdf(tail)
    u = (z + SQRT3) / (2 * SQRT3)
    target = START_MEAN + START_STD * np.array([unit.inv_cdf(a + (b - a) * v) for v in u])
    basis = np.hstack([np.tanh(w * (z[:, None] - centres[None, :])), np.ones((len(z), 1))])
    coef, *_ = np.linalg.lstsq(basis, target, rcond=None)
    first, last = G.layers[0], G.layers[-1]
    first.params["W"][...] = be.asarray(np.full((1, hidden), w))
    first.params["b"][...] = be.asarray(-w * centres)
    last.params["W"][...] = be.asarray(coef[:-1, None])
    last.params["b"][...] = be.asarray(coef[-1:])
    return G


def jsd(p, q, width):
    """JSD(p || q) of two densities on the same evenly spaced points (0 log 0 = 0)."""
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum() * width
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum() * width
    return 0.5 * (kl_p + kl_q)


def snapshot(gan, title, grid, edges):
    """Everything a panel draws, on the host, and its two numbers."""
    be = gan.backend
    width = edges[1] - edges[0]
    centres = 0.5 * (edges[:-1] + edges[1:])
    pg = generator_density(gan, edges)
    pd = p_data(centres)
    d = be.to_numpy(gan.discriminate(be.asarray(grid[:, None])))
    mix = 0.5 * (pd + pg)
    ds = d_star(pd, pg, floor=0.02 * mix.max())
    d_at_centres = np.interp(centres, grid, d)
    gap = float(np.nansum(np.abs(d_at_centres - ds) * mix) * width)   # E_m |D - D*|
    support = 0.5 * (p_data(grid) + np.interp(grid, centres, pg))
    z = even_z(15)
    arrows = be.to_numpy(gan.sample(len(z), z=z[:, None]))[:, 0]
    return dict(title=title, centres=centres, pg=pg, d=d, d_star=ds, z=z, arrows=arrows,
                inside=support > 0.01 * support.max(), jsd=jsd(pd, pg, width), gap=gap,
                mean=float((centres * pg).sum() / pg.sum()))


def run(args, stop=lambda: False):
    """The four panels (a)-(d); ``stop()`` (Ctrl-C) is asked between steps: the panels finished
    by then are returned."""
    be = get_backend(args.backend, seed=args.seed)
    G = start_generator(be)
    D = mlp([1, 32, 32, 1], activation="leaky_relu", backend=be)
    g_opt = Adam(G, lr=G_LR, beta1=0.5)
    d_opt = Adam(D, lr=LR, beta1=0.5)
    gan = GAN(G, D, g_opt, d_opt, noise_dim=1, noise="uniform", objective="nonsaturating",
              schedule="alternating", k=K)
    rng = np.random.default_rng(args.seed + 1)
    grid = np.linspace(*X_RANGE, 581)
    edges = np.linspace(*X_RANGE, 576)
    panels = []

    for _ in range(PARTIAL_D_STEPS):                       # (a) D partly trained
        if stop():
            return panels, grid
        d_step(gan, sample_data(rng, BATCH, be))
    panels.append(snapshot(gan, "(a) near convergence, D partly trained", grid, edges))

    for t in range(OPTIMAL_D_STEPS):                       # (b) D to its optimum, G fixed
        if stop():
            return panels, grid
        d_opt.lr = LR * (1 - t / OPTIMAL_D_STEPS) + 1e-6
        d_step(gan, sample_data(rng, BATCH, be))
    panels.append(snapshot(gan, "(b) D trained to optimum, G fixed", grid, edges))

    g_step(gan, BATCH, SGD(G, lr=G_UPDATE_LR))   # (c) D fixed
    panels.append(snapshot(gan, "(c) after an update to G, D fixed", grid, edges))

    if stop():
        return panels, grid
    for t in range(args.steps):                            # (d) Algorithm 1, lr annealed to 0
        if stop():
            return panels, grid
        frac = 1 - t / args.steps
        d_opt.lr, g_opt.lr = LR * frac + 1e-6, G_LR * frac + 1e-7
        gan.train_step(sample_data(rng, BATCH * K, be))
    panels.append(snapshot(gan, f"(d) after {args.steps} steps of Algorithm 1", grid, edges))
    return panels, grid


# ------------------------------------------------------------------------------- the figure

def draw(panels, grid, path):
    fig = Figure(figsize=(13.5, 3.9), dpi=110, facecolor="white")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    pd_grid = p_data(grid)
    scale = 0.85 / pd_grid.max()            # densities drawn with p_data's peak at 0.85
    x_line, z_line = 0.0, -0.55
    lo, hi = X_RANGE
    z_lo, z_hi = lo + 0.12 * (hi - lo), hi - 0.12 * (hi - lo)

    def z_pos(z):
        return z_lo + (z + SQRT3) / (2 * SQRT3) * (z_hi - z_lo)

    for ax, p in zip(axes, panels):
        ax.axhline(0.5, color="0.85", lw=0.8, zorder=0)
        ax.plot(grid, pd_grid * scale, ":", color=DATA_COLOR, lw=2.4, label=r"$p_{data}$ (data)")
        ax.plot(p["centres"], p["pg"] * scale, "-", color=G_COLOR, lw=2, label=r"$p_g$ (generator)")
        ax.plot(p["centres"], p["d_star"], "-", color=D_COLOR, lw=0.9, alpha=0.6,
                label=r"$D^*=p_{data}/(p_{data}+p_g)$")
        inside = p["inside"]
        ax.plot(grid, np.where(inside, p["d"], np.nan), "--", color=D_COLOR, lw=2,
                label=r"$D$ (discriminator)")
        ax.plot(grid, np.where(inside, np.nan, p["d"]), "--", color=D_COLOR, lw=1.2, alpha=0.3)
        ax.plot([lo, hi], [x_line, x_line], color="black", lw=1)
        ax.plot([z_lo, z_hi], [z_line, z_line], color="black", lw=1)
        ax.text(lo, x_line + 0.03, "x", fontsize=12, style="italic", va="bottom")
        ax.text(z_lo - 0.05 * (hi - lo), z_line, "z", fontsize=12, style="italic", va="center")
        for z, x in zip(p["z"], p["arrows"]):
            ax.annotate("", xy=(x, x_line - 0.01), xytext=(z_pos(z), z_line + 0.01),
                        arrowprops=dict(arrowstyle="-|>", color="0.25", lw=0.8,
                                        shrinkA=0, shrinkB=0, mutation_scale=8))
        ax.set_title(p["title"], fontsize=10)
        if p is panels[-1]:
            ax.text(hi + 0.05, 0.51, "1/2", ha="right", va="bottom", fontsize=8, color="0.55")
        ax.text(0.99, 0.99, f"JSD = {p['jsd']:.3f}\n" + r"$E_m|D - D^*|$" + f" = {p['gap']:.3f}",
                transform=ax.transAxes, ha="right", va="top", fontsize=8.5, color="0.3")
        ax.set_xlim(lo - 0.05, hi + 0.05)
        ax.set_ylim(z_line - 0.08, 1.08)
        ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=9.5)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.12, wspace=0.06)
    return save_png(fig, path)


def save_png(fig, path):
    """Write the figure to ``path`` atomically (tinygan.tools.files.atomic_write)."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png"))


def main(argv=None):
    args = parse_args(argv)
    t0 = time.perf_counter()
    try:
        from tinygan.tools.threads import blas_threads
        with blas_threads(1), DeferredInterrupt() as interrupt:   # tiny MLPs: one BLAS thread
            print(f"toy_1d.py: training for panels (a)-(d), {args.steps} steps in (d); Ctrl-C "
                  "draws the finished ones", file=sys.stderr, flush=True)
            panels, grid = run(args, stop=lambda: interrupt.requested)
            path = draw(panels, grid, args.out) if panels else None
    except (TinyGANError, OSError) as exc:
        return report_error("toy_1d.py", exc)
    if interrupt.requested:
        kept = (f"the {len(panels)} finished panels are drawn in {path}" if panels
                else "no panel was finished: nothing written")
        print(f"toy_1d.py: interrupted ({interrupt.signal_name}); {kept}", flush=True)
        return 0
    for p in panels:
        print(f"{p['title']:<42} JSD(p_data || p_g) = {p['jsd']:.4f}   E_m |D - D*| = "
              f"{p['gap']:.4f}   mean of p_g {p['mean']:+.3f} (data {DATA_MEAN:+.2f})")
    print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "toy_1d.py"))
