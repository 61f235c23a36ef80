"""The GAN training step: schedules, objectives, statistics, and a 1-D Gaussian that it learns."""

import numpy as np
import pytest

from tinygan import fast, get_backend
from tinygan.errors import ConfigError
from tinygan.fast import GAN, SGD, Adam, mlp, paper_discriminator, paper_generator
from tinygan.losses import discriminator_loss, generator_loss


def sgd_gan(be, schedule="simultaneous", objective="nonsaturating", k=1, keep=1.0, path="fast"):
    """A small GAN on the fast path or the plain core."""
    on = path == "fast"
    G = mlp([3, 8, 5], output="sigmoid", backend=be, fast=on)
    D = paper_discriminator(in_dim=5, units=4, pieces=2, keep_input=keep, keep_hidden=keep,
                            backend=be, fast=on)
    sgd, _ = fast.optimizer_classes(on)
    return fast.gan_class(on)(G, D, sgd(G, lr=0.5), sgd(D, lr=0.5), noise_dim=3,
                              objective=objective, schedule=schedule, k=k)


def vec(pairs):
    """Every parameter (or gradient) of a network as one host vector (a copy)."""
    return np.concatenate([np.array(a).ravel() for _, a in pairs])


@pytest.mark.parametrize("path", ["plain", "fast"])
@pytest.mark.parametrize("objective", ["nonsaturating", "minimax"])
def test_simultaneous_step_matches_separate_computation(be64, objective, path):
    """Both gradients from the same batch and samples, taken before either network moves."""
    gan = sgd_gan(be64, objective=objective, path=path)
    real = be64.uniform(0, 1, (4, 5))
    z = be64.normal((4, 3))
    gan.sample_noise = lambda m: z
    G0, D0 = vec(gan.G.params), vec(gan.D.params)

    # reference: separate passes for real and fake, D gradients and G gradients by hand
    G, D = gan.G, gan.D
    fake = G.forward(z)
    l_fake = D.forward(fake)
    _, dl_g = generator_loss(l_fake, objective)
    G.backward(D.backward(dl_g, param_grads=False))
    g_grad = vec(G.grads)
    l_real = D.forward(real)
    _, dl_real, dl_fake = discriminator_loss(l_real, l_fake)
    D.backward(dl_real)
    d_grad = vec(D.grads)
    D.forward(fake)
    D.backward(dl_fake)
    d_grad += vec(D.grads)

    stats = gan.train_step(real)
    np.testing.assert_allclose(vec(G.params), G0 - 0.5 * g_grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(vec(D.params), D0 - 0.5 * d_grad, rtol=1e-10, atol=1e-14)
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert gan.grad_x.shape == fake.shape            # dL_G/dx kept for the record


@pytest.mark.parametrize("path", ["plain", "fast"])
def test_step_returns_backend_arrays_without_sync(be32, path):
    gan = sgd_gan(be32, keep=0.5, path=path)
    stats = gan.train_step(be32.uniform(0, 1, (6, 5)))
    for v in stats.values():
        # numpy reduces to a numpy scalar, cupy to a 0-d device array: never a Python float
        assert isinstance(v, (np.ndarray, np.generic)) and v.shape == () and v.dtype == np.float32
    assert 0 < float(stats["d_real"]) < 1 and 0 < float(stats["d_fake"]) < 1
    assert gan.step_count == 1


@pytest.mark.parametrize("k", [1, 3])
def test_alternating_k_steps(be64, k):
    gan = sgd_gan(be64, schedule="alternating", k=k)
    calls = {"d": 0, "g": 0}
    d_step, g_step = gan.d_opt.step, gan.g_opt.step
    gan.d_opt.step = lambda: (calls.__setitem__("d", calls["d"] + 1), d_step())
    gan.g_opt.step = lambda: (calls.__setitem__("g", calls["g"] + 1), g_step())
    gan.train_step(be64.uniform(0, 1, (4 * k, 5)))
    assert calls == {"d": k, "g": 1}


def test_alternating_batch_must_split_into_k():
    gan = sgd_gan(get_backend("numpy", seed=0), schedule="alternating", k=3)
    with pytest.raises(ConfigError, match=r"k \* m rows"):
        gan.train_step(gan.backend.uniform(0, 1, (13, 5)))


@pytest.mark.parametrize("path", ["plain", "fast"])
def test_alternating_generator_step_uses_updated_d(be64, path):
    """Algorithm 1: G's step comes after D's, so it sees D's new parameters."""
    gan = sgd_gan(be64, schedule="alternating", k=1, path=path)
    zs = [be64.normal((4, 3)), be64.normal((4, 3))]
    gan.sample_noise = lambda m: zs.pop(0)
    z_g = zs[1]
    real = be64.uniform(0, 1, (4, 5))
    G0, state0 = vec(gan.G.params), {k: v.copy() for k, v in gan.G.state().items()}
    gan.train_step(real)
    # recompute G's gradient against the *updated* D
    G1 = vec(gan.G.params)
    gan.G.load_state(state0)
    _, dl = generator_loss(gan.D.forward(gan.G.forward(z_g)), "nonsaturating")
    gan.G.backward(gan.D.backward(dl, param_grads=False))
    np.testing.assert_allclose(G1, G0 - 0.5 * vec(gan.G.grads), rtol=1e-10, atol=1e-14)


def test_bad_settings(be32):
    G, D = mlp([2, 2], backend=be32), mlp([2, 1], backend=be32)
    opt = lambda net: SGD(net)  # noqa: E731
    for kw, msg in [({"objective": "x"}, "objective"), ({"schedule": "x"}, "schedule"),
                    ({"k": 0}, "positive integer"), ({"k": 2.5}, "positive integer"),
                    ({"k": 2}, "alternating"), ({"noise": "x"}, "noise")]:
        with pytest.raises(ConfigError, match=msg):
            GAN(G, D, opt(G), opt(D), noise_dim=2, **kw)
    gan = GAN(G, D, opt(G), opt(D), noise_dim=2)
    with pytest.raises(ConfigError, match="2-D"):
        gan.train_step(be32.normal((3,)))


def test_sampling(be32):
    G = paper_generator(pixel_mean=0.13, backend=be32)
    D = paper_discriminator(backend=be32)
    gan = GAN(G, D, SGD(G), SGD(D))
    z = gan.sample_noise(1000)
    assert z.shape == (1000, 100) and z.dtype == np.float32
    assert np.abs(z).max() <= np.sqrt(3) and abs(z.var() - 1) < 0.02      # unit variance
    x = gan.sample(7)
    assert x.shape == (7, 784) and (x > 0).all() and (x < 1).all()
    # output bias logit(0.13): at init, samples sit near the mean pixel
    assert abs(float(x.mean()) - 0.13) < 0.02
    d = gan.discriminate(x)
    assert d.shape == (7,) and np.allclose(d, d[0], atol=0.01)
    assert D.training and G.training                                     # modes restored


def train_gaussian(seed, steps=5000, batch=256, lr=1e-3):
    """A small GAN on N(4, 1.25^2) with Adam, its learning rate annealed linearly to 0."""
    be = get_backend("numpy", seed=seed)
    G = mlp([4, 32, 32, 1], activation="leaky_relu", backend=be)
    D = mlp([1, 32, 32, 1], activation="leaky_relu", backend=be)
    g_opt = Adam(G, lr=lr, beta1=0.5)
    d_opt = Adam(D, lr=lr, beta1=0.5)
    gan = GAN(G, D, g_opt, d_opt, noise_dim=4, noise="normal")
    data = np.random.default_rng(seed + 100)
    for t in range(steps):
        g_opt.lr = d_opt.lr = lr * (1 - t / steps)
        gan.train_step(be.asarray(data.normal(4.0, 1.25, (batch, 1))))
    s = be.to_numpy(gan.sample(20000))[:, 0]
    return float(s.mean()), float(s.std())


def test_learns_a_1d_gaussian():
    """Stated tolerance: mean within 0.15 of 4.0 and std within 15% of 1.25 (across seeds 0-9
    this setting gave means 3.98-4.02 and stds 1.22-1.34)."""
    mean, std = train_gaussian(seed=0)
    assert abs(mean - 4.0) < 0.15, mean
    assert abs(std - 1.25) < 0.15 * 1.25, std
