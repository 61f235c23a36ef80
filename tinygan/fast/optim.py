"""The optimizers of tinygan/optim.py on a fast network's flat vectors: one fused update
(kernels.sgd, kernels.adam) over all parameters, and the seam a CUDA graph needs.

Same signatures, decay rule and checkpoint state as the plain ones ("velocity"; "m", "v" as
flat vectors in parameter order, "t", "momentum"), so a state from either loads in either.
The seam (tinygan/tools/cuda_graph.py): ``step()`` is ``apply(*hyperparameters())`` with t
counted; ``hyperparameters()`` gives the host numbers of the next step, ``apply`` takes them
as numbers or 0-d device arrays (a graph reads them there).
"""

from .. import optim
from ..errors import ConfigError
from . import kernels


def flat_vectors(net):
    """(param_vector, grad_vector) of a fast network; ConfigError for a plain one."""
    if not hasattr(net, "param_vector"):
        raise ConfigError(f"the fast optimizers take a fast network (tinygan.fast.to_fast(net), "
                          f"or a builder with fast=True), got {type(net).__name__}")
    return net.param_vector, net.grad_vector


class Flat:
    """What the fast optimizers share: flat state vectors and the split step."""

    def _flat_setup(self, net):
        self.params, self.grads = flat_vectors(net)
        self._scratch = kernels.scratch_for(self.params)      # one slab, not a full-size copy

    def _zeros(self):
        return self.params * 0

    def step(self):
        """One update: ``apply`` with this step's ``hyperparameters``, then t counts it."""
        numbers = self.hyperparameters()
        self.t += 1
        self.apply(*numbers)

    def _flat_state(self):
        out = {name: getattr(self, name) for name in self._arrays}
        out["t"] = self.t
        return out

    def _load_flat_state(self, state):
        missing = sorted(set(self.state()) - set(state))
        if missing:
            raise ConfigError(f"optimizer state lacks {missing}")
        for name in self._arrays:
            a = self.net.backend.asarray(state[name])
            mine = getattr(self, name)
            if a.shape != mine.shape:
                raise ConfigError(f"optimizer state {name}: shape {a.shape} does not fit {mine.shape}")
            mine[...] = a
        self.t = int(state["t"])


class SGD(Flat, optim.SGD):
    """tinygan.optim.SGD (same arguments) on the flat vectors."""

    def __init__(self, net, lr=0.1, momentum=0.0, decay=None):
        self._flat_setup(net)
        super().__init__(net, lr, momentum, decay)

    def hyperparameters(self):
        """The numbers the next step's update takes: (lr_t, mu)."""
        return self.current_lr, self.momentum

    def apply(self, lr, mu):
        """v <- mu v - lr g;  p <- p + v  (in one fused pass: kernels.sgd)."""
        kernels.sgd(self.params, self.velocity, self.grads, lr, mu, self._scratch)

    def state(self):
        return {**self._flat_state(), "momentum": self.momentum}

    def load_state(self, state):
        self._load_flat_state(state)
        self.momentum = float(state["momentum"])


class Adam(Flat, optim.Adam):
    """tinygan.optim.Adam (same arguments) on the flat vectors, the bias corrections folded
    into the step sizes (kernels.adam_step_sizes)."""

    def __init__(self, net, lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-8, decay=None):
        self._flat_setup(net)
        super().__init__(net, lr, beta1, beta2, eps, decay)

    def hyperparameters(self):
        """(a_t, eps_t): the rate ``current_lr`` with the bias corrections of step t + 1."""
        return kernels.adam_step_sizes(self.current_lr, self.beta1, self.beta2, self.eps, self.t + 1)

    def apply(self, lr_t, eps_t):
        """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  p <- p - a_t m / (sqrt(v) + eps_t)
        (in one fused pass: kernels.adam)."""
        kernels.adam(self.params, self.m, self.v, self.grads, self.beta1, self.beta2, lr_t, eps_t,
                     self._scratch)

    def state(self):
        return self._flat_state()

    def load_state(self, state):
        self._load_flat_state(state)
