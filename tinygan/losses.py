"""GAN losses on D's logits, each returning (loss, dloss/dlogits).

D(x) = sigmoid(l) for a logit l. Working on logits keeps every value finite:

    log D(x)     = log sigmoid(l)     = -softplus(-l)
    log(1 - D(x)) = log sigmoid(-l)    = -softplus(l)
    d softplus(l) / dl = sigmoid(l)

with softplus(l) = log(1 + exp(l)) computed as logaddexp(0, l) and sigmoid(l) from
exp(-|l|), both finite and accurate to rounding for |l| up to float32's range.
Losses are 0-d backend arrays (no host synchronisation); gradients have the logits' shape.
Each loss's softplus terms and gradient come from one fused pass, kernels.logistic (its
plain formula: kernels.reference_logistic).
"""

from . import kernels
from .errors import ConfigError

OBJECTIVES = ("nonsaturating", "minimax")


def softplus(xp, l):
    """log(1 + exp(l)), elementwise, without overflow."""
    return xp.logaddexp(0, l)


def sigmoid(xp, l):
    """1 / (1 + exp(-l)), elementwise, to full relative precision on both tails.

    With e = exp(-|l|) in (0, 1]: sigmoid(l) = 1 / (1 + e) for l >= 0 and e / (1 + e) for
    l < 0, so sigmoid(-20) = 2.06e-9 is exact, not 0 (the minimax gradient lives there).
    (kernels.sigmoid: one pass; its formula is kernels.reference_sigmoid.)
    """
    return kernels.sigmoid(l)


def discriminator_loss(real_logits, fake_logits):
    """D's loss, 0.5 * [CE(1, D(x)) + CE(0, D(G(z)))], averaged over each batch.

    L = 0.5 * mean softplus(-l_real) + 0.5 * mean softplus(l_fake)

    Returns (L, dL/dl_real, dL/dl_fake):
        dL/dl_real = -0.5 * sigmoid(-l_real) / N_real
        dL/dl_fake = +0.5 * sigmoid(l_fake) / N_fake
    """
    sp_real, d_real = kernels.logistic(real_logits, -1.0, -0.5 / real_logits.size)
    sp_fake, d_fake = kernels.logistic(fake_logits, 1.0, 0.5 / fake_logits.size)
    loss = 0.5 * (sp_real.mean() + sp_fake.mean())
    return loss, d_real, d_fake


def generator_loss(fake_logits, kind="nonsaturating"):
    """G's loss on D's logits for G(z), averaged over the batch. G minimises it.

    "nonsaturating" (what the paper trains with): L = -mean log D(G(z)) = mean softplus(-l),
        dL/dl = -sigmoid(-l) / N.
    "minimax" (the paper's V(D, G)):             L = mean log(1 - D(G(z))) = -mean softplus(l),
        dL/dl = -sigmoid(l) / N.
    Returns (L, dL/dl).
    """
    n = fake_logits.size
    if kind == "nonsaturating":
        sp, grad = kernels.logistic(fake_logits, -1.0, -1.0 / n)
        return sp.mean(), grad
    if kind == "minimax":
        sp, grad = kernels.logistic(fake_logits, 1.0, -1.0 / n)
        return -sp.mean(), grad
    raise ConfigError(f"unknown generator objective {kind!r}: choose one of {', '.join(OBJECTIVES)}")
