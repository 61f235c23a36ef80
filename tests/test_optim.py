"""Optimizer steps against their formulas; the paper's schedules."""

import math

import numpy as np
import pytest

from tinygan.errors import ConfigError
from tinygan.optim import SGD, Adam, ExponentialDecay, MomentumRamp


def vectors(be, n=6):
    return be.normal((n,)), be.normal((n,))


def test_sgd_momentum_matches_formula(be64):
    p, g = vectors(be64)
    p0 = p.copy()
    opt = SGD(p, g, lr=0.1, momentum=0.5, decay=ExponentialDecay(1.000004, 1e-6))
    v = np.zeros_like(p0)
    ref = p0.copy()
    for t in range(5):
        g[...] = be64.normal(g.shape)
        lr = 0.1 / 1.000004 ** t
        v = 0.5 * v - lr * g
        ref = ref + v
        opt.step()
        np.testing.assert_allclose(p, ref, rtol=1e-12)
    assert opt.t == 5


def test_sgd_lr_decay_and_floor(be64):
    p, g = vectors(be64)
    opt = SGD(p, g, lr=0.1, decay=ExponentialDecay(1.000004, 1e-6))
    assert opt.current_lr == 0.1
    opt.t = 1000
    assert math.isclose(opt.current_lr, 0.1 / 1.000004 ** 1000)
    opt.t = 10**7                            # 0.1 / 1.000004^1e7 = 4e-19: floored
    assert opt.current_lr == 1e-6
    assert opt.lr == 0.1                     # lr stays the base rate the schedule starts from


def test_momentum_ramp_paper():
    ramp = MomentumRamp(0.5, 0.7, start=1, saturate=250)
    assert ramp(0) == 0.5 and ramp(1) == 0.5
    assert math.isclose(ramp(125.5), 0.6)
    assert ramp(250) == 0.7 and ramp(1000) == 0.7


def test_sgd_takes_momentum_schedule(be64):
    p, g = vectors(be64)
    opt = SGD(p, g, lr=0.1, momentum=MomentumRamp(0.5, 0.7, 1, 250))
    assert opt.momentum == 0.5
    opt.set_epoch(250)
    assert opt.momentum == 0.7


def test_adam_matches_formula(be64):
    p, g = vectors(be64)
    ref = p.copy()
    m = np.zeros_like(ref)
    v = np.zeros_like(ref)
    opt = Adam(p, g, lr=1e-2, beta1=0.5, beta2=0.999, eps=1e-8)
    for t in range(1, 6):
        g[...] = be64.normal(g.shape)
        m = 0.5 * m + 0.5 * g
        v = 0.999 * v + 0.001 * g * g
        mhat, vhat = m / (1 - 0.5 ** t), v / (1 - 0.999 ** t)
        ref = ref - 1e-2 * mhat / (np.sqrt(vhat) + 1e-8)
        opt.step()
        np.testing.assert_allclose(p, ref, rtol=1e-10)


@pytest.mark.parametrize("kw", [{"lr": 0}, {"lr": -1}, {"lr": float("nan")}, {"momentum": 1.0},
                                {"decay": 0.5}])
def test_sgd_rejects_bad_settings(be64, kw):
    p, g = vectors(be64)
    with pytest.raises(ConfigError):
        if "decay" in kw:
            SGD(p, g, decay=ExponentialDecay(kw["decay"]))
        else:
            SGD(p, g, **kw)


@pytest.mark.parametrize("make", [
    lambda p, g: SGD(p, g, lr=0.1, momentum=MomentumRamp(), decay=ExponentialDecay(1.01, 1e-3)),
    lambda p, g: Adam(p, g, lr=1e-2, decay=ExponentialDecay(1.01, 1e-3))])
def test_state_round_trip_continues_bit_identically(be64, make):
    """load_state(state()) of a copy gives the same next steps, as the network's does."""
    p, g = vectors(be64)
    a = make(p, g)
    for _ in range(3):
        a.step()
    a.set_epoch(100)
    q, h = p.copy(), g.copy()
    b = make(q, h)
    b.load_state({k: v.copy() if hasattr(v, "copy") else v for k, v in a.state().items()})
    assert b.t == a.t == 3 and b.current_lr == a.current_lr
    for _ in range(3):
        a.step()
        b.step()
    np.testing.assert_array_equal(p, q)


def test_sgd_and_adam_share_lr_meaning(be64):
    """lr is the settable base rate on both; the decay schedule is applied in step()."""
    for cls in (SGD, Adam):
        p, g = vectors(be64)
        opt = cls(p, g, lr=0.1, decay=ExponentialDecay(2.0, 0.01))
        opt.lr = 0.2
        assert opt.current_lr == 0.2
        opt.step()
        assert opt.lr == 0.2 and opt.current_lr == 0.1
        opt.t = 10
        assert opt.current_lr == 0.01


def test_adam_rejects_bad_settings(be64):
    p, g = vectors(be64)
    with pytest.raises(ConfigError):
        Adam(p, g, lr=0)
    with pytest.raises(ConfigError):
        Adam(p, g, beta1=1.0)
    with pytest.raises(ConfigError, match="shape"):
        Adam(p, be64.normal((3,)))
    with pytest.raises(ConfigError, match="flat 1-D"):
        SGD(be64.normal((2, 3)), be64.normal((2, 3)))
