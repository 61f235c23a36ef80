"""A run's directory: everything a run writes there (:class:`RunDirectory`) and how a run is
read back from it (:func:`load_run`, then :func:`sample_images` of its G).

What a run leaves in its directory (``TrainConfig.out``):
    metrics.csv              one row per epoch: losses, D outputs, gradient norms, D's
                             saturation, lr, momentum, seconds
    intervals.csv            one row per logging interval: the same means over the interval
    gradients.png            each layer's weight-gradient norm in G and D, and ||dL_G/dx||
    saturation.png           D(G(z)) < 0.01 and both objectives' gradients at G's output
    samples/epoch_NNNN.png   G on a fixed noise batch, after each epoch
    curves.png               losses and D outputs against epoch
    nearest_neighbours.png   final samples, each beside its nearest training image (Figure 2)
    checkpoint.npz/.json     parameters, optimizer state, step, epoch, rng state, config
    checkpoint.prev.*        the checkpoint before it (kept by checkpoint.py for crash safety)
"""

from pathlib import Path

import numpy as np

from ..backend import get_backend
from ..errors import CheckpointError, ConfigError
from .checkpoint import checkpoint_path, load_checkpoint, remove_leftovers, save_checkpoint
from .config import build_gan
from .gradflow import save_gradient_flow, save_saturation
from .plot import append_history, read_history, save_loss_curves, save_nearest_neighbour_grid, save_sample_grid
from .runlock import lock_directory
from .schema import load_gan_arrays, run_validator, train_config


def load_run(path, backend=None):
    """A finished or interrupted run: ``(gan, cfg, meta)`` from a run directory or any form of
    its checkpoint path. ``gan`` is the paper's GAN on ``backend`` (default: the run's
    backend setting) with G, D and the optimizers as saved; ``cfg`` the run's TrainConfig;
    ``meta`` the checkpoint's meta (step, epoch, ...). A checkpoint holding G alone loads too
    (D and the optimizers then keep their initial state)."""
    arrays, meta = load_checkpoint(checkpoint_path(path), validate=run_validator(complete=False))
    cfg = train_config(meta["config"])
    backend = backend or get_backend(cfg.backend, seed=cfg.seed)
    gan = build_gan(cfg, backend, pixel_mean=None)       # every parameter comes from the file
    try:
        load_gan_arrays(gan, arrays, generator_only=True)
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the paper's GAN: {exc}") from None
    return gan, cfg, meta


def sample_images(gan, n, batch=1000):
    """n samples of G from its noise prior, as host float32 (n, D_x), ``batch`` at a time."""
    be = gan.backend
    return np.concatenate([be.to_numpy(gan.sample(min(batch, n - i))) for i in range(0, n, batch)])


class RunDirectory:
    """A run's directory and everything written in it: the checkpoint, the metrics log, the
    per-epoch sample grids and curves, the final nearest-neighbour figure."""

    def __init__(self, out):
        self.out = Path(out)
        lock_directory(self.out)            # one writer per directory, for the process's life
        remove_leftovers(self.checkpoint)   # temp files of a save that was killed mid-way
        try:
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
            probe = self.out / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write to output directory {self.out}: {exc.strerror or exc}") from None

    @property
    def checkpoint(self):
        return self.out / "checkpoint"

    @property
    def metrics(self):
        return self.out / "metrics.csv"

    @property
    def intervals(self):
        return self.out / "intervals.csv"

    def log_interval(self, row):
        """Append one logging interval's row to intervals.csv."""
        append_history(self.intervals, row)

    def gradient_pictures(self, objective, title):
        """gradients.png and saturation.png from the logs so far."""
        epochs = read_history(self.metrics)
        intervals = read_history(self.intervals) if self.intervals.exists() else []
        save_gradient_flow(epochs, self.out / "gradients.png", intervals,
                           title=f"{title}: gradient norms (lines: logging intervals, dots: epochs)")
        save_saturation(intervals or epochs, self.out / "saturation.png", objective,
                        title=f"{title}: D's saturation on G's samples (fixed noise, dropout off)")

    def save_checkpoint(self, arrays, meta):
        save_checkpoint(self.checkpoint, arrays, meta)

    def log(self, row):
        """Append one epoch's row to metrics.csv."""
        append_history(self.metrics, row)

    def epoch_pictures(self, epoch, samples, title, shape=(28, 28)):
        """G's samples on the fixed noise (``shape``: one image's (h, w) or (3, h, w)), and the
        curves so far."""
        colour = " (each image min-max scaled)" if len(shape) == 3 else ""
        save_sample_grid(samples, self.out / "samples" / f"epoch_{epoch:04d}.png", shape=shape,
                         title=f"epoch {epoch}{colour}")
        save_loss_curves(read_history(self.metrics), self.out / "curves.png", title=title)

    def nearest_neighbours(self, samples, neighbours, shape=(28, 28), note=""):
        """Figure 2, labelled: in each pair the left image is G's sample, the right one (in a
        coloured frame) its nearest training image."""
        title = ("left: G's sample, right (framed): its nearest training image"
                 + (f"; {note}" if note else ""))
        save_nearest_neighbour_grid(samples, neighbours, self.out / "nearest_neighbours.png",
                                    ncol=6, shape=shape, title=title)
