"""The GAN of tinygan/gan.py with the fused losses and sigmoid: the same step, fewer launches.

The simultaneous step here (bit for bit the plain one's, tests/test_fast.py) also writes G's
samples straight into the fake half of D's input buffer (kept across steps: no concatenate),
and takes both losses, D's logit gradient and the two means from one call (kernels.gan_losses).
"""

from .. import gan
from . import kernels, losses


class GAN(gan.GAN):
    """tinygan.gan.GAN (same arguments) with the losses and D(x) computed by fused kernels."""

    discriminator_loss = staticmethod(losses.discriminator_loss)
    generator_loss = staticmethod(losses.generator_loss)
    sigmoid = staticmethod(kernels.sigmoid)

    _d_input = None

    def _d_input_for(self, real):
        """D's (2n, D_x) input buffer, real in its first n rows (the buffer kept across steps)."""
        n = real.shape[0]
        buf = self._d_input
        if buf is None or buf.shape != (2 * n, real.shape[1]) or buf.dtype != real.dtype:
            buf = self._d_input = self.xp.empty((2 * n, real.shape[1]), real.dtype)
        buf[:n] = real
        return buf

    def _simultaneous_step(self, real):
        if real.dtype != self.backend.dtype:                 # a buffer of one dtype: the plain way
            return super()._simultaneous_step(real)
        n = real.shape[0]
        x = self._d_input_for(real)
        self.G.forward(self.sample_noise(n), out=x[n:])        # the fakes, written in place
        logits = self.D.forward(x)                             # real and fake in one pass
        d_loss, dl_d, g_loss, dl_g, d_real, d_fake = kernels.gan_losses(logits, n, self.objective)
        self.D.backward(dl_d, input_grad=False)
        # G's gradient through D, before D's parameters move (same masks, same samples)
        self.grad_x = gan.grad_through_d(self.D, dl_g, rows=slice(n, None))
        self.G.backward(self.grad_x, input_grad=False)
        self.d_opt.step()
        self.g_opt.step()
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}
