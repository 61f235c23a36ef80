"""Layers with hand-written backward passes: the maths, plainly.

The layer protocol (docs/design.md, "The layer protocol"):

- ``forward(x)`` takes ``x`` of shape (N, D_in), returns y of shape (N, D_out) and keeps
  in ``self`` only what ``backward`` needs (its cache, declared in ``__init__``).
- ``backward(dy)`` takes dL/dy (N, D_out), returns dL/dx (N, D_in) and stores each
  parameter's gradient in ``self.grads[name]`` (same keys and shapes as ``self.params``).
- Layers with parameters (Linear, Maxout) take two flags: ``param_grads=False`` skips the
  parameter gradients (G's step needs only dL/dx through D), ``input_grad=False`` skips
  dL/dx (the first layer with parameters).
- ``training`` switches dropout on (True) or off (False); set it through the network
  (``with net.evaluating():``), never by hand.

Every ``backward`` docstring states its derivative in one line. The fast forms of these
layers (fused kernels, in-place work, flat buffers) live in tinygan/fast/, tested equal.
"""

import contextlib
import math

from .backend import array_module, default_backend
from .errors import check_choice, check_int, check_positive, check_probability


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise, to full relative precision on both tails: with
    e = exp(-|x|) in (0, 1], sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0
    (so sigmoid(-20) = 2.06e-9, not 0: the minimax gradient lives there). The one sigmoid
    of the core: the Sigmoid layer, the losses and D(x) all use it."""
    xp = array_module(x)
    e = xp.exp(-abs(x))
    return xp.where(x >= 0, 1, e) / (1 + e)


class Layer:
    """Base class. ``params``/``grads``: dicts of backend arrays with the same keys."""

    def __init__(self, backend=None):
        self.backend = backend or default_backend()
        self.xp = self.backend.xp
        self.params = {}
        self.grads = {}
        self.training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def frozen_dropout(self):
        """A context in which forward reuses its random mask (only Dropout has one)."""
        return contextlib.nullcontext(self)

    def __repr__(self):
        return f"{type(self).__name__}()"


def init_weights(backend, n_in, n_out, init="uniform", scale=0.05):
    """Weights of shape (n_in, n_out).

    init="uniform": U(-scale, +scale), the paper's ``irange``.
    init="glorot":  U(-a, a) with a = sqrt(6 / (n_in + n_out)) (Glorot & Bengio 2010).
    """
    check_choice("init", init, ("uniform", "glorot"))
    if init == "uniform":
        r = check_positive("init scale", scale)
    else:
        r = math.sqrt(6.0 / (n_in + n_out))
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
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy, param_grads=True, input_grad=True):
        """dW = x.T @ dy,  db = dy.sum(0),  dx = dy @ W.T."""
        if param_grads:
            self.grads["W"] = self.x.T @ dy
            self.grads["b"] = dy.sum(0)
        return dy @ self.params["W"].T if input_grad else None

    def __repr__(self):
        return f"Linear({self.n_in}, {self.n_out})"


class ReLU(Layer):
    """y = max(x, 0), elementwise."""

    def __init__(self, backend=None):
        super().__init__(backend)
        self.x = None                   # cache: the input of the last forward

    def forward(self, x):
        self.x = x
        return x * (x > 0)

    def backward(self, dy):
        """dx = dy * [x > 0]."""
        return dy * (self.x > 0)


class LeakyReLU(Layer):
    """y = x where x > 0, slope * x elsewhere."""

    def __init__(self, slope=0.2, backend=None):
        super().__init__(backend)
        self.slope = float(slope)
        self.x = None                   # cache: the input of the last forward

    def forward(self, x):
        self.x = x
        return self.xp.where(x > 0, x, self.slope * x)

    def backward(self, dy):
        """dx = dy * (1 where x > 0, slope elsewhere)."""
        return self.xp.where(self.x > 0, dy, self.slope * dy)

    def __repr__(self):
        return f"LeakyReLU({self.slope})"


class Tanh(Layer):
    """y = tanh(x), elementwise."""

    def __init__(self, backend=None):
        super().__init__(backend)
        self.y = None                   # cache: the output of the last forward

    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, dy):
        """dx = dy * (1 - y^2)."""
        return dy * (1 - self.y * self.y)


class Sigmoid(Layer):
    """y = sigmoid(x) = 1 / (1 + exp(-x)), elementwise."""

    def __init__(self, backend=None):
        super().__init__(backend)
        self.y = None                   # cache: the output of the last forward

    def forward(self, x):
        self.y = sigmoid(x)
        return self.y

    def backward(self, dy):
        """dx = dy * y * (1 - y)."""
        return dy * self.y * (1 - self.y)


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
        be, n_out = self.backend, self.units * self.pieces
        self.params = {"W": init_weights(be, n_in, n_out, init, scale), "b": be.zeros((n_out,))}
        self.grads = {"W": be.zeros((n_in, n_out)), "b": be.zeros((n_out,))}
        self.x = None                   # cache: the input of the last forward
        self.k = None                   # cache: k[n, u], the piece attaining the max

    def forward(self, x):
        """y[n, u] = max_p z[n, p, u], z = x W + b; ties go to the first piece."""
        self.x = x
        z = (x @ self.params["W"] + self.params["b"]).reshape(x.shape[0], self.pieces, self.units)
        self.k = z.argmax(axis=1)
        return z.max(axis=1)

    def backward(self, dy, param_grads=True, input_grad=True):
        """dz[n, p, u] = dy[n, u] * [p = k[n, u]];  dW = x.T @ dz,  db = dz.sum(0),  dx = dz @ W.T."""
        p = self.xp.arange(self.pieces).reshape(1, self.pieces, 1)
        dz = (dy[:, None, :] * (p == self.k[:, None, :])).reshape(dy.shape[0], -1)
        if param_grads:
            self.grads["W"] = self.x.T @ dz
            self.grads["b"] = dz.sum(0)
        return dz @ self.params["W"].T if input_grad else None

    def __repr__(self):
        return f"Maxout({self.n_in}, units={self.units}, pieces={self.pieces})"


class Dropout(Layer):
    """Inverted dropout: y = x * m / keep_prob with m ~ Bernoulli(keep_prob) at train time;
    y = x at test time (``training = False``).

    The mask is drawn from the backend's rng at each forward (``draw_keep``); inside
    ``with layer.frozen_dropout():`` forward reuses the last mask (gradient checks need the
    same mask in every evaluation). ``masks``, when set to a callable shape -> 0/1 array,
    replaces the draw (tests feed the plain and the fast path the same masks).
    """

    def __init__(self, keep_prob, backend=None):
        super().__init__(backend)
        self.keep_prob = check_probability("keep_prob", keep_prob)
        self.masks = None               # None: draw from the backend's rng
        self.fixed_mask = False         # set only by frozen_dropout()
        self.mask = None                # cache: m / keep_prob of the last forward (None: eval)

    @contextlib.contextmanager
    def frozen_dropout(self):
        """Forward reuses the last mask inside the block; the previous setting comes back after."""
        was = self.fixed_mask
        self.fixed_mask = True
        try:
            yield self
        finally:
            self.fixed_mask = was

    def draw_keep(self, shape):
        """m: 1 (keep) with probability keep_prob, else 0."""
        if self.masks is not None:
            return self.masks(shape)
        return self.backend.rng.random(shape, dtype=self.backend.dtype) < self.keep_prob

    def reuse_mask(self, x):
        """Whether forward keeps the last mask (inside frozen_dropout, for the same shape)."""
        return self.fixed_mask and self.mask is not None and self.mask.shape == x.shape

    def forward(self, x):
        if not self.training or self.keep_prob == 1.0:
            self.mask = None
            return x
        if not self.reuse_mask(x):
            self.mask = self.draw_keep(x.shape).astype(x.dtype) / self.keep_prob
        return x * self.mask

    def backward(self, dy):
        """dx = dy * m / keep_prob (the same mask as forward); identity at test time."""
        return dy if self.mask is None else dy * self.mask

    def __repr__(self):
        return f"Dropout(keep_prob={self.keep_prob})"


LAYER_CLASSES = (Linear, ReLU, LeakyReLU, Tanh, Sigmoid, Maxout, Dropout)
