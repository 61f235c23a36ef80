"""``tinygan lab``: watch a small GAN learn in a browser page served from this machine.

    tinygan lab                       # prints http://127.0.0.1:<free port>/ ; Ctrl-C stops
    tinygan lab --open --seed 3       # and opens the default browser
    tinygan lab --backend cupy        # the same page, the networks on the GPU

One training loop runs in one background thread of the server, with tinygan's own networks,
losses, optimizers and backward passes (nothing here computes a gradient of its own). The
page (tinygan/tools/lab_static/: plain HTML, CSS and JavaScript, no build step, nothing from
the internet) polls ``GET /api/state`` several times a second and draws on <canvas>:

    the data and G's samples      on a fixed noise batch, so the same points move
    D(x)                          a heatmap over the plane (a curve for the 1-D data), D in eval mode
    the arrows -dl_i/dx_i         at each sample, from ``gan.grad_through_d`` (via
                                  tools/gradflow.generator_field); both objectives on request
    gradient norms per layer      ||dL/dW|| of every weight matrix of G and D (tools/gradflow)
    D's saturation                the fraction of samples with D(G(z)) < 0.01, and the ratio
                                  ||dL_G/dx|| minimax / non-saturating (tools/gradflow.saturation)
    mode coverage                 tools/metrics.mode_metrics (2-D mixtures)

and ``POST /api/gradcheck`` runs the finite-difference checks of the current G, D and G through
D on float64 copies (the last training batch, its dropout masks frozen) and returns the table of
``tinygan gradcheck``.

The HTTP API (JSON in, JSON out; an error is ``{"error": "<one line>"}`` with status 4xx):
    GET  /api/state[?both=1]     the frame: settings, step, samples, arrows, heatmap, history
    POST /api/start | /api/pause the training loop runs / stops
    POST /api/step {"steps": n}  n training steps now (paused)
    POST /api/reset {"seed": s}  fresh networks (optionally a new seed)
    POST /api/settings {...}     change settings (validated with errors.check_*); some apply
                                 live, the others (LIVE is the list) rebuild the networks
    POST /api/gradcheck          the gradient checks

Safety (docs/design.md, "The lab server"): binds 127.0.0.1 unless --host says otherwise (then a
warning); a request whose Host or Origin is not the server's own address is refused (DNS
rebinding); POST bodies are JSON of at most MAX_BODY bytes; every value is validated; one
training loop per server, stopped when the server stops.
"""

import errno
import json
import math
import signal
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..backend import get_backend
from ..errors import (ConfigError, TinyGANError, check_choice, check_in_range, check_int,
                      check_positive)
from ..gan import GAN, NOISES, SCHEDULES, check_settings
from ..layers import Dropout, LeakyReLU, Linear
from ..losses import OBJECTIVES
from ..network import Sequential, mlp
from ..optim import SGD, Adam
from .gradflow import (SATURATION_THRESHOLD, generator_field, gradient_ratio, saturation,
                       weight_gradient_norms)
from .metrics import MIXTURES, mode_metrics

STATIC = Path(__file__).resolve().parent / "lab_static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
MAX_BODY = 16 * 1024            # bytes of a POST body
DATASETS = ("ring", "grid", "gauss1d")
OPTIMIZERS = ("adam", "sgd")
GAUSS1D = (-0.75, 0.5)          # the 1-D data N(mean, std^2), as examples/toy_1d.py (Figure 1)
EXTENT = {"ring": 3.0, "grid": 6.0, "gauss1d": 3.0}    # the view: [-e, e] on each axis
N_VIEW = 400                    # G's samples drawn (with arrows) and real points shown
N_EVAL = 2000                   # G's samples for the mode-coverage metric
GRID = 40                       # heatmap resolution (GRID x GRID; 1-D: 5 * GRID points)
HISTORY = 400                   # records kept for the charts
TICK_S = 0.05                   # the training loop's time slice
LOOPBACK = ("127.0.0.1", "localhost", "::1")

DEFAULTS = {"dataset": "ring", "objective": "nonsaturating", "schedule": "simultaneous", "k": 1,
            "optimizer": "adam", "lr_g": 1e-3, "lr_d": 1e-3, "momentum": 0.5,
            "noise": "normal", "noise_dim": 8, "hidden": 64, "batch_size": 128, "d_keep": 1.0,
            "speed": 300, "seed": 0}
LIVE = ("objective", "schedule", "k", "lr_g", "lr_d", "momentum", "noise", "speed")
"""Settings applied to the running GAN; the others build fresh networks (a reset)."""


def _int_in(name, value, low, high):
    value = check_int(name, value, minimum=low)
    if value > high:
        raise ConfigError(f"{name} must be at most {high}, got {value!r}")
    return value


def _check_keep(name, value):
    value = check_positive(name, value)
    if value > 1:
        raise ConfigError(f"{name} must be in (0, 1] (1: no dropout), got {value!r}")
    return value


CHECKS = {
    "dataset": lambda v: check_choice("dataset", v, DATASETS),
    "objective": lambda v: check_choice("objective", v, OBJECTIVES),
    "schedule": lambda v: check_choice("schedule", v, SCHEDULES),
    "k": lambda v: _int_in("k (discriminator steps per generator step)", v, 1, 20),
    "optimizer": lambda v: check_choice("optimizer", v, OPTIMIZERS),
    "lr_g": lambda v: check_in_range("lr_g (G's learning rate)", v, 1e-7, 10.0),
    "lr_d": lambda v: check_in_range("lr_d (D's learning rate)", v, 1e-7, 10.0),
    "momentum": lambda v: check_in_range("momentum", v, 0.0, 1.0),
    "noise": lambda v: check_choice("noise", v, NOISES),
    "noise_dim": lambda v: _int_in("noise_dim", v, 1, 64),
    "hidden": lambda v: _int_in("hidden (units per hidden layer)", v, 2, 512),
    "batch_size": lambda v: _int_in("batch_size", v, 2, 1024),
    "d_keep": lambda v: _check_keep("d_keep (D's dropout keep probability)", v),
    "speed": lambda v: _int_in("speed (training steps per second, at most)", v, 1, 20000),
    "seed": lambda v: _int_in("seed", v, 0, 2**32 - 1),
}


def validate_settings(changes, current=DEFAULTS):
    """``current`` updated by ``changes`` ({name: value}, e.g. parsed JSON), every value
    checked with the errors.check_* helpers the command line uses and the combination with
    gan.check_settings. Returns a new dict; ConfigError (one line) for a bad name or value."""
    if not isinstance(changes, dict):
        raise ConfigError(f"settings must be a JSON object, got {type(changes).__name__}")
    out = dict(current)
    for name, value in changes.items():
        if name not in CHECKS:
            raise ConfigError(f"unknown setting {name!r}: choose from {', '.join(CHECKS)}")
        out[name] = CHECKS[name](value)
    check_settings(out["objective"], out["schedule"], out["k"], out["noise"])
    return out


def _build(settings, backend, nets=None):
    """The GAN of ``settings`` on ``backend``: G an MLP noise_dim -> hidden -> hidden -> D_x
    (ReLU), D an MLP D_x -> hidden -> hidden -> 1 logit (LeakyReLU 0.2, dropout keep d_keep
    after each hidden layer when d_keep < 1), both optimizers (Adam beta1 0.5, or SGD with
    momentum). ``nets``: (G, D) to keep (a new optimizer for the same networks).

    The one place the lab builds networks and optimizers (so an API change lands here only)."""
    s = settings
    dim = 1 if s["dataset"] == "gauss1d" else 2
    if nets is None:
        h, be = s["hidden"], backend
        G = mlp([s["noise_dim"], h, h, dim], activation="relu", backend=be)
        layers = []
        for n_in in (dim, h):
            layers += [Linear(n_in, h, "glorot", backend=be), LeakyReLU(0.2, backend=be)]
            if s["d_keep"] < 1:
                layers.append(Dropout(s["d_keep"], backend=be))
        D = Sequential(layers + [Linear(h, 1, "glorot", backend=be)], backend=be)
    else:
        G, D = nets

    def optimizer(net, lr):
        if s["optimizer"] == "adam":
            return Adam(net, lr=lr, beta1=0.5, beta2=0.999)
        return SGD(net, lr=lr, momentum=s["momentum"])
    return GAN(G, D, optimizer(G, s["lr_g"]), optimizer(D, s["lr_d"]), noise_dim=s["noise_dim"],
               noise=s["noise"], objective=s["objective"], schedule=s["schedule"], k=s["k"])


def _host(a):
    """A host float64 numpy array from a backend array (or number)."""
    if type(a).__module__.startswith("cupy"):
        a = a.get()
    return np.array(a, dtype=np.float64)              # a copy, always


def _rounded(a, digits=4):
    """A nested list for JSON: rounded, non-finite values clipped (JSON has no nan)."""
    return np.round(np.nan_to_num(_host(a), nan=0.0, posinf=1e6, neginf=-1e6), digits).tolist()


class Lab:
    """One GAN, its settings and its training loop (one background thread).

    Every use of the networks holds ``self.lock``: the loop trains in slices of TICK_S (at
    most ``speed`` steps per second) taking the lock for one step at a time, so the state and
    gradient-check requests wait for one step at most.
    """

    def __init__(self, backend="numpy", settings=None):
        self.backend_name = backend
        self.settings = validate_settings(settings or {})
        self.lock = threading.RLock()
        self.playing = False
        self.error = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        self.reset()

    # --- life cycle -----------------------------------------------------------------------
    def start_loop(self):
        """Start the training thread (once); it trains only while ``playing``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tinygan-lab-training",
                                            daemon=True)
            self._thread.start()

    def close(self):
        """Stop the training thread and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self):
        while not self._stop.is_set():
            if not self.playing:
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            start = time.perf_counter()
            try:
                self.step(max(1, round(self.settings["speed"] * TICK_S)),
                          deadline=start + TICK_S, while_playing=True)
            except Exception as exc:      # never a traceback in the terminal: the page shows it
                with self.lock:
                    self.playing = False
                    self.error = _one_line(exc)
            # at least 2 ms off the lock, so the page's requests get their turn
            time.sleep(max(0.002, TICK_S - (time.perf_counter() - start)))

    def play(self):
        self.playing = True
        self._wake.set()

    def pause(self):
        self.playing = False

    # --- the GAN --------------------------------------------------------------------------
    def reset(self, seed=None):
        """Fresh networks, optimizers and fixed view batches from ``seed`` (default: the
        settings' seed)."""
        with self.lock:
            if seed is not None:
                self.settings = validate_settings({"seed": seed}, self.settings)
            s = self.settings
            self.be = get_backend(self.backend_name, seed=s["seed"], verbose=False)
            self.gan = _build(s, self.be)
            self.dim = 1 if s["dataset"] == "gauss1d" else 2
            self.mixture = MIXTURES[s["dataset"]]() if self.dim == 2 else None
            self.centers = self.be.asarray(self.mixture.centers) if self.mixture else None
            self.z_eval = self.gan.sample_noise(N_EVAL)          # fixed: the same points move
            self.real_view = self.sample_data(N_VIEW)
            self.history = deque(maxlen=HISTORY)
            self.context = None
            self.error = None
            self.version = getattr(self, "version", 0) + 1
            self._frame = None
            self._record()

    def sample_data(self, n):
        """n real points (backend array (n, D_x))."""
        if self.dim == 1:
            return self.be.normal((n, 1), mean=GAUSS1D[0], std=GAUSS1D[1])
        # metrics.sample_mixture's draw, the centres kept on the device (no upload per step)
        idx = self.be.rng.integers(0, len(self.mixture.centers), size=n)
        return self.centers[idx] + self.be.normal((n, 2), std=self.mixture.std)

    def apply_settings(self, changes):
        """Validate and apply ``changes``; LIVE ones change the running GAN, the others
        rebuild it (a new optimizer alone keeps the networks). Returns the settings."""
        with self.lock:
            new = validate_settings(changes, self.settings)
            changed = {k for k in new if new[k] != self.settings[k]}
            self.settings = new
            if changed - set(LIVE) - {"optimizer"}:
                self.reset()
            elif "optimizer" in changed:             # new optimizers, the same networks
                steps = self.gan.step_count
                self.gan = _build(new, self.be, nets=(self.gan.G, self.gan.D))
                self.gan.step_count = steps
                self.version += 1
                self._frame = None
            else:
                g = self.gan
                g.objective, g.schedule, g.k, g.noise = (new["objective"], new["schedule"],
                                                         new["k"], new["noise"])
                g.g_opt.lr, g.d_opt.lr = new["lr_g"], new["lr_d"]
                if new["optimizer"] == "sgd":
                    g.g_opt.momentum = g.d_opt.momentum = new["momentum"]
                self._frame = None
            return dict(self.settings)

    def step(self, n=1, deadline=None, while_playing=False):
        """n training steps (fewer if ``deadline``, a perf_counter time, passes first, or,
        with ``while_playing``, once paused), then one record for the charts (one host copy
        per call). The lock is taken per step, so a page's request waits for one step at most."""
        n = _int_in("steps", n, 1, 10000)
        with self.lock:
            if self.error and self.error.startswith("training diverged"):
                raise ConfigError(self.error)
            self.error = None                         # an older error is answered by trying again
            g = self.gan
        stats = None
        for _ in range(n):
            with self.lock:
                if self.gan is not g:                 # reset meanwhile: the old GAN is gone
                    return self.gan.step_count
                m = self.settings["batch_size"]
                rows = m * g.k if g.schedule == "alternating" else m
                stats = g.train_step(self.sample_data(rows))
                self._capture_context()
            if (deadline is not None and time.perf_counter() > deadline) or (
                    while_playing and not self.playing):
                break
        with self.lock:
            if self.gan is not g:
                return self.gan.step_count
            self._record(stats)
            last = self.history[-1]
            watched = [v for k, v in last.items() if k in ("d_loss", "g_loss")
                       or k.startswith("grad_")]
            if not all(math.isfinite(v) for v in watched):
                self.playing = False
                self.error = (f"training diverged at step {g.step_count} (a loss or gradient "
                              "is not finite): reset, or lower the learning rates")
            return g.step_count

    def _capture_context(self):
        """The last training batch: z, D's input and D's dropout masks, for the checks
        (copies on the device: no host synchronisation per step)."""
        g = self.gan
        masks = [layer.mask for layer in g.D.layers if isinstance(layer, Dropout)]
        self.context = {"z": g.G.layers[0].x.copy(), "d_in": g.D.layers[0].x.copy(),
                        "masks": [None if mk is None else mk.copy() for mk in masks]}

    def _record(self, stats=None):
        """One row of the charts: losses, per-layer gradient norms, saturation, coverage."""
        g = self.gan
        scalars = dict(stats or {})                  # 0-d device arrays, copied in one go
        if stats is not None:
            scalars.update(weight_gradient_norms(g))
        scalars.update(saturation(g, self.z_eval[:N_VIEW]))
        values = _host(g.xp.stack([g.xp.asarray(v, dtype=g.backend.dtype).reshape(())
                                   for v in scalars.values()]))
        row = {"step": g.step_count, **dict(zip(scalars, map(float, values)))}
        row["grad_ratio"] = gradient_ratio(row)
        samples = _host(g.sample(N_EVAL, z=self.z_eval))
        if not np.isfinite(samples).all():
            row["samples_finite"] = 0.0
        elif self.dim == 2:
            met = mode_metrics(samples, self.mixture)
            row.update(modes_covered=float(met["modes_covered"]),
                       high_quality_fraction=float(met["high_quality_fraction"]),
                       kl_uniform=float(met["kl_uniform"]))
        else:
            row.update(sample_mean=float(samples.mean()), sample_std=float(samples.std()))
        self.history.append(row)
        self._frame = None

    # --- what the page draws --------------------------------------------------------------
    def frame(self, both=False):
        """The state the page draws, as a JSON-able dict (cached until the GAN changes)."""
        with self.lock:
            key = (self.version, self.gan.step_count, bool(both), self.gan.objective,
                   self.playing, self.error)
            if self._frame is not None and self._frame[0] == key:
                return self._frame[1]
            g, s = self.gan, self.settings
            e = EXTENT[s["dataset"]]
            x = g.sample(N_VIEW, z=self.z_eval[:N_VIEW])
            kinds = OBJECTIVES if both else (g.objective,)
            arrows = {}
            d_samples = None
            for kind in kinds:
                d, a = generator_field(g.D, x, kind)
                arrows[kind] = _host(a)
                d_samples = _host(d)
            scale = max([float(np.abs(a).max()) for a in arrows.values() if a.size] + [1e-30])
            if not math.isfinite(scale):
                scale = 1.0
            ticks = np.linspace(-e, e, GRID if self.dim == 2 else 5 * GRID)
            if self.dim == 2:
                gx, gy = np.meshgrid(ticks, ticks)        # row i: y = ticks[i]
                grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
            else:
                grid = ticks[:, None]
            heat = _host(g.discriminate(self.be.asarray(grid)))
            out = {
                "step": g.step_count, "version": self.version, "playing": self.playing,
                "error": self.error, "settings": dict(s), "live": list(LIVE),
                "dim": self.dim, "extent": e, "backend": self.be.name,
                "modes": [list(c) for c in self.mixture.centers] if self.mixture else [],
                "data_pdf": list(GAUSS1D) if self.dim == 1 else None,
                "real": _rounded(self.real_view), "samples": _rounded(x),
                "d_samples": _rounded(d_samples),
                "arrows": {k: np.round(a / scale, 4).tolist() for k, a in arrows.items()},
                "arrow_scale": scale,
                "heatmap": {"n": len(ticks), "values": _rounded(heat, 3)},
                "saturation_threshold": SATURATION_THRESHOLD,
                "history": _columns(self.history),
            }
            self._frame = (key, out)
            return out

    # --- "Check the gradients now" ----------------------------------------------------------
    def gradcheck(self, seed=0):
        """Finite-difference checks of the current G, D and G through D, on float64 copies
        with the last training batch and its dropout masks frozen. Returns a dict: ``text``
        (the tables of ``tinygan gradcheck``), ``sections`` (rows as JSON), ``passed``."""
        from ..gradcheck import check_generator_through_discriminator, check_module, max_error
        from .gradcheck_cli import format_table
        with self.lock:
            if self.context is None:
                self._first_context()
            ctx, s, g = self.context, self.settings, self.gan
            be = get_backend("numpy", dtype="float64", seed=seed)
            copy = _build(s, be)
            for mine, theirs in ((copy.G, g.G), (copy.D, g.D)):
                mine.load_state({k: _host(v) for k, v in theirs.params})
            objective, step = g.objective, g.step_count
        z, d_in = be.asarray(_host(ctx["z"])), be.asarray(_host(ctx["d_in"]))
        drops = [layer for layer in copy.D.layers if isinstance(layer, Dropout)]
        for layer, mask in zip(drops, ctx["masks"]):
            layer.mask = None if mask is None else be.asarray(_host(mask))
        n_real = d_in.shape[0] - z.shape[0]
        real = d_in[:n_real] if n_real > 0 else None
        frozen = " (D's dropout masks of that step frozen)" if drops else ""
        checks = [
            ("G", f"dL/dtheta_G and dL/dz at the last step's z {tuple(z.shape)}, "
                  "L = sum(G(z) * dy)", lambda h: check_module(copy.G, z, seed=seed, h=h,
                                                                h_dir=10 * h)),
            ("D", f"dL/dtheta_D and dL/dx at the last step's D input {tuple(d_in.shape)}, "
                  f"L = sum(D(x) * dy){frozen}",
             lambda h: check_module(copy.D, d_in, seed=seed, h=h, h_dir=10 * h)),
            (f"G through D, {objective}",
             "dL_G/dtheta_G through gan.grad_through_d, "
             + (f"D sees {n_real} real rows and the fakes in one forward" if real is not None
                else "D sees the fakes alone") + frozen,
             lambda h: check_generator_through_discriminator(copy.G, copy.D, z, objective,
                                                             seed=seed, real=real, h=h,
                                                             h_dir=10 * h)),
        ]
        sections = []
        with copy.D.frozen_dropout():
            for title, detail, run in checks:
                rows = run(1e-6)
                if not all(r.passed for r in rows):
                    # a (Leaky)ReLU kink within h of a pre-activation makes the central
                    # difference straddle it: a smaller step (float64 allows it) tells apart
                    # a kink from a wrong backward
                    again = run(1e-8)
                    if all(r.passed for r in again):
                        bad = [r.name for r in rows if not r.passed]
                        detail += (f"; at h 1e-6 {', '.join(bad)} straddled a (Leaky)ReLU kink "
                                   "(a pre-activation within h of 0), so this table uses h 1e-8 "
                                   "(directions 1e-7)")
                        rows = again
                sections.append((title, detail, rows))
        text = [f"gradient checks at step {step}: numpy float64 copies of G and D, "
                f"the last training batch"]
        out = []
        for title, detail, rows in sections:
            ok = all(r.passed for r in rows)
            text += ["", f"== {title}: {detail}", format_table(rows),
                     f"{'pass' if ok else 'FAIL'}: {title} ({len(rows)} rows, largest relative "
                     f"error {max_error(rows):.1e})"]
            out.append({"title": title, "detail": detail, "passed": ok,
                        "rows": [{"name": r.name, "shape": list(r.shape),
                                  "analytic_norm": _num(r.analytic_norm),
                                  "numerical_norm": _num(r.numerical_norm),
                                  "rel_error": _num(r.rel_error),
                                  "method": r.method, "passed": bool(r.passed),
                                  "worst": _worst(r.worst)} for r in rows]})
        return {"step": step, "passed": all(sec["passed"] for sec in out), "sections": out,
                "text": "\n".join(text)}

    def _first_context(self):
        """Before any step: one training-mode forward on a fresh batch (draws D's masks)."""
        g, m = self.gan, self.settings["batch_size"]
        real = self.sample_data(m)
        fake = g.G.forward(g.sample_noise(m))
        if g.schedule == "simultaneous":
            g.D.forward(g.xp.concatenate([real, fake]))
        else:
            g.D.forward(fake)
        self._capture_context()


def _worst(worst):
    if worst is None:
        return None
    where, a, n = worst
    return {"where": list(where) if isinstance(where, tuple) else where,
            "analytic": _num(a), "numerical": _num(n)}


def _num(v):
    """A float for JSON, None where it is nan or infinite."""
    v = float(v)
    return v if math.isfinite(v) else None


def _columns(rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: [_finite(r.get(k)) for r in rows] for k in keys}


def _finite(v):
    """JSON has no nan/inf: those become null."""
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.5g}")


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


# --- the server -----------------------------------------------------------------------------

class LabServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding one Lab; ``allowed`` are the Host values it answers."""

    daemon_threads = True
    allow_reuse_address = True            # a restart may reuse a port in TIME_WAIT (not a live one)

    def __init__(self, address, lab, quiet=True):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.lab, self.quiet = lab, quiet
        host, port = address[0], self.server_address[1]
        names = {host}
        if host in LOOPBACK or host == "0.0.0.0":
            names |= {"127.0.0.1", "localhost"}
        if host in ("0.0.0.0", "::"):                # every interface: this machine's names
            names.add(socket.gethostname())
            try:
                names.update(socket.gethostbyname_ex(socket.gethostname())[2])
            except OSError:
                pass
        self.allowed = {f"[{n}]:{port}" if ":" in n else f"{n}:{port}" for n in names}
        shown = "127.0.0.1" if host in ("127.0.0.1", "localhost", "0.0.0.0") else host
        self.url = f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"

    def close(self):
        self.shutdown()
        self.server_close()
        self.lab.close()


class HTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    server_version = "tinygan-lab"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):           # no line per request
        if not self.server.quiet:
            super().log_message(fmt, *args)

    # --- plumbing ---
    def _send(self, status, body, content_type="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        self.end_headers()
        self.wfile.write(body)

    def _check_origin(self):
        """Refuse a Host or Origin that is not this server's (DNS rebinding, other sites)."""
        host = self.headers.get("Host", "")
        if host not in self.server.allowed:
            raise HTTPError(403, f"refused: Host {host!r} is not this server "
                                 f"({', '.join(sorted(self.server.allowed))})")
        origin = self.headers.get("Origin")
        if origin is not None and origin not in {f"http://{h}" for h in self.server.allowed}:
            raise HTTPError(403, f"refused: Origin {origin!r} is not this server")

    def _body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise HTTPError(411, "send a Content-Length (no chunked bodies)")
        if length is None:
            return {}
        try:
            length = int(length)
        except ValueError:
            raise HTTPError(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            raise HTTPError(413, f"request body of {length} bytes: at most {MAX_BODY}")
        raw = self.rfile.read(length)
        if not raw.strip():
            return {}
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype != "application/json":
            raise HTTPError(415, "POST bodies must be application/json")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        return body

    def _handle(self, method):
        try:
            self._check_origin()
            path = urlsplit(self.path)
            if method == "GET":
                self._get(path)
            else:
                self._post(path.path, self._body())
        except HTTPError as exc:
            self.close_connection = True         # an unread body must not pass for a request
            self._send(exc.status, {"error": str(exc)})
        except TinyGANError as exc:
            self._send(400, {"error": _one_line(exc)})
        except Exception as exc:  # one line, never a traceback in the terminal
            print(f"tinygan lab: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
            self._send(500, {"error": f"{type(exc).__name__}: {_one_line(exc)}"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_HEAD(self):
        self._send(405, {"error": "use GET or POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    # --- routes ---
    def _get(self, path):
        lab = self.server.lab
        if path.path in ("/", "/index.html"):
            return self._static("index.html")
        if path.path.startswith("/static/"):
            return self._static(path.path[len("/static/"):])
        if path.path == "/api/state":
            query = parse_qs(path.query)
            both = query.get("both", ["0"])[0] in ("1", "true")
            return self._send(200, lab.frame(both=both))
        raise HTTPError(404, f"no such page: {path.path}")

    def _static(self, name):
        files = {p.name: p for p in STATIC.iterdir() if p.suffix in STATIC_TYPES}
        if name not in files:
            raise HTTPError(404, f"no such file: {name}")
        self._send(200, files[name].read_bytes(), STATIC_TYPES[files[name].suffix])

    def _post(self, path, body):
        lab = self.server.lab

        def only(*keys):
            extra = sorted(set(body) - set(keys))
            if extra:
                raise ConfigError(f"{path} takes {', '.join(keys) or 'no fields'}; "
                                  f"got {', '.join(extra)}")
        if path == "/api/start":
            only()
            lab.play()
        elif path == "/api/pause":
            only()
            lab.pause()
        elif path == "/api/step":
            only("steps")
            lab.pause()
            lab.step(body.get("steps", 1))
        elif path == "/api/reset":
            only("seed")
            lab.reset(body.get("seed"))
        elif path == "/api/settings":
            lab.apply_settings(body)
        elif path == "/api/gradcheck":
            only()
            return self._send(200, lab.gradcheck())
        else:
            raise HTTPError(404, f"no such action: {path}")
        return self._send(200, {"ok": True, "step": lab.gan.step_count, "playing": lab.playing,
                                "settings": lab.settings})


def serve(host="127.0.0.1", port=0, backend="numpy", settings=None, quiet=True):
    """A LabServer bound to (host, port) with its Lab's loop started (not yet serving):
    call ``serve_forever()`` (in a thread, for tests) and ``close()``."""
    lab = Lab(backend, settings)
    try:
        server = LabServer((host, port), lab, quiet=quiet)
    except BaseException:
        lab.close()
        raise
    lab.start_loop()
    return server


def main(argv=None, prog="tinygan lab"):
    """The command; returns the exit status."""
    from .cli import Parser, non_negative_int, report_error
    from .threads import blas_threads
    p = Parser(prog=prog, description="Watch a small GAN learn in your browser: a local server "
               "trains it (tinygan's own networks and hand-written backward passes) and a page "
               "shows the data, G's samples, D(x), the gradient arrows -dL_G/dx, per-layer "
               "gradient norms, D's saturation and mode coverage, with play / pause / step "
               "and every setting at hand.")
    p.add_argument("--port", type=non_negative_int, default=0,
                   help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind; anything but 127.0.0.1 / localhost exposes the lab "
                        "to the network (a warning is printed)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                   help="array library the GAN trains on")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed of the first run")
    p.add_argument("--dataset", choices=DATASETS, default="ring", help="the data at start")
    args = p.parse_args(argv)
    if args.port > 65535:
        p.error(f"argument --port: expected a port 0-65535, got {args.port}")
    try:
        server = serve(args.host, args.port, args.backend,
                       {"seed": args.seed, "dataset": args.dataset})
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            exc = f"port {args.port} on {args.host} is in use: give another --port, or none " \
                  "(a free one)"
        return report_error(prog, exc)
    except TinyGANError as exc:
        return report_error(prog, exc)
    if args.host not in LOOPBACK:
        print(f"{prog}: warning: listening on {args.host}: anyone who can reach this address "
              "can drive the lab (no password)", file=sys.stderr)
    def stop(signum, frame):                # SIGTERM stops as Ctrl-C does
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)     # before the URL: whoever reads it may stop us at once
    print(f"{prog}: {server.url}  (backend {args.backend}; Ctrl-C stops)", flush=True)
    if args.open:
        import webbrowser
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        with blas_threads(1 if args.backend == "numpy" else None):   # small MLPs: one thread
            server.serve_forever()
    except KeyboardInterrupt:
        print(f"{prog}: stopped", file=sys.stderr)
    finally:
        server.lab.close()
        server.server_close()
    return 0
