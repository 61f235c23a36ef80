"""The paper's MNIST GAN and tinygan's training step, written in JAX (the strongest CPU peer).
(``g_acts=("sigmoid", None)`` gives the CIFAR-10 generator: ReLU, sigmoid, linear output.)

The same model, losses, simultaneous update and SGD with classical momentum as tinygan and
tools/torch_gan.py, written the way a careful JAX user would: the whole step (G forward, D
forward on real and fake in one pass, both gradients by ``jax.vjp`` of one forward, both
momentum updates) is one ``jax.jit`` function whose parameter and velocity buffers are donated,
so XLA updates them in place and fuses the elementwise work. The learning rate and momentum
are arguments (no recompilation as the schedule moves); noise and dropout masks are drawn
inside the step from a ``jax.random`` key, or given (the equality check passes tinygan's).
"""

import math

import jax
import jax.numpy as jnp


def _forward(g, d, real, z, masks, g_acts, pieces):
    """(d_loss, g_loss, logits of the real rows, of the fakes): the step's one forward."""
    acts = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, None: lambda h: h}
    W0, b0, W2, b2, W4, b4 = g
    h = jax.nn.relu(z @ W0 + b0)
    h = acts[g_acts[0]](h @ W2 + b2)
    fake = acts[g_acts[1]](h @ W4 + b4)
    W1, b1, W3, b3, W5, b5 = d
    x = jnp.concatenate([real, fake])
    n = x.shape[0]
    h = ((x * masks[0]) @ W1 + b1).reshape(n, pieces, -1).max(axis=1)     # maxout, pieces-major
    h = ((h * masks[1]) @ W3 + b3).reshape(n, pieces, -1).max(axis=1)
    logits = (h * masks[2]) @ W5 + b5
    m = real.shape[0]
    l_real, l_fake = logits[:m], logits[m:]
    d_loss = 0.5 * (jax.nn.softplus(-l_real).mean() + jax.nn.softplus(l_fake).mean())
    return d_loss, l_real, l_fake


def _step(g, d, vg, vd, real, z, masks, lr, mu, g_acts, pieces, objective):
    def losses(g, d):
        d_loss, l_real, l_fake = _forward(g, d, real, z, masks, g_acts, pieces)
        if objective == "nonsaturating":
            g_loss = jax.nn.softplus(-l_fake).mean()
        else:
            g_loss = -jax.nn.softplus(l_fake).mean()
        return (d_loss, g_loss), (l_real, l_fake)
    (d_loss, g_loss), pull, (l_real, l_fake) = jax.vjp(losses, g, d, has_aux=True)
    one, zero = jnp.ones_like(d_loss), jnp.zeros_like(d_loss)
    _, d_grads = pull((one, zero))            # dL_D/dD (its dL_D/dG is dead code to XLA)
    g_grads, _ = pull((zero, one))            # dL_G/dG through D, the same masks and samples
    vd = [mu * v - lr * gr for v, gr in zip(vd, d_grads)]
    vg = [mu * v - lr * gr for v, gr in zip(vg, g_grads)]
    d = [p + v for p, v in zip(d, vd)]
    g = [p + v for p, v in zip(g, vg)]
    stats = (d_loss, g_loss, jax.nn.sigmoid(l_real).mean(), jax.nn.sigmoid(l_fake).mean())
    return g, d, vg, vd, stats


def _random_step(g, d, vg, vd, real, key, lr, mu, g_acts, pieces, objective, keep):
    """_step with the noise and the dropout masks drawn from ``key`` inside the step."""
    m, n = real.shape[0], 2 * real.shape[0]
    key, kz, *kmask = jax.random.split(key, 5)
    z = jax.random.uniform(kz, (m, g[0].shape[0]), minval=-math.sqrt(3), maxval=math.sqrt(3))
    widths = (real.shape[1], d[2].shape[0], d[4].shape[0])
    masks = [jax.random.bernoulli(k, p, (n, w)).astype(real.dtype) / p
             for k, p, w in zip(kmask, keep, widths)]
    return (*_step(g, d, vg, vd, real, z, masks, lr, mu, g_acts, pieces, objective), key)


class JaxGAN:
    """Parameters come from tinygan networks (host arrays, W of shape (in, out))."""

    def __init__(self, g_params, d_params, lr=0.1, decay=1.000004, min_lr=1e-6, momentum=0.5,
                 keep=(0.8, 0.5, 0.5), objective="nonsaturating", g_acts=("relu", "sigmoid"),
                 seed=0):
        self.g = [jnp.asarray(a) for a in g_params]        # W0, b0, W2, b2, W4, b4
        self.d = [jnp.asarray(a) for a in d_params]        # W1, b1, W3, b3, W5, b5
        self.vg = [jnp.zeros_like(p) for p in self.g]
        self.vd = [jnp.zeros_like(p) for p in self.d]
        self.lr0, self.decay, self.min_lr, self.momentum = lr, decay, min_lr, momentum
        self.keep, self.t = tuple(float(k) for k in keep), 0
        self.key = jax.random.PRNGKey(seed)
        static = dict(g_acts=tuple(g_acts), pieces=5, objective=objective)
        self._given = jax.jit(lambda *a: _step(*a, **static), donate_argnums=(0, 1, 2, 3))
        self._drawn = jax.jit(lambda *a: _random_step(*a, **static, keep=self.keep),
                              donate_argnums=(0, 1, 2, 3, 5))

    def train_step(self, real, z=None, masks=None):
        """One simultaneous step (asynchronous: nothing waits for it); returns
        (d_loss, g_loss, mean D(x), mean D(G(z))) as JAX scalars."""
        lr = jnp.float32(max(self.lr0 / self.decay ** self.t, self.min_lr))
        mu = jnp.float32(self.momentum)
        if z is None:
            self.g, self.d, self.vg, self.vd, stats, self.key = self._drawn(
                self.g, self.d, self.vg, self.vd, real, self.key, lr, mu)
        else:
            self.g, self.d, self.vg, self.vd, stats = self._given(
                self.g, self.d, self.vg, self.vd, real, z, list(masks), lr, mu)
        self.t += 1
        return stats

    def sync(self):
        """Wait for the steps dispatched so far (JAX runs them asynchronously)."""
        jax.block_until_ready((self.g, self.d))
