"""Evaluate a trained tinygan checkpoint with the paper's Parzen-window protocol.

    python examples/evaluate.py runs/mnist              # the run directory (or its checkpoint)
    python examples/evaluate.py runs/mnist --interpolation runs/mnist/interpolation.png

A thin script over tinygan/tools/evaluate_cli.py (`tinygan evaluate` is the same command):
the protocol, the options and the outputs are described there and in --help.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

from tinygan.tools.evaluate_cli import interpolation, main, protocol  # noqa: E402,F401

if __name__ == "__main__":
    from tinygan.tools.signals import run_main
    sys.exit(run_main(main, "evaluate.py"))
