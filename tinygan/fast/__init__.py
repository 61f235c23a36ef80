"""The fast path: the plain core's maths, fused and on flat buffers (docs/design.md).

    kernels   fused elementwise kernels (CUDA body + NumPy twin), ``matmul``
    layers    FastLinear, FastMaxout, ...: the plain layers' fast forms
    network   Sequential on one flat parameter / gradient vector; the builders with ``fast=``
    losses    the losses from one fused pass each
    optim     SGD and Adam on the flat vectors, with the CUDA graph's seam
    gan       GAN with the fused losses

Choosing a path: the builders here take ``fast=True`` (the default) or ``fast=False`` (the
plain core's network); ``optimizer_classes(fast)`` and ``gan_class(fast)`` give the matching
optimizer and GAN classes. The plain core never imports this package.
"""

from .. import gan as _plain_gan
from .. import optim as _plain_optim
from .gan import GAN
from .network import (Sequential, mlp, paper_cifar_discriminator, paper_cifar_generator,
                      paper_discriminator, paper_generator, to_fast)
from .optim import SGD, Adam


def optimizer_classes(fast=True):
    """(SGD, Adam) of the fast path, or of the plain core (``fast=False``)."""
    return (SGD, Adam) if fast else (_plain_optim.SGD, _plain_optim.Adam)


def gan_class(fast=True):
    """The GAN class of the fast path, or of the plain core (``fast=False``)."""
    return GAN if fast else _plain_gan.GAN


__all__ = ["GAN", "Sequential", "SGD", "Adam", "mlp", "paper_generator", "paper_discriminator",
           "paper_cifar_generator", "paper_cifar_discriminator", "to_fast", "optimizer_classes",
           "gan_class"]
