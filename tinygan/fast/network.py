"""The fast Sequential (one flat parameter vector, one flat gradient vector) and the network
builders with the ``fast=`` switch the tools use.

A fast :class:`Sequential` holds the fast forms of its layers (layers.py); each layer's
``params[name]`` and ``grads[name]`` are views into ``param_vector`` and ``grad_vector``,
so the fast optimizers update every parameter in a few calls on two long arrays. The
parameter names ("0.W", "0.b", ...) and ``state()`` are those of the plain network, so
checkpoints load in either.
"""

from .. import network as plain
from ..network import ALL
from .layers import FastLinear, fast_layers


class Sequential(plain.Sequential):
    """The plain Sequential on flat buffers, with ``backward(dy, ..., rows=r)``.

    Attributes (besides the plain ones):
        param_vector / grad_vector: flat 1-D backend arrays holding every parameter / gradient.
    """

    def __init__(self, layers, backend=None):
        super().__init__(fast_layers(list(layers)), backend)
        be, named = self.backend, self.named()
        size = sum(int(layer.params[k].size) for _, layer, k in named)
        self.param_vector, self.grad_vector = be.zeros((size,)), be.zeros((size,))
        self._params, self._grads = [], []
        offset = 0
        for name, layer, k in named:
            p = layer.params[k]
            n = int(p.size)
            pv = self.param_vector[offset:offset + n].reshape(p.shape)
            gv = self.grad_vector[offset:offset + n].reshape(p.shape)
            be.xp.copyto(pv, p)
            layer.params[k], layer.grads[k] = pv, gv
            self._params.append((name, pv))
            self._grads.append((name, gv))
            offset += n
        # whether a layer below layer i has parameters (then dL/dx_i is needed)
        self._params_below = [any(b.params for b in self.layers[:i]) for i in range(len(self.layers))]
        # the layer that can write forward(x, out=...)'s output: the last one, a Linear, or the
        # last Linear with only elementwise layers after it that overwrite its output in place
        last = max(len(self.layers) - 1, 0)
        while last > 0 and self.layers[last].inplace and not self.layers[last].params:
            last -= 1
        self._out_layer = (last if self.layers and isinstance(self.layers[last], FastLinear)
                           else None)

    def forward(self, x, out=None):
        """The plain forward; with ``out``, the output written into ``out`` (G's samples into
        the fake half of D's input buffer): by the last Linear when only in-place layers follow
        it, else copied there."""
        if out is None:
            return super().forward(x)
        self.batch = x.shape[0]
        for i, layer in enumerate(self.layers):
            x = layer.forward(x, out=out) if i == self._out_layer else layer.forward(x)
        if x is not out:
            self.backend.xp.copyto(out, x)
        return out

    @property
    def params(self):
        return self._params

    @property
    def grads(self):
        return self._grads

    def backward(self, dy, param_grads=True, input_grad=True, rows=ALL):
        """The plain backward, dy covering the rows ``rows`` of the last forward batch only."""
        owned = False          # dy made inside this pass (not the caller's): overwritten in place
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            need_dx = input_grad or self._params_below[i]
            if layer.params:
                dx = layer.backward(dy, param_grads, need_dx, rows)
            elif need_dx:
                dx = layer.backward(dy, rows, out=dy if owned else None)
            else:
                return None
            owned, dy = owned or dx is not dy, dx
        return dy

    def input_grad(self, dy, rows=ALL):
        """dL/dx for the rows ``rows`` of the last forward batch (no padding: ``rows``)."""
        return self.backward(dy, param_grads=False, rows=rows)

    @property
    def num_params(self):
        return int(self.param_vector.size)


def to_fast(net):
    """The fast form of the plain network ``net``: the same parameter values (copied into the
    flat buffer; ``net`` itself is left as it was)."""
    return Sequential(net.layers, backend=net.backend)


def _switch(builder):
    def build(*args, fast=True, **kwargs):
        net = builder(*args, **kwargs)
        return to_fast(net) if fast else net
    build.__name__ = builder.__name__
    build.__doc__ = (f"tinygan.network.{builder.__name__}, fast (the default) or plain "
                     f"(``fast=False``).\n\n" + (builder.__doc__ or ""))
    return build


mlp = _switch(plain.mlp)
paper_generator = _switch(plain.paper_generator)
paper_discriminator = _switch(plain.paper_discriminator)
paper_cifar_generator = _switch(plain.paper_cifar_generator)
paper_cifar_discriminator = _switch(plain.paper_cifar_discriminator)
