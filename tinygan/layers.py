"""Layers with hand-written backward passes.

The layer protocol (docs/design.md, "The layer protocol"):

- ``forward(x)`` takes ``x`` of shape (N, D_in), returns y of shape (N, D_out) and keeps
  in ``self`` only what ``backward`` needs.
- ``backward(dy)`` takes dL/dy (N, D_out), returns dL/dx (N, D_in) and writes each
  parameter's gradient *in place* into ``self.grads[name]`` (same keys and shapes as
  ``self.params``). Writing in place lets a network hold every parameter and gradient in
  one flat buffer (see network.py) and lets the optimizer update them in a few calls.
- ``backward(dy, param_grads=False)`` skips the parameter gradients (the generator step
  needs only dL/dx through D); ``input_grad=False`` skips dL/dx (the first layer).
- ``backward(dy, rows=r)``: dy covers rows ``r`` (a slice; default ``ALL``) of the last
  forward batch only (G's gradient through D needs the fake rows of a real+fake batch).
- ``training`` switches dropout on (True) or off (False); set it through the network
  (``with net.evaluating():``), never by hand.
- Each layer declares its cache (what forward keeps for backward) in ``__init__``.

Every ``backward`` docstring states its derivative in one line.
"""

import contextlib
import math

from . import kernels
from .backend import default_backend
from .errors import ConfigError, check_int


ALL = slice(None)
"""``rows=ALL``: a backward's dy covers every row of the last forward batch."""


class Layer:
    """Base class. ``params``/``grads``: dicts of backend arrays with the same keys.

    ``inplace=True`` lets an elementwise layer overwrite its input in ``forward`` (saving a
    copy); the network builders set it where the input is a fresh array of the previous
    layer.
    """

    def __init__(self, backend=None, inplace=False):
        self.backend = backend or default_backend()
        self.xp = self.backend.xp
        self.params = {}
        self.grads = {}
        self.training = True
        self.inplace = bool(inplace)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        raise NotImplementedError

    def frozen_dropout(self):
        """A context in which forward reuses its random mask (only Dropout has one)."""
        return contextlib.nullcontext(self)

    def _out(self, x):
        """Where an elementwise forward writes: over x when inplace, else a new array."""
        return x if self.inplace else self.xp.empty_like(x)

    def __repr__(self):
        return f"{type(self).__name__}()"


def init_weights(backend, n_in, n_out, init="uniform", scale=0.05):
    """Weights of shape (n_in, n_out).

    init="uniform": U(-scale, +scale), the paper's ``irange``.
    init="glorot":  U(-a, a) with a = sqrt(6 / (n_in + n_out)) (Glorot & Bengio 2010).
    """
    if init == "uniform":
        if not scale > 0:
            raise ConfigError(f"init scale must be positive, got {scale!r}")
        r = float(scale)
    elif init == "glorot":
        r = math.sqrt(6.0 / (n_in + n_out))
    else:
        raise ConfigError(f"unknown init {init!r}: choose 'uniform' or 'glorot'")
    return backend.uniform(-r, r, (n_in, n_out))


class Linear(Layer):
    """Affine map y = x W + b with W (n_in, n_out), b (n_out,); x (N, n_in) -> y (N, n_out)."""

    def __init__(self, n_in, n_out, init="uniform", scale=0.05, backend=None):
        super().__init__(backend)
        self.n_in = check_int("n_in", n_in)
        self.n_out = check_int("n_out", n_out)
        be = self.backend
        self.params = {"W": init_weights(be, n_in, n_out, init, scale), "b": be.zeros((n_out,))}
        self.grads = {"W": be.zeros((n_in, n_out)), "b": be.zeros((n_out,))}
        self.x = None                   # cache: the input of the last forward

    def forward(self, x):
        y = self.product(x)
        y += self.params["b"]
        return y

    def product(self, x):
        """x W alone, keeping x for backward: for a layer that adds b itself, fused (Maxout)."""
        self.x = x
        return kernels.matmul(x, self.params["W"])

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dW = x.T @ dy,  db = dy.sum(0),  dx = dy @ W.T."""
        if param_grads:
            kernels.matmul(self.x[rows].T, dy, out=self.grads["W"])
            dy.sum(0, out=self.grads["b"])
        return kernels.matmul(dy, self.params["W"].T) if input_grad else None

    def __repr__(self):
        return f"Linear({self.n_in}, {self.n_out})"


class ReLU(Layer):
    """y = max(x, 0), elementwise."""

    def __init__(self, backend=None, inplace=False):
        super().__init__(backend, inplace)
        self.mask = None                # cache: [x > 0] of the last forward

    def forward(self, x):
        y, self.mask = kernels.relu(x, out=self._out(x))
        return y

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dx = dy * [x > 0]."""
        return dy * self.mask[rows]


class LeakyReLU(Layer):
    """y = x where x > 0, slope * x elsewhere."""

    def __init__(self, slope=0.2, backend=None, inplace=False):
        super().__init__(backend, inplace)
        self.slope = float(slope)
        self.scale = None               # cache: 1 where x > 0, slope elsewhere

    def forward(self, x):
        self.scale = self.xp.where(x > 0, 1.0, self.slope).astype(x.dtype)
        return self.xp.multiply(x, self.scale, out=self._out(x))

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dx = dy * (1 where x > 0, slope elsewhere)."""
        return dy * self.scale[rows]

    def __repr__(self):
        return f"LeakyReLU({self.slope})"


class Tanh(Layer):
    """y = tanh(x), elementwise."""

    def __init__(self, backend=None, inplace=False):
        super().__init__(backend, inplace)
        self.y = None                   # cache: the output of the last forward

    def forward(self, x):
        self.y = self.xp.tanh(x, out=self._out(x))
        return self.y

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dx = dy * (1 - y^2)."""
        y = self.y[rows]
        return dy * (1 - y * y)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), computed as 0.5 tanh(x / 2) + 0.5 (never overflows)."""

    def __init__(self, backend=None, inplace=False):
        super().__init__(backend, inplace)
        self.y = None                   # cache: the output of the last forward

    def forward(self, x):
        self.y = kernels.sigmoid_layer(x, out=self._out(x))
        return self.y

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dx = dy * y * (1 - y)."""
        return kernels.sigmoid_backward(dy, self.y[rows])


class Maxout(Layer):
    """Maxout (Goodfellow et al. 2013): ``units`` outputs, each the max of ``pieces`` affine pieces.

    z = x W + b with W (n_in, pieces * units), stored pieces-major: column p * units + u is
    piece p of unit u, so z viewed as (N, pieces, units) takes its max over axis 1.
    x (N, n_in) -> y (N, units), y[n, u] = max_p z[n, p, u].
    """

    def __init__(self, n_in, units, pieces, init="uniform", scale=0.005, backend=None):
        super().__init__(backend)
        self.n_in = check_int("n_in", n_in)
        self.units = check_int("units", units)
        self.pieces = check_int("pieces", pieces)
        self.linear = Linear(n_in, units * pieces, init, scale, backend=self.backend)
        self.params, self.grads = self.linear.params, self.linear.grads
        self.route = None               # cache: where each y[n, u] came from (kernels.maxout)

    def forward(self, x):
        """y[n, u] = max_p z[n, p, u], z = x W + b; ties go to the first piece."""
        y, self.route = kernels.maxout(self.linear.product(x), self.params["b"], self.pieces)
        return y

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dz[n, p, u] = dy[n, u] * [p = argmax_p z[n, p, u]], then Linear's backward on dz."""
        dz = kernels.maxout_backward(dy, self.route[rows], self.pieces)
        return self.linear.backward(dz, param_grads, input_grad, rows)

    def __repr__(self):
        return f"Maxout({self.n_in}, units={self.units}, pieces={self.pieces})"


class Dropout(Layer):
    """Inverted dropout: y = x * m / keep_prob with m ~ Bernoulli(keep_prob) at train time;
    y = x at test time (``training = False``).

    The mask is drawn from the backend's rng at each forward; inside
    ``with layer.frozen_dropout():`` forward reuses the last mask (gradient checks need the
    same mask in every evaluation).
    """

    def __init__(self, keep_prob, backend=None, inplace=False):
        super().__init__(backend, inplace)
        if isinstance(keep_prob, bool) or not 0 < keep_prob <= 1:
            raise ConfigError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
        self.keep_prob = float(keep_prob)
        self.fixed_mask = False         # set only by frozen_dropout()
        self.scaled_mask = None         # cache: m / keep_prob of the last forward (None: eval)

    @contextlib.contextmanager
    def frozen_dropout(self):
        """Forward reuses the last mask inside the block; the previous setting comes back after."""
        was = self.fixed_mask
        self.fixed_mask = True
        try:
            yield self
        finally:
            self.fixed_mask = was

    def forward(self, x):
        if not self.training or self.keep_prob == 1.0:
            self.scaled_mask = None
            return x
        if not (self.fixed_mask and self.scaled_mask is not None
                and self.scaled_mask.shape == x.shape):
            y, self.scaled_mask = kernels.dropout(x, self.keep_prob, self.backend.rng,
                                                  out=self._out(x))
            return y
        return self.xp.multiply(x, self.scaled_mask, out=self._out(x))

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dx = dy * m / keep_prob (the same scaled mask as forward); identity at test time."""
        if not input_grad or self.scaled_mask is None:
            return dy if input_grad else None
        return dy * self.scaled_mask[rows]

    def __repr__(self):
        return f"Dropout(keep_prob={self.keep_prob})"


LAYER_CLASSES = (Linear, ReLU, LeakyReLU, Tanh, Sigmoid, Maxout, Dropout)
