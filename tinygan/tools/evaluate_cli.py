"""Evaluate a trained tinygan checkpoint with the paper's Parzen-window protocol: the command
``tinygan evaluate`` (and examples/evaluate.py, a thin script over :func:`main`).

    tinygan evaluate runs/mnist              # the run directory (or its checkpoint)
    tinygan evaluate runs/mnist --interpolation runs/mnist/interpolation.png

Protocol (the paper's parzen_ll.py): draw 10,000 samples from G; choose the kernel width sigma
from logspace(-1, 0, 10) on a validation set; report the mean log-likelihood of the test set
under the Parzen window, +- its standard error. Which data, from the run's own configuration:
  trained on a data set's training split (images 0-49,999): validation = the first 1,000 of
      images 50,000-59,999, test = the 10,000 test images (the paper's MNIST protocol);
  trained on MNIST's test split with --limit 8000 (offline): sigma on test images
      8,000-8,999, score images 9,000-9,999 (say so when you report it).
  CIFAR-10 (examples/cifar10.py): the same, with validation = the first 1,000 of training
      images 40,000-49,999, in the globally contrast-normalised space the model was trained
      in. The paper reports no Parzen number for CIFAR-10: there is nothing to compare with.
Prints `log-likelihood: MEAN +- SE (sigma=S)`.
"""

import json
import os

import numpy as np

from .cli import Parser, add_download_flags, download_setting, non_negative_int, positive_int, report_error
from ..backend import BACKENDS, get_backend
from .files import atomic_write
from .rundir import load_run, sample_images
from .data import load_mnist
from ..errors import ConfigError, TinyGANError
from .evaluate import parzen_evaluate


def protocol(cfg, data_dir, download=None):
    """(validation, test, description) for the run's data, as the module docstring says."""
    dataset = cfg.dataset
    if dataset == "cifar10":
        from .cifar import load_cifar10

        def load(split):
            return load_cifar10(split, data_dir=data_dir, download=download)
        first = "40,000-40,999"
    else:
        def load(split):
            return load_mnist(dataset, split, data_dir=data_dir, download=download)
        first = "50,000-50,999"
    if cfg.split == "test":
        limit = cfg.limit or 10000
        if limit > 8000:
            raise ConfigError(f"this run trained on {limit} test images; the test-split protocol "
                              "needs it to use at most the first 8,000 (--limit 8000)")
        x, _ = load("test")
        return x[8000:9000], x[9000:], f"{dataset} test split: sigma on images 8,000-8,999, scored on 9,000-9,999"
    validation, _ = load("validation")
    test, _ = load("test")
    return validation[:1000], test, f"{dataset}: sigma on validation images {first}, scored on the 10,000 test images"


def recorded_data_dir(cfg):
    """The run's own --data-dir (as training recorded it, resolved), when it is still a
    directory: evaluate reads the data the run was trained from, as --resume does."""
    if cfg.data_dir and os.path.isdir(cfg.data_dir):
        return cfg.data_dir
    return None


def interpolation(gan, path, rows=8, steps=10, shape=(28, 28)):
    """The paper's Figure 3: linear paths in z between random pairs of noise vectors (drawn from
    the run's noise prior, GAN.sample_noise)."""
    from .plot import save_interpolation_grid
    be = gan.backend
    a, b = be.to_numpy(gan.sample_noise(rows)), be.to_numpy(gan.sample_noise(rows))
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    z = ((1 - t) * a[:, None, :] + t * b[:, None, :]).reshape(rows * steps, -1)
    images = be.to_numpy(gan.sample(len(z), z=z))
    title = "linear interpolation in z" + (" (each image min-max scaled)" if len(shape) == 3 else "")
    return save_interpolation_grid(images.reshape(rows, steps, -1), path, shape=shape, title=title)


def available_memory():
    """Bytes of memory available now (Linux /proc/meminfo), else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(n, dim):
    """Refuse --samples that cannot fit: the samples are float32 (n, dim), held about three
    times at once (host, device, the estimator's augmented copy)."""
    need = 3 * 4 * n * (dim + 1)
    have = available_memory()
    if need > have:
        raise ConfigError(f"--samples {n} needs about {need / 2**30:,.1f} GiB of memory "
                          f"({n} x {dim} float32 samples, about three copies); "
                          f"{have / 2**30:,.1f} GiB are available: draw fewer")


def main(argv=None, prog="evaluate.py"):
    """The command line; returns the exit status (0, 1 error, 2 bad usage)."""
    p = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run directory (holding checkpoint.npz) or checkpoint path")
    p.add_argument("--backend", choices=BACKENDS, default="numpy", help="array library")
    p.add_argument("--data-dir", default=None,
                   help="where the data files are, as for tinygan train (default: the run's "
                        "own --data-dir, else $TINYGAN_DATA, the cache ~/.cache/tinygan, then "
                        "a download)")
    add_download_flags(p)
    p.add_argument("--samples", type=positive_int, default=10000, help="samples drawn from G")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the samples")
    p.add_argument("--interpolation", default=None, metavar="PNG",
                   help="also write the paper's Figure 3 (interpolation in z) to this PNG "
                        "(default: none)")
    p.add_argument("--classifier", default=None, metavar="RUN",
                   help="also score the samples with a digit classifier (train_classifier.py's run "
                        "directory or checkpoint): "
                        "classes covered, Inception-style score, Frechet distance against the "
                        "test points (default: none)")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="also write the result as JSON to this file (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        be = get_backend(args.backend, seed=args.seed)
        gan, cfg, meta = load_run(args.run, be)
        check_memory(args.samples, 3072 if cfg.dataset == "cifar10" else 784)
        clf = None
        if args.classifier:                 # loaded first: a wrong path fails before any work
            from .classifier import load_classifier
            clf, _ = load_classifier(args.classifier, backend=be)
        data_dir = args.data_dir or recorded_data_dir(cfg)
        validation, test, what = protocol(cfg, data_dir, download_setting(args))
        print(f"checkpoint: epoch {meta.get('epoch')}, step {meta.get('step')}; {what}", flush=True)
        samples = sample_images(gan, args.samples)
        result = parzen_evaluate(test, validation, samples, backend=be,
                                 progress=not args.no_progress)
        print(f"log-likelihood: {result.mean:.1f} +- {result.stderr:.1f} (sigma={result.sigma:.4g})")
        if cfg.dataset == "cifar10":
            print("(the paper reports no Parzen-window number for CIFAR-10: nothing to compare with)")
        report = {**result.as_dict(), "protocol": what, "epoch": meta.get("epoch"),
                  "step": meta.get("step")}
        if clf is not None:
            from .metrics import sample_quality
            q = sample_quality(samples, test, clf)
            print(f"classes covered: {q['classes_covered']}/10 {q['class_histogram']}; "
                  f"inception score: {q['inception_score']:.2f}; "
                  f"frechet distance: {q['frechet_distance']:.1f}")
            report["sample_quality"] = q
        if args.json:
            atomic_write(args.json, lambda f: f.write(json.dumps(report, indent=1).encode()))
        if args.interpolation:
            from .config import IMAGE_SHAPES
            shape = IMAGE_SHAPES.get(cfg.dataset, (28, 28))
            print(f"interpolation: {interpolation(gan, args.interpolation, shape=shape)}")
    except (TinyGANError, OSError) as exc:
        return report_error(prog, exc)
    return 0
