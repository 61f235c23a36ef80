"""The training loop: epochs of minibatches, progress, logs, pictures, checkpoints, resume.

    cfg = TrainConfig(epochs=5, out="runs/mnist")  # tools/config.py
    trainer = Trainer(cfg, train_images)          # host float32 (N, 784) in [0, 1]
    # CIFAR-10: TrainConfig.paper("cifar10", ...) and load_training_images("cifar10", "train")
    trainer.run()                                 # or Trainer.resume(cfg, images).run()

:class:`Trainer` is the loop (epochs, steps, resume, Ctrl-C). Around it, each in its module:
the settings and the builders (config.py: TrainConfig, build_gan), the run's directory and
every file written there (rundir.py: RunDirectory, load_run; its list of files), the
checkpoint's schema (schema.py), what a person watching sees (progress.py) and Ctrl-C
(signals.py).

The loop copies device values to the host once per logging interval (``log_every`` steps)
and at the end of each epoch, never inside a training step.

Gradient flow (tools/gradflow.py): after every step the norms of each weight gradient of G
and D (and ||dL_G/dx||, from ``GAN.grad_x``) are added up on the device, as 0-d
arrays beside the losses; each interval's and each epoch's row holds their mean over its
steps. D's saturation is measured at the end of each interval (not averaged: a measurement
of D and G as they are then, on the fixed noise batch, dropout off). All of it travels in
the interval's one transfer.
"""

import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..backend import get_backend
from ..errors import BackendError, CheckpointError, ConfigError, TrainingDiverged
from .checkpoint import check_compatible, checkpoint_exists, load_checkpoint
from .classifier import load_classifier
from .cli import printable
from .config import IMAGE_SHAPES, build_gan
from .evaluate import nearest_neighbours
from .gradflow import RATIO_KEY, SATURATION_KEYS, gradient_ratio, saturation, weight_gradient_norms
from .progress import ProgressReporter
from .rundir import RunDirectory
from .schema import gan_arrays, load_gan_arrays, run_validator
from .signals import DeferredInterrupt


def all_finite(xp, vectors, slab=1 << 22):
    """Whether every element of the flat ``vectors`` is finite, checked slab by slab (no bool
    array as large as the parameters: 89 MB for CIFAR-10's G); one host sync in all."""
    ok = True
    for a in vectors:
        for i in range(0, a.size, slab):
            ok = ok & xp.isfinite(a[i:i + slab]).all()
    return bool(ok)


class Trainer:
    """Runs a GAN over host images (N, D_x) float32 in [0, 1] according to a TrainConfig."""

    def __init__(self, cfg, images, backend=None, progress=True, cuda_graph=False):
        self.cfg = cfg.validate()
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 2 or len(images) == 0:
            raise ConfigError(f"training images must be a non-empty (N, D) array, got shape {images.shape}")
        if not np.isfinite(images).all():
            raise ConfigError("training images must be finite")
        if cfg.dataset != "cifar10" and (images.min() < 0 or images.max() > 1):
            raise ConfigError("training images must be in [0, 1]")    # G's output is a sigmoid
        self.m = cfg.batch_size * (cfg.k if cfg.schedule == "alternating" else 1)
        if len(images) < self.m:
            raise ConfigError(f"{len(images)} training images are fewer than one batch of {self.m}")
        self.images = images
        self.be = backend or get_backend(cfg.backend, seed=cfg.seed)
        if cuda_graph and self.be.cuda_graph_problem():
            raise BackendError(f"--cuda-graph: {self.be.cuda_graph_problem()}")
        self.cuda_graph = bool(cuda_graph)   # replay the step as a CUDA graph (tools/cuda_graph.py)
        self._graphed = None                 # the GraphedStep, captured at the first step
        self.data = self.be.asarray(images)              # on the device once, indexed per batch
        self.gan = build_gan(cfg, self.be, None if cfg.dataset == "cifar10" else images.mean(axis=0))
        self.steps_per_epoch = len(images) // self.m
        self.out = Path(cfg.out)
        self.reporter = ProgressReporter(progress)
        self.epoch = 0                                   # epochs completed
        self._saved_step = None                          # step of the last checkpoint written
        self._interrupt = None                           # the DeferredInterrupt while running
        self._order = None                               # this epoch's batch order, on the device
        self.interrupted = False
        self.fixed_noise = self.gan.sample_noise(cfg.n_fixed_samples)
        self.run_dir = RunDirectory(self.out)
        self.classifier = None
        if cfg.classifier:
            self.classifier, _ = load_classifier(cfg.classifier, backend=self.be)

    @property
    def step(self):
        """Training steps completed: the GAN's own count (one counter)."""
        return self.gan.step_count

    @property
    def checkpoint_path(self):
        return self.run_dir.checkpoint

    def state_arrays(self):
        """Every array a resume needs, as host numpy arrays."""
        arrays = gan_arrays(self.gan, self.be.to_numpy)
        arrays["fixed_noise"] = self.be.to_numpy(self.fixed_noise)
        return arrays

    def save(self):
        """Write a checkpoint, refusing to overwrite the last good one with nan or inf."""
        g, xp = self.gan, self.be.xp
        if not all_finite(xp, (g.G.param_vector, g.D.param_vector)):
            raise TrainingDiverged(f"parameters hold nan or inf at step {self.step}; "
                                   + self._kept())
        meta = {"config": dataclasses.asdict(self.cfg), "step": self.step, "epoch": self.epoch,
                "backend": self.be.name, "rng_state": self.be.rng_state(),
                "tinygan_version": __version__}
        self.run_dir.save_checkpoint(self.state_arrays(), meta)
        self._saved_step = self.step

    @classmethod
    def resume(cls, cfg, images, backend=None, progress=True, path=None, cuda_graph=False):
        """A Trainer restored from ``path`` (default: ``cfg.out``/checkpoint), ready to go on.

        ``cfg.epochs`` and ``cfg.max_steps`` may differ from the saved run (to train longer);
        the settings that define the model and its data must match.
        """
        path = Path(path) if path else Path(cfg.out) / "checkpoint"
        if not checkpoint_exists(path):
            raise CheckpointError(f"no checkpoint to resume at {path}.npz: start without --resume")
        arrays, meta = load_checkpoint(path, validate=run_validator(complete=True))
        saved = meta["config"]
        for key in ("batch_size", "objective", "schedule", "k", "noise_dim", "dataset", "split",
                    "limit", "lr", "lr_decay", "min_lr", "seed", "hidden", "units"):
            if key in saved and saved[key] != getattr(cfg, key):
                raise CheckpointError(f"checkpoint {path} was made with {key}={saved[key]!r}, "
                                      f"this run asks for {getattr(cfg, key)!r}")
        trainer = cls(cfg, images, backend=backend, progress=progress, cuda_graph=cuda_graph)
        trainer.load_state(arrays, meta)
        return trainer

    def load_state(self, arrays, meta):
        g, be = self.gan, self.be
        expected = {k: tuple(v.shape) for k, v in self.state_arrays().items()}
        check_compatible(arrays, expected)
        load_gan_arrays(g, arrays)
        self.fixed_noise = be.asarray(arrays["fixed_noise"])
        g.step_count, self.epoch = int(meta["step"]), int(meta["epoch"])
        self._saved_step = self.step                     # that checkpoint is on disk already
        if be.name == "numpy" and meta.get("rng_state") and meta.get("backend") == "numpy":
            be.set_rng_state(meta["rng_state"])
        else:                       # CuPy's generator has no state to restore: reseed from the step
            be.reseed(self.step)

    # --- the loop ----------------------------------------------------------------------------
    def _batch_order(self, epoch):
        """The shuffle of epoch ``epoch``: a permutation fixed by (seed, epoch), so a resumed
        run visits the same batches."""
        return np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.images))

    def run(self):
        """Train until cfg.epochs (or cfg.max_steps). Returns the per-epoch log rows of this call.

        Ctrl-C (SIGINT) or SIGTERM is honoured between steps, never inside one: the run saves a
        checkpoint that ``--resume`` continues from and returns with ``self.interrupted``
        set, after drawing the nearest-neighbour figure of the run so far. One that comes during
        the final save lets it finish (and skips the figure); one during the figure lets that
        finish. A second Ctrl-C stops at once
        (the previous checkpoint stays intact; a half-written one leaves no temp files).
        """
        rows = []
        # nan and inf are caught explicitly once per logging interval (_check_finite) and before
        # every save, so NumPy's per-operation floating-point warnings would only add noise.
        # The deferred interrupt covers everything to the end: the final save and the figure.
        with DeferredInterrupt() as interrupt, np.errstate(all="ignore"):
            self._interrupt = interrupt
            try:
                while self.epoch < self.cfg.epochs and not self._done():
                    row = self._run_epoch()
                    if row is None:                   # stopped mid-epoch (max_steps or Ctrl-C)
                        break
                    rows.append(row)
            finally:
                self.reporter.close()
            stopped_early = interrupt.requested     # Ctrl-C while training
            self.interrupted = stopped_early
            if self._saved_step != self.step:      # stopped mid-epoch: each epoch saves itself
                self.save()
            skipped = interrupt.requested and not stopped_early   # a signal during that save
            if not skipped:
                self.finish()                      # Figure 2 of the run so far, interrupted or not
            self._interrupt = None
        self.interrupted = interrupt.requested
        if stopped_early:
            print(printable(f"\ninterrupted at step {self.step}: checkpoint saved to "
                            f"{self.checkpoint_path}.npz; continue with --resume", sys.stdout),
                  flush=True)
        elif skipped:
            print(printable(f"\ninterrupted during the final save at step {self.step}: checkpoint "
                            f"saved to {self.checkpoint_path}.npz; the nearest-neighbour figure "
                            "is skipped (--resume draws it)", sys.stdout), flush=True)
        elif self.interrupted:
            print("\ninterrupted while drawing the nearest-neighbour figure: it is finished, "
                  "and so is the run", flush=True)
        return rows

    def _done(self):
        if self._interrupt is not None and self._interrupt.requested:
            return True
        return bool(self.cfg.max_steps) and self.step >= self.cfg.max_steps

    def _run_epoch(self):
        """One epoch of the paper's Algorithm 1: for each minibatch, the training step; at the
        end of each logging interval, one look at the run; at the end of the epoch, its log
        row, its pictures and a checkpoint. Returns the row, or None if stopped mid-epoch."""
        epoch, first = self._start_epoch()
        tally = _EpochTally()
        for i in range(first, self.steps_per_epoch):
            if self._done():                          # max_steps reached, or Ctrl-C
                self.reporter.close()
                return None
            tally.add(self._step(self._batch(i)))
            if tally.interval_steps == self.cfg.log_every or i == self.steps_per_epoch - 1:
                self._end_interval(tally, epoch, i)
        self.reporter.close()
        self.epoch = epoch
        row = self._epoch_row(tally)
        self.run_dir.log(row)
        self._epoch_pictures()
        self.save()
        self.reporter.epoch_line(row, self.cfg.epochs, self._eta(row["seconds"], tally.count))
        return row

    # --- what _run_epoch calls, in its order ---------------------------------------------------
    def _start_epoch(self):
        """Set the momentum ramp's epoch and this epoch's batch order; start the progress bar.
        Returns (epoch, first step index) (first > 0 when resuming mid-epoch)."""
        epoch = self.epoch + 1                       # 1-based, as the momentum ramp counts
        self.gan.set_epoch(epoch)
        self._order = self.be.asarray(self._batch_order(epoch), dtype="int64")
        first = self.step - self.epoch * self.steps_per_epoch
        self.reporter.start_epoch(epoch, self.cfg.epochs, self.steps_per_epoch, first)
        return epoch, first

    def _batch(self, i):
        """The i-th minibatch of this epoch's order, on the device."""
        return self.data[self._order[i * self.m:(i + 1) * self.m]]

    def _step(self, real):
        """One training step and its statistics: losses, D's outputs and each weight
        gradient's norm, as 0-d device arrays (no sync)."""
        stats = self._train_step(real)
        stats.update(weight_gradient_norms(self.gan))
        return stats

    def _end_interval(self, tally, epoch, i):
        """The end of a logging interval (after step ``i`` of ``epoch``): D's saturation
        measured now, the running means read in one transfer, checked for divergence, logged
        (intervals.csv, at the fractional epoch reached) and shown."""
        point = saturation(self.gan, self.fixed_noise)              # measured now, not averaged
        host = self._means(tally.sums, tally.count, point)          # one sync per interval
        self._check_finite(host)
        self._log_interval(host, tally.previous, tally.count, tally.interval_steps,
                           epoch - 1 + (i + 1) / self.steps_per_epoch)
        steps, samples_per_s = tally.end_interval(host, self.m)
        self.reporter.interval(host, steps, samples_per_s)

    def _epoch_row(self, tally):
        """metrics.csv's row of the epoch just ended: the last interval's running means (the
        epoch's means), lr, momentum, time, speed, and the sample quality when measured."""
        seconds = tally.seconds()
        row = {"epoch": self.epoch, "step": self.step, **tally.host,
               "lr": self.gan.d_opt.current_lr, "momentum": self.gan.d_opt.momentum,
               "seconds": seconds, "samples_per_s": tally.count * self.m / max(seconds, 1e-9)}
        row.update(self._sample_quality(self.epoch))
        return row

    def _epoch_pictures(self):
        """G's samples on the fixed noise, the curves, and the gradient-flow figures."""
        cfg = self.cfg
        samples = self.be.to_numpy(self.gan.sample(len(self.fixed_noise), z=self.fixed_noise))
        self.run_dir.epoch_pictures(self.epoch, samples,
                                    f"{cfg.dataset} ({cfg.objective}, {cfg.schedule})",
                                    shape=IMAGE_SHAPES[cfg.dataset])
        self.run_dir.gradient_pictures(cfg.objective, f"{cfg.dataset} ({cfg.objective})")

    def _train_step(self, real):
        """gan.train_step(real), or its CUDA-graph replay with ``cuda_graph`` (captured at the
        first step, after any resume has reseeded the generator)."""
        if not self.cuda_graph:
            return self.gan.train_step(real)
        if self._graphed is None:
            from .cuda_graph import GraphedStep
            self._graphed = GraphedStep(self.gan, real.shape)
        return self._graphed(real)

    def _eta(self, seconds, count):
        """Seconds left, from this epoch's speed: to cfg.epochs, or to cfg.max_steps if sooner."""
        left = (self.cfg.epochs - self.epoch) * self.steps_per_epoch
        if self.cfg.max_steps:
            left = min(left, max(self.cfg.max_steps - self.step, 0))
        return left * seconds / max(count, 1)

    def _means(self, sums, count, point=None):
        """{name: running sum / count} on the host, with ``point``'s values as they are (D's
        saturation, :func:`gradflow.saturation`) and their ratio, read in one transfer (one
        synchronisation)."""
        point = point or {}
        keys = list(sums) + list(point)
        arrays = [sums[k] for k in sums] + [point[k] for k in point]
        values = self.be.to_numpy(self.be.xp.stack(arrays))
        host = {k: float(v) / (count if k in sums else 1) for k, v in zip(keys, values.tolist())}
        if point:
            host[RATIO_KEY] = gradient_ratio(host)
        return host

    def _log_interval(self, host, previous, count, steps, epoch):
        """intervals.csv: the means over this interval's ``steps`` steps alone (``host`` holds
        running means over the epoch's ``count`` steps so far, ``previous`` the last interval's
        (host, count) or None), D's saturation as measured at its end."""
        row = {"epoch": epoch, "step": self.step}
        for k, v in host.items():
            if previous is not None and k in previous[0] and k not in _POINT_KEYS:
                v = (v * count - previous[0][k] * previous[1]) / steps
            row[k] = v
        self.run_dir.log_interval(row)

    def _sample_quality(self, epoch):
        """Classes covered, Inception-style score and Frechet distance of G's samples against
        the training images, through the classifier (every ``metrics_every`` epochs; nan between)."""
        if self.classifier is None:
            return {}
        keys = ("classes_covered", "inception_score", "frechet_distance")
        if epoch % self.cfg.metrics_every:
            return {k: math.nan for k in keys}
        from .metrics import sample_quality
        n = min(self.cfg.metrics_samples, len(self.images))
        q = sample_quality(self.gan.sample(n), self.images[:n], self.classifier)
        return {k: float(q[k]) for k in keys}

    def _check_finite(self, host):
        """Divergence: a loss or a gradient norm that is nan or inf (the parameters are checked
        before every save). Diagnostics (D's saturation, the two objectives' gradients at G's
        output and their ratio) may be nan or inf in a healthy run: they are logged as such."""
        bad = {k: v for k, v in host.items() if k not in _POINT_KEYS and not math.isfinite(v)}
        if bad:
            raise TrainingDiverged(f"training diverged at step {self.step}: "
                                   + ", ".join(f"{k}={v}" for k, v in bad.items())
                                   + "; " + self._kept())

    def _kept(self):
        """What is on disk after a divergence, truly."""
        if self._saved_step is None and not checkpoint_exists(self.checkpoint_path):
            return f"no checkpoint was saved yet (nothing in {self.out} to resume from)"
        return f"the last good checkpoint in {self.out} is kept"

    def finish(self, n=36):
        """The paper's Figure 2: samples beside their nearest training images."""
        samples = self.gan.sample(n, z=self.fixed_noise[:n])
        idx, _ = nearest_neighbours(samples, self.data, backend=self.be)
        note = f"epoch {self.epoch}, step {self.step}" + (" (interrupted)" if self.interrupted else "")
        self.run_dir.nearest_neighbours(self.be.to_numpy(samples),
                                        self.images[self.be.to_numpy(idx)],
                                        shape=IMAGE_SHAPES[self.cfg.dataset], note=note)


class _EpochTally:
    """An epoch's bookkeeping: the running sums of the step statistics (device arrays), the
    steps counted, the current logging interval's steps and start time, the last interval's
    host means (``host``) and the one before (``previous``: (host, count), for the interval's
    own means)."""

    def __init__(self):
        self.start = self.interval_start = time.perf_counter()
        self.sums, self.count, self.interval_steps = None, 0, 0
        self.host, self.previous = None, None

    def add(self, stats):
        self.sums = dict(stats) if self.sums is None else {k: self.sums[k] + v
                                                            for k, v in stats.items()}
        self.count += 1
        self.interval_steps += 1

    def end_interval(self, host, batch):
        """Close the interval whose running means are ``host``: returns (its steps, its
        samples per second) and starts the next one."""
        now = time.perf_counter()
        steps = self.interval_steps
        speed = steps * batch / max(now - self.interval_start, 1e-9)
        self.host, self.previous = host, (host, self.count)
        self.interval_start, self.interval_steps = now, 0
        return steps, speed

    def seconds(self):
        return time.perf_counter() - self.start


_POINT_KEYS = frozenset(SATURATION_KEYS + (RATIO_KEY,))
"""Values measured at an interval's end, not averaged over its steps."""


def load_training_images(dataset, split="train", data_dir=None, limit=0, progress=True,
                         download=None):
    """Host float32 (N, D) images of ``dataset``'s ``split`` (the first ``limit`` when > 0):
    MNIST / Fashion-MNIST in [0, 1] (data.load_mnist), CIFAR-10 globally contrast-normalised
    with scale 55 (cifar.load_cifar10). ``download``: as data.load_mnist's."""
    if dataset == "cifar10":
        from .cifar import load_cifar10
        images, _ = load_cifar10(split, data_dir=data_dir, progress=progress, download=download)
    else:
        from .data import load_mnist
        images, _ = load_mnist(dataset, split, data_dir=data_dir, progress=progress,
                                download=download)
    if limit:
        if limit > len(images):
            raise ConfigError(f"--limit {limit} is larger than the {len(images)} images of "
                              f"the {dataset} {split} split")
        images = images[:limit].copy()     # not a view holding the whole split
    return images
