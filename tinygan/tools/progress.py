"""What a person watching a run sees: a progress bar or plain lines, one line per epoch."""

import math
import sys
import time


class ProgressReporter:
    """What a person watching the run sees. On a terminal: a progress bar per epoch (tqdm) with
    the losses and the speed at each logging interval. Elsewhere (a log file, a pipe, a batch
    job): a plain line at most every ``every_s`` seconds instead of tqdm's carriage returns.
    Always one line per epoch, ``epoch 3/100: ...`` with the time left. ``enabled=False``
    (--no-progress): no bar; the plain lines instead, on a terminal too."""

    def __init__(self, enabled=True, tty=None, every_s=30.0):
        self.enabled = enabled
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.every_s = every_s
        self.bar = None
        self._epoch = self._epochs = self._total = self._done = 0
        self._last_line = 0.0

    def start_epoch(self, epoch, epochs, total, done=0):
        self.close()
        self._epoch, self._epochs, self._total, self._done = epoch, epochs, total, done
        self._last_line = time.perf_counter()
        if self.enabled and self.tty:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                return
            self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", initial=done,
                            unit="step", leave=False, dynamic_ncols=True, mininterval=0.5)

    def interval(self, host, steps, samples_per_s):
        """host: the interval's mean stats (floats); ``steps`` steps were taken in it."""
        self._done += steps
        if self.bar is not None:
            self.bar.set_postfix(d_loss=f"{host['d_loss']:.3f}", g_loss=f"{host['g_loss']:.3f}",
                                 Dx=f"{host['d_real']:.2f}", DGz=f"{host['d_fake']:.2f}",
                                 samples_s=f"{samples_per_s:.0f}", refresh=False)
            self.bar.update(steps)
        elif self._done < self._total:          # no bar: --no-progress, or not a terminal
            now = time.perf_counter()
            if now - self._last_line >= self.every_s:
                self._last_line = now
                print(f"  epoch {self._epoch}/{self._epochs} step {self._done}/{self._total} "
                      f"({100 * self._done / max(self._total, 1):.0f}%): d_loss "
                      f"{host['d_loss']:.4f}  g_loss {host['g_loss']:.4f}  "
                      f"{samples_per_s:.0f} samples/s", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def epoch_line(self, row, epochs=None, eta_s=None):
        quality = ""
        if not math.isnan(row.get("inception_score", math.nan)):
            quality = (f"  classes {row['classes_covered']:.0f}/10  IS {row['inception_score']:.2f}"
                       f"  FD {row['frechet_distance']:.1f}")
        total = f"/{epochs}" if epochs else ""
        eta = f"  ETA {format_duration(eta_s)}" if eta_s is not None else ""
        print(f"epoch {row['epoch']}{total}: d_loss {row['d_loss']:.4f}  g_loss {row['g_loss']:.4f}  "
              f"D(x) {row['d_real']:.3f}  D(G(z)) {row['d_fake']:.3f}  "
              f"{row['seconds']:.1f} s  {row['samples_per_s']:.0f} samples/s{eta}{quality}",
              flush=True)


def format_duration(seconds):
    """3725 -> '1h02m', 125 -> '2m05s', 7 -> '7s'."""
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
