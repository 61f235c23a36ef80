"""GAN losses on D's logits, each returning (loss, dloss/dlogits).

D(x) = sigmoid(l) for a logit l. Working on logits keeps every value finite:

    log D(x)     = log sigmoid(l)     = -softplus(-l)
    log(1 - D(x)) = log sigmoid(-l)    = -softplus(l)
    d softplus(l) / dl = sigmoid(l)

with softplus(l) = log(1 + exp(l)) computed as logaddexp(0, l) and sigmoid(l) from
exp(-|l|), both finite and accurate to rounding for |l| up to float32's range.
Losses are 0-d backend arrays (no host synchronisation); gradients have the logits' shape.
"""

from .backend import array_module
from .errors import ConfigError

OBJECTIVES = ("nonsaturating", "minimax")


def softplus(xp, l):
    """log(1 + exp(l)), elementwise, without overflow."""
    return xp.logaddexp(0, l)


def sigmoid(xp, l):
    """1 / (1 + exp(-l)), elementwise, to full relative precision on both tails.

    With e = exp(-|l|) in (0, 1]: sigmoid(l) = 1 / (1 + e) for l >= 0 and e / (1 + e) for
    l < 0, so sigmoid(-20) = 2.06e-9 is exact, not 0 (the minimax gradient lives there).
    """
    e = xp.exp(-xp.abs(l))
    return xp.where(l >= 0, 1.0, e).astype(l.dtype) / (1 + e)


def discriminator_loss(real_logits, fake_logits):
    """D's loss, 0.5 * [CE(1, D(x)) + CE(0, D(G(z)))], averaged over each batch.

    L = 0.5 * mean softplus(-l_real) + 0.5 * mean softplus(l_fake)

    Returns (L, dL/dl_real, dL/dl_fake):
        dL/dl_real = -0.5 * sigmoid(-l_real) / N_real
        dL/dl_fake = +0.5 * sigmoid(l_fake) / N_fake
    """
    xp = array_module(real_logits)
    n_real, n_fake = real_logits.size, fake_logits.size
    loss = 0.5 * (softplus(xp, -real_logits).mean() + softplus(xp, fake_logits).mean())
    d_real = sigmoid(xp, -real_logits)
    d_real *= -0.5 / n_real
    d_fake = sigmoid(xp, fake_logits)
    d_fake *= 0.5 / n_fake
    return loss, d_real, d_fake


def generator_loss(fake_logits, kind="nonsaturating"):
    """G's loss on D's logits for G(z), averaged over the batch. G minimises it.

    "nonsaturating" (what the paper trains with): L = -mean log D(G(z)) = mean softplus(-l),
        dL/dl = -sigmoid(-l) / N.
    "minimax" (the paper's V(D, G)):             L = mean log(1 - D(G(z))) = -mean softplus(l),
        dL/dl = -sigmoid(l) / N.
    Returns (L, dL/dl).
    """
    xp = array_module(fake_logits)
    n = fake_logits.size
    if kind == "nonsaturating":
        loss = softplus(xp, -fake_logits).mean()
        grad = sigmoid(xp, -fake_logits)
    elif kind == "minimax":
        loss = -softplus(xp, fake_logits).mean()
        grad = sigmoid(xp, fake_logits)
    else:
        raise ConfigError(f"unknown generator objective {kind!r}: choose one of {', '.join(OBJECTIVES)}")
    grad *= -1.0 / n
    return loss, grad
