"""The ``tinygan`` command (also ``python -m tinygan``): train, sample, evaluate, gradcheck, bench.

    tinygan train --backend cupy                    # the paper's MNIST run, into runs/mnist
    tinygan train --dataset cifar10 --epochs 5 --out runs/cifar-quick
    tinygan train --resume --epochs 200 --out runs/mnist    # settings come from the checkpoint
    tinygan sample runs/mnist --n 64 --png runs/mnist/more.png --npy runs/mnist/more.npy
    tinygan evaluate runs/mnist                     # the paper's Parzen-window protocol
    tinygan gradcheck --layer linear --verbose      # every hand-written gradient vs differences
    tinygan bench --batch-sizes 100                 # one training iteration, timed
    tinygan lab --open                              # watch a 2-D GAN learn in the browser

examples/mnist.py, examples/cifar10.py and examples/evaluate.py are thin scripts over this
module (and evaluate_cli.py): they parse the same flags with their own defaults.
Exit status: 0 done (or interrupted with a checkpoint saved), 1 error, 2 bad usage.
"""

import sys
from pathlib import Path

from .cli import (Parser, add_download_flags, download_setting, non_negative_int, positive_float,
                  positive_int, printable, report_error)
from ..backend import BACKENDS
from ..errors import BackendError, CheckpointError, ConfigError, TinyGANError
from ..gan import SCHEDULES
from ..losses import OBJECTIVES

TRAIN_DESCRIPTION = ("Train the paper's GAN (Goodfellow et al. 2014) on MNIST, Fashion-MNIST "
                     "or CIFAR-10. Defaults are the paper's run: maxout D with dropout, "
                     "ReLU/sigmoid G (CIFAR-10: the fully-connected model of Figure 2c), batch "
                     "100, SGD with lr 0.1 (CIFAR-10 0.025) decayed by 1.000004 per step, "
                     "momentum 0.5 -> 0.7 over epochs 1-250, the non-saturating objective, the "
                     "simultaneous update of the paper's code. Outputs in --out: "
                     "samples/epoch_NNNN.png, curves.png, metrics.csv, nearest_neighbours.png, "
                     "checkpoint.npz/.json and checkpoint.prev.* (the one before). Ctrl-C saves "
                     "a checkpoint and exits 0; --resume continues.")
MNIST_DATA_HELP = ("directory holding the IDX files; with it nothing is downloaded unless "
                   "--download (default: $TINYGAN_DATA, Debian's Fashion-MNIST, the cache "
                   "~/.cache/tinygan, then a download)")
CIFAR_DATA_HELP = ("directory holding the CIFAR-10 .bin files (or its cifar-10-batches-bin/, or "
                   "cifar-10-binary.tar.gz); with it nothing is downloaded unless --download "
                   "(default: $TINYGAN_DATA, the cache ~/.cache/tinygan/cifar10, then a "
                   "download)")
# what differs between the scripts: prog, description, data sets, two help texts (the lr and
# out defaults follow the data set: tinygan.tools.config.PAPER_DEFAULTS)
SPECS = {
    "mnist": {"prog": "mnist.py", "description": TRAIN_DESCRIPTION,
              "datasets": ("mnist", "fashion-mnist"), "lr": 0.1, "out": "runs/mnist",
              "data_help": MNIST_DATA_HELP,
              "split_help": "published split to train on: train = the paper's images 0-49,999 "
                            "of the training file; test = the 10,000 test images (offline MNIST "
                            "has only these)"},
    "cifar10": {"prog": "cifar10.py", "description": TRAIN_DESCRIPTION, "datasets": ("cifar10",),
                "lr": 0.025, "out": "runs/cifar10", "data_help": CIFAR_DATA_HELP,
                "split_help": "split to train on: train = the paper's images 0-39,999 of the "
                              "five data batches; test = the 10,000 images of test_batch.bin"},
    "all": {"prog": "tinygan train", "description": TRAIN_DESCRIPTION,
            "datasets": ("mnist", "fashion-mnist", "cifar10"), "lr": None, "out": None,
            "data_help": MNIST_DATA_HELP.replace(" (else ", "; CIFAR-10: the .bin files or "
                                                 "cifar-10-binary.tar.gz (default: "),
            "split_help": "published split to train on: train = the paper's training images "
                          "(MNIST 0-49,999, CIFAR-10 0-39,999); test = the 10,000 test images "
                          "(offline MNIST has only these)"},
}

# flags a resumed run takes from its checkpoint; given explicitly, they must agree with it
MUST_AGREE = ("dataset", "split", "limit", "batch_size", "objective", "schedule", "k", "lr",
              "seed", "hidden", "units")
# flags a resumed run takes from its checkpoint unless given (then they change the run)
MAY_CHANGE = ("backend", "epochs", "max_steps", "log_every", "classifier", "metrics_every",
              "data_dir")
DEFAULTS = {"split": "train", "limit": 0, "epochs": 100, "max_steps": 0, "batch_size": 100,
            "objective": "nonsaturating", "schedule": "simultaneous", "k": 1, "seed": 0,
            "backend": "numpy", "hidden": 0, "units": 0, "log_every": 50, "classifier": "",
            "metrics_every": 1, "data_dir": None}


def paper_default(dataset, key):
    """lr and out of the paper's run on ``dataset``."""
    from .config import PAPER_DEFAULTS
    return {"lr": 0.1, "out": "runs/mnist", **PAPER_DEFAULTS.get(dataset, {})}[key]


def train_parser(spec=SPECS["mnist"]):
    p = Parser(prog=spec["prog"], description=spec["description"])
    first = spec["datasets"][0]
    lr_default = "0.1 (CIFAR-10 0.025)" if len(spec["datasets"]) > 2 else paper_default(first, "lr")
    out_default = ("runs/<dataset>" if len(spec["datasets"]) > 2
                   else paper_default(first, "out"))
    resumed = "; with --resume, the checkpoint's (a different value is an error)"
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="array library: numpy (CPU), cupy (CUDA GPU), auto (cupy when usable) "
                        "(default: numpy; with --resume, the checkpoint's, and a run may move)")
    p.add_argument("--dataset", choices=spec["datasets"], default=None,
                   help=f"which data set (default: {first}{resumed})")
    p.add_argument("--data-dir", default=None, help=spec["data_help"])
    add_download_flags(p)
    p.add_argument("--split", choices=("train", "test"), default=None,
                   help=spec["split_help"] + f" (default: train{resumed})")
    p.add_argument("--limit", type=positive_int, default=None,
                   help=f"train on the first N images only, for quick runs (default: all{resumed})")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs to train in total, counting those of a resumed run (default: "
                        "100; with --resume, the checkpoint's; larger extends the run)")
    p.add_argument("--max-steps", type=positive_int, default=None,
                   help="stop after this many training steps in total (default: no limit; with "
                        "--resume, the checkpoint's unless --epochs is given; larger extends)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"minibatch size m (default: 100{resumed})")
    p.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="generator loss: nonsaturating -log D(G(z)) or the paper's minimax "
                        f"log(1 - D(G(z))) (default: nonsaturating{resumed})")
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="simultaneous: D and G updated from the same batch (the paper's code); "
                        "alternating: k D-steps then one G-step (the paper's Algorithm 1) "
                        f"(default: simultaneous{resumed})")
    p.add_argument("--k", type=positive_int, default=None,
                   help=f"discriminator steps per generator step, with --schedule alternating "
                        f"(default: 1{resumed})")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"initial learning rate of both nets (default: {lr_default}{resumed})")
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help=f"random seed: noise, dropout, shuffling (default: 0{resumed})")
    p.add_argument("--out", default=None,
                   help=f"output directory, the run directory (default: {out_default})")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is in --out, with its settings")
    p.add_argument("--force", action="store_true",
                   help="start afresh in an --out that holds a run, deleting that run's "
                        "checkpoint, metrics and pictures")
    p.add_argument("--log-every", type=positive_int, default=None,
                   help="steps between progress updates, one device-to-host copy each "
                        "(default: 50)")
    p.add_argument("--classifier", default=None, metavar="RUN",
                   help="a digit classifier (train_classifier.py's run directory or checkpoint): "
                        "log classes covered, an Inception-style score and a Frechet distance "
                        "of the samples per epoch (default: none)")
    p.add_argument("--metrics-every", type=positive_int, default=None,
                   help="epochs between those metrics, which take seconds (default: 1)")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="G's hidden width; smaller for quick runs and tests, not the paper's "
                        f"model (default: the paper's, 1200 MNIST / 8000 CIFAR-10{resumed})")
    p.add_argument("--units", type=positive_int, default=None,
                   help="D's maxout units (default: the paper's, 240 MNIST / 1600 "
                        f"CIFAR-10{resumed})")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: a plain line every 30 s instead, as in a log file "
                        "(the bar is drawn only on a terminal)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="with --backend cupy: capture the training step once as a CUDA graph "
                        "and replay it (fewer launches; tinygan/tools/cuda_graph.py)")
    return p


def parse_train_args(argv=None, spec=SPECS["mnist"]):
    """The training flags, defaults filled in; ``args.explicit`` names the flags given."""
    p = train_parser(spec)
    args = p.parse_args(argv)
    args.explicit = {k for k in (*MUST_AGREE, *MAY_CHANGE) if getattr(args, k) is not None}
    args.dataset = args.dataset or spec["datasets"][0]
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.lr is None:
        args.lr = paper_default(args.dataset, "lr")
    if args.out is None:
        args.out = paper_default(args.dataset, "out")
    if args.k > 1 and args.schedule != "alternating":
        p.error("--k > 1 needs --schedule alternating")
    if args.resume and args.force:
        p.error("--resume continues a run, --force replaces it: give one")
    if args.cuda_graph and args.backend == "numpy" and ("backend" in args.explicit
                                                        or not args.resume):
        p.error("--cuda-graph needs --backend cupy (CUDA graphs are a GPU feature)")
    return args


def resumed_settings(args):
    """``args`` with the settings of the checkpoint in ``args.out`` where no flag was given.
    A given flag of MUST_AGREE that differs is a ConfigError naming it. Returns ``(args, meta)``."""
    from .checkpoint import load_checkpoint
    from .checkpoint import checkpoint_path
    try:
        path = checkpoint_path(args.out)
    except CheckpointError:
        raise CheckpointError(f"no checkpoint to resume in {args.out}: start without --resume "
                              "(or give the run's --out)") from None
    from .schema import run_validator
    _, meta = load_checkpoint(path, validate=run_validator(complete=True))
    saved = meta.get("config", {})
    for key in MUST_AGREE:
        if key not in saved:
            continue
        if key in args.explicit and getattr(args, key) != saved[key]:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} {getattr(args, key)} disagrees with the run in {args.out}, "
                              f"made with {flag} {saved[key]}: drop the flag to resume it, or "
                              "start a new run in another --out")
        setattr(args, key, saved[key])
    for key in MAY_CHANGE:
        if key not in args.explicit and key in saved:
            setattr(args, key, saved[key] if saved[key] is not None else DEFAULTS[key])
    if "epochs" in args.explicit and "max_steps" not in args.explicit:
        args.max_steps = 0                  # more epochs: the old step limit no longer applies
    return args, meta


def _finished(args, meta):
    epoch, step = int(meta.get("epoch", 0)), int(meta.get("step", 0))
    if epoch >= args.epochs:
        return f"epoch {epoch} of --epochs {args.epochs}"
    if args.max_steps and step >= args.max_steps:
        return f"step {step} of --max-steps {args.max_steps}"
    return None


def clear_run(out):
    """Delete the files of a run in ``out`` (--force): checkpoint, metrics, pictures."""
    out = Path(out)
    names = ["checkpoint.npz", "checkpoint.json", "checkpoint.prev.npz", "checkpoint.prev.json",
             "metrics.csv", "intervals.csv", "curves.png", "gradients.png", "saturation.png",
             "nearest_neighbours.png"]
    for path in [out / n for n in names] + sorted((out / "samples").glob("epoch_*.png")):
        if path.is_file():
            path.unlink()


def train(argv=None, spec=SPECS["mnist"]):
    """The training command; returns the exit status."""
    args = parse_train_args(argv, spec)
    prog = spec["prog"]
    try:
        from ..backend import get_backend
        from .checkpoint import checkpoint_exists
        from .data import resolve_data_dir
        from .runlock import lock_directory
        from .config import TrainConfig, small_model_threads
        from .train import Trainer, load_training_images
        lock_directory(args.out)    # one writer per --out, held to the end (before any check)
        meta = None
        if args.resume:
            args, meta = resumed_settings(args)
            done = _finished(args, meta)
            if done:
                print(f"{prog}: the run in {args.out} is finished ({done}); give a larger "
                      "--epochs or --max-steps to train it further", flush=True)
                return 0
        elif checkpoint_exists(Path(args.out) / "checkpoint"):
            if not args.force:
                raise ConfigError(f"{args.out} already holds a run's checkpoint: add --resume to "
                                  "continue it, --force to replace it, or choose another --out")
            clear_run(args.out)
        backend = get_backend(args.backend, seed=args.seed)
        if args.cuda_graph and backend.cuda_graph_problem():
            raise BackendError(f"--cuda-graph: {backend.cuda_graph_problem()}")
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, objective=args.objective,
                          schedule=args.schedule, k=args.k, lr=args.lr, seed=args.seed,
                          backend=backend.name, out=args.out, log_every=args.log_every,
                          dataset=args.dataset, split=args.split, limit=args.limit or 0,
                          max_steps=args.max_steps or 0, classifier=args.classifier or "",
                          metrics_every=args.metrics_every, hidden=args.hidden or 0,
                          units=args.units or 0,
                          data_dir=str(resolve_data_dir(args.data_dir)) if args.data_dir else "")
        cfg.validate()
        images = load_training_images(args.dataset, args.split, data_dir=args.data_dir or None,
                                      limit=args.limit or 0, progress=not args.no_progress,
                                      download=download_setting(args))
        make = Trainer.resume if args.resume else Trainer
        with small_model_threads(cfg, backend):
            trainer = make(cfg, images, backend=backend, progress=not args.no_progress,
                           cuda_graph=args.cuda_graph)
            print(printable(f"tinygan: {args.dataset} {args.split} ({len(images)} images), "
                            f"backend {backend.name}{' (CUDA graph)' if args.cuda_graph else ''}, "
                            f"{trainer.steps_per_epoch} steps/epoch, from "
                            f"epoch {trainer.epoch} step {trainer.step}, out {args.out}", sys.stdout),
                  flush=True)
            trainer.run()
    except (TinyGANError, OSError) as exc:
        return report_error(prog, exc)
    except KeyboardInterrupt:           # a second Ctrl-C: stopped at once, in one line
        print(printable(f"{prog}: stopped at once (interrupted); the last checkpoint "
                        f"written in {args.out} is kept"), file=sys.stderr)
        return 130
    return 0


# --- sample ------------------------------------------------------------------------------------
def check_output_file(path, suffix, flag):
    """An output file a user named: it ends in ``suffix`` and its directory exists (nothing is
    created on a typo's behalf). ConfigError otherwise; None passes."""
    if path is None:
        return
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ConfigError(f"{flag} {path}: give a path ending in {suffix}")
    if not path.parent.is_dir():
        raise ConfigError(f"{flag} {path}: directory {path.parent} does not exist (create it "
                          "first)")


def sample(argv=None, prog="tinygan sample"):
    """N samples of a trained G: a PNG grid and/or an .npy array."""
    p = Parser(prog=prog, description="Draw samples from a trained generator: a PNG grid and/or "
                                      "an .npy array of shape (n, pixels), float32, as the "
                                      "generator outputs them.")
    p.add_argument("run", help="run directory (the --out of training) or checkpoint path "
                               "(checkpoint, .npz or .json)")
    p.add_argument("--n", type=positive_int, default=64, help="number of samples")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the noise")
    p.add_argument("--png", default=None, metavar="FILE",
                   help="write the samples as a grid to this PNG (default: RUN/sample_seedS.png "
                        "when --npy is not given either)")
    p.add_argument("--npy", default=None, metavar="FILE",
                   help="write the samples to this .npy (default: none)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library to sample on")
    args = p.parse_args(argv)
    try:
        import numpy as np
        from ..backend import get_backend
        from .files import atomic_write
        from .plot import save_sample_grid
        from .config import IMAGE_SHAPES
        from .rundir import load_run, sample_images
        for path, suffix in ((args.png, ".png"), (args.npy, ".npy")):
            check_output_file(path, suffix, "--" + suffix[1:])
        be = get_backend(args.backend, seed=args.seed)
        gan, cfg, meta = load_run(args.run, be)
        images = sample_images(gan, args.n)
        png = args.png
        if png is None and args.npy is None:
            run = Path(args.run)
            png = str((run if run.is_dir() else run.parent) / f"sample_seed{args.seed}.png")
        if args.npy:
            atomic_write(args.npy, lambda f: np.save(f, images))
            print(f"samples: {args.npy} ({args.n} x {images.shape[1]}, float32)")
        if png:
            shape = IMAGE_SHAPES.get(cfg.dataset, (28, 28))
            colour = " (each image min-max scaled)" if len(shape) == 3 else ""
            save_sample_grid(images, png, shape=shape,
                             title=f"{cfg.dataset}, epoch {meta.get('epoch')}, seed {args.seed}{colour}")
            print(f"samples: {png} ({args.n} images)")
    except (TinyGANError, OSError) as exc:
        return report_error(prog, exc)
    return 0


# --- the dispatcher ----------------------------------------------------------------------------
def _train(argv):
    return train(argv, SPECS["all"])


def _evaluate(argv):
    from .evaluate_cli import main as evaluate_main
    return evaluate_main(argv, prog="tinygan evaluate")


def _gradcheck(argv):
    from .gradcheck_cli import main as gradcheck_main
    return gradcheck_main(argv, prog="tinygan gradcheck")


def _bench(argv):
    from .bench import main as bench_main
    return bench_main(argv, prog="tinygan bench")


def _lab(argv):
    from .lab import main as lab_main
    return lab_main(argv, prog="tinygan lab")


COMMANDS = {
    "train": (_train, "train the paper's GAN (MNIST, Fashion-MNIST, CIFAR-10), or resume a run"),
    "sample": (sample, "draw samples from a trained run: a PNG grid and/or an .npy"),
    "evaluate": (_evaluate, "the paper's Parzen-window log-likelihood of a run (and Figure 3)"),
    "gradcheck": (_gradcheck, "check every hand-written gradient against finite differences"),
    "bench": (_bench, "time one training iteration: tinygan, PyTorch, the GEMM bound"),
    "lab": (_lab, "watch a small GAN learn in your browser (a local server; Ctrl-C stops)"),
}


def usage():
    from .. import __version__
    lines = [f"usage: tinygan COMMAND [options]   (tinygan {__version__}; also python -m tinygan)",
             "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "tinygan COMMAND --help shows a command's options and their defaults."]
    return "\n".join(lines)


def main(argv=None, exiting=False):
    """``tinygan COMMAND ...``; returns the exit status (``exiting``: signals.run_main's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from .. import __version__
        print(f"tinygan {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"tinygan: error: unknown command {argv[0]!r}: choose one of "
              f"{', '.join(COMMANDS)} (see tinygan --help)", file=sys.stderr)
        return 2
    from .signals import run_main        # Ctrl-C or SIGTERM outside the training loop: 130
    return run_main(command[0], f"tinygan {argv[0]}", argv[1:], exiting=exiting)


def console_main():
    """The ``tinygan`` console script."""
    sys.exit(main(exiting=True))


if __name__ == "__main__":
    sys.exit(main(exiting=True))
