"""Train the paper's MNIST GAN (Goodfellow et al. 2014) with tinygan.

    python examples/mnist.py --backend numpy            # or cupy, or auto
    python examples/mnist.py --epochs 5 --out runs/quick
    python examples/mnist.py --resume --epochs 10 --out runs/quick

Defaults are the paper's run: maxout D with dropout, ReLU/sigmoid G, batch 100, SGD with
lr 0.1 decayed by 1.000004 per step (floor 1e-6), momentum 0.5 -> 0.7 over epochs 1-250,
the non-saturating objective, and the simultaneous update the paper's code ran (both
gradients from the same batch and samples, k = 1). --schedule alternating gives the
paper's Algorithm 1 with --k discriminator steps per generator step.

Outputs in --out: samples/epoch_NNNN.png (a fixed noise batch), curves.png, metrics.csv,
nearest_neighbours.png (Figure 2), checkpoint.npz/.json (and the one before it, .prev).
Exit status: 0 done (or interrupted with a checkpoint saved), 1 error, 2 bad usage.
examples/cifar10.py is this script with the paper's CIFAR-10 defaults (parse_args, main).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

from tinygan.tools.cli import (Parser, non_negative_int, positive_float, positive_int,  # noqa: E402
                         printable, report_error)
from tinygan.backend import BACKENDS  # noqa: E402
from tinygan.errors import ConfigError, TinyGANError  # noqa: E402
from tinygan.gan import SCHEDULES  # noqa: E402
from tinygan.losses import OBJECTIVES  # noqa: E402

DATASETS = ("mnist", "fashion-mnist")
MNIST = {"prog": "mnist.py", "description": __doc__.split("\n\n")[0], "datasets": DATASETS,
         "lr": 0.1, "out": "runs/mnist",
         "data_help": "directory holding the IDX files (else $TINYGAN_DATA, Debian's "
                      "Fashion-MNIST, the cache ~/.cache/tinygan, then download)",
         "split_help": "published split to train on: train = the paper's images 0-49,999 of the "
                       "training file; test = the 10,000 test images (offline MNIST has only these)"}


def parse_args(argv=None, spec=MNIST):
    """The command line; ``spec`` holds what differs between data sets (MNIST, or
    examples/cifar10.py's CIFAR10): prog, description, datasets, lr, out and two help texts."""
    p = Parser(prog=spec["prog"], description=spec["description"])
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library: numpy (CPU), cupy (CUDA GPU), auto (cupy when usable)")
    p.add_argument("--dataset", choices=spec["datasets"], default=spec["datasets"][0],
                   help="which data set")
    p.add_argument("--data-dir", default=None, help=spec["data_help"])
    p.add_argument("--split", choices=("train", "test"), default="train", help=spec["split_help"])
    p.add_argument("--limit", type=positive_int, default=None,
                   help="train on the first N images only (quick runs)")
    p.add_argument("--epochs", type=positive_int, default=100, help="epochs to train (in total, "
                   "counting those of a resumed run)")
    p.add_argument("--max-steps", type=positive_int, default=None,
                   help="stop after this many training steps in total")
    p.add_argument("--batch-size", type=positive_int, default=100, help="minibatch size m")
    p.add_argument("--objective", choices=OBJECTIVES, default="nonsaturating",
                   help="generator loss: nonsaturating -log D(G(z)) or the paper's minimax log(1 - D(G(z)))")
    p.add_argument("--schedule", choices=SCHEDULES, default="simultaneous",
                   help="simultaneous: D and G updated from the same batch (the paper's code); "
                        "alternating: k D-steps then one G-step (the paper's Algorithm 1)")
    p.add_argument("--k", type=positive_int, default=1,
                   help="discriminator steps per generator step (with --schedule alternating)")
    p.add_argument("--lr", type=positive_float, default=spec["lr"],
                   help="initial learning rate of both nets")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (noise, dropout, shuffling)")
    p.add_argument("--out", default=spec["out"], help="output directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is in --out")
    p.add_argument("--log-every", type=positive_int, default=50,
                   help="steps between progress-bar updates (one device-to-host copy each)")
    p.add_argument("--classifier", default=None, metavar="CHECKPOINT",
                   help="a digit classifier (examples/train_classifier.py): log classes covered, "
                        "an Inception-style score and a Frechet distance of the samples per epoch")
    p.add_argument("--metrics-every", type=positive_int, default=1,
                   help="epochs between those metrics (they take seconds)")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="G's hidden width (default: the paper's, 1200 MNIST / 8000 CIFAR-10); "
                        "smaller for quick runs and tests, not the paper's model")
    p.add_argument("--units", type=positive_int, default=None,
                   help="D's maxout units (default: the paper's, 240 MNIST / 1600 CIFAR-10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.k > 1 and args.schedule != "alternating":
        p.error("--k > 1 needs --schedule alternating")
    return args


def load_images(args):
    from tinygan.tools.train import load_training_images
    return load_training_images(args.dataset, args.split, data_dir=args.data_dir,
                                limit=args.limit or 0, progress=not args.no_progress)


def main(argv=None, spec=MNIST):
    args = parse_args(argv, spec)
    prog = spec["prog"]
    try:
        from tinygan.backend import get_backend
        from tinygan.tools.train import Trainer, TrainConfig
        backend = get_backend(args.backend, seed=args.seed)
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, objective=args.objective,
                          schedule=args.schedule, k=args.k, lr=args.lr, seed=args.seed,
                          backend=backend.name, out=args.out, log_every=args.log_every,
                          dataset=args.dataset, split=args.split, limit=args.limit or 0,
                          max_steps=args.max_steps or 0, classifier=args.classifier or "",
                          metrics_every=args.metrics_every, hidden=args.hidden or 0,
                          units=args.units or 0)
        cfg.validate()
        from tinygan.tools.runlock import lock_directory
        lock_directory(args.out)    # one writer per --out, held to the end (before any check)
        images = load_images(args)
        from tinygan.tools.checkpoint import checkpoint_exists
        if not args.resume and checkpoint_exists(Path(args.out) / "checkpoint"):
            raise ConfigError(f"{args.out} already holds a run's checkpoint: add --resume to "
                              "continue it, or choose another --out")
        make = Trainer.resume if args.resume else Trainer
        trainer = make(cfg, images, backend=backend, progress=not args.no_progress)
        print(printable(f"tinygan: {args.dataset} {args.split} ({len(images)} images), backend "
                        f"{backend.name}, {trainer.steps_per_epoch} steps/epoch, from epoch "
                        f"{trainer.epoch} step {trainer.step}, out {args.out}", sys.stdout),
              flush=True)
        trainer.run()
    except (TinyGANError, OSError) as exc:
        return report_error(prog, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
