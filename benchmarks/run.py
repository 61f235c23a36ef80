"""Benchmark one training iteration of the paper's MNIST GAN: tinygan vs PyTorch vs JAX vs its bounds.

    python benchmarks/run.py                          # batch 100 and 1000, every usable backend
    python benchmarks/run.py --model cifar10          # the paper's CIFAR-10 model (~126 M parameters)
    python benchmarks/run.py --batch-sizes 100 --blocks 9 --iters 20
    python benchmarks/run.py --sweep                  # only time vs batch size: sweep.json, PNG
    python benchmarks/run.py --parzen                 # also the Parzen-window benchmark
    python benchmarks/run.py --count-launches         # kernel launches of one step (CuPy emulation)

A thin script over tinygan/tools/bench.py (`tinygan bench` is the same command in an installed
tinygan); the variants, the timing and the outputs are described there.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

try:
    from tinygan.tools.bench import *  # noqa: E402,F401,F403
    from tinygan.tools.bench import main  # noqa: E402
except KeyboardInterrupt:                # Ctrl-C while the libraries load: one line
    print("run.py: interrupted while starting: nothing run", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
