"""Train the paper's fully-connected CIFAR-10 GAN (Goodfellow et al. 2014, Figure 2c) with tinygan.

    python examples/cifar10.py --backend cupy                 # the paper's run (~126 M parameters)
    python examples/cifar10.py --data-dir ~/data/cifar10 --epochs 5 --out runs/cifar-quick
    python examples/cifar10.py --resume --epochs 10 --out runs/cifar-quick

Defaults are the paper's run (cifar10_fully_connected.yaml): training images 0-39,999 of the
binary version, globally contrast-normalised (scale 55); G 100 -> ReLU 8000 -> sigmoid 8000 ->
linear 3072 (unbounded output); D dropout 0.8 -> maxout 1600x5 -> dropout 0.5 -> maxout
1600x5 -> dropout 0.5 -> linear 1 (logits); batch 100, SGD lr 0.025 decayed by 1.000004 per
step (floor 1e-6), momentum 0.5 -> 0.7 over epochs 1-250, simultaneous update, non-saturating
G loss. Data: --data-dir, $TINYGAN_DATA or ~/.cache/tinygan/cifar10, holding the .bin files or
cifar-10-binary.tar.gz; else the archive is downloaded (md5 checked) and extracted there
(with --data-dir: only when --download is given). `tinygan train --dataset cifar10` is the same.

Pictures show each colour image min-max scaled on its own (lowest value black, highest white).
The options and outputs are examples/mnist.py's (this script is that one with other defaults).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared examples/mnist.py

import mnist  # noqa: E402
from tinygan.tools import commands  # noqa: E402

CIFAR10 = {**commands.SPECS["cifar10"], "description": __doc__.split("\n\n")[0]}


def main(argv=None):
    return mnist.main(argv, CIFAR10)


if __name__ == "__main__":
    from tinygan.tools.signals import run_main
    sys.exit(run_main(main, "cifar10.py"))
