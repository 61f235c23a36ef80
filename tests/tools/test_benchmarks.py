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


def test_benchmark_script_runs(tmp_path, capsys, monkeypatch):
    import tinygan.tools.bench as tools_bench
    monkeypatch.setattr(tools_bench, "TRIAD_FLOATS", 1 << 16)   # the bandwidth arrays, small here
    bench.main(["--batch-sizes", "8", "--blocks", "1", "--iters", "1", "--warmup", "1",
                "--no-jax", "--out", str(tmp_path)])
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


# --- JAX, the roofline (issue 25) --------------------------------------------------------------
def test_jax_step_matches_tinygan():
    """JAX's jitted step (donated buffers) computes tinygan's step: same parameters after three
    steps from the same weights, batches, noise and dropout masks."""
    pytest.importorskip("jax")
    assert bench.check_jax_matches(m=20, steps=3) < 1e-5


def test_jax_step_matches_tinygan_cifar_layout():
    pytest.importorskip("jax")
    assert bench.check_jax_matches(m=8, steps=3,
                                   model=bench.model_spec("cifar10", hidden=24, units=6)) < 1e-4


def test_step_traffic_counts_five_passes_over_every_parameter():
    """The update's traffic is 5 passes (read p, v, g; write p, v) of 4 bytes over the networks'
    parameters as built; the activations' traffic grows linearly with the batch."""
    from tinygan.network import paper_discriminator, paper_generator
    params = sum(a.size for net in (paper_generator(), paper_discriminator()) for _, a in net.params)
    t100, t1000 = bench.step_traffic(100), bench.step_traffic(1000)
    assert t100["update"] == t1000["update"] == 5 * 4 * params
    assert t1000["activations"] == 10 * t100["activations"] > 0


def test_triad_moves_what_it_claims():
    """The bandwidth kernel computes a = b + c over every slab, for 1 and 3 threads."""
    for threads in (1, 3):
        run = bench.triad_variant(None, threads, n=1001, reps=1)
        run()
        assert run.bytes == 3 * 4 * 1001
        a, b, c = run.arrays
        b[:] = np.arange(1001)
        run()
        np.testing.assert_array_equal(a, np.arange(1001, dtype=np.float32) + c)


def _row(json_path):
    return json.loads(json_path.read_text())


def test_benchmark_reports_jax_and_roofline(tmp_path, capsys, monkeypatch):
    pytest.importorskip("jax")
    import tinygan.tools.bench as tools_bench
    monkeypatch.setattr(tools_bench, "TRIAD_FLOATS", 1 << 16)
    bench.main(["--batch-sizes", "8", "--blocks", "2", "--iters", "1", "--warmup", "1",
                "--no-torch", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| model"))
    assert "JAX ms/iter" in header and "tinygan / JAX" in header and "tinygan / roofline" in header
    assert "JAX computes the same step" in out
    row = _row(tmp_path / "results.json")["rows"][0]
    assert row["jax"]["median"] > 0 and np.isfinite(row["ratio_jax"]["median"])
    assert row["roofline"]["median"] > row["gemm"]["median"] * 0.5
    assert set(row["bandwidth_gb_s"]) >= {"1"} and row["bandwidth_gb_s"]["1"]["median"] > 0
    assert row["traffic_mb"]["update"] == bench.step_traffic(8)["update"] / 1e6


# --- issue 24, cases 3, 4, 12 and Ctrl-C: the command line, through subprocesses ----------------
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

SMALL = ["--hidden", "16", "--units", "4", "--batch-sizes", "8", "--no-torch", "--no-jax",
         "--no-roofline", "--warmup", "1"]


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return env


def _bench(args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "tinygan", "bench", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=120, **kw)


def test_default_out_is_under_the_current_directory_not_a_clone_path(tmp_path):
    """Run from any folder (as with the installed package): results in ./runs/bench."""
    r = _bench(SMALL + ["--blocks", "1", "--iters", "1"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "runs" / "bench" / "results.json").is_file()
    assert not (tmp_path / "benchmarks").exists()


def test_out_an_existing_file_is_refused_before_running(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("keep me\n")
    r = _bench(SMALL + ["--blocks", "1", "--out", "README.md"], tmp_path)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "README.md" in r.stderr and "not a directory" in r.stderr
    assert "blocks of" not in r.stdout and "machine:" not in r.stdout     # nothing was timed
    assert readme.read_text() == "keep me\n"


def test_skipped_backends_each_get_a_line_and_a_json_field(tmp_path):
    """No usable GPU, no JAX (hidden from the import system), --no-torch: one line each, and
    the JSON says why, with its gpu field."""
    code = ("import sys; sys.modules['jax'] = None; from tinygan.tools.bench import main; "
            f"sys.exit(main({SMALL[:-4] + ['--no-roofline', '--warmup', '1', '--blocks', '1', '--out', 'o']!r}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "o" / "results.json").read_text())
    from tinygan.backend import cupy_usable
    if not cupy_usable()[0]:
        assert "cupy: skipped (" in r.stdout and result["skipped"]["cupy"].startswith("skipped (")
        assert result["gpu"] is None
    assert "jax: skipped (not installed" in r.stdout and "not installed" in result["skipped"]["jax"]
    assert "torch: skipped (--no-torch)" in r.stdout and "torch" in result["skipped"]
    assert "| n/a |" in r.stdout


def test_every_column_is_explained_in_one_line(tmp_path, capsys):
    bench.main(SMALL + ["--blocks", "1", "--iters", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.startswith("| model"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    for column in columns:
        explained = [line for line in out if line.startswith(f"  {column}  ")]
        assert len(explained) == 1, column


def test_impossible_ratio_is_flagged_as_a_busy_machine(tmp_path, capsys, monkeypatch):
    """A GEMM bound slower than the step (another process took the machine while it ran):
    a warning naming the impossible ratio, and a mark in the table."""
    import tinygan.tools.bench as tools_bench
    real_gemm = tools_bench.gemm_variant

    def slow_gemm(be, m, model="mnist"):
        fn = real_gemm(be, m, model)

        def run():
            fn()
            time.sleep(0.05)
        return run
    monkeypatch.setattr(tools_bench, "gemm_variant", slow_gemm)
    tools_bench.main(SMALL + ["--blocks", "2", "--iters", "1", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert "tinygan / GEMM" in captured.err and "the machine was busy: rerun" in captured.err
    assert " ! |" in captured.out
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["busy"] is True


def test_sweep_alone_with_eta_and_results_json_untouched(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_text("{\"kept\": 1}")
    r = _bench(["--sweep", "--hidden", "16", "--units", "4", "--batch-sizes", "4", "8",
                "--out", "o"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "blocks of" not in r.stdout and "| model" not in r.stdout    # no default benchmark
    sweep_lines = [line for line in r.stdout.splitlines() if "sweep numpy batch" in line]
    assert len(sweep_lines) == 2 and all(" left" in line for line in sweep_lines)
    assert (out / "results.json").read_text() == "{\"kept\": 1}"
    assert json.loads((out / "sweep.json").read_text())["sweep"]["sizes"] == [4, 8]
    assert (out / "scaling.png").stat().st_size > 0


def _start(args, cwd, command=("-m", "tinygan", "bench")):
    proc = subprocess.Popen([sys.executable, *command, *args], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    for line in proc.stdout:                       # wait until the timing has started
        if "blocks of" in line or time.time() > deadline:
            break
    return proc


@pytest.mark.parametrize("command", [("-m", "tinygan", "bench"), (str(REPO / "benchmarks" / "run.py"),)])
def test_first_ctrl_c_writes_the_finished_blocks_and_exits_0(tmp_path, command):
    proc = _start(SMALL + ["--blocks", "100000", "--iters", "20", "--out", "o"], tmp_path, command)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
    result = json.loads((tmp_path / "o" / "results.json").read_text())
    assert result["interrupted"] is True and result["rows"][0]["blocks"] >= 1


def test_second_ctrl_c_stops_at_once_with_130(tmp_path):
    proc = _start(SMALL + ["--blocks", "3", "--iters", "1000000", "--out", "o"], tmp_path)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.count("\n") == 1 and "second interrupt" in err and "Traceback" not in err


def test_threads_ab_script_times_both_settings(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "threads_ab.py"), "--batch-sizes",
                        "8", "--blocks", "1", "--iters", "1", "--no-jax"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 thread" in r.stdout and "2 threads / 1 thread" in r.stdout and "BLAS:" in r.stdout
