"""Evaluate a trained tinygan checkpoint with the paper's Parzen-window protocol.

    python examples/evaluate.py runs/mnist              # the run directory (or its checkpoint)
    python examples/evaluate.py runs/mnist --interpolation runs/mnist/interpolation.png

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
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygan.tools.cli import Parser, report_error  # noqa: E402
from tinygan.backend import BACKENDS, get_backend  # noqa: E402
from tinygan.tools.checkpoint import checkpoint_exists, load_checkpoint  # noqa: E402
from tinygan.tools.data import load_mnist  # noqa: E402
from tinygan.errors import CheckpointError, ConfigError, TinyGANError  # noqa: E402
from tinygan.tools.evaluate import parzen_evaluate  # noqa: E402
from tinygan.network import paper_cifar_generator, paper_generator  # noqa: E402


def load_generator(path, backend):
    """(G, config, meta) from a run directory or checkpoint path."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint"
    elif not checkpoint_exists(path):
        raise CheckpointError(f"no run directory or checkpoint at {path}: give the --out "
                              "directory of examples/mnist.py (or its checkpoint)")
    arrays, meta = load_checkpoint(path)
    cfg = meta.get("config", {})
    size = {"hidden": cfg["hidden"]} if cfg.get("hidden") else {}
    make = paper_cifar_generator if cfg.get("dataset") == "cifar10" else paper_generator
    G = make(noise_dim=cfg.get("noise_dim", 100), backend=backend, **size)
    G.load_state({k[2:]: v for k, v in arrays.items() if k.startswith("G/")})
    return G, cfg, meta


def sample(G, n, backend, batch=1000):
    """n samples (host float32 (n, 784)), noise U(-sqrt 3, sqrt 3) as in training."""
    G.eval()
    r = np.sqrt(3.0)
    out = [backend.to_numpy(G.forward(backend.uniform(-r, r, (min(batch, n - i), G.layers[0].n_in))))
           for i in range(0, n, batch)]
    return np.concatenate(out)


def protocol(cfg, data_dir):
    """(validation, test, description) for the run's data, as the module docstring says."""
    dataset = cfg.get("dataset", "mnist")
    if dataset == "cifar10":
        from tinygan.tools.cifar import load_cifar10

        def load(split):
            return load_cifar10(split, data_dir=data_dir)
        first = "40,000-40,999"
    else:
        def load(split):
            return load_mnist(dataset, split, data_dir=data_dir)
        first = "50,000-50,999"
    if cfg.get("split") == "test":
        limit = cfg.get("limit") or 10000
        if limit > 8000:
            raise ConfigError(f"this run trained on {limit} test images; the test-split protocol "
                              "needs it to use at most the first 8,000 (--limit 8000)")
        x, _ = load("test")
        return x[8000:9000], x[9000:], f"{dataset} test split: sigma on images 8,000-8,999, scored on 9,000-9,999"
    validation, _ = load("validation")
    test, _ = load("test")
    return validation[:1000], test, f"{dataset}: sigma on validation images {first}, scored on the 10,000 test images"


def interpolation(G, backend, path, rows=8, steps=10, seed=0, shape=(28, 28)):
    """The paper's Figure 3: linear paths in z between random pairs of noise vectors."""
    from tinygan.tools.plot import save_interpolation_grid
    rng = np.random.default_rng(seed)
    d, r = G.layers[0].n_in, np.sqrt(3.0)
    a, b = rng.uniform(-r, r, (2, rows, d)).astype(np.float32)
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    z = ((1 - t) * a[:, None, :] + t * b[:, None, :]).reshape(rows * steps, d)
    G.eval()
    images = backend.to_numpy(G.forward(backend.asarray(z)))
    title = "linear interpolation in z" + (" (each image min-max scaled)" if len(shape) == 3 else "")
    return save_interpolation_grid(images.reshape(rows, steps, -1), path, shape=shape, title=title)


def main(argv=None):
    p = Parser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run directory (holding checkpoint.npz) or checkpoint path")
    p.add_argument("--backend", choices=BACKENDS, default="numpy")
    p.add_argument("--data-dir", default=None,
                   help="where the data files are (as for mnist.py / cifar10.py)")
    p.add_argument("--samples", type=int, default=10000, help="samples drawn from G")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--interpolation", default=None, metavar="PNG",
                   help="also write the paper's Figure 3 (interpolation in z) to this PNG")
    p.add_argument("--classifier", default=None, metavar="CHECKPOINT",
                   help="also score the samples with a digit classifier (examples/train_classifier.py): "
                        "classes covered, Inception-style score, Frechet distance against the test points")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the result as JSON")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.samples < 1:
        p.error(f"argument --samples: expected a positive integer, got {args.samples}")
    try:
        be = get_backend(args.backend, seed=args.seed)
        G, cfg, meta = load_generator(args.run, be)
        validation, test, what = protocol(cfg, args.data_dir)
        print(f"checkpoint: epoch {meta.get('epoch')}, step {meta.get('step')}; {what}", flush=True)
        samples = sample(G, args.samples, be)
        result = parzen_evaluate(test, validation, samples, backend=be,
                                 progress=not args.no_progress)
        print(f"log-likelihood: {result.mean:.1f} +- {result.stderr:.1f} (sigma={result.sigma:.4g})")
        if cfg.get("dataset") == "cifar10":
            print("(the paper reports no Parzen-window number for CIFAR-10: nothing to compare with)")
        report = {**result.as_dict(), "protocol": what, "epoch": meta.get("epoch"),
                  "step": meta.get("step")}
        if args.classifier:
            from tinygan.tools.classifier import load_classifier
            from tinygan.tools.metrics import sample_quality
            clf, _ = load_classifier(args.classifier, backend=be)
            q = sample_quality(samples, test, clf)
            print(f"classes covered: {q['classes_covered']}/10 {q['class_histogram']}; "
                  f"inception score: {q['inception_score']:.2f}; "
                  f"frechet distance: {q['frechet_distance']:.1f}")
            report["sample_quality"] = q
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
        if args.interpolation:
            from tinygan.tools.train import IMAGE_SHAPES
            shape = IMAGE_SHAPES.get(cfg.get("dataset", "mnist"), (28, 28))
            print(f"interpolation: {interpolation(G, be, args.interpolation, shape=shape)}")
    except (TinyGANError, OSError) as exc:
        return report_error("evaluate.py", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
