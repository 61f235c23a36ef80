"""Optimizers: SGD with momentum and Adam, one API, the paper's schedules.

An optimizer takes a network and updates its parameters in place from the gradients its
last backward stored, one parameter array at a time:

    SGD, classical momentum:  v <- mu v - lr_t g;      p <- p + v
    Adam:                     m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
                              m_hat = m / (1 - b1^(t+1));  v_hat = v / (1 - b2^(t+1))
                              p <- p - lr_t m_hat / (sqrt(v_hat) + eps)

One decay rule for both: the step that follows t steps (t = 0 for the first) uses
``lr_t = decay(lr, t)``, so the first step uses the base rate ``lr`` (as the paper's
pylearn2 did); ``current_lr`` is the rate the next step uses. ``lr`` is a plain attribute
(settable), ``set_epoch(e)`` applies a momentum schedule, and ``state()`` /
``load_state(state)`` save and restore what a resume needs: each state array as one flat
vector in parameter order ("velocity"; "m", "v"), the step count "t" and "momentum".

Schedules (the paper's MNIST run):
    lr after t steps:   max(lr0 / decay^t, min_lr)            (decay = 1.000004, min_lr = 1e-6)
    momentum at epoch e: linear from mu0 at epoch ``start`` to mu1 at ``saturate`` (0.5 -> 0.7, 1 -> 250)
"""

from .errors import ConfigError, check_in_range, check_non_negative, check_positive


class ExponentialDecay:
    """lr_t = max(lr / rate^t, floor): the paper's pylearn2 ExponentialDecay(1.000004, 1e-6)."""

    def __init__(self, rate=1.000004, floor=0.0):
        self.rate = check_in_range("lr decay (lr_t = lr / decay^t)", rate, 1.0, float("inf"))
        self.floor = check_non_negative("lr floor", floor)

    def __call__(self, lr, t):
        return max(lr / self.rate ** t, self.floor)


class MomentumRamp:
    """Momentum rising linearly from ``initial`` (at epoch ``start``) to ``final`` (at ``saturate``),
    constant outside; the paper's pylearn2 MomentumAdjustor(final 0.7, start 1, saturate 250)."""

    def __init__(self, initial=0.5, final=0.7, start=1, saturate=250):
        check_in_range("initial momentum", initial, 0.0, 1.0)
        check_in_range("final momentum", final, 0.0, 1.0)
        if saturate <= start:
            raise ConfigError(f"momentum ramp needs saturate > start, got {start} and {saturate}")
        self.initial, self.final, self.start, self.saturate = initial, final, start, saturate

    def __call__(self, epoch):
        alpha = min(max((epoch - self.start) / (self.saturate - self.start), 0.0), 1.0)
        return self.initial + alpha * (self.final - self.initial)


class Optimizer:
    """What SGD and Adam share: the network, ``lr``, the decay schedule, the step count t.

    Subclasses name their state arrays in ``_arrays`` (each a list, one array per parameter)
    and write ``update(i, p, g, lr)``, the update of parameter i.
    """

    _arrays = ()

    def __init__(self, net, lr, decay=None):
        if not hasattr(net, "params") or not hasattr(net, "grads"):
            raise ConfigError(f"an optimizer takes a network (a Sequential), got {type(net).__name__}")
        self.net = net
        self.lr = check_positive("learning rate", lr)
        self.decay = decay
        self.t = 0
        for name in self._arrays:
            setattr(self, name, self._zeros())

    def _zeros(self):
        """One zero array per parameter (a state array of the optimizer)."""
        return [p * 0 for _, p in self.net.params]

    @property
    def current_lr(self):
        """The learning rate the next step uses: ``decay(lr, t)``, or ``lr`` without a decay."""
        return self.lr if self.decay is None else self.decay(self.lr, self.t)

    def set_epoch(self, epoch):
        """Apply any per-epoch schedule (call at the start of each epoch)."""

    def step(self):
        """One update of every parameter with the rate ``current_lr``; then t counts it."""
        lr = self.current_lr
        for i, ((_, p), (_, g)) in enumerate(zip(self.net.params, self.net.grads)):
            self.update(i, p, g, lr)
        self.t += 1

    def state(self):
        """{name: flat array or number}: each state array as one flat vector in parameter
        order (the checkpoint format of both paths), and t."""
        xp = self.net.backend.xp
        out = {name: xp.concatenate([a.reshape(-1) for a in getattr(self, name)])
               for name in self._arrays}
        out["t"] = self.t
        return out

    def load_state(self, state):
        """Restore from {name: host or backend array, or number}, as ``state()`` gives."""
        missing = sorted(set(self.state()) - set(state))
        if missing:
            raise ConfigError(f"optimizer state lacks {missing}")
        for name in self._arrays:
            flat = self.net.backend.asarray(state[name]).reshape(-1)
            mine = getattr(self, name)
            size = sum(int(a.size) for a in mine)
            if flat.shape != (size,):
                raise ConfigError(f"optimizer state {name}: shape {flat.shape} does not fit ({size},)")
            start = 0
            for a in mine:
                a[...] = flat[start:start + a.size].reshape(a.shape)
                start += a.size
        self.t = int(state["t"])


class SGD(Optimizer):
    """SGD with classical momentum.

    Args:
        net: the network whose parameters ``step()`` updates in place.
        lr: base learning rate.  decay: None (constant) or a schedule such as ExponentialDecay.
        momentum: a number, or a callable epoch -> momentum (e.g. MomentumRamp); see set_epoch.
    """

    _arrays = ("velocity",)

    def __init__(self, net, lr=0.1, momentum=0.0, decay=None):
        super().__init__(net, lr, decay)
        self.momentum_schedule = momentum if callable(momentum) else None
        self.momentum = check_in_range("momentum", momentum(0) if callable(momentum) else momentum,
                                       0.0, 1.0)

    def set_epoch(self, epoch):
        """Update the momentum from its schedule."""
        if self.momentum_schedule is not None:
            self.momentum = float(self.momentum_schedule(epoch))

    def update(self, i, p, g, lr):
        """v <- mu v - lr g;  p <- p + v."""
        v = self.velocity[i]
        v[...] = self.momentum * v - lr * g
        p += v

    def state(self):
        return {**super().state(), "momentum": self.momentum}

    def load_state(self, state):
        super().load_state(state)
        self.momentum = float(state["momentum"])


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015); see the module docstring for the update.

    Args:
        net: the network whose parameters ``step()`` updates in place.
        lr: base learning rate.  beta1, beta2: the moments' decay rates.  eps: added to
        sqrt(v_hat).  decay: None (constant) or a schedule such as ExponentialDecay.
    """

    _arrays = ("m", "v")

    def __init__(self, net, lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-8, decay=None):
        super().__init__(net, lr, decay)
        self.beta1 = check_in_range("beta1", beta1, 0.0, 1.0)
        self.beta2 = check_in_range("beta2", beta2, 0.0, 1.0)
        self.eps = check_positive("eps", eps)

    def update(self, i, p, g, lr):
        """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
        p <- p - lr m_hat / (sqrt(v_hat) + eps), the hats bias-corrected for step t + 1."""
        xp, b1, b2 = self.net.backend.xp, self.beta1, self.beta2
        m, v = self.m[i], self.v[i]
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** (self.t + 1))
        v_hat = v / (1 - b2 ** (self.t + 1))
        p -= lr * m_hat / (xp.sqrt(v_hat) + self.eps)
