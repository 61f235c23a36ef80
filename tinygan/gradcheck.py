"""Finite-difference gradient checks: compare a hand-written backward with central differences.

For a scalar loss L(theta) and an array theta, the numerical derivative is

    per coordinate:        dL/dtheta_i  ~  (L(theta + h e_i) - L(theta - h e_i)) / 2h
    along a direction d:   <dL/dtheta, d> ~ (L(theta + h d) - L(theta - h d)) / 2h,  d random, |d| = 1

and the reported error is  |a - n| / max(|a| + |n|, tiny)  (vector 2-norms for arrays).
Run checks in float64 (``get_backend("numpy", dtype="float64")``): in float32 the
rounding error of L, about 1e-7 |L| / h, swamps the derivative. A correct layer in float64
reaches about 1e-8 or better.

To check a layer or network, L = sum(forward(x) * dy) for a fixed random dy, so that
backward(dy) must return dL/dx and write dL/dparams. Dropout masks are frozen after the
first forward so every evaluation sees the same function (and unfrozen afterwards).

From the shell, ``python -m tinygan gradcheck`` checks every layer class in
``layers.LAYER_CLASSES``, both losses, G, D and G through D, one table each, and exits 1 if any
row fails (``--help`` for the options); that command lives with the tools, in
tinygan/tools/gradcheck_cli.py. The derivations are in docs/gradients.md.
"""

import math
from collections import namedtuple

from . import gan, losses as plain_losses
from .backend import array_module
from .errors import ConfigError
from .losses import generator_loss

Row = namedtuple("Row", "name shape analytic_norm numerical_norm rel_error method passed worst "
                 "coords", defaults=(None, None))
# worst: (index, analytic, numerical) where |analytic - numerical| is largest (index: a tuple
# into theta, or the direction's number); coords: [(index, analytic, numerical)] of every
# coordinate checked (coordinate checks only)

DEFAULT_TOL = 1e-6


def _norm(xp, a):
    return float(xp.sqrt((a * a).sum()))


def check_array(f, theta, analytic, h=1e-6, max_coords=400, n_dirs=6, rng=None,
                name="", tol=DEFAULT_TOL, weights=None, h_dir=1e-5):
    """Compare ``analytic`` = dL/dtheta with central differences of L.

    ``f()`` returns L (a scalar) or, with ``weights`` (an array), an output y with
    L = sum(y * weights). ``theta`` is perturbed in place and restored. Arrays with at most
    ``max_coords`` elements are checked coordinate by coordinate; larger ones along
    ``n_dirs`` random unit directions with step ``h_dir``: a random direction in n
    dimensions sees a derivative ~sqrt(n) times smaller than a coordinate does, so its step
    is larger (1e-5) to stay above float64 rounding. Either way the error is
    |a - n| / (|a| + |n|) over the vector of derivatives taken (one per coordinate or per
    direction). Returns a :class:`Row`.
    """
    xp = array_module(theta)
    if not theta.flags.c_contiguous:
        raise ConfigError(f"check_array({name!r}): theta must be C-contiguous, or reshape(-1) "
                          "copies it and the perturbations never reach the loss")

    def difference(up, down):
        """L(theta + step) - L(theta - step). With weights: sum((y+ - y-) * w), the outputs
        subtracted before weighting, which avoids the cancellation of two large sums."""
        if weights is None:
            return float(up) - float(down)
        return float(((up - down) * weights).sum())

    flat = theta.reshape(-1)
    if flat.size <= max_coords:
        numeric = xp.zeros(flat.shape, dtype=theta.dtype)
        for i in range(flat.size):
            old = float(flat[i])
            flat[i] = old + h
            up = f()
            flat[i] = old - h
            down = f()
            flat[i] = old
            numeric[i] = difference(up, down) / (2 * h)
        a_flat = analytic.reshape(-1)
        err = _norm(xp, a_flat - numeric) / max(_norm(xp, a_flat) + _norm(xp, numeric), 1e-30)
        index = [_unravel(i, theta.shape) for i in range(flat.size)]
        coords = list(zip(index, a_flat.tolist(), numeric.tolist()))
        worst = max(coords, key=lambda c: abs(c[1] - c[2]))
        return Row(name, tuple(theta.shape), _norm(xp, a_flat), _norm(xp, numeric), err,
                   "coordinates", err <= tol, worst, coords)
    if rng is None:
        raise ConfigError("a random generator is needed to check large arrays along directions")
    saved = flat.copy()
    analytic_dirs, numeric_dirs = [], []
    for _ in range(n_dirs):
        d = rng.standard_normal(flat.shape, dtype=theta.dtype)
        d /= _norm(xp, d)
        flat[...] = saved + h_dir * d
        up = f()
        flat[...] = saved - h_dir * d
        down = f()
        flat[...] = saved
        numeric_dirs.append(difference(up, down) / (2 * h_dir))
        analytic_dirs.append(float((analytic.reshape(-1) * d).sum()))
    a_norm = math.sqrt(sum(a * a for a in analytic_dirs))
    n_norm = math.sqrt(sum(n * n for n in numeric_dirs))
    diff = math.sqrt(sum((a - n) ** 2 for a, n in zip(analytic_dirs, numeric_dirs)))
    err = diff / max(a_norm + n_norm, 1e-30)
    worst = max(enumerate(zip(analytic_dirs, numeric_dirs)), key=lambda c: abs(c[1][0] - c[1][1]))
    return Row(name, tuple(theta.shape), a_norm, n_norm, err, f"{n_dirs} directions", err <= tol,
               (worst[0], *worst[1]))


def _named_params(module):
    """(params, grads) as dicts for a layer ({key: array}) or a Sequential ([(name, array)]),
    plain or fast."""
    if isinstance(module.params, dict):
        return module.params, module.grads
    return dict(module.params), dict(module.grads)


def check_module(module, x, seed=0, h=1e-6, tol=DEFAULT_TOL, **kw):
    """Check a layer or a Sequential at input x (N, D_in) with L = sum(forward(x) * dy).

    Returns one Row for dL/dx and one per parameter.
    """
    rng = module.backend.xp.random.default_rng(seed)
    module.forward(x)                       # draws any dropout mask once
    with module.frozen_dropout():
        y = module.forward(x)
        dy = rng.standard_normal(y.shape, dtype=y.dtype)
        dx = module.backward(dy)
        params, grads = _named_params(module)
        analytic = {k: g.copy() for k, g in grads.items()}

        def output():
            return module.forward(x)
        rows = [check_array(output, x, dx, h=h, rng=rng, name="x", tol=tol, weights=dy, **kw)]
        for k, p in params.items():
            rows.append(check_array(output, p, analytic[k], h=h, rng=rng, name=k, tol=tol,
                                    weights=dy, **kw))
    return rows


def check_discriminator_loss(real_logits, fake_logits, h=1e-6, tol=DEFAULT_TOL, losses=plain_losses):
    """Check discriminator_loss's gradients with respect to both sets of logits (``losses``: the
    module holding it, tinygan.losses or the fast path's tinygan.fast.losses)."""
    _, d_real, d_fake = losses.discriminator_loss(real_logits, fake_logits)

    def loss():
        return losses.discriminator_loss(real_logits, fake_logits)[0]
    return [check_array(loss, real_logits, d_real, h=h, name="real_logits", tol=tol),
            check_array(loss, fake_logits, d_fake, h=h, name="fake_logits", tol=tol)]


def check_generator_loss(fake_logits, kind, h=1e-6, tol=DEFAULT_TOL, losses=plain_losses):
    """Check generator_loss(kind)'s gradient with respect to the logits (``losses`` as above)."""
    _, grad = losses.generator_loss(fake_logits, kind)

    def loss():
        return losses.generator_loss(fake_logits, kind)[0]
    return [check_array(loss, fake_logits, grad, h=h, name=f"{kind} logits", tol=tol)]


def check_generator_through_discriminator(G, D, z, kind="nonsaturating", seed=0, h=1e-6,
                                          tol=DEFAULT_TOL, real=None, **kw):
    """Check dL_G/dtheta_G where L_G = generator_loss(l, kind), l = D(G(z)) logits: the
    gradient flows from the loss back through D (input gradient only, D's dropout masks
    frozen) into G.

    dL_G/dx comes from ``gan.grad_through_d``, the training steps' own code. Without
    ``real``, D sees the fakes alone (the alternating step's path). With ``real`` (N_r, D_x),
    D sees the batch [real, G(z)] in one forward and the gradient is taken for the fake rows
    (the simultaneous step's path; D's masks and caches cover the whole batch).

    The differences are taken on the logits, weighted by g = dL_G/dl at theta_G:
    L(l+) - L(l-) = g . (l+ - l-) + O(h^3), the same accuracy as differencing L itself
    but free of the cancellation of two nearly equal scalar losses (the loss's own
    gradient g is checked separately by check_generator_loss).
    """
    xp = G.backend.xp
    rng = xp.random.default_rng(seed)
    n_real = 0 if real is None else real.shape[0]

    def logits():
        x = G.forward(z)
        if real is not None:
            x = xp.concatenate([real, x])
        return D.forward(x)[n_real:]

    logits()                                # draws D's dropout masks once
    with D.frozen_dropout():
        _, dl = generator_loss(logits(), kind)
        d_grads_before = [g.copy() for _, g in D.grads]
        G.backward(gan.grad_through_d(D, dl, rows=slice(n_real, None)), input_grad=False)
        if not all(bool((g == g0).all()) for (_, g), g0 in zip(D.grads, d_grads_before)):
            raise AssertionError("grad_through_d changed D's gradients")
        params, grads = _named_params(G)
        analytic = {k: g.copy() for k, g in grads.items()}
        return [check_array(logits, p, analytic[k], h=h, rng=rng, name=f"G {k}", tol=tol,
                            weights=dl, **kw) for k, p in params.items()]


def max_error(rows):
    return max((r.rel_error for r in rows), default=math.nan)


def _unravel(i, shape):
    """Flat index -> index tuple (C order), on the host: ``cupy.unravel_index`` takes arrays
    only (a Python int raises TypeError in CuPy 13 and 14 with NumPy 2) and synchronises."""
    index = []
    for n in reversed(shape):
        i, r = divmod(i, n)
        index.append(r)
    return tuple(reversed(index))


if __name__ == "__main__":      # the command lives with the tools; the core never imports them
    raise SystemExit("the command is: python -m tinygan gradcheck (or tinygan gradcheck)")
