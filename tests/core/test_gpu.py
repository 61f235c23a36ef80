"""CuPy against NumPy on the same inputs: every layer, the losses and a whole training step.

Marked ``gpu``: skipped (with the reason) unless CuPy is installed and a CUDA device is usable.
Random draws are made on the host and transferred, since the two libraries' generators differ.
"""

import numpy as np
import pytest

from tinygan import fast, get_backend, losses
from tinygan.fast import losses as fast_losses
from tinygan.fast.layers import FAST_FORMS
from tinygan.layers import Dropout, LeakyReLU, Linear, Maxout, ReLU, Sigmoid, Tanh
from tinygan.optim import ExponentialDecay, MomentumRamp

pytestmark = pytest.mark.gpu

RTOL, ATOL = 2e-5, 1e-6      # float32, different BLAS summation orders


@pytest.fixture
def pair():
    return get_backend("numpy", seed=0), get_backend("cupy", seed=0)


def copy_params(src, dst, be_dst):
    for k in src.params:
        dst.params[k][...] = be_dst.asarray(src.params[k])


def close(a_gpu, a_cpu, be_gpu):
    np.testing.assert_allclose(be_gpu.to_numpy(a_gpu), a_cpu, rtol=RTOL, atol=ATOL)


LAYERS = {
    "Linear": lambda be: Linear(30, 20, backend=be, init="glorot"),
    "ReLU": lambda be: ReLU(backend=be),
    "LeakyReLU": lambda be: LeakyReLU(0.2, backend=be),
    "Tanh": lambda be: Tanh(backend=be),
    "Sigmoid": lambda be: Sigmoid(backend=be),
    "Maxout": lambda be: Maxout(30, 8, 5, backend=be, init="glorot"),
    "Dropout": lambda be: Dropout(0.5, backend=be),
}


@pytest.mark.parametrize("path", ["plain", "fast"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_numpy(pair, name, path):
    cpu, gpu = pair
    host = np.random.default_rng(1)
    lc, lg = LAYERS[name](cpu), LAYERS[name](gpu)
    if path == "fast":
        lc, lg = FAST_FORMS[type(lc)].like(lc), FAST_FORMS[type(lg)].like(lg)
    copy_params(lc, lg, gpu)
    x = host.standard_normal((16, 30)).astype(np.float32)
    if name == "Dropout":
        mask = (host.random((16, 30)) < 0.5).astype(np.float32) / 0.5
        lc.mask, lg.mask = mask, gpu.asarray(mask)
        lc.fixed_mask = lg.fixed_mask = True
    yc = lc.forward(x)
    yg = lg.forward(gpu.asarray(x))
    close(yg, yc, gpu)
    dy = host.standard_normal(yc.shape).astype(np.float32)
    close(lg.backward(gpu.asarray(dy)), lc.backward(dy), gpu)
    for k in lc.grads:
        close(lg.grads[k], lc.grads[k], gpu)


@pytest.mark.parametrize("module", [losses, fast_losses], ids=["plain", "fast"])
def test_losses_match_numpy(pair, module):
    cpu, gpu = pair
    discriminator_loss, generator_loss = module.discriminator_loss, module.generator_loss
    l = np.array([[-1e4], [-30], [-1], [0], [2], [30], [1e4]], dtype=np.float32)
    for c, g in zip(discriminator_loss(l, l[::-1].copy()),
                    discriminator_loss(gpu.asarray(l), gpu.asarray(l[::-1].copy()))):
        close(g, c, gpu)
    for kind in ("nonsaturating", "minimax"):
        for c, g in zip(generator_loss(l, kind), generator_loss(gpu.asarray(l), kind)):
            close(g, c, gpu)


def build(be, host_params, on=True):
    G = fast.paper_generator(pixel_mean=np.full(784, 0.13), backend=be, fast=on)
    D = fast.paper_discriminator(backend=be, fast=on)
    G.load_state(host_params[0])
    D.load_state(host_params[1])
    ramp = MomentumRamp(0.5, 0.7, 1, 250)
    decay = ExponentialDecay(1.000004, 1e-6)
    SGD, _ = fast.optimizer_classes(on)
    return fast.gan_class(on)(G, D, SGD(G, lr=0.1, momentum=ramp, decay=decay),
                              SGD(D, lr=0.1, momentum=ramp, decay=decay))


def vec(be, net):
    return np.concatenate([be.to_numpy(p).ravel() for _, p in net.params])


@pytest.mark.parametrize("path", ["plain", "fast"])
@pytest.mark.parametrize("objective", ["nonsaturating", "minimax"])
def test_training_step_matches_numpy(pair, objective, path):
    cpu, gpu = pair
    c0 = fast.paper_generator(pixel_mean=np.full(784, 0.13), backend=cpu)
    d0 = fast.paper_discriminator(backend=cpu)
    params = ({k: v.copy() for k, v in c0.state().items()}, {k: v.copy() for k, v in d0.state().items()})
    gc, gg = build(cpu, params, path == "fast"), build(gpu, params, path == "fast")
    gc.objective = gg.objective = objective
    host = np.random.default_rng(2)
    for step in range(3):
        real = host.random((100, 784)).astype(np.float32)
        z = host.uniform(-np.sqrt(3), np.sqrt(3), (100, 100)).astype(np.float32)
        gc.sample_noise = lambda m, z=z: z
        gg.sample_noise = lambda m, z=z: gpu.asarray(z)
        for lc, lg in zip(gc.D.layers, gg.D.layers):        # the same dropout masks
            if isinstance(lc, Dropout):
                n_in = 784 if lc is gc.D.layers[0] else 240
                mask = (host.random((200, n_in)) < lc.keep_prob).astype(np.float32) / lc.keep_prob
                lc.mask, lg.mask = mask, gpu.asarray(mask)
                lc.fixed_mask = lg.fixed_mask = True
        sc = gc.train_step(real)
        sg = gg.train_step(gpu.asarray(real))
        for key in sc:
            np.testing.assert_allclose(float(sg[key]), float(sc[key]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(vec(gpu, gg.G), vec(cpu, gc.G), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(vec(gpu, gg.D), vec(cpu, gc.D), rtol=1e-4, atol=1e-6)
