"""The fast forms of the layers: the same maths as tinygan/layers.py, with the speed tricks.

Each ``FastX`` subclasses the plain ``X`` (same parameters, names and settings) and differs
only in how it computes: fused kernels (kernels.py), outputs written over a fresh input
(``inplace``), gradients written into the network's flat buffer (network.py), every matrix
product through ``kernels.matmul``, and ``backward(dy, ..., rows=r)``: dy covers only the
rows ``r`` (a slice) of the last forward batch (G's gradient through D's real+fake batch).
tests/core/test_fast.py holds each equal to its plain form.
"""

from .. import layers as plain
from ..network import ALL
from . import kernels


class Fast:
    """What the fast layers share: ``inplace`` (forward may overwrite its input, set by the
    network where the input is the fresh output of a Linear or Maxout) and ``like``."""

    inplace = False

    @classmethod
    def like(cls, layer, inplace=False):
        """The fast form of the plain ``layer``: its settings, its parameter dict copied (the
        arrays shared until a network packs them), its gradient arrays copied."""
        fast = cls.__new__(cls)
        fast.__dict__.update(layer.__dict__)
        fast.params = dict(layer.params)
        fast.grads = {k: g.copy() for k, g in layer.grads.items()}
        fast.inplace = bool(inplace)
        return fast

    def _out(self, x):
        """Where an elementwise forward writes: over x when inplace, else a new array."""
        return x if self.inplace else self.xp.empty_like(x)


def linear_backward(layer, x, dz, param_grads, input_grad):
    """dW = x.T @ dz and db = dz.sum(0) written into the layer's gradient arrays; dx = dz @ W.T."""
    if param_grads:
        kernels.matmul(x.T, dz, out=layer.grads["W"])
        dz.sum(0, out=layer.grads["b"])
    return kernels.matmul(dz, layer.params["W"].T) if input_grad else None


class FastLinear(Fast, plain.Linear):
    def forward(self, x, out=None):
        """y = x W + b, into ``out`` when given."""
        self.x = x
        y = kernels.matmul(x, self.params["W"], out=out)
        y += self.params["b"]
        return y

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dW = x.T @ dy,  db = dy.sum(0),  dx = dy @ W.T."""
        return linear_backward(self, self.x[rows], dy, param_grads, input_grad)


class FastReLU(Fast, plain.ReLU):
    def forward(self, x):
        y, self.mask = kernels.relu(x, out=self._out(x))
        return y

    def backward(self, dy, rows=ALL, out=None):
        """dx = dy * [x > 0] (into ``out``: may be dy)."""
        return self.xp.multiply(dy, self.mask[rows], out=out)


class FastLeakyReLU(Fast, plain.LeakyReLU):
    def forward(self, x):
        self.scale = self.xp.where(x > 0, 1.0, self.slope).astype(x.dtype)
        return self.xp.multiply(x, self.scale, out=self._out(x))

    def backward(self, dy, rows=ALL, out=None):
        """dx = dy * (1 where x > 0, slope elsewhere) (into ``out``: may be dy)."""
        return self.xp.multiply(dy, self.scale[rows], out=out)


class FastTanh(Fast, plain.Tanh):
    def forward(self, x):
        self.y = self.xp.tanh(x, out=self._out(x))
        return self.y

    def backward(self, dy, rows=ALL, out=None):
        """dx = dy * (1 - y^2) (into ``out``: may be dy)."""
        y = self.y[rows]
        return self.xp.multiply(dy, 1 - y * y, out=out)


class FastSigmoid(Fast, plain.Sigmoid):
    def forward(self, x):
        self.y = kernels.sigmoid_layer(x, out=self._out(x))
        return self.y

    def backward(self, dy, rows=ALL, out=None):
        """dx = dy * y * (1 - y) (a new array: ``out`` is ignored, the kernel reads dy late)."""
        return kernels.sigmoid_backward(dy, self.y[rows])


class FastMaxout(Fast, plain.Maxout):
    """Bias add and max in one kernel on CuPy; on NumPy the bias is added over z in place and
    ``route`` is a one-hot mask (kernels.maxout)."""

    def forward(self, x):
        self.x = x
        y, self.route = kernels.maxout(kernels.matmul(x, self.params["W"]), self.params["b"],
                                       self.pieces)
        return y

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """dz[n, p, u] = dy[n, u] * [p = argmax_p z[n, p, u]], then Linear's backward on dz
        (dz in a buffer kept per shape: it is consumed here)."""
        buffers = self.__dict__.setdefault("_dz", {})
        shape = (dy.shape[0], self.pieces * dy.shape[1])
        if shape not in buffers or buffers[shape].dtype != dy.dtype:
            buffers[shape] = self.xp.empty(shape, dy.dtype)
        dz = kernels.maxout_backward(dy, self.route[rows], self.pieces, out=buffers[shape])
        return linear_backward(self, self.x[rows], dz, param_grads, input_grad)


class FastDropout(Fast, plain.Dropout):
    """CuPy: one uniform draw and one kernel; NumPy: 16-bit integer draws (kernels.dropout).
    Masks fed through ``masks`` (tests) are used as the plain layer uses them."""

    def forward(self, x):
        if not self.training or self.keep_prob == 1.0:
            self.mask = None
            return x
        if self.reuse_mask(x):
            return self.xp.multiply(x, self.mask, out=self._out(x))
        if self.masks is not None:
            return super().forward(x)
        y, self.mask = kernels.dropout(x, self.keep_prob, self.backend.rng, out=self._out(x))
        return y

    def backward(self, dy, rows=ALL, out=None):
        """dx = dy * m / keep_prob (the same mask as forward; into ``out``: may be dy);
        identity at test time."""
        return dy if self.mask is None else self.xp.multiply(dy, self.mask[rows], out=out)


FAST_FORMS = {plain.Linear: FastLinear, plain.ReLU: FastReLU, plain.LeakyReLU: FastLeakyReLU,
              plain.Tanh: FastTanh, plain.Sigmoid: FastSigmoid, plain.Maxout: FastMaxout,
              plain.Dropout: FastDropout}
"""plain layer class -> its fast form."""


def fast_layers(layers):
    """The fast forms of ``layers`` (fast ones kept as they are): an elementwise layer after a
    Linear or Maxout overwrites that layer's fresh output (``inplace``)."""
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, Fast):
            out.append(layer)
            continue
        if type(layer) not in FAST_FORMS:
            raise TypeError(f"no fast form of {type(layer).__name__}")
        fresh = i > 0 and isinstance(layers[i - 1], (plain.Linear, plain.Maxout))
        out.append(FAST_FORMS[type(layer)].like(layer, inplace=fresh and not layer.params))
    return out
