"""Sequential networks, and builders for the paper's MNIST G and D and for generic MLPs.

A :class:`Sequential` is a list of layers; its parameters are the layers' own, named
"i.key" (layer index . key). Backward chains the layers' own backward passes in reverse
order (the chain rule, one layer at a time):

    dL/dx_i = layer_i.backward(dL/dx_{i+1}),   with x_{i+1} = layer_i.forward(x_i).
"""

import contextlib

from .backend import default_backend
from .errors import ConfigError, check_choice
from .layers import Dropout, LeakyReLU, Linear, Maxout, ReLU, Sigmoid, Tanh

ALL = slice(None)
"""``rows=ALL``: every row of the last forward batch."""


class Sequential:
    """A stack of layers applied in order: x (N, D_in) -> y (N, D_out).

    Attributes:
        layers: the layers, in forward order.
        params / grads: lists of (name, array), names like ``"0.W"`` (layer index . key),
            read from the layers each time (a backward stores new gradient arrays).
    """

    def __init__(self, layers, backend=None):
        self.layers = list(layers)
        if not self.layers:
            raise ConfigError("Sequential needs at least one layer")
        self.backend = backend or self.layers[0].backend
        for _, layer, k in self.named():
            if layer.params[k].dtype != self.backend.dtype:
                raise ConfigError(f"layer {layer!r} has dtype {layer.params[k].dtype}, "
                                  f"the network's backend uses {self.backend.dtype}: build every "
                                  "layer with the same backend")
        self.training = True
        self.batch = 0                  # cache: the number of rows of the last forward

    def named(self):
        """(name, layer, key) of every parameter, in order: "i.key" for layers[i].params[key]."""
        return [(f"{i}.{k}", layer, k) for i, layer in enumerate(self.layers) for k in layer.params]

    @property
    def params(self):
        return [(name, layer.params[k]) for name, layer, k in self.named()]

    @property
    def grads(self):
        return [(name, layer.grads[k]) for name, layer, k in self.named()]

    def forward(self, x):
        """y = layer_n(... layer_1(x))."""
        self.batch = x.shape[0]
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, param_grads=True, input_grad=True):
        """Chain rule in reverse order: dL/dx_i = layer_i.backward(dL/dx_{i+1}); returns dL/dx
        (None when ``input_grad`` is False).

        ``param_grads=False`` leaves every parameter gradient untouched (only dL/dx is needed,
        as when G's gradient flows through D); with ``input_grad=False`` the pass stops below
        the lowest layer with parameters.
        """
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            need_dx = input_grad or any(below.params for below in self.layers[:i])
            if layer.params:
                dy = layer.backward(dy, param_grads=param_grads, input_grad=need_dx)
            elif need_dx:
                dy = layer.backward(dy)
            else:
                return None
        return dy

    def input_grad(self, dy, rows=ALL):
        """dL/dx for the rows ``rows`` (a slice) of the last forward batch, dy covering those
        rows only; the parameter gradients are left untouched. The rows of a batch do not mix,
        so this is the full backward of dy padded with zeros on the other rows, those rows
        dropped (G's gradient through D's real+fake batch)."""
        if rows != ALL:
            full = self.backend.zeros((self.batch,) + dy.shape[1:])
            full[rows] = dy
            return self.backward(full, param_grads=False)[rows]
        return self.backward(dy, param_grads=False)

    def train(self, mode=True):
        """Dropout on (train) or off (eval)."""
        self.training = bool(mode)
        for layer in self.layers:
            layer.training = self.training
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self):
        """Eval mode (dropout off) inside the block; the previous mode comes back after, even
        when the block raises."""
        was = self.training
        self.train(False)
        try:
            yield self
        finally:
            self.train(was)

    @contextlib.contextmanager
    def frozen_dropout(self):
        """Every Dropout reuses the mask of its last forward inside the block (so repeated
        forwards compute one function, as gradient checks need); restored after."""
        with contextlib.ExitStack() as stack:
            for layer in self.layers:
                stack.enter_context(layer.frozen_dropout())
            yield self

    def state(self):
        """{name: backend array} of every parameter (views: copy before keeping)."""
        return dict(self.params)

    def load_state(self, arrays):
        """Copy parameters in from {name: host or backend array}; shapes must match (in place:
        a fast network's flat buffer keeps its views)."""
        mine = dict(self.params)
        missing = sorted(set(mine) - set(arrays))
        extra = sorted(set(arrays) - set(mine))
        if missing or extra:
            raise ConfigError(f"parameter names differ: missing {missing}, unexpected {extra}")
        for name, p in mine.items():
            a = self.backend.asarray(arrays[name])
            if a.shape != p.shape:
                raise ConfigError(f"parameter {name}: shape {a.shape} does not fit {p.shape}")
            self.backend.xp.copyto(p, a)

    @property
    def num_params(self):
        return sum(int(p.size) for _, p in self.params)

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)  # {self.num_params:,} parameters"


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def mlp(sizes, activation="relu", output=None, init="glorot", scale=0.05, backend=None):
    """A generic MLP: Linear layers of ``sizes`` = [D_in, h1, ..., D_out] with ``activation``
    between them and ``output`` (None, "sigmoid", "tanh", ...) after the last one."""
    be = backend or default_backend()
    if len(sizes) < 2:
        raise ConfigError(f"mlp needs at least [D_in, D_out], got {sizes!r}")
    for name in (activation, output):
        if name is not None:
            check_choice("activation", name, tuple(ACTIVATIONS))
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(n_in, n_out, init, scale, backend=be))
        last = i == len(sizes) - 2
        act = output if last else activation
        if act is not None:
            layers.append(ACTIVATIONS[act](backend=be))
    return Sequential(layers, backend=be)


def paper_generator(noise_dim=100, hidden=1200, out_dim=784, pixel_mean=None, backend=None):
    """The paper's MNIST generator (goodfeli/adversarial mnist.yaml):

    z (N, 100) -> Linear 1200 + ReLU -> Linear 1200 + ReLU -> Linear 784 + Sigmoid -> x (N, 784).
    Weights U(-0.05, 0.05), biases 0; the output bias is logit(pixel_mean), with pixel_mean
    (a scalar or the (784,) mean training image) clipped to [1e-7, 1 - 1e-7].
    """
    be = backend or default_backend()
    out = Linear(hidden, out_dim, "uniform", 0.05, backend=be)
    if pixel_mean is not None:
        p = be.xp.clip(be.asarray(pixel_mean, dtype="float64"), 1e-7, 1 - 1e-7)
        out.params["b"][...] = be.xp.log(p) - be.xp.log1p(-p)
    return Sequential([
        Linear(noise_dim, hidden, "uniform", 0.05, backend=be), ReLU(backend=be),
        Linear(hidden, hidden, "uniform", 0.05, backend=be), ReLU(backend=be),
        out, Sigmoid(backend=be),
    ], backend=be)


def paper_discriminator(in_dim=784, units=240, pieces=5, keep_input=0.8, keep_hidden=0.5,
                        backend=None):
    """The paper's MNIST discriminator, returning *logits* (the loss applies the sigmoid):

    x (N, 784) -> Dropout(keep 0.8) -> Maxout 240 x 5 -> Dropout(0.5) -> Maxout 240 x 5
    -> Dropout(0.5) -> Linear 1 -> logit (N, 1).   D(x) = sigmoid(logit). Weights U(-0.005, 0.005).
    """
    be = backend or default_backend()
    return Sequential([
        Dropout(keep_input, backend=be), Maxout(in_dim, units, pieces, "uniform", 0.005, backend=be),
        Dropout(keep_hidden, backend=be), Maxout(units, units, pieces, "uniform", 0.005, backend=be),
        Dropout(keep_hidden, backend=be), Linear(units, 1, "uniform", 0.005, backend=be),
    ], backend=be)


def paper_cifar_generator(noise_dim=100, hidden=8000, out_dim=3072, backend=None):
    """The paper's CIFAR-10 fully-connected generator (goodfeli/adversarial
    cifar10_fully_connected.yaml, Figure 2c):

    z (N, 100) -> Linear 8000 + ReLU -> Linear 8000 + Sigmoid -> Linear 3072 -> x (N, 3072).
    Weights U(-0.05, 0.05) in the hidden layers and U(-0.5, 0.5) in the output layer, biases 0;
    the output is unbounded (it models globally contrast-normalised images, channel-major).
    """
    be = backend or default_backend()
    return Sequential([
        Linear(noise_dim, hidden, "uniform", 0.05, backend=be), ReLU(backend=be),
        Linear(hidden, hidden, "uniform", 0.05, backend=be), Sigmoid(backend=be),
        Linear(hidden, out_dim, "uniform", 0.5, backend=be),
    ], backend=be)


def paper_cifar_discriminator(in_dim=3072, units=1600, pieces=5, keep_input=0.8, keep_hidden=0.5,
                              backend=None):
    """The paper's CIFAR-10 fully-connected discriminator, returning *logits*: the MNIST
    discriminator's layout with 1,600 maxout units of 5 pieces,

    x (N, 3072) -> Dropout(keep 0.8) -> Maxout 1600 x 5 -> Dropout(0.5) -> Maxout 1600 x 5
    -> Dropout(0.5) -> Linear 1 -> logit (N, 1).   Weights U(-0.005, 0.005), biases 0.
    """
    return paper_discriminator(in_dim=in_dim, units=units, pieces=pieces, keep_input=keep_input,
                               keep_hidden=keep_hidden, backend=backend)
