"""The fast path (tinygan/fast/) equals the plain core: every layer forward and backward, both
losses, both optimizers' updates (float64, 1e-12), and 50 whole training steps of the paper's
MNIST model on both schedules and both objectives (float64, the same noise and dropout masks)."""

import numpy as np
import pytest

from tinygan import fast, get_backend, losses, optim
from tinygan.fast import layers as fast_layers
from tinygan.fast import losses as fast_losses
from tinygan.layers import LAYER_CLASSES, Dropout, LeakyReLU, Linear, Maxout, ReLU, Sigmoid, Tanh
from tinygan.network import mlp, paper_discriminator, paper_generator

RTOL = 1e-12


def close(a, b, rtol=RTOL):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max())))


def make(cls, be):
    return {Linear: lambda: Linear(7, 5, init="glorot", backend=be),
            ReLU: lambda: ReLU(backend=be), LeakyReLU: lambda: LeakyReLU(0.1, backend=be),
            Tanh: lambda: Tanh(backend=be), Sigmoid: lambda: Sigmoid(backend=be),
            Maxout: lambda: Maxout(7, units=4, pieces=3, init="glorot", backend=be),
            Dropout: lambda: Dropout(0.6, backend=be)}[cls]()


def mask_feed(seed):
    """A ``Dropout.masks`` hook: 0/1 masks from a host generator of its own."""
    rng = np.random.default_rng(seed)
    return lambda shape: rng.random(shape) < 0.6


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_every_layer_forward_and_backward(be64, cls, inplace):
    plain = make(cls, be64)
    quick = fast_layers.FAST_FORMS[cls].like(plain, inplace=inplace and not plain.params)
    if cls is Dropout:
        plain.masks, quick.masks = mask_feed(3), mask_feed(3)
    x, dy = be64.normal((6, 7)), None
    y = plain.forward(x)
    y_fast = quick.forward(x.copy())                  # an inplace forward may overwrite its input
    close(y_fast, y)
    dy = be64.normal(y.shape)
    dx = plain.backward(dy)
    close(quick.backward(dy), dx)
    for k in plain.params:
        close(quick.grads[k], plain.grads[k])
    if plain.params:                                  # the flags: no dx; no parameter gradients
        assert quick.backward(dy, input_grad=False) is None
        before = {k: g.copy() for k, g in quick.grads.items()}
        close(quick.backward(dy, param_grads=False), dx)
        for k in before:
            np.testing.assert_array_equal(quick.grads[k], before[k])


@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_every_fast_layer_passes_its_gradient_check(be64, cls):
    from tinygan.gradcheck import check_module, max_error
    layer = fast_layers.FAST_FORMS[cls].like(make(cls, be64))
    x = be64.normal((6, 7))
    x = be64.xp.where(abs(x) < 1e-3, 1e-3, x)          # no ReLU kink within h
    rows = check_module(layer, x)
    assert max_error(rows) < 1e-6 and {r.name for r in rows} == {"x"} | set(layer.params)


@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_every_fast_layer_backward_of_some_rows(be64, cls):
    """``rows``: dy covering rows 2: of the batch gives the plain backward's rows 2:."""
    plain = make(cls, be64)
    quick = fast_layers.FAST_FORMS[cls].like(plain)
    if cls is Dropout:
        plain.masks, quick.masks = mask_feed(4), mask_feed(4)
    x = be64.normal((6, 7))
    y = plain.forward(x)
    quick.forward(x)
    dy = be64.normal(y.shape)
    dy[:2] = 0
    dx = plain.backward(dy)
    args = (True, True, slice(2, None)) if plain.params else (slice(2, None),)
    close(quick.backward(dy[2:], *args), dx[2:])
    for k in plain.params:
        close(quick.grads[k], plain.grads[k])


def test_fast_maxout_routes_ties_to_the_first_piece_as_the_plain_one(be64):
    plain = Maxout(4, units=3, pieces=2, init="glorot", backend=be64)
    plain.params["W"][:, 3:] = plain.params["W"][:, :3]
    quick = fast_layers.FastMaxout.like(plain)
    x, dy = be64.normal((6, 4)), be64.normal((6, 3))
    close(quick.forward(x), plain.forward(x))
    close(quick.backward(dy), plain.backward(dy))
    np.testing.assert_array_equal(quick.grads["W"], plain.grads["W"])


def test_losses(be64):
    l_real = be64.asarray([[-800.0], [-30.0], [-1.0], [0.0], [2.5], [40.0], [900.0]])
    l_fake = be64.normal((5, 1)) * 10
    for a, b in zip(fast_losses.discriminator_loss(l_real, l_fake),
                    losses.discriminator_loss(l_real, l_fake)):
        close(a, b)
    for kind in losses.OBJECTIVES:
        for logits in (l_real, l_fake):
            for a, b in zip(fast_losses.generator_loss(logits, kind),
                            losses.generator_loss(logits, kind)):
                close(a, b)
    close(fast.GAN.sigmoid(l_real), fast.GAN.__mro__[1].sigmoid(l_real))


def test_fast_losses_pass_their_gradient_checks(be64):
    from tinygan.gradcheck import check_discriminator_loss, check_generator_loss, max_error
    l_real, l_fake = be64.normal((5, 1)) * 4, be64.normal((6, 1)) * 4
    rows = check_discriminator_loss(l_real, l_fake, losses=fast_losses)
    for kind in losses.OBJECTIVES:
        rows += check_generator_loss(l_fake, kind, losses=fast_losses)
    assert len(rows) == 4 and max_error(rows) < 1e-6


@pytest.mark.parametrize("which", ["sgd", "adam"])
def test_optimizer_updates(be64, which):
    plain_net = mlp([5, 4, 3], backend=be64)
    fast_net = fast.to_fast(plain_net)
    kw = dict(lr=0.05, decay=optim.ExponentialDecay(1.3, 1e-3))
    if which == "sgd":
        a = optim.SGD(plain_net, momentum=optim.MomentumRamp(0.5, 0.9, 0, 4), **kw)
        b = fast.SGD(fast_net, momentum=optim.MomentumRamp(0.5, 0.9, 0, 4), **kw)
    else:
        a, b = optim.Adam(plain_net, beta1=0.9, **kw), fast.Adam(fast_net, beta1=0.9, **kw)
    for step in range(6):
        for (_, g), (_, h) in zip(plain_net.grads, fast_net.grads):
            g[...] = h[...] = be64.normal(g.shape)
        a.set_epoch(step)
        b.set_epoch(step)
        a.step()
        b.step()
        for (_, p), (_, q) in zip(plain_net.params, fast_net.params):
            close(q, p)


def twin_gans(schedule, objective, seed=0, hidden=1200, units=240):
    """The paper's MNIST G and D and SGD (decay, momentum ramp) on each path from the same
    initial parameters; both fed the same noise and the same dropout masks."""
    be = get_backend("numpy", dtype="float64", seed=seed)
    G0 = paper_generator(hidden=hidden, pixel_mean=np.full(784, 0.13), backend=be)
    D0 = paper_discriminator(units=units, backend=be)
    gans = []
    for on in (False, True):
        G, D = (fast.to_fast(G0), fast.to_fast(D0)) if on else (G0, D0)
        sgd, _ = fast.optimizer_classes(on)
        ramp = optim.MomentumRamp(0.5, 0.7, 1, 3)

        def opt(net):
            return sgd(net, lr=0.1, momentum=ramp, decay=optim.ExponentialDecay(1.01, 1e-6))
        gan = fast.gan_class(on)(G, D, opt(G), opt(D), objective=objective, schedule=schedule,
                                 k=2 if schedule == "alternating" else 1)
        noise = np.random.default_rng(seed + 1)
        gan.sample_noise = lambda m, noise=noise: be.asarray(noise.uniform(-1.7, 1.7, (m, 100)))
        for i, layer in enumerate(D.layers):
            if isinstance(layer, Dropout):
                layer.masks = (lambda r: lambda shape: r.random(shape) < 0.5)(
                    np.random.default_rng([seed, i]))
        gans.append(gan)
    return be, gans


@pytest.mark.parametrize("schedule", ["simultaneous", "alternating"])
@pytest.mark.parametrize("objective", ["nonsaturating", "minimax"])
def test_fifty_training_steps_of_the_paper_model_agree(schedule, objective):
    """The paper's MNIST model (at 1/10 of its width, to keep the test to seconds: the same
    layers and code paths), 50 steps, float64: the parameters of the two paths agree."""
    be, (plain, quick) = twin_gans(schedule, objective, hidden=120, units=24)
    data = np.random.default_rng(9)
    for step in range(50):
        if step % 10 == 0:
            plain.set_epoch(step // 10)
            quick.set_epoch(step // 10)
        real = be.asarray(data.random((20 if schedule == "alternating" else 10, 784)))
        s_plain, s_fast = plain.train_step(real), quick.train_step(real)
        for k in s_plain:
            close(s_fast[k], s_plain[k], rtol=1e-9)
    for net_plain, net_fast in ((plain.G, quick.G), (plain.D, quick.D)):
        for (name, p), (name_fast, q) in zip(net_plain.params, net_fast.params):
            assert name == name_fast
            close(q, p, rtol=1e-10)         # measured: 5e-13 (simultaneous, minimax)
    assert plain.d_opt.current_lr == quick.d_opt.current_lr
    assert quick.g_opt.t == plain.g_opt.t == 50


def test_steps_of_the_full_size_paper_model_agree():
    """The paper's own sizes and settings, 10 steps (50 take ~16 s here; they agree to 5e-15)."""
    be, (plain, quick) = twin_gans("simultaneous", "nonsaturating")
    data = np.random.default_rng(9)
    for _ in range(10):
        real = be.asarray(data.random((10, 784)))
        plain.train_step(real)
        quick.train_step(real)
    for (_, p), (_, q) in zip(plain.D.params + plain.G.params, quick.D.params + quick.G.params):
        close(q, p, rtol=1e-10)


def test_builders_switch_paths(be32):
    G = fast.paper_generator(backend=be32)
    assert isinstance(G, fast.Sequential) and hasattr(G, "param_vector")
    assert all(isinstance(layer, fast_layers.Fast) for layer in G.layers)
    plain = fast.paper_generator(backend=be32, fast=False)
    assert not hasattr(plain, "param_vector") and type(plain.layers[1]) is ReLU
    assert [n for n, _ in G.params] == [n for n, _ in plain.params]
    # inplace exactly where today's builders had it: after a Linear or a Maxout
    D = fast.paper_discriminator(backend=be32)
    assert [getattr(layer, "inplace", None) for layer in D.layers] == [False, False, True, False,
                                                                         True, False]


def test_to_fast_leaves_the_plain_network_as_it_was(be64):
    net = mlp([3, 4, 2], backend=be64)
    before = [p.copy() for _, p in net.params]
    quick = fast.to_fast(net)
    quick.param_vector[...] = 0
    for (_, p), p0 in zip(net.params, before):
        np.testing.assert_array_equal(p, p0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("objective", ["nonsaturating", "minimax"])
def test_the_fused_step_losses_are_bit_for_bit_the_separate_ones(dtype, objective):
    """kernels.gan_losses (one call) gives exactly the two losses, D's logit gradient and the
    two means of D(.) that the separate fused losses and the sigmoid give."""
    from tinygan.fast import kernels
    be = get_backend("numpy", dtype=dtype, seed=3)
    n = 7
    logits = be.asarray(np.concatenate([[[-800.0], [-30.0], [-1.0], [0.0], [2.5], [40.0], [900.0]],
                                        np.random.default_rng(1).normal(0, 6, (5, 1))]))
    d_loss, dl_d, g_loss, dl_g, d_real, d_fake = kernels.gan_losses(logits, n, objective)
    want_d, want_real, want_fake = fast_losses.discriminator_loss(logits[:n], logits[n:])
    want_g, want_dl_g = fast_losses.generator_loss(logits[n:], objective)
    same = lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)) or \
        np.asarray(a).dtype == np.asarray(b).dtype
    assert same(d_loss, want_d) and same(g_loss, want_g) and same(dl_g, want_dl_g)
    assert same(dl_d, np.concatenate([want_real, want_fake]))
    assert same(d_real, kernels.sigmoid(logits[:n]).mean())
    assert same(d_fake, kernels.sigmoid(logits[n:]).mean())


@pytest.mark.parametrize("objective", ["nonsaturating", "minimax"])
def test_the_fast_step_is_bit_for_bit_the_unfused_step(objective):
    """The fast GAN's simultaneous step (G writing into D's input buffer, the fused losses,
    backward in place) equals the plain GAN's step body run on the same fast networks."""
    from tinygan import gan as plain_gan
    gans = []
    for _ in range(2):
        be = get_backend("numpy", seed=5)
        G = fast.paper_generator(hidden=60, pixel_mean=np.full(784, 0.13), backend=be)
        D = fast.paper_discriminator(units=12, backend=be)
        gans.append(fast.GAN(G, D, fast.SGD(G, 0.1, 0.5), fast.SGD(D, 0.1, 0.5),
                             objective=objective))
    real = gans[0].backend.asarray(np.random.default_rng(2).random((9, 784)))
    for _ in range(3):
        want = plain_gan.GAN._simultaneous_step(gans[0], real)
        grad_x = gans[0].grad_x.copy()
        got = gans[1].train_step(real)
        for k in want:
            assert np.asarray(got[k]).tobytes() == np.asarray(want[k]).tobytes(), k
        np.testing.assert_array_equal(gans[1].grad_x, grad_x)     # G's backward left it alone
    for net in "GD":
        np.testing.assert_array_equal(getattr(gans[1], net).param_vector,
                                      getattr(gans[0], net).param_vector)


def test_forward_into_out_and_backward_leave_the_callers_arrays(be64):
    """``forward(x, out=...)`` writes the output there (the last Linear's product, or a copy);
    backward never overwrites the dy it is given."""
    net = fast.paper_generator(noise_dim=6, hidden=8, out_dim=5, backend=be64)
    ends_in_maxout = fast.Sequential([Linear(6, 8, backend=be64), ReLU(backend=be64),
                                      Maxout(8, 5, 2, backend=be64)], backend=be64)
    for g in (net, ends_in_maxout):
        z = be64.normal((4, 6))
        want = g.forward(z).copy()
        out = be64.zeros((4, 5))
        assert g.forward(z, out=out) is out
        np.testing.assert_array_equal(out, want)
        dy = be64.normal((4, 5))
        kept = dy.copy()
        g.backward(dy)
        np.testing.assert_array_equal(dy, kept)
