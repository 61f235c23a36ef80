"""Optimizers over one flat parameter vector and its flat gradient vector.

A network's ``param_vector`` and ``grad_vector`` (network.py) hold all its parameters, so an
update is a handful of elementwise calls on two long arrays, written in place.

    SGD, classical momentum:  v <- mu v - lr_t g;      p <- p + v
    Adam:                     m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
                              p <- p - a_t m / (sqrt(v) + eps_t),  a_t = lr_t sqrt(1 - b2^t) / (1 - b1^t)

Both optimizers share one API: ``lr`` is the base learning rate (a plain attribute, settable),
``decay`` an optional schedule object giving the rate a step uses, ``lr_t = decay(lr, t)``
after t steps, ``set_epoch(e)`` applies a momentum schedule, and ``state()`` /
``load_state(state)`` save and restore everything a resume needs, as the network's do.

Schedules (the paper's MNIST run):
    lr after t steps:   max(lr0 / decay^t, min_lr)            (decay = 1.000004, min_lr = 1e-6)
    momentum at epoch e: linear from mu0 at epoch ``start`` to mu1 at ``saturate`` (0.5 -> 0.7, 1 -> 250)
"""

from . import kernels
from .backend import array_module
from .errors import ConfigError, check_in_range, check_positive


class ExponentialDecay:
    """lr_t = max(lr / rate^t, floor): the paper's pylearn2 ExponentialDecay(1.000004, 1e-6)."""

    def __init__(self, rate=1.000004, floor=0.0):
        if not rate >= 1.0:
            raise ConfigError(f"lr decay must be >= 1 (lr_t = lr / decay^t), got {rate!r}")
        self.rate, self.floor = float(rate), float(floor)

    def __call__(self, lr, t):
        return max(lr / self.rate ** t, self.floor)


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


class Optimizer:
    """What SGD and Adam share: the flat vectors, ``lr``, the decay schedule, the step count t.

    Subclasses name their state arrays in ``_arrays`` and write ``step``.
    """

    _arrays = ()

    def __init__(self, params, grads, lr, decay=None):
        if params.shape != grads.shape:
            raise ConfigError(f"params {params.shape} and grads {grads.shape} differ in shape")
        if params.ndim != 1:
            raise ConfigError(f"params must be a flat 1-D vector (a network's param_vector), "
                              f"got shape {params.shape}")
        self.params, self.grads = params, grads
        self.lr = check_positive("learning rate", lr)
        self.decay = decay
        self.t = 0
        self._xp = array_module(params)
        self._scratch = kernels.scratch_for(params)      # one slab, not a full-size copy

    @property
    def current_lr(self):
        """The learning rate the next step uses: ``decay(lr, t)``, or ``lr`` without a decay."""
        return self.lr if self.decay is None else self.decay(self.lr, self.t)

    def set_epoch(self, epoch):
        """Apply any per-epoch schedule (call at the start of each epoch)."""

    def step(self):
        """One update: ``apply`` with this step's ``hyperparameters``, then t counts it."""
        numbers = self.hyperparameters()
        self.t += 1
        self.apply(*numbers)

    def state(self):
        """{name: array or number}: the state arrays (views: copy before keeping) and t."""
        out = {name: getattr(self, name) for name in self._arrays}
        out["t"] = self.t
        return out

    def load_state(self, state):
        """Restore from {name: host or backend array, or number}, as ``state()`` gives."""
        missing = sorted(set(self.state()) - set(state))
        if missing:
            raise ConfigError(f"optimizer state lacks {missing}")
        for name in self._arrays:
            a = self._xp.asarray(state[name])
            mine = getattr(self, name)
            if a.shape != mine.shape:
                raise ConfigError(f"optimizer state {name}: shape {a.shape} does not fit {mine.shape}")
            mine[...] = a
        self.t = int(state["t"])


class SGD(Optimizer):
    """SGD with classical momentum.

    Args:
        params, grads: flat 1-D backend arrays of equal size (a network's param_vector and
            grad_vector); ``params`` is updated in place by ``step()``.
        lr: base learning rate.  decay: None (constant) or a schedule such as ExponentialDecay.
        momentum: a number, or a callable epoch -> momentum (e.g. MomentumRamp); see set_epoch.
    """

    _arrays = ("velocity",)

    def __init__(self, params, grads, lr=0.1, momentum=0.0, decay=None):
        super().__init__(params, grads, lr, decay)
        self.momentum_schedule = momentum if callable(momentum) else None
        self.momentum = check_in_range("momentum", momentum(0) if callable(momentum) else momentum,
                                       0.0, 1.0)
        self.velocity = params * 0

    def set_epoch(self, epoch):
        """Update the momentum from its schedule."""
        if self.momentum_schedule is not None:
            self.momentum = float(self.momentum_schedule(epoch))

    def hyperparameters(self):
        """The numbers the next step's update takes: (lr_t, mu)."""
        return self.current_lr, self.momentum

    def apply(self, lr, mu):
        """v <- mu v - lr g;  p <- p + v  (in one fused pass: kernels.sgd). lr and mu may be
        0-d device arrays (a CUDA graph reads them there: tinygan/tools/cuda_graph.py)."""
        kernels.sgd(self.params, self.velocity, self.grads, lr, mu, self._scratch)

    def state(self):
        return {**super().state(), "momentum": self.momentum}

    def load_state(self, state):
        super().load_state(state)
        self.momentum = float(state["momentum"])


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) on flat vectors; see the module docstring for the update."""

    _arrays = ("m", "v")

    def __init__(self, params, grads, lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-8, decay=None):
        super().__init__(params, grads, lr, decay)
        self.beta1 = check_in_range("beta1", beta1, 0.0, 1.0)
        self.beta2 = check_in_range("beta2", beta2, 0.0, 1.0)
        self.eps = check_positive("eps", eps)
        self.m = params * 0
        self.v = params * 0

    def hyperparameters(self):
        """The numbers the next step's update takes: (a_t, eps_t), Adam's bias corrections for
        step t + 1 (the step being taken) folded in."""
        t = self.t + 1
        lr = self.lr if self.decay is None else self.decay(self.lr, t)
        return kernels.adam_step_sizes(lr, self.beta1, self.beta2, self.eps, t)

    def apply(self, lr_t, eps_t):
        """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  p <- p - a_t m / (sqrt(v) + eps_t)
        (in one fused pass: kernels.adam)."""
        kernels.adam(self.params, self.m, self.v, self.grads, self.beta1, self.beta2, lr_t, eps_t,
                     self._scratch)
