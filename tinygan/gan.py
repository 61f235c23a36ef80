"""The GAN: a generator G, a discriminator D (returning logits), their optimizers, and one
training step.

Value function (the paper's eq. 1):  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].
D descends 0.5 * [CE(1, D(x)) + CE(0, D(G(z)))] = -V / 2; G descends losses.generator_loss.

Gradient of G's loss with respect to G's parameters (the path through D):

    dL_G/dl  = generator_loss(l)[1]                 l = D(G(z)) logits, (M, 1)
    dL_G/dx  = grad_through_d(D, dL_G/dl)           x = G(z), (M, D_x)
             = D.input_grad(dL_G/dl)  (a backward with param_grads=False)
    dL_G/dθ_G = G.backward(dL_G/dx)                  into G's gradients

Update schedules:
    "simultaneous": one batch of real data and one of noise; D sees real and fake in one
        pass (same dropout masks for both losses); D's and G's gradients are both taken
        before either network moves, then both are applied (the paper's code, k = 1).
    "alternating": the paper's Algorithm 1: k D-steps, each on its own real minibatch and
        fresh noise, then one G-step on fresh noise.
"""

import math

from . import losses
from .errors import ConfigError, check_choice, check_int
from .layers import sigmoid
from .network import ALL

SCHEDULES = ("simultaneous", "alternating")
NOISES = ("uniform", "normal")


def check_settings(objective, schedule, k, noise="uniform"):
    """Validate the training settings (the one place they are checked); ConfigError if bad."""
    check_choice("objective", objective, losses.OBJECTIVES)
    check_choice("schedule", schedule, SCHEDULES)
    check_choice("noise", noise, NOISES)
    check_int("k (discriminator steps per generator step)", k)
    if schedule == "simultaneous" and k != 1:
        raise ConfigError("k > 1 needs schedule 'alternating' (the simultaneous update has k = 1)")


def grad_through_d(D, dl_fake, rows=ALL):
    """dL_G/dx for the fake rows ``rows`` (a slice) of D's last forward batch: G's loss
    gradient on the logits carried back through D to its input x = G(z). D's parameter
    gradients are left untouched: D is fixed during G's step."""
    return D.input_grad(dl_fake, rows)


class GAN:
    """G and D with their optimizers.

    Args:
        generator:     Sequential, z (M, noise_dim) -> x (M, D_x).
        discriminator: Sequential, x (N, D_x) -> logits (N, 1).
        g_optimizer, d_optimizer: G's and D's optimizers (optim.py; tinygan.fast's on the fast path).
        noise_dim: size of z.  noise: "uniform" (U(-sqrt 3, sqrt 3), the paper's) or "normal".
        objective: "nonsaturating" or "minimax" (generator loss).
        schedule: "simultaneous" or "alternating".  k: D-steps per G-step (alternating only).
    """

    # the losses and D(x)'s sigmoid (tinygan.fast.GAN swaps in their fused forms)
    discriminator_loss = staticmethod(losses.discriminator_loss)
    generator_loss = staticmethod(losses.generator_loss)
    sigmoid = staticmethod(sigmoid)

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, noise_dim=100,
                 noise="uniform", objective="nonsaturating", schedule="simultaneous", k=1):
        check_settings(objective, schedule, k, noise)
        self.G, self.D = generator, discriminator
        self.g_opt, self.d_opt = g_optimizer, d_optimizer
        self.backend = generator.backend
        self.xp = self.backend.xp
        self.noise_dim, self.noise = int(noise_dim), noise
        self.objective, self.schedule, self.k = objective, schedule, k
        self.step_count = 0
        self.grad_x = None          # dL_G/dx of the last step (G's gradient arriving through D)

    # --- sampling ---------------------------------------------------------------------
    def sample_noise(self, m):
        """z of shape (m, noise_dim) from the noise prior."""
        if self.noise == "uniform":
            r = math.sqrt(3.0)
            return self.backend.uniform(-r, r, (m, self.noise_dim))
        return self.backend.normal((m, self.noise_dim))

    def sample(self, n, z=None):
        """n samples G(z) (backend array (n, D_x)), G in eval mode (no dropout in G anyway)."""
        z = self.sample_noise(n) if z is None else self.backend.asarray(z)
        with self.G.evaluating():
            return self.G.forward(z)

    def discriminate(self, x):
        """D(x) = sigmoid(logits), D in eval mode (dropout off): (N, D_x) -> (N,)."""
        with self.D.evaluating():
            return self.sigmoid(self.D.forward(self.backend.asarray(x)))[:, 0]

    # --- training ----------------------------------------------------------------------
    def train_step(self, real):
        """One training step. ``real``: backend array (N, D_x); with the alternating
        schedule and k > 1, N = k * m rows give k minibatches of m, one per D-step.

        Returns a dict of 0-d backend arrays (no host synchronisation):
        d_loss, g_loss, d_real (mean D(x)), d_fake (mean D(G(z))). ``self.grad_x`` keeps
        dL_G/dx, G's gradient arriving through D (x = G(z)), for whoever wants to look at it
        (the training loop logs its norm): a reference, no extra work in the step.
        """
        if real.ndim != 2:
            raise ConfigError(f"real batch must be 2-D (N, D_x), got shape {real.shape}")
        if self.schedule == "simultaneous":
            stats = self._simultaneous_step(real)
        else:
            stats = self._alternating_step(real)
        self.step_count += 1
        return stats

    def _discriminator_pass(self, real, fake):
        """D on [real; fake] in one forward, its loss, and its backward into D's gradients
        (D's parameters do not move). Returns (D loss, logits of the real rows, of the fakes)."""
        n = real.shape[0]
        logits = self.D.forward(self.xp.concatenate([real, fake]))
        d_loss, dl_real, dl_fake = self.discriminator_loss(logits[:n], logits[n:])
        self.D.backward(self.xp.concatenate([dl_real, dl_fake]), input_grad=False)
        return d_loss, logits[:n], logits[n:]

    def _simultaneous_step(self, real):
        n = real.shape[0]
        fake = self.G.forward(self.sample_noise(n))
        d_loss, l_real, l_fake = self._discriminator_pass(real, fake)  # real and fake in one pass
        g_loss, dl_g = self.generator_loss(l_fake, self.objective)
        # G's gradient through D, before D's parameters move (same masks, same samples)
        self.grad_x = grad_through_d(self.D, dl_g, rows=slice(n, None))
        self.G.backward(self.grad_x, input_grad=False)
        self.d_opt.step()
        self.g_opt.step()
        return self._stats(d_loss, g_loss, l_real, l_fake)

    def _alternating_step(self, real):
        if real.shape[0] % self.k:
            raise ConfigError(f"alternating schedule with k={self.k} needs a batch of k * m rows, "
                              f"got {real.shape[0]}")
        m = real.shape[0] // self.k
        for i in range(self.k):                                    # k discriminator steps
            d_loss, l_real = self.discriminator_step(real[i * m:(i + 1) * m])
        g_loss, l_fake = self.generator_step(m)                    # then one generator step
        return self._stats(d_loss, g_loss, l_real, l_fake)

    def discriminator_step(self, real):
        """One update of D on ``real`` (m, D_x) and m fresh samples, G fixed.
        Returns (D loss, D's logits on the real rows)."""
        fake = self.G.forward(self.sample_noise(real.shape[0]))
        d_loss, l_real, _ = self._discriminator_pass(real, fake)
        self.d_opt.step()
        return d_loss, l_real

    def generator_step(self, m):
        """One update of G on m fresh samples through D (D fixed, its dropout on).
        Returns (G loss, D's logits on the samples); dL_G/dx stays in ``self.grad_x``."""
        l_fake = self.D.forward(self.G.forward(self.sample_noise(m)))
        g_loss, dl_g = self.generator_loss(l_fake, self.objective)
        self.grad_x = grad_through_d(self.D, dl_g)
        self.G.backward(self.grad_x, input_grad=False)
        self.g_opt.step()
        return g_loss, l_fake

    def _stats(self, d_loss, g_loss, l_real, l_fake):
        return {"d_loss": d_loss, "g_loss": g_loss,
                "d_real": self.sigmoid(l_real).mean(), "d_fake": self.sigmoid(l_fake).mean()}

    def set_epoch(self, epoch):
        """Pass the epoch to both optimizers' schedules (momentum ramp)."""
        self.g_opt.set_epoch(epoch)
        self.d_opt.set_epoch(epoch)
