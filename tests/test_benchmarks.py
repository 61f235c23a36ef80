"""The benchmark suite computes what it claims: PyTorch's step equals tinygan's, the GEMM list
matches the model, and the script runs end to end (tiny sizes; speed is never asserted)."""

import json
import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import run as bench  # noqa: E402


def test_gemm_list_counts_every_weight_gradient_once():
    """Each weight matrix appears in exactly one dW product of the right shape."""
    shapes = bench.gemm_shapes(7)
    weight_grads = sorted((M, N) for M, K, N, ta, tb in shapes if ta)
    from tinygan.network import paper_discriminator, paper_generator
    weights = sorted(a.shape for net in (paper_generator(), paper_discriminator())
                     for name, a in net.params if name.endswith("W"))
    assert weight_grads == weights
    assert bench.gemm_flops(100) == sum(2 * M * K * N for M, K, N, _, _ in bench.gemm_shapes(100))


def test_torch_step_matches_tinygan():
    pytest.importorskip("torch")
    assert bench.check_torch_matches("numpy", m=20, steps=3) < 1e-5


def test_benchmark_script_runs(tmp_path, capsys):
    bench.main(["--batch-sizes", "8", "--blocks", "1", "--iters", "1", "--warmup", "1",
                "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| numpy | 8 |" in out
    result = json.loads((tmp_path / "results.json").read_text())
    row = result["rows"][0]
    assert row["batch"] == 8 and row["tinygan"]["median"] > 0 and np.isfinite(row["ratio_gemm"]["median"])
    assert result["machine"]["cores"] >= 1
