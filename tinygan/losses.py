"""GAN losses on D's logits, each returning (loss, dloss/dlogits).

D(x) = sigmoid(l) for a logit l. Working on logits keeps every value finite:

    log D(x)      = log sigmoid(l)   = -softplus(-l)
    log(1 - D(x)) = log sigmoid(-l)  = -softplus(l)
    d softplus(l) / dl = sigmoid(l)

with softplus(l) = log(1 + exp(l)) computed as logaddexp(0, l), and sigmoid (layers.py)
from exp(-|l|): both finite and accurate to rounding for |l| up to float32's range.
Losses are 0-d backend arrays (no host synchronisation); gradients have the logits' shape.
"""

from .backend import array_module
from .errors import check_choice
from .layers import sigmoid

OBJECTIVES = ("nonsaturating", "minimax")


def softplus(l):
    """log(1 + exp(l)), elementwise, without overflow."""
    return array_module(l).logaddexp(0, l)


def discriminator_loss(real_logits, fake_logits):
    """D's loss, 0.5 * [CE(1, D(x)) + CE(0, D(G(z)))], averaged over each batch.

    L = 0.5 * mean softplus(-l_real) + 0.5 * mean softplus(l_fake)

    Returns (L, dL/dl_real, dL/dl_fake):
        dL/dl_real = -0.5 * sigmoid(-l_real) / N_real
        dL/dl_fake = +0.5 * sigmoid(l_fake) / N_fake
    """
    loss = 0.5 * softplus(-real_logits).mean() + 0.5 * softplus(fake_logits).mean()
    d_real = -0.5 * sigmoid(-real_logits) / real_logits.size
    d_fake = 0.5 * sigmoid(fake_logits) / fake_logits.size
    return loss, d_real, d_fake


def generator_loss(fake_logits, kind="nonsaturating"):
    """G's loss on D's logits for G(z), averaged over the batch. G minimises it.

    "nonsaturating" (what the paper trains with): L = -mean log D(G(z)) = mean softplus(-l),
        dL/dl = -sigmoid(-l) / N.
    "minimax" (the paper's V(D, G)):             L = mean log(1 - D(G(z))) = -mean softplus(l),
        dL/dl = -sigmoid(l) / N.
    Returns (L, dL/dl).
    """
    check_choice("generator objective", kind, OBJECTIVES)
    n = fake_logits.size
    if kind == "nonsaturating":
        return softplus(-fake_logits).mean(), -sigmoid(-fake_logits) / n
    return -softplus(fake_logits).mean(), -sigmoid(fake_logits) / n
