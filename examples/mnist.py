"""Train the paper's MNIST GAN (Goodfellow et al. 2014) with tinygan.

    python examples/mnist.py --backend numpy            # or cupy, or auto
    python examples/mnist.py --epochs 5 --out runs/quick
    python examples/mnist.py --resume --epochs 10 --out runs/quick

Defaults are the paper's run: maxout D with dropout, ReLU/sigmoid G, batch 100, SGD with
lr 0.1 decayed by 1.000004 per step (floor 1e-6), momentum 0.5 -> 0.7 over epochs 1-250,
the non-saturating objective, and the simultaneous update the paper's code ran (both
gradients from the same batch and samples, k = 1). --schedule alternating gives the
paper's Algorithm 1 with --k discriminator steps per generator step.

Outputs in --out: samples/epoch_NNNN.png (a fixed noise batch), curves.png, metrics.csv
(per epoch) and intervals.csv (per --log-every steps), gradients.png (each layer's gradient
norm) and saturation.png (D(G(z)) < 0.01, both objectives' gradients at G's output),
nearest_neighbours.png (Figure 2), checkpoint.npz/.json (and the one before it, .prev).
Exit status: 0 done (or interrupted with a checkpoint saved), 1 error, 2 bad usage.
examples/cifar10.py is this script with the paper's CIFAR-10 defaults (parse_args, main).
Both are thin scripts over tinygan/tools/commands.py: `tinygan train` is the same command
for an installed tinygan (--dataset mnist, fashion-mnist or cifar10).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

from tinygan.tools import commands  # noqa: E402

MNIST = {**commands.SPECS["mnist"], "description": __doc__.split("\n\n")[0]}


def parse_args(argv=None, spec=MNIST):
    """The command line (defaults filled in); ``spec`` holds what differs between data sets
    (MNIST, or examples/cifar10.py's CIFAR10): prog, description, datasets, help texts."""
    return commands.parse_train_args(argv, spec)


def main(argv=None, spec=MNIST):
    return commands.train(argv, spec)


if __name__ == "__main__":
    from tinygan.tools.signals import run_main
    sys.exit(run_main(main, "mnist.py"))
