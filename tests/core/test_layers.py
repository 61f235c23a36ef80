"""Finite-difference gradient checks of every layer (float64), and the layers' edge cases."""

import numpy as np
import pytest

from tinygan.errors import ConfigError
from tinygan.gradcheck import check_module, max_error
from tinygan.layers import (LAYER_CLASSES, Dropout, LeakyReLU, Linear, Maxout, ReLU, Sigmoid,
                            Tanh)

TOL = 1e-6


def away_from_zero(be, shape, margin=1e-3):
    """Inputs with |x| >= margin, so the kinks of ReLU/LeakyReLU are never within h."""
    x = be.normal(shape)
    return be.xp.where(abs(x) < margin, margin, x)


def make(name, be):
    return {
        "Linear": lambda: Linear(7, 5, backend=be, init="glorot"),
        "Linear-paper-init": lambda: Linear(7, 5, backend=be, init="uniform", scale=0.05),
        "ReLU": lambda: ReLU(backend=be),
        "LeakyReLU": lambda: LeakyReLU(0.1, backend=be),
        "Tanh": lambda: Tanh(backend=be),
        "Sigmoid": lambda: Sigmoid(backend=be),
        "Maxout": lambda: Maxout(7, units=4, pieces=3, init="glorot", backend=be),
        "Maxout-1-piece": lambda: Maxout(7, units=4, pieces=1, init="glorot", backend=be),
        "Dropout": lambda: Dropout(0.6, backend=be),
    }[name]()


@pytest.mark.parametrize("name", ["Linear", "Linear-paper-init", "ReLU", "LeakyReLU", "Tanh",
                                  "Sigmoid", "Maxout", "Maxout-1-piece", "Dropout"])
def test_layer_gradients(name, be64):
    layer = make(name, be64)
    rows = check_module(layer, away_from_zero(be64, (6, 7)))
    assert max_error(rows) < TOL, rows
    assert {r.name for r in rows} == {"x"} | set(layer.params)


def test_every_layer_class_is_checked(be64):
    checked = {type(make(n, be64)) for n in ["Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid",
                                               "Maxout", "Dropout"]}
    assert checked == set(LAYER_CLASSES)


def test_params_and_grads_share_keys_and_shapes(be32):
    for layer in (Linear(3, 2, backend=be32), Maxout(3, 2, 4, backend=be32)):
        assert layer.params.keys() == layer.grads.keys()
        for k in layer.params:
            assert layer.params[k].shape == layer.grads[k].shape
            assert layer.params[k].dtype == np.float32


def test_broken_backward_is_caught(be64, monkeypatch):
    """Change one sign in Linear.backward: the check must fail (what users will try)."""
    orig = Linear.backward

    def broken(self, dy, param_grads=True, input_grad=True):
        dx = orig(self, dy, param_grads, input_grad)
        self.grads["b"] *= -1
        return dx
    monkeypatch.setattr(Linear, "backward", broken)
    rows = check_module(Linear(4, 3, backend=be64), be64.normal((5, 4)))
    failing = {r.name for r in rows if not r.passed}
    assert failing == {"b"}


def test_maxout_is_pieces_major_max(be64):
    m = Maxout(3, units=2, pieces=4, backend=be64)
    x = be64.normal((5, 3))
    z = x @ m.params["W"] + m.params["b"]
    expect = np.stack([z[:, p * 2:(p + 1) * 2] for p in range(4)], axis=1).max(axis=1)
    np.testing.assert_allclose(m.forward(x), expect)


def test_maxout_ties_route_to_one_piece(be64):
    """Two identical pieces: the output is smooth in x, and dW goes to the first piece only."""
    m = Maxout(4, units=3, pieces=2, init="glorot", backend=be64)
    W, b = m.params["W"], m.params["b"]
    W[:, 3:] = W[:, :3]                      # piece 1 == piece 0 for every unit
    b[3:] = b[:3]
    x = be64.normal((6, 4))
    dy = be64.normal((6, 3))
    m.forward(x)
    assert (m.k == 0).all()                  # ties go to the first piece
    dx = m.backward(dy)
    np.testing.assert_allclose(m.grads["W"][:, 3:], 0)
    np.testing.assert_allclose(m.grads["W"][:, :3], x.T @ dy)
    np.testing.assert_allclose(m.grads["b"][:3], dy.sum(0))
    np.testing.assert_allclose(dx, dy @ W[:, :3].T)
    rows = check_module(m, x)               # dx is still exact at the tie
    assert rows[0].rel_error < TOL


def test_dropout_train_and_eval(be32):
    d = Dropout(0.8, backend=be32)
    x = be32.xp.ones((2000, 50), dtype=np.float32)
    y = d.forward(x)
    kept = y != 0
    assert abs(kept.mean() - 0.8) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.8, rtol=1e-6)        # inverted: scaled at train time
    np.testing.assert_array_equal(d.backward(x), y)
    d.training = False
    assert d.forward(x) is x and d.backward(x) is x                # identity at test time


def test_dropout_fixed_mask(be32):
    d = Dropout(0.5, backend=be32)
    x = be32.normal((4, 6))
    with d.frozen_dropout():
        np.testing.assert_array_equal(d.forward(x), d.forward(x))
    assert not d.fixed_mask                                        # fresh masks again after


def test_network_modes_come_back_when_the_block_raises(be32):
    """evaluating() and frozen_dropout() restore the mode even on an error (try/finally):
    GAN.sample and GAN.discriminate used to leave eval mode on if the forward raised."""
    from tinygan.network import paper_discriminator
    D = paper_discriminator(in_dim=6, units=3, pieces=2, backend=be32)
    for block in (D.evaluating, D.frozen_dropout):
        with pytest.raises(ValueError):
            with block():
                D.forward(be32.normal((2, 5)))                     # wrong width: matmul raises
    assert D.training and all(layer.training for layer in D.layers)
    assert not any(getattr(layer, "fixed_mask", False) for layer in D.layers)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, True])
def test_dropout_rejects_bad_keep_prob(bad):
    with pytest.raises(ConfigError, match="keep_prob"):
        Dropout(bad)


def test_bad_layer_sizes_and_init():
    with pytest.raises(ConfigError, match="positive integer"):
        Linear(0, 3)
    with pytest.raises(ConfigError, match="positive integer"):
        Maxout(3, 2, 2.5)
    with pytest.raises(ConfigError, match="glorot"):
        Linear(3, 2, init="he")


def test_init_ranges(be32):
    W = Linear(100, 200, init="uniform", scale=0.05, backend=be32).params["W"]
    assert W.min() >= -0.05 and W.max() <= 0.05 and W.max() > 0.049
    a = np.sqrt(6 / 300)
    W = Linear(100, 200, init="glorot", backend=be32).params["W"]
    assert W.min() >= -a and W.max() <= a and W.max() > 0.98 * a


def test_sigmoid_and_tanh_extremes(be32):
    x = be32.asarray([[-1e4, -50, 0, 50, 1e4]])
    s = Sigmoid(backend=be32).forward(x)
    assert np.all(np.isfinite(s)) and s[0, 0] == 0 and s[0, -1] == 1 and s[0, 2] == 0.5
    assert np.all(np.isfinite(Tanh(backend=be32).forward(x)))
