"""Optimizers over one flat parameter vector and its flat gradient vector.

A network's ``param_vector`` and ``grad_vector`` (network.py) hold all its parameters, so an
update is a handful of elementwise calls on two long arrays, written in place.

    SGD, classical momentum:  v <- mu v - lr g;        p <- p + v
    Adam:                     m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
                              p <- p - lr_t m / (sqrt(v) + eps_t),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)

Schedules (the paper's MNIST run):
    lr after t steps:   max(lr0 / decay^t, min_lr)            (decay = 1.000004, min_lr = 1e-6)
    momentum at epoch e: linear from mu0 at epoch ``start`` to mu1 at ``saturate`` (0.5 -> 0.7, 1 -> 250)
"""

import math

from .backend import array_module
from .errors import ConfigError


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class MomentumRamp:
    """Momentum rising linearly from ``initial`` (at epoch ``start``) to ``final`` (at ``saturate``),
    constant outside; the paper's pylearn2 MomentumAdjustor(final 0.7, start 1, saturate 250)."""

    def __init__(self, initial=0.5, final=0.7, start=1, saturate=250):
        if saturate <= start:
            raise ConfigError(f"momentum ramp needs saturate > start, got {start} and {saturate}")
        self.initial, self.final, self.start, self.saturate = initial, final, start, saturate

    def __call__(self, epoch):
        alpha = min(max((epoch - self.start) / (self.saturate - self.start), 0.0), 1.0)
        return self.initial + alpha * (self.final - self.initial)


class SGD:
    """SGD with classical momentum and per-step exponential learning-rate decay with a floor.

    Args:
        params, grads: flat 1-D backend arrays of equal size (a network's param_vector and
            grad_vector); ``params`` is updated in place by ``step()``.
        lr: initial learning rate lr0.  decay: lr_t = max(lr0 / decay^t, min_lr); 1.0 = constant.
        momentum: a number, or a callable epoch -> momentum (e.g. MomentumRamp); see set_epoch.
    """

    def __init__(self, params, grads, lr=0.1, momentum=0.0, decay=1.0, min_lr=0.0):
        if params.shape != grads.shape:
            raise ConfigError(f"params {params.shape} and grads {grads.shape} differ in shape")
        self.params, self.grads = params, grads
        self.lr0 = _positive("learning rate", lr)
        if not decay >= 1.0:
            raise ConfigError(f"lr decay must be >= 1 (lr_t = lr / decay^t), got {decay!r}")
        self.decay, self.min_lr = float(decay), float(min_lr)
        self.momentum_schedule = momentum if callable(momentum) else None
        self.momentum = float(momentum(0) if callable(momentum) else momentum)
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        self.velocity = params * 0
        self._scratch = params * 0
        self._xp = array_module(params)
        self.t = 0

    @property
    def lr(self):
        """The learning rate the next step uses."""
        return max(self.lr0 / self.decay ** self.t, self.min_lr)

    def set_epoch(self, epoch):
        """Update the momentum from its schedule (call at the start of each epoch)."""
        if self.momentum_schedule is not None:
            self.momentum = float(self.momentum_schedule(epoch))

    def step(self):
        """v <- mu v - lr g;  p <- p + v."""
        v, tmp, xp = self.velocity, self._scratch, self._xp
        v *= self.momentum
        xp.multiply(self.grads, self.lr, out=tmp)
        v -= tmp
        self.params += v
        self.t += 1

    def state(self):
        return {"arrays": {"velocity": self.velocity}, "t": self.t, "momentum": self.momentum}

    def load_state(self, state, asarray):
        self.velocity[...] = asarray(state["arrays"]["velocity"])
        self.t, self.momentum = int(state["t"]), float(state["momentum"])


class Adam:
    """Adam (Kingma & Ba 2015) on flat vectors; see the module docstring for the update."""

    def __init__(self, params, grads, lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-8):
        if params.shape != grads.shape:
            raise ConfigError(f"params {params.shape} and grads {grads.shape} differ in shape")
        self.params, self.grads = params, grads
        self.lr = _positive("learning rate", lr)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= b < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {b!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), _positive("eps", eps)
        self.m = params * 0
        self.v = params * 0
        self._scratch = params * 0
        self._xp = array_module(params)
        self.t = 0

    def set_epoch(self, epoch):
        """Adam has no per-epoch schedule."""

    def step(self):
        b1, b2, g, tmp = self.beta1, self.beta2, self.grads, self._scratch
        self.t += 1
        xp = self._xp
        self.m *= b1
        xp.multiply(g, 1 - b1, out=tmp)
        self.m += tmp
        self.v *= b2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        self.v += tmp
        lr_t = self.lr * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        eps_t = self.eps * math.sqrt(1 - b2 ** self.t)
        # p -= lr_t * m / (sqrt(v) + eps_t)
        tmp[...] = self.v
        tmp **= 0.5
        tmp += eps_t
        tmp **= -1
        tmp *= self.m
        tmp *= lr_t
        self.params -= tmp

    def state(self):
        return {"arrays": {"m": self.m, "v": self.v}, "t": self.t}

    def load_state(self, state, asarray):
        self.m[...] = asarray(state["arrays"]["m"])
        self.v[...] = asarray(state["arrays"]["v"])
        self.t = int(state["t"])
