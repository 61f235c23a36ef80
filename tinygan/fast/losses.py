"""The losses of tinygan/losses.py, each loss's softplus terms and gradient from one fused
pass (kernels.logistic): one kernel per loss on CuPy. Same signatures, same results."""

from ..errors import check_choice
from ..losses import OBJECTIVES
from . import kernels


def discriminator_loss(real_logits, fake_logits):
    """As losses.discriminator_loss: (L, dL/dl_real, dL/dl_fake)."""
    sp_real, d_real = kernels.logistic(real_logits, -1.0, -0.5 / real_logits.size)
    sp_fake, d_fake = kernels.logistic(fake_logits, 1.0, 0.5 / fake_logits.size)
    return 0.5 * (sp_real.mean() + sp_fake.mean()), d_real, d_fake


def generator_loss(fake_logits, kind="nonsaturating"):
    """As losses.generator_loss: (L, dL/dl)."""
    check_choice("generator objective", kind, OBJECTIVES)
    n = fake_logits.size
    if kind == "nonsaturating":
        sp, grad = kernels.logistic(fake_logits, -1.0, -1.0 / n)
        return sp.mean(), grad
    sp, grad = kernels.logistic(fake_logits, 1.0, -1.0 / n)
    return -sp.mean(), grad
