"""Optimizer steps against their formulas, on both paths (the plain core's optim.py and the
fast path's tinygan/fast/optim.py); the paper's schedules; one decay rule for both."""

import math

import numpy as np
import pytest

from tinygan import fast, optim
from tinygan.errors import ConfigError
from tinygan.network import mlp
from tinygan.optim import ExponentialDecay, MomentumRamp

PATHS = {"plain": (optim.SGD, optim.Adam, lambda net: net),
         "fast": (fast.SGD, fast.Adam, fast.to_fast)}


def net_of(be, path, seed_shift=0):
    """A small network (9 parameters) of the path; its gradients set to random numbers."""
    net = PATHS[path][2](mlp([2, 3], backend=be))
    set_grads(be, net)
    return net


def set_grads(be, net):
    for _, g in net.grads:
        g[...] = be.normal(g.shape)


def flat(pairs):
    return np.concatenate([a.ravel() for _, a in pairs])


@pytest.fixture(params=["plain", "fast"])
def path(request):
    return request.param


def test_sgd_momentum_matches_formula(be64, path):
    SGD = PATHS[path][0]
    net = net_of(be64, path)
    opt = SGD(net, lr=0.1, momentum=0.5, decay=ExponentialDecay(1.000004, 1e-6))
    v = np.zeros(9)
    ref = flat(net.params)
    for t in range(5):
        set_grads(be64, net)
        lr = 0.1 / 1.000004 ** t                 # step t (0-based) uses decay(lr, t)
        v = 0.5 * v - lr * flat(net.grads)
        ref = ref + v
        opt.step()
        np.testing.assert_allclose(flat(net.params), ref, rtol=1e-12)
    assert opt.t == 5


def test_sgd_lr_decay_and_floor(be64, path):
    opt = PATHS[path][0](net_of(be64, path), lr=0.1, decay=ExponentialDecay(1.000004, 1e-6))
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


def test_sgd_takes_momentum_schedule(be64, path):
    opt = PATHS[path][0](net_of(be64, path), lr=0.1, momentum=MomentumRamp(0.5, 0.7, 1, 250))
    assert opt.momentum == 0.5
    opt.set_epoch(250)
    assert opt.momentum == 0.7


@pytest.mark.parametrize("decay", [None, ExponentialDecay(1.5, 1e-4)])
def test_adam_matches_formula(be64, path, decay):
    net = net_of(be64, path)
    ref = flat(net.params)
    m, v = np.zeros(9), np.zeros(9)
    opt = PATHS[path][1](net, lr=1e-2, beta1=0.5, beta2=0.999, eps=1e-8, decay=decay)
    for t in range(5):
        set_grads(be64, net)
        g = flat(net.grads)
        m = 0.5 * m + 0.5 * g
        v = 0.999 * v + 0.001 * g * g
        mhat, vhat = m / (1 - 0.5 ** (t + 1)), v / (1 - 0.999 ** (t + 1))
        lr = 1e-2 if decay is None else decay(1e-2, t)
        ref = ref - lr * mhat / (np.sqrt(vhat) + 1e-8)
        opt.step()
        np.testing.assert_allclose(flat(net.params), ref, rtol=1e-12)


@pytest.mark.parametrize("decay", [ExponentialDecay(2.0), ExponentialDecay(1.000004, 1e-6),
                                   ExponentialDecay(10.0, 0.05), None])
def test_sgd_and_adam_use_the_same_lr_on_their_first_and_second_steps(be64, path, decay):
    """Issue 23: Adam decayed with t + 1, so with ExponentialDecay(2) its first step used lr / 2
    while current_lr said lr. Now both use decay(lr, t) at step t: lr, then decay(lr, 1)."""
    SGD, Adam, _ = PATHS[path]
    used = {}
    for cls in (SGD, Adam):
        net = net_of(be64, path)
        opt = cls(net, lr=0.3, decay=decay)
        rates = []
        for _ in range(2):
            rates.append(opt.current_lr)
            if cls is SGD:                   # momentum 0: the step is -lr g, so lr = -dp / g
                before, g = flat(net.params), flat(net.grads)
                opt.step()
                rates[-1] = (rates[-1], float(np.median((before - flat(net.params)) / g)))
            else:                            # first step: m_hat = g, v_hat = g^2: dp = -lr sign(g)
                before = flat(net.params)
                opt.step()
                if opt.t == 1:
                    rates[-1] = (rates[-1], float(np.median(np.abs(before - flat(net.params)))))
                else:
                    rates[-1] = (rates[-1], rates[-1])
        used[cls] = rates
    lr1 = 0.3 if decay is None else decay(0.3, 1)
    for cls in (SGD, Adam):
        (said0, took0), (said1, took1) = used[cls]
        assert said0 == 0.3 and said1 == lr1
        assert math.isclose(took0, 0.3, rel_tol=1e-6), (cls, took0)
    assert math.isclose(used[SGD][1][1], lr1, rel_tol=1e-9)


@pytest.mark.parametrize("kw", [{"lr": 0}, {"lr": -1}, {"lr": float("nan")}, {"momentum": 1.0},
                                {"decay": 0.5}])
def test_sgd_rejects_bad_settings(be64, path, kw):
    net = net_of(be64, path)
    with pytest.raises(ConfigError):
        if "decay" in kw:
            PATHS[path][0](net, decay=ExponentialDecay(kw["decay"]))
        else:
            PATHS[path][0](net, **kw)


@pytest.mark.parametrize("which", ["sgd", "adam"])
@pytest.mark.parametrize("first,second", [("plain", "plain"), ("fast", "fast"),
                                          ("plain", "fast"), ("fast", "plain")])
def test_state_round_trip_continues_bit_identically(be64, which, first, second):
    """load_state(state()) into a copy gives the same next steps; a state from either path
    loads in either (the same keys: flat vectors in parameter order, t, momentum)."""
    def make(path, net):
        SGD, Adam, _ = PATHS[path]
        if which == "sgd":
            return SGD(net, lr=0.1, momentum=MomentumRamp(), decay=ExponentialDecay(1.01, 1e-3))
        return Adam(net, lr=1e-2, decay=ExponentialDecay(1.01, 1e-3))
    net_a = net_of(be64, first)
    a = make(first, net_a)
    for _ in range(3):
        a.step()
    a.set_epoch(100)
    net_b = PATHS[second][2](mlp([2, 3], backend=be64))
    net_b.load_state({k: v.copy() for k, v in net_a.state().items()})
    b = make(second, net_b)
    state = {k: v.copy() if hasattr(v, "copy") else v for k, v in a.state().items()}
    assert set(state) == ({"velocity", "t", "momentum"} if which == "sgd" else {"m", "v", "t"})
    assert all(state[k].shape == (9,) for k in state if k not in ("t", "momentum"))
    b.load_state(state)
    assert b.t == a.t == 3 and b.current_lr == a.current_lr
    for _ in range(3):
        for net in (net_a, net_b):
            for _, g in net.grads:
                g[...] = 0.01
        a.step()
        b.step()
    np.testing.assert_allclose(flat(net_a.params), flat(net_b.params), rtol=1e-12)
    if first == second:
        np.testing.assert_array_equal(flat(net_a.params), flat(net_b.params))


def test_sgd_and_adam_share_lr_meaning(be64, path):
    """lr is the settable base rate on both; the decay schedule is applied in step()."""
    for cls in PATHS[path][:2]:
        opt = cls(net_of(be64, path), lr=0.1, decay=ExponentialDecay(2.0, 0.01))
        opt.lr = 0.2
        assert opt.current_lr == 0.2
        opt.step()
        assert opt.lr == 0.2 and opt.current_lr == 0.1
        opt.t = 10
        assert opt.current_lr == 0.01


def test_adam_rejects_bad_settings(be64, path):
    SGD, Adam, _ = PATHS[path]
    net = net_of(be64, path)
    with pytest.raises(ConfigError):
        Adam(net, lr=0)
    with pytest.raises(ConfigError):
        Adam(net, beta1=1.0)
    with pytest.raises(ConfigError, match="network"):
        SGD(be64.normal((3,)))


def test_fast_optimizers_refuse_a_plain_network(be64):
    with pytest.raises(ConfigError, match="fast network"):
        fast.SGD(mlp([2, 3], backend=be64))


def test_optimizer_state_of_the_wrong_size_is_refused(be64, path):
    opt = PATHS[path][0](net_of(be64, path))
    with pytest.raises(ConfigError, match="velocity"):
        opt.load_state({"velocity": np.zeros(8), "t": 0, "momentum": 0.0})


@pytest.mark.parametrize("make, name", [(lambda: ExponentialDecay(0.5), "lr decay"),
                                        (lambda: ExponentialDecay(1.1, -1.0), "lr floor"),
                                        (lambda: MomentumRamp(0.5, 1.2), "final momentum"),
                                        (lambda: MomentumRamp(-0.1, 0.7), "initial momentum"),
                                        (lambda: MomentumRamp(start=5, saturate=5), "saturate")])
def test_schedules_reject_bad_settings(make, name):
    """Through errors.check_*: one line naming the setting."""
    with pytest.raises(ConfigError, match=name):
        make()
