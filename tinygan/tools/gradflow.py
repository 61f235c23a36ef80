"""Seeing the gradients: gradient flow through G and D, D's saturation, G's gradient field.

Three measurements, all from tinygan's own backward passes, none with a host synchronisation
(each returns 0-d device arrays; the Trainer copies them once per logging interval together
with the losses):

    weight_gradient_norms(gan)   ||dL/dW|| of every weight matrix of G and D, read from the
                                 networks' gradient buffers right after a training step
                                 (``grad_G.0.W``, ``grad_D.1.W``, ...). The Trainer adds them
                                 up every step and logs their mean over the interval / epoch.
    saturation(gan, z)           D's saturation on G's samples G(z): the fraction with
                                 D(G(z)) < 0.01 and, on that same batch, ||dL_G/dx|| for both
                                 generator objectives (x = G(z)): the paper's section 3
                                 argument, measured. Both gradients come from
                                 ``grad_through_d``, D's backward with the objective's dL/dl;
                                 the one the run does not train with is for the record only.
    generator_field(D, x, obj)   D(x) and the per-sample arrow -dl_i/dx_i of G's loss at
                                 points x of the plane (examples/gradient_field.py draws it).

and the two figures a training run leaves in its directory: gradients.png
(:func:`save_gradient_flow`) and saturation.png (:func:`save_saturation`).

Why the two gradients differ: per sample, with l = D's logit and D = sigmoid(l),
    nonsaturating  -log D:        dl/dl = -(1 - D)
    minimax        log(1 - D):    dl/dl = -D
so dL_G/dx = dl/dl * dl/dx differs only by the factor D / (1 - D): where D rejects a sample
(D -> 0) the minimax gradient vanishes while the non-saturating one does not.
"""

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from ..errors import ConfigError, check_choice
from ..gan import grad_through_d
from ..layers import sigmoid
from ..losses import OBJECTIVES, generator_loss
from .files import atomic_write

SATURATION_THRESHOLD = 0.01
"""A generated sample counts as rejected (D saturated on it) when D(G(z)) < this."""

SATURATION_KEYS = ("saturated_fraction", "grad_x_nonsaturating", "grad_x_minimax")
RATIO_KEY = "grad_ratio"
"""||dL_G/dx|| minimax / non-saturating, computed on the host from the two norms."""


def _norm(xp, a):
    """||a||_2 (Frobenius) as a 0-d device array: one dot product, no temporary."""
    v = a.reshape(-1)
    return xp.sqrt(xp.dot(v, v))


def weight_gradient_norms(gan):
    """{"grad_G.<i>.W": ||dL_G/dW||, "grad_D.<i>.W": ||dL_D/dW||} for every weight matrix
    (``<i>`` the layer's index in its Sequential), and "grad_x": ||dL_G/dx|| (``gan.grad_x``,
    G's gradient arriving through D): 0-d device arrays, no host sync.

    Read right after ``gan.train_step``: each network's gradient buffer then holds the
    gradient its optimizer just applied (with the alternating schedule, D's last D-step)."""
    xp = gan.xp
    norms = {f"grad_{tag}.{name}": _norm(xp, g)
             for tag, net in (("G", gan.G), ("D", gan.D))
             for name, g in net.grads if name.endswith(".W")}
    if gan.grad_x is not None:
        norms["grad_x"] = _norm(xp, gan.grad_x)
    return norms


def saturation(gan, z, threshold=SATURATION_THRESHOLD):
    """D's saturation on G(z), with D and G as they are now and dropout off (D as a classifier:
    the measurement draws no random numbers, so it leaves the training run unchanged).

    Returns 0-d device arrays: ``saturated_fraction`` (the fraction of samples with
    D(G(z)) < ``threshold``), ``grad_x_nonsaturating`` and ``grad_x_minimax`` (||dL_G/dx||,
    x = G(z), for each objective, on this same batch, through ``grad_through_d``). D's and G's
    parameter gradients are left untouched; their forward caches are overwritten (the next
    training step runs its own forward first)."""
    xp = gan.xp
    with gan.G.evaluating(), gan.D.evaluating():
        x = gan.G.forward(z)
        logits = gan.D.forward(x)
        d = sigmoid(logits)
        out = {"saturated_fraction": (d < threshold).astype(d.dtype).mean()}
        for kind in OBJECTIVES:
            _, dl = generator_loss(logits, kind)
            out[f"grad_x_{kind}"] = _norm(xp, grad_through_d(gan.D, dl))
    return out


def gradient_ratio(host):
    """minimax / non-saturating ||dL_G/dx|| from a host dict of :func:`saturation`'s values
    (finite: a vanishing non-saturating gradient gives a large number, not inf)."""
    return host["grad_x_minimax"] / max(host["grad_x_nonsaturating"], 1e-300)


def generator_field(D, x, objective):
    """D(x) and the arrows -dl_i/dx_i of G's loss at the points ``x`` (backend array (N, D_x)),
    D in eval mode. ``dl_i/dx_i`` is sample i's own gradient: N times dL_G/dx of the batch mean
    (generator_loss averages over the batch), so an arrow does not depend on how many points
    are drawn. Returns (D(x) (N,), arrows (N, D_x)), backend arrays."""
    check_choice("objective", objective, OBJECTIVES)
    with D.evaluating():
        logits = D.forward(x)
        _, dl = generator_loss(logits, objective)
        dx = grad_through_d(D, dl)
    dx *= -float(x.shape[0])
    return sigmoid(logits)[:, 0], dx


# ----------------------------------------------------------------------------- figures

_DPI = 100


def _columns(rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: np.asarray([float(r.get(k, math.nan)) for r in rows]) for k in keys}


def _positive(y):
    y = np.asarray(y, dtype=np.float64).copy()
    y[~(y > 0)] = np.nan                  # log scale: zeros and NaN leave gaps
    return y


def _log_axis(ax, *axes):
    """Log scale for the y values drawn on ``ax`` (and ``axes``, sharing it) when they span a
    decade or more; a narrower span (a short run) stays linear with plain tick labels, not
    matplotlib's 1.00005x10^0 on a log axis."""
    ys = [np.asarray(line.get_ydata(), dtype=np.float64) for a in (ax, *axes)
          for line in a.get_lines()]
    y = np.concatenate(ys) if ys else np.zeros(0)
    y = y[np.isfinite(y) & (y > 0)]
    if y.size and y.max() >= 10 * y.min():
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))


def _epoch_axis(ax):
    """Whole epochs on the x axis (a short run's intervals fall between them)."""
    ax.set_xlim(left=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")


def _layer_keys(cols, tag):
    keys = [k for k in cols if k.startswith(f"grad_{tag}.")]
    return sorted(keys, key=lambda k: int(k.split(".")[1]))


def save_gradient_flow(epochs, path, intervals=None, title=None):
    """gradients.png: ||dL/dW|| of each layer of D (left) and G (right, with ||dL_G/dx||, the
    gradient arriving through D) against epoch, log scale. ``epochs``: metrics.csv rows (the
    epoch means, drawn as markers); ``intervals``: intervals.csv rows (the means over each
    logging interval, drawn as lines at their fractional epoch). Returns the path."""
    ep = _columns(epochs)
    iv = _columns(intervals) if intervals else {}
    if not _layer_keys(ep, "G") and not _layer_keys(iv, "G"):
        raise ConfigError("no grad_G.* columns in the log: nothing to draw")
    fig = Figure(figsize=(11, 4.6), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
    for ax, tag, name in ((axes[0], "D", "D's weights, dL_D/dW"), (axes[1], "G", "G's weights, dL_G/dW")):
        keys = _layer_keys(ep or iv, tag) + (["grad_x"] if tag == "G" else [])
        for key, color in zip(keys, colors):
            label = ("dL_G/dx (through D)" if key == "grad_x"
                     else f"layer {key.split('.')[1]} W")
            style = {"color": "black", "linestyle": "--"} if key == "grad_x" else {"color": color}
            if key in iv:
                ax.plot(iv["epoch"], _positive(iv[key]), linewidth=1, alpha=0.8, label=label,
                        **style)
                label = None
            if key in ep:
                ax.plot(ep["epoch"], _positive(ep[key]), linestyle="none", marker="o",
                        markersize=4, color=style["color"], label=label)
        ax.set_title(name, fontsize=11)
        _epoch_axis(ax)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="best")
    _log_axis(axes[0], axes[1])                  # shared y: one scale for both
    axes[0].set_ylabel("gradient norm ||.||_2 (mean over steps)")
    fig.suptitle(title or "gradient flow: lines = logging intervals, dots = epoch means",
                 fontsize=11)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI))


def save_saturation(rows, path, objective=None, title=None):
    """saturation.png from rows holding ``epoch`` and :func:`saturation`'s columns (intervals.csv
    or metrics.csv): the fraction of G's samples with D(G(z)) < 0.01 (top), ||dL_G/dx|| of both
    objectives (middle, log) and their ratio minimax / non-saturating (bottom, log).
    ``objective``: the one the run trained with (named in the legend). Returns the path."""
    cols = _columns(rows)
    missing = [k for k in ("epoch",) + SATURATION_KEYS if k not in cols]
    if missing:
        raise ConfigError(f"saturation figure: the log lacks {', '.join(missing)}")
    x = cols["epoch"]
    ratio = cols[RATIO_KEY] if RATIO_KEY in cols else cols["grad_x_minimax"] / cols["grad_x_nonsaturating"]
    style = {"marker": "o", "markersize": 3} if len(x) <= 40 else {}
    fig = Figure(figsize=(8, 8), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    top, mid, bottom = fig.subplots(3, 1, sharex=True)
    top.plot(x, 100 * cols["saturated_fraction"], color="tab:red", **style)
    top.set_ylabel(f"% of G(z) with\nD(G(z)) < {SATURATION_THRESHOLD}")
    top.set_ylim(-3, 103)
    for kind, color in (("nonsaturating", "tab:blue"), ("minimax", "tab:orange")):
        used = " (trained with)" if kind == objective else " (for the record)" if objective else ""
        loss = "-log D(G(z))" if kind == "nonsaturating" else "log(1 - D(G(z)))"
        mid.plot(x, _positive(cols[f"grad_x_{kind}"]), color=color, label=f"{kind} {loss}{used}",
                 **style)
    _log_axis(mid)
    mid.set_ylabel("||dL_G/dx||, x = G(z)")
    mid.legend(fontsize=8, loc="best")
    bottom.plot(x, _positive(ratio), color="tab:purple", **style)
    bottom.axhline(1, color="gray", linestyle="--", linewidth=1)
    _log_axis(bottom)
    bottom.set_ylabel("ratio minimax /\nnon-saturating")
    _epoch_axis(bottom)
    for ax in (top, mid, bottom):
        ax.grid(True, which="both", alpha=0.25)
    fig.suptitle(title or "D's saturation on G's samples (dropout off, fixed noise batch)",
                 fontsize=11)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI))
