"""Train the digit classifier that scores generated images (tinygan.tools.metrics.sample_quality).

    python examples/train_classifier.py --data-dir ../shared/data/mnist --split test --out runs/classifier
    python examples/train_classifier.py --out runs/classifier-train     # needs the training set
    python examples/train_classifier.py --dataset fashion-mnist --out runs/classifier-fashion

The network (tinygan.tools.classifier.Classifier): 784 -> 512 ReLU -> 512 ReLU -> 10 logits, dropout
(keep 0.8) after each hidden layer, softmax cross-entropy, Adam (lr 1e-3, decayed by --lr-decay
per epoch), batch 100.

Which images (--dataset mnist; --split defaults to train, as in every tinygan command):
  --split train: train on the 60,000 training digits, report on the 10,000 test digits.
  --split test (works offline with only the MNIST test file): train on the first
      8,000 digits of the 10,000-digit test split, report accuracy on its last 2,000.
      Use the same last 2,000 as the real set of the Frechet distance: the classifier has
      not seen them.
--dataset fashion-mnist: train on Fashion-MNIST's 60,000 training images, report on its
10,000 test images (--split is ignored).

Writes --out/checkpoint.npz/.json (tinygan.tools.checkpoint): arrays "net/<name>", meta with the
architecture, the data used (dataset, split, limit), the accuracy and the loss history; load it
with ``tinygan.tools.classifier.load_classifier``. An --out that holds a classifier already is
refused unless --force.

Scoring a GAN instead of training (--score-gan RUN): load the classifier saved in --out (its
directory or checkpoint), load the GAN run from its run directory or checkpoint
(tinygan.tools.rundir.load_run), draw --n-samples images from its noise prior
(tinygan.tools.rundir.sample_images) and print tinygan.tools.metrics.sample_quality against the
classifier's held-out images (for --split test: test digits 8,000-9,999), next to the same
scores for real images (the classifier's training images) as a reference. The data set, split
and limit come from the classifier's checkpoint:

    python examples/train_classifier.py --data-dir ../shared/data/mnist --out runs/classifier \
        --score-gan runs/mnist-test8k

Exit status: 0 done, 1 error, 2 bad usage.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

from tinygan import __version__  # noqa: E402
from tinygan.tools.cli import (Parser, non_negative_int, positive_float, positive_int,  # noqa: E402
                               report_error, unit_float)
from tinygan.backend import BACKENDS, get_backend  # noqa: E402
from tinygan.tools.checkpoint import checkpoint_exists, save_checkpoint  # noqa: E402
from tinygan.tools.rundir import load_run, sample_images  # noqa: E402
from tinygan.tools.classifier import Classifier, fit, load_classifier  # noqa: E402
from tinygan.tools.cli import add_download_flags, download_setting  # noqa: E402
from tinygan.tools.data import load_mnist  # noqa: E402
from tinygan.errors import ConfigError, TinyGANError  # noqa: E402
from tinygan.tools.metrics import sample_quality  # noqa: E402
from tinygan.tools.signals import DeferredInterrupt, run_main  # noqa: E402

OFFLINE_TRAIN = 8000        # --split test: train on test digits [0, 8000), report on [8000, 10000)


def parse_args(argv=None):
    p = Parser(prog="train_classifier.py", description=__doc__.split("\n\n")[0])
    from_clf = "; with --score-gan, the classifier's"
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default=None,
                   help=f"which data set (default: mnist{from_clf})")
    p.add_argument("--split", choices=("train", "test"), default=None,
                   help="mnist only: train = train on the 60,000 training digits, report on the "
                        "10,000 test digits; test = train on test digits 0-7,999 and report on "
                        "8,000-9,999 (offline MNIST has only these) (default: train, as in "
                        f"every tinygan command{from_clf})")
    p.add_argument("--data-dir", default=None,
                   help="directory holding the IDX files (default: $TINYGAN_DATA, Debian's "
                        "Fashion-MNIST, the cache ~/.cache/tinygan, then a download)")
    add_download_flags(p)
    p.add_argument("--out", default="runs/classifier",
                   help="the classifier's run directory: written by training, read by "
                        "--score-gan (there also its checkpoint in any form)")
    p.add_argument("--force", action="store_true",
                   help="train into an --out that holds a classifier, replacing it")
    p.add_argument("--epochs", type=positive_int, default=15, help="passes over the images")
    p.add_argument("--batch-size", type=positive_int, default=100, help="minibatch size")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam's initial learning rate")
    p.add_argument("--lr-decay", type=unit_float, default=0.85, help="lr factor per epoch")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[512, 512],
                   help="hidden layer widths")
    p.add_argument("--keep-prob", type=unit_float, default=0.8,
                   help="dropout: probability of keeping a hidden unit at train time")
    p.add_argument("--limit", type=positive_int, default=None,
                   help=f"train on the first N training images only, for quick runs (default: "
                        f"all{from_clf})")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="random seed: initialisation, dropout, shuffling, the GAN's noise")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library: numpy (CPU), cupy (CUDA GPU), auto (cupy when usable)")
    p.add_argument("--score-gan", metavar="RUN", default=None,
                   help="do not train: load the classifier from --out and score the generator "
                        "of this GAN run (its run directory or checkpoint) against the "
                        "classifier's held-out images (default: train a classifier)")
    p.add_argument("--n-samples", type=positive_int, default=10000,
                   help="--score-gan: generated images to score")
    args = p.parse_args(argv)
    if args.score_gan is not None and args.force:
        p.error("--force replaces a classifier by training; --score-gan only reads one: give one")
    return args


def settle_data(args, saved=None):
    """Fill in --dataset, --split and --limit: the defaults, or with --score-gan those the
    classifier was trained with (``saved``: its meta); a given flag that differs is an error."""
    inferred = {}
    if saved is not None:
        inferred = {"dataset": saved.get("dataset", "mnist"),
                    "split": saved.get("split") or
                    ("test" if str(saved.get("trained_on", "")).startswith("mnist test[") else
                     "train"),
                    **({"limit": saved["limit"]} if "limit" in saved else {})}
    for key, default in (("dataset", "mnist"), ("split", "train"), ("limit", None)):
        given = getattr(args, key)
        if key in inferred:
            if given is not None and given != inferred[key] and \
                    not (key == "split" and args.dataset != "mnist"):
                flag = "--" + key
                raise ConfigError(f"{flag} {given} disagrees with the classifier in {args.out}, "
                                  f"trained with {flag} {inferred[key]}: drop the flag")
            setattr(args, key, inferred[key])
        elif given is None:
            setattr(args, key, default)
    return args


def load_data(args):
    """(train_x, train_y, eval_x, eval_y, description)."""
    if args.dataset == "mnist" and args.split == "test":
        x, y = load_mnist("mnist", "test", data_dir=args.data_dir, download=download_setting(args))
        n = OFFLINE_TRAIN
        train, held = (x[:n], y[:n]), (x[n:], y[n:])
        what = {"train": f"mnist test[0:{n}]", "eval": f"mnist test[{n}:{len(x)}]"}
    else:
        dl = download_setting(args)
        train = load_mnist(args.dataset, "full-train", data_dir=args.data_dir, download=dl)
        held = load_mnist(args.dataset, "test", data_dir=args.data_dir, download=dl)
        what = {"train": f"{args.dataset} train (all {len(train[0])})",
                "eval": f"{args.dataset} test (all {len(held[0])})"}
    if args.limit is not None:
        train = (train[0][:args.limit], train[1][:args.limit])
        what["train"] += f", first {len(train[0])}"
    return train, held, what


def score_gan(args):
    be = get_backend(args.backend, seed=args.seed)
    clf, cmeta = load_classifier(args.out, backend=be)
    gan, _, meta = load_run(args.score_gan, be)
    (tx, _), (ex, _), what = load_data(settle_data(args, cmeta))
    samples = sample_images(gan, args.n_samples)
    print(f"classifier {args.out}: {100 * cmeta['accuracy']:.2f}% on "
          f"{cmeta.get('evaluated_on', 'its held-out images')}; GAN {args.score_gan}: epoch {meta.get('epoch')}, step "
          f"{meta.get('step')}; real set: {what['eval']} ({len(ex)} images)")
    rows = [(f"GAN samples (epoch {meta.get('epoch')})", sample_quality(samples, ex, clf)),
            (f"real: {what['train']}", sample_quality(tx, ex, clf))]
    print("\n| images | n | classes covered | class histogram | inception score "
          "| Frechet distance |\n|---|---|---|---|---|---|")
    for name, q in rows:
        print(f"| {name} | {q['n_samples']} | {q['classes_covered']} / 10 | "
              f"{' '.join(map(str, q['class_histogram']))} | {q['inception_score']:.2f} | "
              f"{q['frechet_distance']:.3f} |")
    return 0


def main(argv=None):
    args = parse_args(argv)
    from tinygan.tools.threads import blas_threads, mlp_gemm, threads_for
    limit = threads_for(mlp_gemm([784, *args.hidden, 10], args.batch_size))
    with blas_threads(limit if args.backend == "numpy" else None):   # small nets: 1 thread
        return _main(args)


def _main(args):
    if args.score_gan is not None:
        try:
            return score_gan(args)
        except (TinyGANError, OSError) as exc:
            return report_error("train_classifier.py", exc)
    try:
        from tinygan.tools.runlock import lock_directory
        lock_directory(args.out)       # checked (and held) before training: one writer per --out
        if checkpoint_exists(Path(args.out) / "checkpoint") and not args.force:
            raise ConfigError(f"{args.out} already holds a classifier's checkpoint: add --force "
                              "to replace it, or choose another --out")
        settle_data(args)
        (tx, ty), (ex, ey), what = load_data(args)
        be = get_backend(args.backend, seed=args.seed)
        clf = Classifier(in_dim=tx.shape[1], hidden=args.hidden, n_classes=10,
                         keep_prob=args.keep_prob, backend=be)
        print(f"training on {what['train']}, reporting on {what['eval']}; "
              f"{clf.net.num_params:,} parameters, backend {be.name}", flush=True)
        start = time.perf_counter()
        accuracies, losses = [], []
        out = Path(args.out)

        def report(epoch, loss):           # each finished epoch is saved: Ctrl-C keeps it
            acc = clf.accuracy(ex, ey)
            accuracies.append(acc)
            losses.append(loss)
            arrays = {f"net/{name}": be.to_numpy(p).copy() for name, p in clf.state().items()}
            meta = {"kind": "tinygan.tools.classifier.Classifier", "architecture": clf.config,
                    "dataset": args.dataset, "split": args.split, "limit": args.limit,
                    "trained_on": what["train"],
                    "evaluated_on": what["eval"], "accuracy": acc,
                    "accuracy_per_epoch": accuracies, "loss_per_epoch": losses,
                    "epochs": epoch, "batch_size": args.batch_size, "lr": args.lr,
                    "lr_decay": args.lr_decay, "seed": args.seed, "backend": be.name,
                    "tinygan_version": __version__}
            save_checkpoint(out / "checkpoint", arrays, meta)
            print(f"epoch {epoch:3d}  loss {loss:.4f}  held-out accuracy {100 * acc:.2f}%  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        with DeferredInterrupt() as interrupt:
            fit(clf, tx, ty, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                lr_decay=args.lr_decay, callback=report, stop=lambda: interrupt.requested)
    except (TinyGANError, OSError) as exc:
        return report_error("train_classifier.py", exc)
    if interrupt.requested:
        kept = (f"the classifier of epoch {len(accuracies)} is kept in {out / 'checkpoint'}"
                f".npz/.json" if accuracies else f"no epoch was finished: nothing written in {out}")
        print(f"train_classifier.py: interrupted ({interrupt.signal_name}) in epoch "
              f"{len(accuracies) + 1}; {kept}", flush=True)
        return 0
    print(f"accuracy on {what['eval']}: {100 * accuracies[-1]:.2f}%; "
          f"wrote {out / 'checkpoint'}.npz/.json")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "train_classifier.py"))
