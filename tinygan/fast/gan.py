"""The GAN of tinygan/gan.py with the fused losses and sigmoid: the same step, fewer launches."""

from .. import gan
from . import kernels, losses


class GAN(gan.GAN):
    """tinygan.gan.GAN (same arguments) with the losses and D(x) computed by fused kernels."""

    discriminator_loss = staticmethod(losses.discriminator_loss)
    generator_loss = staticmethod(losses.generator_loss)
    sigmoid = staticmethod(kernels.sigmoid)
