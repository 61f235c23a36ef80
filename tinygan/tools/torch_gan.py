"""The paper's MNIST GAN and tinygan's training step, written in PyTorch eager (the peer).
(``g_acts=("sigmoid", None)`` gives the CIFAR-10 generator: ReLU, sigmoid, linear output.)

Same model (G 100-1200-1200-784 ReLU/ReLU/sigmoid; D dropout 0.8 -> maxout 240x5 -> dropout 0.5
-> maxout 240x5 -> dropout 0.5 -> linear 1, on logits), same losses, same simultaneous update
(both gradients from one batch and one set of samples, real and fake through D in one pass),
same SGD with classical momentum (v <- mu v - lr g; p <- p + v) and the same schedules, so
`benchmarks/run.py` compares like with like. Written the way a careful PyTorch user would:
autograd for the gradients, ``torch.autograd.grad`` restricted to each net's parameters,
foreach ops for the update.
"""

import math

import torch
import torch.nn.functional as F


class TorchGAN:
    """Parameters come from tinygan networks (host arrays, W of shape (in, out))."""

    def __init__(self, g_params, d_params, device="cpu", lr=0.1, decay=1.000004, min_lr=1e-6,
                 momentum=0.5, keep=(0.8, 0.5, 0.5), objective="nonsaturating",
                 g_acts=("relu", "sigmoid")):
        def tensors(arrays):
            return [torch.tensor(a, device=device, requires_grad=True) for a in arrays]
        self.g = tensors(g_params)              # W0, b0, W2, b2, W4, b4
        self.d = tensors(d_params)              # W1, b1, W3, b3, W5, b5
        self.vg = [torch.zeros_like(p) for p in self.g]
        self.vd = [torch.zeros_like(p) for p in self.d]
        self.device, self.keep, self.objective = device, keep, objective
        self.lr0, self.decay, self.min_lr, self.momentum = lr, decay, min_lr, momentum
        self.t = 0
        self.pieces, self.units = 5, self.d[0].shape[1] // 5
        acts = {"relu": torch.relu, "sigmoid": torch.sigmoid, None: lambda h: h}
        self.g_mid, self.g_out = acts[g_acts[0]], acts[g_acts[1]]     # G's 2nd hidden, output

    def generator(self, z):
        W0, b0, W2, b2, W4, b4 = self.g
        h = torch.relu(torch.addmm(b0, z, W0))
        h = self.g_mid(torch.addmm(b2, h, W2))
        return self.g_out(torch.addmm(b4, h, W4))

    def _dropout(self, x, keep, mask):
        if mask is not None:
            return x * mask
        return F.dropout(x, p=1 - keep, training=True)

    def _maxout(self, x, W, b):
        z = torch.addmm(b, x, W)
        return z.view(x.shape[0], self.pieces, self.units).amax(dim=1)

    def discriminator(self, x, masks=None):
        W1, b1, W3, b3, W5, b5 = self.d
        masks = masks or (None, None, None)
        h = self._maxout(self._dropout(x, self.keep[0], masks[0]), W1, b1)
        h = self._maxout(self._dropout(h, self.keep[1], masks[1]), W3, b3)
        return torch.addmm(b5, self._dropout(h, self.keep[2], masks[2]), W5)

    def train_step(self, real, z=None, masks=None):
        """One simultaneous step; returns (d_loss, g_loss, mean D(x), mean D(G(z))) tensors."""
        m = real.shape[0]
        if z is None:
            z = torch.rand(m, self.g[0].shape[0], device=self.device) * (2 * math.sqrt(3)) - math.sqrt(3)
        fake = self.generator(z)
        logits = self.discriminator(torch.cat([real, fake]), masks)
        l_real, l_fake = logits[:m], logits[m:]
        d_loss = 0.5 * (F.softplus(-l_real).mean() + F.softplus(l_fake).mean())
        if self.objective == "nonsaturating":
            g_loss = F.softplus(-l_fake).mean()
        else:
            g_loss = -F.softplus(l_fake).mean()
        d_grads = torch.autograd.grad(d_loss, self.d, retain_graph=True)
        g_grads = torch.autograd.grad(g_loss, self.g)
        lr = max(self.lr0 / self.decay ** self.t, self.min_lr)
        with torch.no_grad():
            for params, vel, grads in ((self.d, self.vd, d_grads), (self.g, self.vg, g_grads)):
                torch._foreach_mul_(vel, self.momentum)
                torch._foreach_add_(vel, grads, alpha=-lr)
                torch._foreach_add_(params, vel)
        self.t += 1
        return (d_loss.detach(), g_loss.detach(), torch.sigmoid(l_real).mean().detach(),
                torch.sigmoid(l_fake).mean().detach())
