"""Whole networks: G and D gradient checks, G's gradient through D, and the paper's builders."""

import numpy as np
import pytest

from tinygan import fast
from tinygan.errors import ConfigError
from tinygan.gradcheck import check_generator_through_discriminator, check_module, max_error
from tinygan.layers import Dropout, Linear, Maxout, ReLU, Sigmoid
from tinygan.network import Sequential, mlp, paper_discriminator, paper_generator

TOL = 1e-6
PATHS = ["plain", "fast"]


def randomize(be, net, scale):
    for _, p in net.params:
        p[...] = be.normal(p.shape) * scale
    return net


def small_d(be, path="plain"):
    """The paper's D shape at a small size, with weights large enough to matter."""
    D = fast.paper_discriminator(in_dim=12, units=6, pieces=3, backend=be, fast=path == "fast")
    return randomize(be, D, 0.5)


def small_g(be, path="plain"):
    G = fast.paper_generator(noise_dim=5, hidden=10, out_dim=12, backend=be, fast=path == "fast",
                             pixel_mean=be.uniform(0.1, 0.9, (12,)))
    return randomize(be, G, 0.5)


@pytest.mark.parametrize("path", PATHS)
def test_small_generator_every_coordinate(be64, path):
    rows = check_module(small_g(be64, path), be64.normal((4, 5)), max_coords=10**6)
    assert max_error(rows) < TOL, rows


@pytest.mark.parametrize("path", PATHS)
def test_small_discriminator_every_coordinate(be64, path):
    rows = check_module(small_d(be64, path), be64.uniform(0, 1, (5, 12)), max_coords=10**6)
    assert max_error(rows) < TOL, rows


@pytest.mark.parametrize("path", PATHS)
def test_paper_generator_directions(be64, path):
    G = fast.paper_generator(pixel_mean=np.full(784, 0.13), backend=be64, fast=path == "fast")
    rows = check_module(G, be64.normal((6, 100)), seed=1)
    assert max_error(rows) < TOL, rows


@pytest.mark.parametrize("path", PATHS)
def test_paper_discriminator_directions(be64, path):
    rows = check_module(fast.paper_discriminator(backend=be64, fast=path == "fast"),
                        be64.uniform(0, 1, (6, 784)), seed=1)
    assert max_error(rows) < TOL, rows


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("kind", ["nonsaturating", "minimax"])
def test_generator_gradient_through_discriminator(be64, kind, real, path):
    """D sees the fakes alone, or real+fake in one batch (the plain D pads dy with zeros on the
    real rows, the fast one takes ``rows``)."""
    G, D = small_g(be64, path), small_d(be64, path)
    rows = check_generator_through_discriminator(G, D, be64.normal((6, 5)), kind,
                                                 real=be64.uniform(0, 1, (4, 12)) if real else None,
                                                 max_coords=10**6)
    assert max_error(rows) < TOL, rows


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["nonsaturating", "minimax"])
def test_paper_generator_through_paper_discriminator(be64, kind, path):
    G = fast.paper_generator(pixel_mean=np.full(784, 0.13), backend=be64, fast=path == "fast")
    # at the paper's init (+-0.005) dL/dtheta_G is ~1e-8, below what a scalar loss in float64
    # can resolve by differences; weights of a trained size make the check meaningful
    D = randomize(be64, fast.paper_discriminator(backend=be64, fast=path == "fast"), 0.05)
    rows = check_generator_through_discriminator(G, D, be64.normal((6, 100)), kind, seed=2)
    assert max_error(rows) < TOL, rows


def test_paper_generator_is_exactly_the_paper(be32):
    mean_image = np.linspace(0.0, 1.0, 784)
    G = paper_generator(pixel_mean=mean_image, backend=be32)
    types = [type(layer) for layer in G.layers]
    assert types == [Linear, ReLU, Linear, ReLU, Linear, Sigmoid]
    sizes = [(layer.n_in, layer.n_out) for layer in G.layers if isinstance(layer, Linear)]
    assert sizes == [(100, 1200), (1200, 1200), (1200, 784)]
    for layer in G.layers[:4:2]:
        W = layer.params["W"]
        assert np.abs(W).max() <= 0.05 and np.abs(W).max() > 0.0499
        assert not layer.params["b"].any()
    p = np.clip(mean_image, 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(G.layers[4].params["b"], np.log(p / (1 - p)), rtol=1e-5)
    assert G.num_params == 100 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 784 + 784


def test_paper_discriminator_is_exactly_the_paper(be32):
    D = paper_discriminator(backend=be32)
    types = [type(layer) for layer in D.layers]
    assert types == [Dropout, Maxout, Dropout, Maxout, Dropout, Linear]
    assert [layer.keep_prob for layer in D.layers if isinstance(layer, Dropout)] == [0.8, 0.5, 0.5]
    for m in (D.layers[1], D.layers[3]):
        assert (m.units, m.pieces) == (240, 5)
    assert (D.layers[1].n_in, D.layers[3].n_in, D.layers[5].n_in, D.layers[5].n_out) == (784, 240, 240, 1)
    W = np.concatenate([p.ravel() for _, p in D.params])
    assert np.abs(W).max() <= 0.005 and np.abs(W).max() > 0.00499
    assert D.forward(be32.uniform(0, 1, (3, 784))).shape == (3, 1)


def test_flat_buffers_are_views(be32):
    net = fast.mlp([3, 4, 2], backend=be32)
    net.param_vector[...] = 7
    assert all((p == 7).all() for _, p in net.params)
    net.forward(be32.normal((5, 3)))
    net.backward(be32.normal((5, 2)))
    assert np.array_equal(np.concatenate([g.ravel() for _, g in net.grads]), net.grad_vector)
    assert [n for n, _ in net.params] == ["0.W", "0.b", "2.W", "2.b"]


@pytest.mark.parametrize("path", PATHS)
def test_backward_without_param_grads_leaves_grads(be32, path):
    D = fast.paper_discriminator(in_dim=8, units=4, pieces=2, backend=be32, fast=path == "fast")
    x = be32.normal((3, 8))
    D.forward(x)
    for _, g in D.grads:
        g[...] = 5
    dx = D.backward(be32.normal((3, 1)), param_grads=False)
    assert dx.shape == (3, 8) and all((g == 5).all() for _, g in D.grads)


def test_train_eval_switch(be32):
    D = paper_discriminator(in_dim=8, units=4, pieces=2, backend=be32)
    x = be32.uniform(0, 1, (4, 8))
    D.eval()
    assert not any(layer.training for layer in D.layers)
    np.testing.assert_array_equal(D.forward(x), D.forward(x))
    D.train()
    assert all(layer.training for layer in D.layers)


def test_state_roundtrip_and_mismatch(be32):
    a, b = mlp([3, 4, 2], backend=be32), mlp([3, 4, 2], backend=be32)
    b.load_state({k: v.copy() for k, v in a.state().items()})
    for (na, pa), (nb, pb) in zip(a.params, b.params):
        assert na == nb
        np.testing.assert_array_equal(pa, pb)
    with pytest.raises(ConfigError, match="shape"):
        mlp([3, 5, 2], backend=be32).load_state(a.state())
    with pytest.raises(ConfigError, match="missing"):
        mlp([3, 4, 4, 2], backend=be32).load_state(a.state())


def test_mixed_dtypes_rejected(be32, be64):
    with pytest.raises(ConfigError, match="same backend"):
        Sequential([Linear(2, 2, backend=be32), Linear(2, 2, backend=be64)], backend=be32)


def test_mlp_builder(be32):
    net = mlp([2, 8, 8, 1], activation="tanh", output="sigmoid", backend=be32)
    y = net.forward(be32.normal((4, 2)))
    assert y.shape == (4, 1) and (y > 0).all() and (y < 1).all()
    with pytest.raises(ConfigError, match="unknown activation"):
        mlp([2, 2], activation="swish")
