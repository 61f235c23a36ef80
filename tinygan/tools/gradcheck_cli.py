"""The command ``python -m tinygan gradcheck`` (or ``tinygan gradcheck``):
every hand-written gradient checked against central differences, one table per check.

The checks themselves are the study core's library, tinygan/gradcheck.py; this module holds
what only the command needs: the small instances to check, the table, the options.

Every layer class in layers.LAYER_CLASSES is looked up in LAYER_CHECKS; a class without an
entry is reported as a failing row, so a new layer cannot ship without a gradient check.
"""

import argparse
import ast
import inspect
import math
import os
import sys
import textwrap
import time
from collections import namedtuple

import tinygan

from .. import layers as _layers
from ..gradcheck import (DEFAULT_TOL, Row, check_discriminator_loss,
                         check_generator_loss, check_generator_through_discriminator,
                         check_module, max_error)
from ..layers import Dropout, LeakyReLU, Linear, Maxout, ReLU, Sigmoid, Tanh
from ..losses import OBJECTIVES
from ..network import paper_discriminator, paper_generator
from .. import losses as plain_losses
from ..fast import losses as fast_losses
from ..fast.layers import FAST_FORMS
from ..fast.network import to_fast

CheckPath = namedtuple("CheckPath", "name layer net losses")
"""Which code the checks run: the plain core (what a learner reads) or the fast path beside it
(``--fast``): ``layer(plain layer)`` and ``net(plain network)`` give that path's form,
``losses`` its loss module."""
PLAIN = CheckPath("plain core", lambda layer: layer, lambda net: net, plain_losses)
FAST = CheckPath("fast path", lambda layer: FAST_FORMS[type(layer)].like(layer), to_fast,
                 fast_losses)

def _where(index):
    """A worst coordinate's place: '[3, 1]' for an index, 'dir 2' for a direction."""
    return f"dir {index}" if isinstance(index, int) else "[" + ", ".join(map(str, index)) + "]"


def format_table(rows):
    """Rows -> a fixed-width text table: parameter, shape, analytic and numerical norms,
    relative error, result, which check (every coordinate, or n random directions), and the
    worst coordinate (or direction): where, its analytic and its numerical derivative."""
    width = max([22] + [len(r.name) for r in rows])

    def num(v, spec):
        return "-" if v != v else format(v, spec)     # nan (no check ran) prints as "-"

    head = (f"{'parameter':<{width}} {'shape':<14} {'analytic':>11} {'numerical':>11} "
            f"{'rel. error':>10}  result  {'check':<13} worst: where, analytic, numerical")
    lines = [head, "-" * len(head)]
    for r in rows:
        worst = "-"
        if getattr(r, "worst", None) is not None:
            where, a, n = r.worst
            worst = f"{_where(where)} {a:.4e} {n:.4e}"
        lines.append(f"{r.name:<{width}} {str(r.shape):<14} {num(r.analytic_norm, '.4e'):>11} "
                     f"{num(r.numerical_norm, '.4e'):>11} {num(r.rel_error, '.2e'):>10}  "
                     f"{'pass' if r.passed else 'FAIL':<6}  {r.method:<13} {worst}")
    return "\n".join(lines)


VERBOSE_MAX = 200          # --verbose lists the coordinates of arrays up to this size


def format_coordinates(row, limit=VERBOSE_MAX):
    """--verbose: every coordinate of a row's coordinate check, one line each (index,
    analytic, numerical, |difference|), the worst marked; '' for larger or direction checks."""
    coords = getattr(row, "coords", None)
    if not coords or len(coords) > limit:
        return ""
    lines = [f"  {row.name}: {'index':<10} {'analytic':>12} {'numerical':>12} {'|a - n|':>10}"]
    for index, a, n in coords:
        mark = "  <- worst" if (index, a, n) == tuple(row.worst) else ""
        lines.append(f"  {'':<{len(row.name)}}  {_where(index):<10} {a:>12.4e} {n:>12.4e} "
                     f"{abs(a - n):>10.2e}{mark}")
    return "\n".join(lines)


def _repo_path(filename):
    """``filename`` relative to the folder above the tinygan package (tinygan/layers.py)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(tinygan.__file__)))
    return os.path.relpath(os.path.abspath(filename), root)


def code_location(func):
    """Where the code a check exercises lives: ``func``'s qualified name and file, and every
    function of another tinygan module it calls as ``module.function(...)`` (a fused kernel:
    ``Maxout.backward in tinygan/layers.py, via maxout_backward in tinygan/fast/kernels.py``), so a
    failing row names the code that computes the gradient, wherever the core puts it."""
    where = f"{func.__qualname__} in {_repo_path(inspect.getsourcefile(func))}"
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, SyntaxError, TypeError):
        return where
    called = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)):
            module = func.__globals__.get(node.func.value.id)
            target = getattr(module, node.func.attr, None)
            if (inspect.ismodule(module) and module.__name__.startswith("tinygan.")
                    and inspect.isfunction(target)):
                text = f"{target.__name__} in {_repo_path(inspect.getsourcefile(target))}"
                if text not in called:
                    called.append(text)
    return where + "".join(f", via {c}" for c in called)


def notes_location():
    """Where docs/gradients.md is: its path in this clone, or (an installed package carries no
    docs/) the source repository's."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(tinygan.__file__)))
    notes = os.path.join(root, "docs", "gradients.md")
    if os.path.isfile(notes):
        return notes
    return ("docs/gradients.md in tinygan's source repository (an installed package does not "
            "carry docs/)")


Section = namedtuple("Section", "title detail code rows")
"""One table of the command: a short title, what exactly was checked, where the code is, rows."""

LayerCheck = namedtuple("LayerCheck", "make n_in code")
"""A small instance of a layer (``make(backend)``), its input width, and where its backward is."""

LAYER_CHECKS = {
    Linear: LayerCheck(lambda be: Linear(7, 5, init="glorot", backend=be), 7,
                       code_location(Linear.backward)),
    ReLU: LayerCheck(lambda be: ReLU(backend=be), 7, code_location(ReLU.backward)),
    LeakyReLU: LayerCheck(lambda be: LeakyReLU(0.1, backend=be), 7,
                          code_location(LeakyReLU.backward)),
    Tanh: LayerCheck(lambda be: Tanh(backend=be), 7, code_location(Tanh.backward)),
    Sigmoid: LayerCheck(lambda be: Sigmoid(backend=be), 7, code_location(Sigmoid.backward)),
    Maxout: LayerCheck(lambda be: Maxout(7, units=4, pieces=3, init="glorot", backend=be), 7,
                       code_location(Maxout.backward)),
    Dropout: LayerCheck(lambda be: Dropout(0.6, backend=be), 7, code_location(Dropout.backward)),
}

ALIASES = {"g": "generator", "d": "discriminator", "d_loss": "discriminator_loss",
           "g_loss": "generator_loss", "leaky_relu": "leakyrelu", "g_through_discriminator":
           "g_through_d", "generator_through_discriminator": "g_through_d"}

FLOAT32_NOTE = """\
Why float64: a central difference (L(t + h) - L(t - h)) / 2h has two errors. Truncation,
about h^2 |d3L/dt3| / 6, is ~1e-12 at h = 1e-6. Rounding: L is only known to about eps |L|,
so the quotient carries an error of about eps |L| / h; and t + h is itself rounded to the
float grid (spacing ~eps |t|), so the step really taken is off by up to ~eps |t| / h. With
eps = 2.2e-16 (float64) both are ~1e-10 of the derivative: correct code shows errors of
1e-9 or less. With eps = 1.2e-7 (float32) they are ~0.1: the errors jump to 1e-2..3e-1 and
every row FAILs, although every backward above is the same, correct code. A larger step
helps only so far: with --h 1e-3 the layers reach ~3e-5 (the best h ~ eps^(1/3) balances
h^2 against eps/h), and G still fails, as one of its ReLU pre-activations now lies within h
of the kink. Never 1e-8: to tell a correct gradient from a slightly wrong one, check in
float64. (The float32 run draws its own random inputs and weights: the numbers differ from
the float64 run's, the sizes and the checks are the same.)"""


THROUGH_D_CODE = ("G.backward(grad_through_d(D, dl)), as in GAN.generator_step in "
                  "tinygan/gan.py")
THROUGH_D_BATCH_CODE = ("G.backward(grad_through_d(D, dl, rows=slice(n_real, None))), as in "
                        "GAN._simultaneous_step")


def away_from_zero(be, shape, margin=1e-3):
    """Gaussian inputs with |x| >= margin, so no ReLU/LeakyReLU kink lies within h of x."""
    x = be.normal(shape)
    return be.xp.where(abs(x) < margin, margin, x)


def small_generator(be, noise_dim=5, hidden=10, out_dim=12):
    """The paper's G (Linear+ReLU, Linear+ReLU, Linear+Sigmoid) at a small size, weights
    N(0, 0.5^2) so every unit is active somewhere and the gradients are not tiny."""
    G = paper_generator(noise_dim=noise_dim, hidden=hidden, out_dim=out_dim,
                        pixel_mean=be.uniform(0.1, 0.9, (out_dim,)), backend=be)
    for _, p in G.params:
        p[...] = be.normal(p.shape) * 0.5
    return G


def small_discriminator(be, in_dim=12, units=6, pieces=3):
    """The paper's D (dropout, maxout, dropout, maxout, dropout, linear -> logit) at a small
    size, weights N(0, 0.5^2)."""
    D = paper_discriminator(in_dim=in_dim, units=units, pieces=pieces, backend=be)
    for _, p in D.params:
        p[...] = be.normal(p.shape) * 0.5
    return D


def _layer_sections(cls, be, seed, h, tol, full, path=PLAIN):
    check = LAYER_CHECKS.get(cls)
    if check is None:
        return [Section(cls.__name__, "a layer class with no entry in LAYER_CHECKS",
                        "add one to LAYER_CHECKS in tinygan/tools/gradcheck_cli.py",
                        [Row(f"no gradient check for {cls.__name__}", (), math.nan, math.nan,
                             math.inf, "missing", False)])]
    layer = path.layer(check.make(be))
    code = check.code if path is PLAIN else code_location(type(layer).backward)
    rows = check_module(layer, away_from_zero(be, (6, check.n_in)), seed=seed, h=h, tol=tol)
    return [Section(cls.__name__, f"{layer!r} at x {(6, check.n_in)}", code, rows)]


def _discriminator_loss_sections(be, seed, h, tol, full, path=PLAIN):
    real, fake = be.normal((6, 1)) * 4, be.normal((4, 1)) * 4
    return [Section("discriminator loss", "6 real and 4 fake logits ~ N(0, 4^2)",
                    code_location(path.losses.discriminator_loss),
                    check_discriminator_loss(real, fake, h=h, tol=tol, losses=path.losses))]


def _generator_loss_sections(be, seed, h, tol, full, path=PLAIN):
    fake = be.normal((6, 1)) * 4
    rows = [r for kind in OBJECTIVES
            for r in check_generator_loss(fake, kind, h=h, tol=tol, losses=path.losses)]
    return [Section("generator loss", "both objectives, 6 logits ~ N(0, 4^2)",
                    code_location(path.losses.generator_loss), rows)]


def _network_code(path):
    """Where a network's backward lives on ``path``: the chain rule in Sequential.backward."""
    net = path.net(paper_generator(noise_dim=1, hidden=1, out_dim=1))
    return code_location(type(net).backward)


def _generator_sections(be, seed, h, tol, full, path=PLAIN):
    out = [Section("G", "the paper's generator at a small size, z 5 -> 10 -> 10 -> 12",
                   _network_code(path),
                   check_module(path.net(small_generator(be)), be.normal((4, 5)), seed=seed, h=h,
                                tol=tol, max_coords=10**6))]
    if full:
        G = path.net(paper_generator(pixel_mean=be.uniform(0.1, 0.9, (784,)), backend=be))
        out.append(Section("G, paper size", "z 100 -> 1200 -> 1200 -> 784",
                           _network_code(path),
                           check_module(G, be.normal((6, 100)), seed=seed, h=h, tol=tol)))
    return out


def _discriminator_sections(be, seed, h, tol, full, path=PLAIN):
    out = [Section("D", "the paper's discriminator at a small size, x 12 -> dropout, maxout "
                        "6x3, dropout, maxout 6x3, dropout, linear -> logit",
                   _network_code(path),
                   check_module(path.net(small_discriminator(be)), be.uniform(0, 1, (5, 12)), seed=seed,
                                h=h, tol=tol, max_coords=10**6))]
    if full:
        D = path.net(paper_discriminator(backend=be))
        out.append(Section("D, paper size", "x 784 -> maxout 240x5 -> maxout 240x5 -> logit",
                           _network_code(path),
                           check_module(D, be.uniform(0, 1, (6, 784)), seed=seed, h=h, tol=tol)))
    return out


def _g_through_d_sections(be, seed, h, tol, full, path=PLAIN):
    out = []
    for kind in OBJECTIVES:
        G, D = path.net(small_generator(be)), path.net(small_discriminator(be))
        out.append(Section(f"G through D, {kind}", "dL_G/dtheta_G, small G and D, D sees 6 fakes",
                           THROUGH_D_CODE,
                           check_generator_through_discriminator(
                               G, D, be.normal((6, 5)), kind, seed=seed, h=h, tol=tol,
                               max_coords=10**6)))
        G, D = path.net(small_generator(be)), path.net(small_discriminator(be))
        out.append(Section(f"G through D, {kind}, real+fake batch",
                           "dL_G/dtheta_G, small G and D, D sees 4 real rows and 6 fakes in one "
                           "forward", THROUGH_D_BATCH_CODE,
                           check_generator_through_discriminator(
                               G, D, be.normal((6, 5)), kind, seed=seed, h=h, tol=tol,
                               real=be.uniform(0, 1, (4, 12)), max_coords=10**6)))
    if full:
        for kind in OBJECTIVES:
            G = path.net(paper_generator(pixel_mean=be.uniform(0.1, 0.9, (784,)), backend=be))
            D = path.net(paper_discriminator(backend=be))
            # at D's init (+-0.005) dL/dtheta_G is ~1e-8; weights of a trained size make it matter
            for _, p in D.params:
                p[...] = be.normal(p.shape) * 0.05
            out.append(Section(f"G through D, {kind}, paper size",
                               "dL_G/dtheta_G with the paper's G and D (D weights N(0, 0.05^2))",
                               THROUGH_D_CODE,
                               check_generator_through_discriminator(
                                   G, D, be.normal((6, 100)), kind, seed=seed, h=h, tol=tol)))
    return out


def check_items():
    """{name: (title, runner)}, in the order the command prints; ``runner(be, seed, h, tol,
    full)`` returns [Section].

    Layers come from ``layers.LAYER_CLASSES`` at call time (a class added there shows up here,
    with a failing row until it has an entry in LAYER_CHECKS)."""
    items = {}
    for cls in _layers.LAYER_CLASSES:
        items[cls.__name__.lower()] = (cls.__name__,
                                       (lambda c: lambda *a, **k: _layer_sections(c, *a, **k))(cls))
    items.update(discriminator_loss=("discriminator loss", _discriminator_loss_sections),
                 generator_loss=("generator loss", _generator_loss_sections),
                 generator=("G", _generator_sections),
                 discriminator=("D", _discriminator_sections),
                 g_through_d=("G through D", _g_through_d_sections))
    return items


def run_checks(names=None, dtype="float64", seed=0, h=1e-6, tol=DEFAULT_TOL, full=False,
               fast=False):
    """Run the named checks (all when ``names`` is None) on a NumPy backend of ``dtype``;
    returns [Section]. Each item gets a fresh backend seeded with ``seed``, so one item run
    alone gives the same rows as in the full run. A check that raises (a backward returning
    the wrong shape, say) becomes a failing row that names the exception. ``fast``: check the
    fast path's forms (tinygan/fast) instead of the plain core's."""
    from ..backend import get_backend
    items = check_items()
    sections = []
    for name in (names or list(items)):
        title, runner = items[name]
        be = get_backend("numpy", dtype=dtype, seed=seed)
        try:
            sections.extend(runner(be, seed, h, tol, full, path=FAST if fast else PLAIN))
        except Exception as exc:  # report it as a failure, keep checking the rest
            sections.append(Section(title, f"the check raised {type(exc).__name__}: {exc}",
                                    "", [Row(f"raised {type(exc).__name__}", (), math.nan,
                                             math.nan, math.inf, "exception", False)]))
    return sections


# --- --explain: one derivative, number by number ----------------------------------------------

EXPLAIN_INSTANCES = {
    Linear: lambda be: Linear(3, 2, init="glorot", backend=be),
    ReLU: lambda be: ReLU(backend=be),
    LeakyReLU: lambda be: LeakyReLU(0.1, backend=be),
    Tanh: lambda be: Tanh(backend=be),
    Sigmoid: lambda be: Sigmoid(backend=be),
    Maxout: lambda be: Maxout(3, units=2, pieces=2, init="glorot", backend=be),
    Dropout: lambda be: Dropout(0.5, backend=be),
}
"""A tiny instance of each layer (input width 3, batch 3), small enough to print every number."""


def be_arange(layer):
    """[[0], [1], ..., [pieces - 1]]: compared with Maxout's k, the one-hot mask of the max."""
    return layer.xp.arange(layer.pieces)[None, :, None]


def _explain_extras(layer):
    """What the layer's forward kept for its backward, where it helps to see it."""
    if isinstance(layer, Maxout):
        x, W, b = layer.x, layer.params["W"], layer.params["b"]
        z = x @ W + b                                  # z = x W + b again (same x: same values)
        n = z.shape[0]
        return [("z = x W + b, viewed (N, pieces, units): y is the max over the pieces",
                 z.reshape(n, layer.pieces, layer.units)),
                ("mask: 1 where that piece is the max (it gets the gradient)",
                 (layer.k[:, None, :] == be_arange(layer)).astype(z.dtype))]
    if isinstance(layer, (ReLU, LeakyReLU)) and getattr(layer, "x", None) is not None:
        return [("mask: [x > 0]", (layer.x > 0).astype(layer.backend.dtype))]
    if isinstance(layer, Dropout) and layer.mask is not None:
        return [(f"m / keep_prob (the dropout mask, keep_prob {layer.keep_prob})", layer.mask)]
    return []


def explain_layer(cls, dtype="float64", seed=0, h=1e-6, tol=DEFAULT_TOL):
    """A tiny instance of layer class ``cls`` checked one coordinate at a time, as text:
    the inputs and parameters, the forward values, the upstream dy of L = sum(y * dy), then
    for every coordinate of x and of each parameter the analytic derivative (what backward
    returned or wrote) beside the central difference (L(t + h) - L(t - h)) / 2h.
    Returns (text, passed)."""
    import numpy as np
    from ..backend import get_backend
    be = get_backend("numpy", dtype=dtype, seed=seed)
    layer = EXPLAIN_INSTANCES[cls](be)
    x = away_from_zero(be, (3, 3))
    rng = np.random.default_rng([seed, 1])      # dy's own stream (not x's numbers again)
    opts = {"precision": 5, "suppress_small": False, "floatmode": "fixed", "sign": " "}

    def show(title, a):
        body = np.array2string(np.asarray(a) + 0.0, **opts)     # + 0.0: no -0.0 shown as 0.0
        return [f"{title}, shape {tuple(a.shape)}:", "  " + body.replace("\n", "\n  ")]

    doc = (type(layer).backward.__doc__ or "").strip().splitlines()
    lines = [f"== {layer!r}: one derivative, number by number ({dtype}, seed {seed})",
             f"   code: {type(layer).__name__}.backward in tinygan/layers.py",
             f"   its derivative: {doc[0] if doc else '(no docstring)'}",
             "   L = sum(y * dy) for a fixed random dy, so backward(dy) must return dL/dx = the "
             "derivative of L", "   with respect to each x, and write dL/dparam for each parameter.",
             "", "-- inputs"]
    lines += show("x", x)
    for k, p in layer.params.items():
        lines += show(k, p)
    layer.forward(x)                                   # draws any dropout mask once
    with layer.frozen_dropout():
        y = layer.forward(x).copy()
        lines += ["", "-- forward"] + show("y = forward(x)", y)
        for title, a in _explain_extras(layer):
            lines += show(title, a)
        dy = rng.standard_normal(y.shape)
        lines += show("dy (upstream gradient, fixed random)", dy)
        lines += [f"L = sum(y * dy) = {float((y * dy).sum()):.10f}"]
        dx = layer.backward(dy)
        analytic = [("x", x, dx.copy())] + [(k, p, layer.grads[k].copy())
                                            for k, p in layer.params.items()]
        lines += ["", f"-- backward, coordinate by coordinate (h = {h:g})",
                  "   analytic: what backward returned (x) or wrote into grads (parameters)",
                  "   numerical: (L(t + h) - L(t - h)) / 2h, t the one coordinate moved",
                  f"{'coordinate':<14} {'value t':>12} {'analytic':>14} {'numerical':>14} "
                  f"{'|difference|':>12}  result"]
        worst, passed = 0.0, True
        for name, theta, grad in analytic:
            flat, g = theta.reshape(-1), grad.reshape(-1)
            for i in range(flat.size):
                old = float(flat[i])
                flat[i] = old + h
                up = float((layer.forward(x) * dy).sum())
                flat[i] = old - h
                down = float((layer.forward(x) * dy).sum())
                flat[i] = old
                num, ana = (up - down) / (2 * h), float(g[i])
                diff = abs(ana - num)
                ok = diff <= tol * (abs(ana) + abs(num)) + 10 * h * h + 1e-10
                passed &= ok
                worst = max(worst, diff)
                index = np.unravel_index(i, theta.shape)
                coord = f"{name}[{', '.join(str(int(j)) for j in index)}]"
                lines.append(f"{coord:<14} {old:>12.6f} {ana:>14.9f} {num:>14.9f} {diff:>12.2e}  "
                             f"{'pass' if ok else 'FAIL'}")
    lines += ["", f"{'pass' if passed else 'FAIL'}: {type(layer).__name__}, largest "
              f"|analytic - numerical| {worst:.1e}" + (" (float32: see --dtype float32's note)"
                                                       if dtype == "float32" else "")]
    return "\n".join(lines), passed


def explain_main(args):
    """``--explain``: the layer named by --layer (every layer class without it); exit 0 when
    every coordinate agrees, 1 when one does not, 2 for an item that is not a layer."""
    by_name = {cls.__name__.lower(): cls for cls in _layers.LAYER_CLASSES}
    if args.layer is None:
        classes = list(_layers.LAYER_CLASSES)
    else:
        key = _resolve(args.layer, by_name)
        if key is None:
            print(f"--explain works for the layers: {', '.join(by_name)} (got {args.layer!r})",
                  file=sys.stderr)
            return 2
        classes = [by_name[key]]
    status = 0
    for cls in classes:
        if cls not in EXPLAIN_INSTANCES:
            print(f"FAIL: no tiny instance of {cls.__name__} in EXPLAIN_INSTANCES "
                  "(tinygan/tools/gradcheck_cli.py)")
            status = 1
            continue
        text, passed = explain_layer(cls, args.dtype, args.seed, args.h, args.tol)
        print(text + "\n")
        status = status or (0 if passed else 1)
    return status


def _parser(prog="python -m tinygan gradcheck"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Check every hand-written gradient in tinygan against central differences: "
                    "each layer class in tinygan.layers.LAYER_CLASSES, the discriminator loss, "
                    "the generator loss (both objectives), G, D, and G's gradient through D. "
                    "One table per check: parameter, shape, norms of the analytic and numerical "
                    "gradients, relative error |a - n| / (|a| + |n|), pass/FAIL, and which check "
                    "(every coordinate, or random directions). Exit status 0 when every row "
                    "passes, 1 when any fails, 2 on a usage error.",
        epilog=f"Derivations of every gradient: {notes_location()}.")
    p.add_argument("--layer", metavar="NAME",
                   help="run one item only (case-insensitive; default: all): "
                        + ", ".join(check_items()))
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="float64 (default); float32 shows why gradient checks need float64")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--tol", type=float, default=DEFAULT_TOL,
                   help=f"largest relative error that passes (default {DEFAULT_TOL:g})")
    p.add_argument("--h", type=float, default=1e-6,
                   help="finite-difference step for per-coordinate checks (default 1e-6)")
    p.add_argument("--verbose", action="store_true",
                   help=f"also list every checked coordinate (analytic, numerical) of each array "
                        f"of at most {VERBOSE_MAX} elements")
    p.add_argument("--full", action="store_true",
                   help="also check the paper-size G, D and G through D along random "
                        "directions (a few seconds on two CPU cores)")
    p.add_argument("--fast", action="store_true",
                   help="check the fast path (tinygan/fast: fused kernels, flat buffers) instead "
                        "of the plain core (default: the plain core, what docs/gradients.md derives)")
    p.add_argument("--explain", action="store_true",
                   help="one layer (--layer; every layer without it) at a tiny size, number by "
                        "number: inputs, forward values, and each coordinate's analytic and "
                        "finite-difference derivative")
    return p


def _resolve(name, choices):
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = ALIASES.get(key, key)
    return key if key in choices else None


def main(argv=None, prog="python -m tinygan gradcheck"):
    """The command line; returns the exit status (0 all pass, 1 a row failed, 2 bad usage)."""
    args = _parser(prog).parse_args(argv)
    if args.explain:
        if not (args.h > 0 and args.tol > 0):
            print("--h and --tol must be positive", file=sys.stderr)
            return 2
        return explain_main(args)
    items = check_items()
    names = None
    if args.layer is not None:
        key = _resolve(args.layer, items)
        if key is None:
            print(f"unknown --layer {args.layer!r}: choose one of {', '.join(items)}",
                  file=sys.stderr)
            return 2
        names = [key]
    if not (args.h > 0 and args.tol > 0):
        print("--h and --tol must be positive", file=sys.stderr)
        return 2
    start = time.perf_counter()
    print(f"tinygan gradient checks{' of the fast path' if args.fast else ''}: numpy "
          f"{args.dtype}, seed {args.seed}, tol {args.tol:g}, h {args.h:g} (coordinates) / "
          "1e-05 (directions)")
    sections = run_checks(names, args.dtype, args.seed, args.h, args.tol, args.full, args.fast)
    for s in sections:
        ok = all(r.passed for r in s.rows)
        print(f"\n== {s.title}: {s.detail}" + (f"\n   code: {s.code}" if s.code else ""))
        print(format_table(s.rows))
        if args.verbose:
            listing = [t for t in map(format_coordinates, s.rows) if t]
            if listing:
                print("\n".join(listing))
        n = len(s.rows)
        print(f"{'pass' if ok else 'FAIL'}: {s.title} ({n} row{'s' * (n != 1)}, largest "
              f"relative error {max_error(s.rows):.1e})")
    rows = [(s, r) for s in sections for r in s.rows]
    failed = [(s, r) for s, r in rows if not r.passed]
    worst_s, worst = max(rows, key=lambda sr: sr[1].rel_error)
    if args.dtype == "float32":
        print("\n" + FLOAT32_NOTE)
    failed_titles = list(dict.fromkeys(s.title for s, _ in failed))
    verdict = (f"{len(failed)} FAIL, in {'; '.join(failed_titles)}" if failed else "all pass")
    print(f"\n{len(sections)} check{'s' * (len(sections) != 1)}, "
          f"{len(rows)} row{'s' * (len(rows) != 1)}: {verdict}. Largest relative error "
          f"{worst.rel_error:.1e} ({worst_s.title}: {worst.name}); "
          f"{time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
