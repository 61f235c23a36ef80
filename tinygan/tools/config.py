"""A run's configuration and the builders that make the paper's models from it.

    cfg = TrainConfig.paper("cifar10", epochs=5)    # the paper's settings, overrides on top
    gan = build_gan(cfg, get_backend("numpy"))       # G, D, SGD with the lr decay and momentum ramp

:class:`TrainConfig` holds every setting of a run (saved in each checkpoint's meta, checked
by schema.train_config when read back); :func:`build_networks` and :func:`build_gan` make the
paper's G and D for its data set, on the fast path (the default) or the plain core;
:func:`small_model_threads` gives a small model one BLAS thread (from :func:`largest_gemm`).
"""

import dataclasses

from .. import fast as fastpath
from ..errors import check_choice, check_int, check_positive
from ..gan import check_settings
from ..optim import ExponentialDecay, MomentumRamp
from .threads import blas_threads, threads_for


DATASETS = ("mnist", "fashion-mnist", "cifar10")
IMAGE_SHAPES = {"mnist": (28, 28), "fashion-mnist": (28, 28), "cifar10": (3, 32, 32)}
# the paper's settings that differ from its MNIST run (cifar10_fully_connected.yaml)
PAPER_DEFAULTS = {"cifar10": {"lr": 0.025, "out": "runs/cifar10"}}


@dataclasses.dataclass
class TrainConfig:
    """Settings of a run; the defaults are the paper's MNIST run (README, "Train the paper's
    MNIST model"). ``TrainConfig.paper("cifar10", ...)`` gives the paper's CIFAR-10 run (lr 0.025)."""
    epochs: int = 100
    batch_size: int = 100
    objective: str = "nonsaturating"
    schedule: str = "simultaneous"
    k: int = 1
    lr: float = 0.1
    lr_decay: float = 1.000004
    min_lr: float = 1e-6
    momentum: float = 0.5
    final_momentum: float = 0.7
    momentum_start: int = 1
    momentum_saturate: int = 250
    noise_dim: int = 100
    seed: int = 0
    backend: str = "numpy"
    out: str = "runs/mnist"
    log_every: int = 50
    n_fixed_samples: int = 100
    dataset: str = "mnist"
    split: str = "train"
    limit: int = 0
    max_steps: int = 0          # stop after this many steps in total (0: no limit)
    classifier: str = ""        # a classifier checkpoint: log sample-quality metrics (metrics.py)
    metrics_every: int = 1      # ... every this many epochs
    data_dir: str = ""          # where the images came from ("": the default search order)
    metrics_samples: int = 2000
    hidden: int = 0             # G's hidden width; 0: the paper's (1200 MNIST, 8000 CIFAR-10)
    units: int = 0              # D's maxout units; 0: the paper's (240 MNIST, 1600 CIFAR-10)

    @classmethod
    def paper(cls, dataset="mnist", **overrides):
        """The paper's settings for ``dataset``, with ``overrides`` on top."""
        return cls(**{"dataset": dataset, **PAPER_DEFAULTS.get(dataset, {}), **overrides})

    def validate(self):
        """Raise ConfigError naming the first bad setting."""
        for name in ("epochs", "batch_size", "k", "noise_dim", "log_every", "n_fixed_samples",
                     "metrics_every", "metrics_samples"):
            check_int(name.replace("_", "-"), getattr(self, name))
        for name in ("limit", "max_steps", "seed", "hidden", "units"):
            check_int(name.replace("_", "-"), getattr(self, name), minimum=0)
        for name in ("lr", "min_lr"):
            check_positive(name.replace("_", "-"), getattr(self, name))
        check_choice("dataset", self.dataset, DATASETS)
        check_settings(self.objective, self.schedule, self.k)
        return self


def build_networks(cfg, backend, pixel_mean=None, fast=True):
    """The paper's G and D for ``cfg.dataset`` (CIFAR-10: the fully-connected model of
    Figure 2c; else the MNIST model, its output bias from ``pixel_mean``); the fast path's
    networks, or the plain core's with ``fast=False``."""
    g_size = {"hidden": cfg.hidden} if cfg.hidden else {}
    d_size = {"units": cfg.units} if cfg.units else {}
    if cfg.dataset == "cifar10":
        G = fastpath.paper_cifar_generator(noise_dim=cfg.noise_dim, backend=backend, fast=fast,
                                           **g_size)
        D = fastpath.paper_cifar_discriminator(backend=backend, fast=fast, **d_size)
    else:
        G = fastpath.paper_generator(noise_dim=cfg.noise_dim, pixel_mean=pixel_mean, backend=backend,
                                     fast=fast, **g_size)
        D = fastpath.paper_discriminator(backend=backend, fast=fast, **d_size)
    return G, D


def build_gan(cfg, backend, pixel_mean=None, fast=True):
    """The paper's G and D with SGD (lr decay with a floor, momentum ramp) on ``backend``:
    the fast path (the default) or the plain core (``fast=False``)."""
    G, D = build_networks(cfg, backend, pixel_mean, fast)
    SGD, _ = fastpath.optimizer_classes(fast)
    GAN = fastpath.gan_class(fast)
    ramp = MomentumRamp(cfg.momentum, cfg.final_momentum, cfg.momentum_start, cfg.momentum_saturate)

    def sgd(net):
        return SGD(net, lr=cfg.lr, momentum=ramp,
                   decay=ExponentialDecay(cfg.lr_decay, cfg.min_lr))
    return GAN(G, D, sgd(G), sgd(D), noise_dim=cfg.noise_dim, objective=cfg.objective,
               schedule=cfg.schedule, k=cfg.k)


def largest_gemm(cfg):
    """Multiply-adds of the largest matrix product of one training step of ``cfg``'s model."""
    cifar = cfg.dataset == "cifar10"
    hidden = cfg.hidden or (8000 if cifar else 1200)
    units = cfg.units or (1600 if cifar else 240)
    pixels = 3072 if cifar else 784
    return 2 * cfg.batch_size * max(hidden * hidden, hidden * pixels, pixels * units * 5,
                                    units * units * 5)


def small_model_threads(cfg, backend):
    """A context: one BLAS thread for a small model on NumPy (tools/threads.py), else nothing."""
    return blas_threads(threads_for(largest_gemm(cfg)) if backend.name == "numpy" else None)
