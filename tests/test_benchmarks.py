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


def test_cifar_gemm_list_and_torch_step():
    """--model cifar10: the GEMM list covers the CIFAR-10 weights (full size, shapes only) and
    PyTorch's step (ReLU, sigmoid, linear G) equals tinygan's at reduced widths."""
    from tinygan.network import paper_cifar_discriminator, paper_cifar_generator
    from tinygan.backend import get_backend
    be = get_backend("numpy", seed=0)
    spec = bench.model_spec("cifar10", hidden=24, units=6)
    weight_grads = sorted((M, N) for M, K, N, ta, tb in bench.gemm_shapes(5, spec) if ta)
    weights = sorted(a.shape for net in (paper_cifar_generator(hidden=24, backend=be),
                                         paper_cifar_discriminator(units=6, backend=be))
                     for name, a in net.params if name.endswith("W"))
    assert weight_grads == weights
    full = bench.gemm_shapes(100, "cifar10")
    assert (8000, 100, 8000, 1, 0) in full and (3072, 200, 8000, 1, 0) in full
    pytest.importorskip("torch")
    assert bench.check_torch_matches("numpy", m=8, steps=3, model=spec) < 1e-5


def test_benchmark_script_runs_cifar(tmp_path, capsys, monkeypatch):
    """--model cifar10 end to end at reduced widths (the full model is for a quiet machine)."""
    monkeypatch.setitem(bench.MODELS, "cifar10", bench.model_spec("cifar10", hidden=64, units=16))
    bench.main(["--model", "cifar10", "--batch-sizes", "4", "--blocks", "1", "--iters", "1",
                "--warmup", "1", "--out", str(tmp_path)])
    assert "| cifar10 | numpy | 4 |" in capsys.readouterr().out
    row = json.loads((tmp_path / "results_cifar10.json").read_text())["rows"][0]
    assert row["model"] == "cifar10" and row["tinygan"]["median"] > 0
