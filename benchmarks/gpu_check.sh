#!/usr/bin/env bash
# The one-command GPU run (versions, gpu tests, benchmark, 3-epoch MNIST on CuPy): see gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python benchmarks/gpu_check.py "$@"
