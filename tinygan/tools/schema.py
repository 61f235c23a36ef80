"""What a checkpoint's meta and arrays must be before anything is built from them.

checkpoint.py verifies that the bytes are the ones written (checksums); this module checks
that what was written is something this tinygan can use: the names, types and ranges of the
meta, and array shapes that follow from the configuration, so that nothing is allocated for a
claim the arrays do not back (a ``noise_dim`` of 10^9 is refused before any network exists).
Both validators are passed to ``load_checkpoint(path, validate=...)``: a checkpoint that
fails them is refused with one CheckpointError line, and the previous one is tried.

    run_validator(complete)   a training run (train.Trainer, rundir.load_run): meta keys
                              RUN_META_KEYS, config = TrainConfig's fields
    validate_classifier       a classifier (classifier.load_classifier)

The names of a run's arrays are here too (the one place that knows them): gan_arrays writes
them, load_gan_arrays reads them back, gan_shapes gives their shapes from the configuration.
"""

import dataclasses
import math

import numpy as np

from ..errors import CheckpointError, ConfigError
from .checkpoint import WrongKind
from .config import TrainConfig

RUN_META_KEYS = ("config", "step", "epoch")                      # required
RUN_META_OPTIONAL = ("backend", "rng_state", "tinygan_version")
CLASSIFIER_KIND = "tinygan.tools.classifier.Classifier"
MAX_WIDTH = 1 << 20             # noise_dim, hidden widths, units: far above any real model
MAX_COUNT = 1 << 62             # step, epoch, seeds and the like
_PIECES = 5                     # maxout pieces of the paper's discriminators


def _fail(why):
    raise CheckpointError(why)


def _is_int(v, low=0, high=MAX_COUNT):
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _is_float(v, low=-math.inf, high=math.inf):
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and low <= v <= high)


def _keys(what, d, required, optional=()):
    if not isinstance(d, dict):
        _fail(f"{what} is a {type(d).__name__}, not an object")
    missing = sorted(set(required) - set(d))
    unknown = sorted(set(d) - set(required) - set(optional))
    if missing or unknown:
        _fail(f"{what}: " + "; ".join(([f"missing {missing}"] if missing else [])
                                      + ([f"unknown {unknown}"] if unknown else [])))


def _finite_arrays(arrays):
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            _fail(f"array {name!r} holds nan or inf")


def _shapes(what, arrays, expected):
    got = {n: tuple(arrays[n].shape) for n in arrays}
    if got != expected:
        wrong = sorted(n for n in set(got) | set(expected) if got.get(n) != expected.get(n))
        _fail(f"{what} arrays do not fit the configuration: "
              + ", ".join(f"{n} {got.get(n, 'missing')} != {expected.get(n, 'none')}"
                          for n in wrong[:4]) + (" ..." if len(wrong) > 4 else ""))


# --- a training run ----------------------------------------------------------------------------

def train_config(config):
    """The TrainConfig a checkpoint's ``config`` describes: TrainConfig's fields only (a
    missing one takes its default), each of its type and in range (CheckpointError otherwise)."""
    fields = {f.name: type(f.default) for f in dataclasses.fields(TrainConfig)}
    _keys("meta 'config'", config, (), fields)
    config = {**dataclasses.asdict(TrainConfig()), **config}
    for name, kind in fields.items():
        v = config[name]
        ok = {int: _is_int(v, 0, MAX_COUNT), float: _is_float(v), str: isinstance(v, str)}[kind]
        if not ok:
            _fail(f"meta 'config' field {name!r} is {v!r}: expected a "
                  f"{'non-negative integer' if kind is int else 'finite number' if kind is float else 'string'}")
    for name in ("noise_dim", "hidden", "units"):
        if config[name] > MAX_WIDTH:
            _fail(f"meta 'config' field {name!r} is {config[name]}, above {MAX_WIDTH}")
    checks = {"backend": config["backend"] in ("numpy", "cupy"),
              "split": config["split"] in ("train", "test"),
              "momentum": 0 <= config["momentum"] < 1, "final_momentum": 0 <= config["final_momentum"] < 1,
              "lr_decay": config["lr_decay"] >= 1}
    for name, ok in checks.items():
        if not ok:
            _fail(f"meta 'config' field {name!r} is out of range: {config[name]!r}")
    try:
        return TrainConfig(**{k: float(v) if fields[k] is float else v
                              for k, v in config.items()}).validate()
    except ConfigError as exc:
        _fail(f"meta 'config': {exc}")


def gan_shapes(cfg):
    """{array name: shape} of a full run checkpoint for ``cfg`` (as gan_arrays and
    Trainer.state_arrays name them), computed without building anything."""
    cifar = cfg.dataset == "cifar10"
    nd, d_x = cfg.noise_dim, 3072 if cifar else 784
    h = cfg.hidden or (8000 if cifar else 1200)
    u = cfg.units or (1600 if cifar else 240)
    g = {"G/0.W": (nd, h), "G/0.b": (h,), "G/2.W": (h, h), "G/2.b": (h,),
         "G/4.W": (h, d_x), "G/4.b": (d_x,)}
    d = {"D/1.W": (d_x, u * _PIECES), "D/1.b": (u * _PIECES,), "D/3.W": (u, u * _PIECES),
         "D/3.b": (u * _PIECES,), "D/5.W": (u, 1), "D/5.b": (1,)}

    def opt(prefix, net):
        n = sum(math.prod(s) for s in net.values())
        return {prefix + "velocity": (n,), prefix + "t": (), prefix + "momentum": ()}
    return {**g, **d, **opt("opt_G/", g), **opt("opt_D/", d),
            "fixed_noise": (cfg.n_fixed_samples, nd)}


def rng_state(state):
    """NumPy's PCG64 state as Backend.rng_state gives it, or None."""
    if state is None:
        return
    _keys("meta 'rng_state'", state, ("bit_generator", "state", "has_uint32", "uinteger"))
    inner = state["state"]
    _keys("meta 'rng_state' 'state'", inner, ("state", "inc"))
    if state["bit_generator"] != "PCG64" or not all(
            _is_int(inner[k], 0, 2**128 - 1) for k in ("state", "inc")) \
            or not _is_int(state["has_uint32"], 0, 1) or not _is_int(state["uinteger"], 0, 2**32 - 1):
        _fail("meta 'rng_state' is not a PCG64 state")
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, OverflowError) as exc:
        _fail(f"meta 'rng_state' is not a PCG64 state ({exc})")


def run_validator(complete=True):
    """``validate(arrays, meta)`` for a training run's checkpoint. ``complete``: every array a
    resume needs; else G alone may stand (D, each optimizer and fixed_noise come whole or
    not at all)."""
    def validate(arrays, meta):
        if isinstance(meta, dict) and "architecture" in meta and "config" not in meta:
            raise WrongKind("this is a classifier run (examples/train_classifier.py), not a GAN "
                            "run: give the --out of tinygan train")
        _keys("meta", meta, RUN_META_KEYS, RUN_META_OPTIONAL)
        cfg = train_config(meta["config"])
        step, epoch = meta["step"], meta["epoch"]
        if not (_is_int(step) and _is_int(epoch) and epoch <= step):
            _fail(f"meta step {step!r} / epoch {epoch!r}: expected integers 0 <= epoch <= step")
        if meta.get("backend", "numpy") not in ("numpy", "cupy"):
            _fail(f"meta 'backend' is {meta['backend']!r}: expected numpy or cupy")
        if not isinstance(meta.get("tinygan_version", ""), (str, type(None))):
            _fail("meta 'tinygan_version' is not a string")
        rng_state(meta.get("rng_state"))
        expected = gan_shapes(cfg)
        if not complete:
            groups = ("D/", "opt_G/", "opt_D/", "fixed_noise")
            present = tuple(g for g in groups if any(n.startswith(g) for n in arrays))
            expected = {n: s for n, s in expected.items()
                        if not n.startswith(groups) or n.startswith(present)}
            if "D/" not in present and cfg.units:
                _fail("a checkpoint without D must use the paper's D size (units 0)")
        _shapes("the run's", arrays, expected)
        _finite_arrays(arrays)
    return validate


# --- a classifier --------------------------------------------------------------------------

def validate_classifier(arrays, meta):
    """``validate(arrays, meta)`` for a classifier checkpoint (examples/train_classifier.py)."""
    if isinstance(meta, dict) and "config" in meta and "architecture" not in meta:
        raise WrongKind("this is a GAN run (tinygan train), not a classifier run: give "
                        "examples/train_classifier.py's --out")
    _keys("classifier meta", meta, ("architecture", "accuracy"),
          ("kind", "evaluated_on", "dataset", "split", "limit", "trained_on", "accuracy_per_epoch",
           "loss_per_epoch", "epochs", "batch_size", "lr", "lr_decay", "seed", "backend",
           "tinygan_version"))
    if meta.get("kind", CLASSIFIER_KIND) != CLASSIFIER_KIND:
        _fail(f"meta 'kind' is {meta['kind']!r}, not {CLASSIFIER_KIND!r}: not a classifier checkpoint")
    arch = meta["architecture"]
    _keys("meta 'architecture'", arch, ("in_dim", "hidden", "n_classes", "keep_prob"))
    hidden = arch["hidden"]
    if not (_is_int(arch["in_dim"], 1, MAX_WIDTH) and isinstance(hidden, list) and 1 <= len(hidden) <= 64
            and all(_is_int(h, 1, MAX_WIDTH) for h in hidden)
            and _is_int(arch["n_classes"], 2, MAX_WIDTH) and _is_float(arch["keep_prob"], 1e-9, 1)):
        _fail(f"meta 'architecture' is not in_dim, hidden widths, n_classes (integers) and "
              f"keep_prob in (0, 1]: {arch!r}"[:300])
    if not _is_float(meta["accuracy"], 0, 1):
        _fail(f"meta 'accuracy' is {meta['accuracy']!r}"[:200])
    for key in ("accuracy_per_epoch", "loss_per_epoch"):
        if key in meta and not (isinstance(meta[key], list) and all(map(_is_float, meta[key]))):
            _fail(f"meta {key!r} is not a list of finite numbers")
    for key, ok in (("epochs", _is_int), ("batch_size", _is_int), ("seed", _is_int),
                    ("lr", _is_float), ("lr_decay", _is_float)):
        if key in meta and not ok(meta[key]):
            _fail(f"meta {key!r} is {meta[key]!r}"[:200])
    if meta.get("split") not in (None, "train", "test"):
        _fail(f"meta 'split' is {meta['split']!r}, not train or test"[:200])
    if meta.get("limit") is not None and not _is_int(meta["limit"], 1):
        _fail(f"meta 'limit' is {meta['limit']!r}"[:200])
    for key in ("evaluated_on", "dataset", "trained_on", "backend", "tinygan_version"):
        if key in meta and not (meta[key] is None or isinstance(meta[key], str)):
            _fail(f"meta {key!r} is not a string")
    sizes = [arch["in_dim"], *hidden, arch["n_classes"]]
    expected = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):      # Linear, ReLU, Dropout, ...
        expected[f"net/{3 * i}.W"], expected[f"net/{3 * i}.b"] = (a, b), (b,)
    _shapes("the classifier's", arrays, expected)
    _finite_arrays(arrays)


# --- the checkpoint schema: the one place that knows it ----------------------------------------
# arrays  "G/<name>", "D/<name>"        the networks' parameters (Sequential.state())
#         "opt_G/<name>", "opt_D/<name>"  the optimizers' state (Optimizer.state())
#         "fixed_noise"                  the noise behind the per-epoch sample grids
# meta    "config" (TrainConfig as a dict), "step", "epoch", "backend", "rng_state",
#         "tinygan_version"

def gan_arrays(gan, to_numpy):
    """{name: host array} of G, D and both optimizers, named as the schema above says."""
    parts = (("G/", gan.G.state()), ("D/", gan.D.state()),
             ("opt_G/", gan.g_opt.state()), ("opt_D/", gan.d_opt.state()))
    return {prefix + k: to_numpy(v) for prefix, state in parts for k, v in state.items()}


def load_gan_arrays(gan, arrays, generator_only=False):
    """Restore G, D and both optimizers from ``arrays`` named as :func:`gan_arrays` names them.
    ``generator_only``: G is required, D and the optimizers are restored when present (a
    checkpoint kept for sampling may hold G alone)."""
    def part(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    gan.G.load_state(part("G/"))
    for prefix, target in (("D/", gan.D), ("opt_G/", gan.g_opt), ("opt_D/", gan.d_opt)):
        if not generator_only or part(prefix):
            target.load_state(part(prefix))
