"""The `tinygan` command (python -m tinygan) and the workflows around it (issue 14): train,
resume from the checkpoint's settings, sample, offline data, BLAS threads, the benchmark's BLAS
record, gradcheck's worst coordinate, progress lines, help texts, the clone-folder trap."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import MNIST_DIR, REPO

HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test split not in {MNIST_DIR}")
SMALL = ["--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "200", "--batch-size", "50",
         "--hidden", "16", "--units", "8", "--no-progress"]


def tinygan(*argv, env=None, cwd=REPO):
    full = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": "/nonexistent-cache",
            **(env or {})}
    return subprocess.run([sys.executable, "-m", "tinygan", *map(str, argv)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120)


def one_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# --- point 1: the command ------------------------------------------------------------------
def test_usage_and_unknown_command():
    proc = tinygan()
    assert proc.returncode == 2 and "train" in proc.stdout and "bench" in proc.stdout
    proc = tinygan("fly")
    assert proc.returncode == 2 and "unknown command 'fly'" in one_line(proc)
    assert "tinygan = tinygan.tools.commands:console_main" in (REPO / "setup.cfg").read_text()


@needs_mnist
def test_train_sample_and_resume_from_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = tinygan("train", *SMALL, "--epochs", "1", "--lr", "0.05", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1:" in proc.stdout and "ETA" in proc.stdout
    # point 2: resume without --data-dir's companions (--split test, --limit, --lr ...)
    proc = tinygan("train", "--resume", "--data-dir", MNIST_DIR, "--epochs", "2", "--out", out,
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "mnist test (200 images)" in proc.stdout and "epoch 2/2:" in proc.stdout
    cfg = json.loads((out / "checkpoint.json").read_text())["meta"]["config"]
    assert (cfg["lr"], cfg["hidden"], cfg["limit"], cfg["epochs"]) == (0.05, 16, 200, 2)
    # a flag that disagrees: one line naming it
    proc = tinygan("train", "--resume", "--data-dir", MNIST_DIR, "--lr", "0.1", "--epochs", "3",
                   "--out", out)
    assert proc.returncode == 1 and "--lr 0.1 disagrees" in one_line(proc)
    assert "0.05" in proc.stderr
    # a finished run says so
    proc = tinygan("train", "--resume", "--data-dir", MNIST_DIR, "--out", out)
    assert proc.returncode == 0 and "is finished (epoch 2 of --epochs 2)" in proc.stdout
    # --data-dir comes from the checkpoint too (the README's resume command omits it; it went
    # looking for the training set before the fix)
    proc = tinygan("train", "--resume", "--epochs", "3", "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "mnist test (200 images)" in proc.stdout and "epoch 3/3:" in proc.stdout
    # --max-steps extends, and no run is overwritten without --resume or --force
    proc = tinygan("train", *SMALL, "--out", out)
    assert proc.returncode == 1 and "--force" in one_line(proc)
    # sample: a PNG grid and an .npy, seeded
    proc = tinygan("sample", out, "--n", "7", "--seed", "3", "--npy", tmp_path / "s.npy",
                   "--png", tmp_path / "s.png")
    assert proc.returncode == 0, proc.stderr
    a = np.load(tmp_path / "s.npy")
    assert a.shape == (7, 784) and a.dtype == np.float32 and (tmp_path / "s.png").stat().st_size
    tinygan("sample", out / "checkpoint.npz", "--n", "7", "--seed", "3", "--npy", tmp_path / "t.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), a)
    proc = tinygan("sample", tmp_path / "nothing")
    assert proc.returncode == 1 and "no run directory or checkpoint" in one_line(proc)


@needs_mnist
def test_force_replaces_a_run_and_examples_stay_thin(tmp_path):
    sys.path.insert(0, str(REPO / "examples"))
    import mnist
    out = str(tmp_path / "run")
    assert mnist.main(SMALL + ["--max-steps", "2", "--out", out]) == 0
    assert mnist.main(SMALL + ["--max-steps", "1", "--out", out, "--force"]) == 0
    cfg = json.loads((tmp_path / "run" / "checkpoint.json").read_text())["meta"]
    assert cfg["step"] == 1
    assert (tmp_path / "run" / "nearest_neighbours.png").exists()


# --- point 3: --data-dir never downloads ----------------------------------------------------
def test_data_dir_without_files_is_one_line_and_no_download(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "cache"
    proc = tinygan("train", "--data-dir", empty, "--out", tmp_path / "o", "--no-progress",
                   env={"XDG_CACHE_HOME": str(cache)})
    line = one_line(proc)
    assert proc.returncode == 1
    assert str(empty) in line and "train-images-idx3-ubyte.gz" in line and "--download" in line
    assert "--split test" in line and "could not download" not in line
    assert not (cache / "tinygan").exists()          # no empty cache directory left behind
    for extra, env in ((["--no-download"], {}), ([], {"TINYGAN_OFFLINE": "1"})):
        proc = tinygan("train", *extra, "--out", tmp_path / "o", "--no-progress",
                       env={"XDG_CACHE_HOME": str(cache), **env})
        assert proc.returncode == 1 and "downloads are off" in one_line(proc)
        assert not (cache / "tinygan").exists()


def test_failed_download_leaves_no_empty_cache_dir(tmp_path, monkeypatch):
    from tinygan.errors import DataError
    from tinygan.tools import data
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="no mirrors given"):
        data.download_file("mnist", "t10k-labels-idx1-ubyte.gz", mirrors=[], progress=False)
    assert not (tmp_path / "cache").exists()


def test_cifar_data_dir_never_downloads(tmp_path, monkeypatch):
    from tinygan.errors import DataError
    from tinygan.tools import cifar, data
    monkeypatch.setattr(data, "download_file", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(DataError, match="--download") as info:
        cifar.load_cifar10("test", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)


# --- point 4: BLAS threads for small models ----------------------------------------------------
@needs_mnist
def test_small_model_trains_with_one_blas_thread(tmp_path, monkeypatch, capsys):
    pytest.importorskip("threadpoolctl")
    from tinygan.tools import commands, config, threads, train
    seen = []
    monkeypatch.setattr(train.Trainer, "run", lambda self: seen.append(threads.blas_info()))
    assert commands.train(SMALL + ["--max-steps", "1", "--out", str(tmp_path / "r")]) == 0
    assert seen and all(i["num_threads"] == 1 for i in seen[0])
    assert threads.threads_for(config.largest_gemm(config.TrainConfig())) is None   # paper size
    assert threads.threads_for(threads.mlp_gemm([16, 128, 128, 2], 640)) == 1        # modes_2d


def test_modes_2d_writes_its_table_after_each_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "modes_2d.py"), "--mixture",
                           "ring", "--steps", "4", "--seeds", "1", "--hidden", "8",
                           "--eval-samples", "100", "--plot-samples", "50", "--checkpoints", "1",
                           "--table-dir", str(tmp_path), "--image-dir", str(tmp_path), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sys.path.insert(0, str(REPO / "examples"))
    import modes_2d
    assert "write_table(name, mixture, results, args)" in (REPO / "examples" / "modes_2d.py").read_text()
    assert (tmp_path / "modes_2d_ring.md").read_text().count("| nonsaturating |") == 3
    assert modes_2d.write_table


# --- points 5 and 6: the benchmark ---------------------------------------------------------------
def test_bench_records_the_blas_kernel_and_warns_on_an_override(tmp_path, monkeypatch, capsys):
    from tinygan.tools import bench
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert bench.main(["--batch-sizes", "4", "--blocks", "1", "--iters", "1", "--warmup", "1",
                       "--no-torch", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    info = json.loads((tmp_path / "results.json").read_text())["machine"]
    assert info["blas_override"] == "OPENBLAS_CORETYPE=Haswell"
    assert info["blas_loaded"] and info["blas_loaded"][0]["internal_api"]
    assert "architecture" in info["blas_loaded"][0]
    assert "BLAS: " in captured.out and "forced by OPENBLAS_CORETYPE=Haswell" in captured.out
    assert "warning: OPENBLAS_CORETYPE=Haswell" in captured.err


@pytest.mark.parametrize("argv, status, fragment", [
    (["bench", "--backends", "foo"], 2, "invalid choice: 'foo'"),
    (["bench", "--backends", "cupy", "--no-torch"], 1, "no usable GPU"),
])
def test_bench_errors_are_one_line(argv, status, fragment):
    from tinygan.backend import cupy_usable
    if status == 1 and cupy_usable()[0]:
        pytest.skip("a GPU is usable here")
    proc = tinygan(*argv)
    assert proc.returncode == status and fragment in one_line(proc)


def test_bench_install_keeps_cuda_off_cpu_machines():
    """The [bench] extra is plain torch (CUDA from PyPI on Linux): the README and the
    benchmark's message route CPU machines to PyTorch's CPU-only wheel, installed first."""
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "PyTorch's CPU-only wheel first" in readme and "install selector" in readme
    for path in ("README.md", "setup.cfg", "tinygan/tools/bench.py"):
        assert "pytorch.org" not in (REPO / path).read_text(), path


def test_parzen_benchmark_without_gpu_is_one_line():
    from tinygan.backend import cupy_usable
    if cupy_usable()[0]:
        pytest.skip("a GPU is usable here")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "parzen.py"), "--backend",
                           "cupy"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "parzen.py: error:" in one_line(proc)
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "parzen.py"), "--n", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "expected a positive integer" in one_line(proc)


# --- point 9: gradcheck names its worst coordinate -----------------------------------------------
def test_gradcheck_row_names_the_worst_coordinate():
    from tinygan.backend import get_backend
    from tinygan.gradcheck import check_array
    from tinygan.tools.gradcheck_cli import format_coordinates, format_table
    be = get_backend("numpy", dtype="float64", seed=0)
    b = be.normal((5,))
    w = np.array([0.5, -2.0, 1.0, 3.0, -1.0])
    # the README's exercise: the bias gradient with its sign flipped, equal norms, failing
    row = check_array(lambda: float((b * w).sum()), b, -w, name="b")
    assert not row.passed and row.analytic_norm == pytest.approx(row.numerical_norm)
    index, analytic, numerical = row.worst
    assert index == (3,) and analytic == pytest.approx(-3.0) and numerical == pytest.approx(3.0)
    table = format_table([row])
    assert "[3] -3.0000e+00 3.0000e+00" in table
    listing = format_coordinates(row)
    assert listing.count("\n") == 5 and "<- worst" in listing


def test_gradcheck_verbose_lists_every_coordinate():
    proc = tinygan("gradcheck", "--layer", "linear", "--verbose")
    assert proc.returncode == 0, proc.stderr
    assert "worst: where, analytic, numerical" in proc.stdout
    assert proc.stdout.count("<- worst") == 3            # x, W and b of Linear(7, 5)
    assert len([ln for ln in proc.stdout.splitlines() if ln.strip().startswith("[")]) == 42 + 35 + 5


# --- point 8: one rule for naming a run; no classifier overwritten; the same --split default ------
def example(script, *argv):
    full = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": "/nonexistent-cache"}
    return subprocess.run([sys.executable, str(REPO / "examples" / script), *map(str, argv)],
                          cwd=REPO, env=full, capture_output=True, text=True, timeout=120)


@needs_mnist
def test_every_tool_takes_a_run_directory_or_any_checkpoint_form(tmp_path):
    run, clf = tmp_path / "run", tmp_path / "clf"
    proc = tinygan("train", *SMALL, "--max-steps", "2", "--out", run)
    assert proc.returncode == 0, proc.stderr
    small_clf = ["--data-dir", MNIST_DIR, "--epochs", "1", "--hidden", "16", "--limit", "300"]
    proc = example("train_classifier.py", *small_clf, "--split", "test", "--out", clf)
    assert proc.returncode == 0, proc.stderr
    # no classifier overwritten without --force (refused in one line, before any training)
    proc = example("train_classifier.py", *small_clf, "--split", "test", "--out", clf)
    assert proc.returncode == 1 and "--force" in one_line(proc) and "training on" not in proc.stdout
    before = (clf / "checkpoint.npz").read_bytes()
    proc = example("train_classifier.py", *small_clf, "--split", "test", "--seed", "1",
                   "--out", clf, "--force")
    assert proc.returncode == 0, proc.stderr
    assert (clf / "checkpoint.npz").read_bytes() != before
    forms = lambda d: [d, d / "checkpoint", f"{d}/checkpoint.npz", f"{d}/checkpoint.json"]
    for i, (r, c) in enumerate(zip(forms(run), forms(clf)[::-1])):     # each form of each
        if i in (0, 3):
            proc = tinygan("evaluate", r, "--data-dir", MNIST_DIR, "--samples", "200",
                           "--no-progress", "--classifier", c)
            assert proc.returncode == 0 and "classes covered" in proc.stdout, (r, c, proc.stderr)
        else:   # --score-gan: the data set and split come from the classifier (--split test)
            proc = example("train_classifier.py", "--data-dir", MNIST_DIR, "--out", c,
                           "--score-gan", r, "--n-samples", "200")
            assert proc.returncode == 0 and "| GAN samples (epoch 0) | 200 |" in proc.stdout, \
                (r, c, proc.stderr)
    proc = tinygan("sample", f"{run}/checkpoint.json", "--n", "4", "--npy", tmp_path / "s.npy")
    assert proc.returncode == 0 and np.load(tmp_path / "s.npy").shape == (4, 784), proc.stderr
    proc = tinygan("train", *SMALL, "--max-steps", "1", "--out", tmp_path / "run2",
                   "--classifier", f"{clf}/checkpoint.json")
    assert proc.returncode == 0, proc.stderr
    # a split that disagrees with the classifier's, and a classifier that is not there: one line
    proc = example("train_classifier.py", "--data-dir", MNIST_DIR, "--out", clf, "--split",
                   "train", "--score-gan", run, "--n-samples", "200")
    assert proc.returncode == 1 and "--split train disagrees" in one_line(proc)
    for argv in (["evaluate", run, "--classifier", tmp_path / "none"],
                 ["train", *SMALL, "--max-steps", "1", "--out", tmp_path / "run3",
                  "--classifier", tmp_path / "none"]):
        proc = tinygan(*argv)
        assert proc.returncode == 1 and "no run directory or checkpoint" in one_line(proc)
        assert "train_classifier.py's --out" in proc.stderr
    proc = example("train_classifier.py", "--out", clf, "--score-gan", tmp_path / "none")
    assert proc.returncode == 1 and "no run directory or checkpoint" in one_line(proc)


def test_split_defaults_agree():
    from tinygan.tools import commands
    sys.path.insert(0, str(REPO / "examples"))
    import train_classifier
    assert commands.parse_train_args([]).split == "train"
    assert train_classifier.settle_data(train_classifier.parse_args([])).split == "train"
    for script in ("train_classifier.py", "mnist.py"):
        assert "default: train" in " ".join(example(script, "--help").stdout.split())


# --- point 10: every flag has a help text and shows its default ----------------------------------
SCRIPTS = ["examples/mnist.py", "examples/cifar10.py", "examples/evaluate.py",
           "examples/train_classifier.py", "examples/modes_2d.py", "examples/toy_1d.py",
           "examples/gradient_field.py", "benchmarks/parzen.py", "benchmarks/run.py",
           "benchmarks/gpu_check.py"]


def every_parser():
    """The argparse parser of every command and script, each built by its own code: its
    parse_args is stopped (SystemExit) and the parser kept."""
    import argparse
    import importlib.util
    from tinygan.tools import commands
    captured = []
    real = argparse.ArgumentParser.parse_args

    def grab(self, *a, **k):
        captured.append(self)
        raise SystemExit(0)
    calls = [lambda name=name: commands.main([name]) for name in commands.COMMANDS]
    for script in SCRIPTS:
        spec = importlib.util.spec_from_file_location("script_" + script.replace("/", "_")[:-3],
                                                      REPO / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        calls.append(lambda m=module: getattr(m, "parse_args", getattr(m, "main", None))([]))
    argparse.ArgumentParser.parse_args = grab
    try:
        for call in calls:
            with pytest.raises(SystemExit):
                call()
    finally:
        argparse.ArgumentParser.parse_args = real
    return captured


def test_every_flag_has_help_and_shows_its_default():
    import argparse
    from tinygan.tools.commands import COMMANDS
    parsers = every_parser()
    assert len(parsers) == len(COMMANDS) + len(SCRIPTS)
    missing = []
    for p in parsers:
        fmt = p._get_formatter()
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = f"{p.prog} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or "see above" in action.help:
                missing.append(f"{name}: no help")
            elif action.option_strings and action.nargs != 0 and \
                    "default" not in fmt._get_help_string(action):
                missing.append(f"{name}: no default shown")
    assert not missing, "\n".join(missing)
    assert "default:" in " ".join(tinygan("train", "--help").stdout.split())


# --- point 11: progress off a terminal, labelled Figure 2 on an interrupt -----------------------
def test_progress_without_a_tty_prints_plain_lines(capsys):
    from tinygan.tools.progress import ProgressReporter, format_duration
    rep = ProgressReporter(enabled=True, tty=False, every_s=0)
    rep.start_epoch(3, 100, 10)
    host = {"d_loss": 1.0, "g_loss": 2.0, "d_real": 0.5, "d_fake": 0.5}
    for _ in range(4):
        rep.interval(host, 2, 100.0)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("  epoch 3/100 step 2/10 (20%)") and len(out) == 4
    assert "\r" not in "".join(out)
    assert format_duration(3725) == "1h02m" and format_duration(125) == "2m05s"


def test_interrupted_run_writes_labelled_nearest_neighbours(tmp_path, monkeypatch):
    from tinygan.tools import config, plot, rundir, train
    titles = []
    real = plot.save_nearest_neighbour_grid
    monkeypatch.setattr(rundir, "save_nearest_neighbour_grid",
                        lambda *a, **k: titles.append(k.get("title")) or real(*a, **k))
    x = np.random.default_rng(0).random((40, 784), dtype=np.float32)
    cfg = config.TrainConfig(batch_size=10, epochs=3, hidden=8, units=4, out=str(tmp_path / "r"))
    t = train.Trainer(cfg, x, progress=False)
    step = t.gan.train_step

    def step_then_interrupt(batch):
        out = step(batch)
        os.kill(os.getpid(), signal.SIGINT)          # Ctrl-C after the first step
        return out
    t.gan.train_step = step_then_interrupt
    t.run()
    assert t.interrupted and t.step == 1
    assert (tmp_path / "r" / "nearest_neighbours.png").exists()
    assert "left: G's sample" in titles[0] and "nearest training image" in titles[0]
    assert "(interrupted)" in titles[0]


# --- point 12: a script beside the clone ----------------------------------------------------------
def test_quick_start_beside_the_clone(tmp_path):
    """An editable install finds tinygan through a finder placed after the path: a folder named
    tinygan/ (no __init__.py) beside the script wins as a namespace package. The README clones
    into tinygan-src/, so the README's quick start runs from the folder holding the clone."""
    readme = (REPO / "README.md").read_text()
    clone = readme.split("git clone <this repository> ", 1)[1].split()[0]
    assert not clone.isidentifier()
    snippet = readme.split("## Quick start", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    finder = (f"import importlib.machinery, importlib.util, sys\n"
              f"class F:\n"
              f"    @staticmethod\n"
              f"    def find_spec(name, path=None, target=None):\n"
              f"        if name == 'tinygan':\n"
              f"            return importlib.util.spec_from_file_location(name, "
              f"{str(REPO / 'tinygan' / '__init__.py')!r})\n"
              f"sys.meta_path.append(F)\n")
    results = {}
    for folder in (clone, "tinygan"):
        parent = tmp_path / folder.replace("-", "_")
        (parent / folder).mkdir(parents=True)
        (parent / "quick.py").write_text(finder + snippet)
        proc = subprocess.run([sys.executable, "quick.py"], cwd=parent, capture_output=True,
                              text=True, timeout=120, env={k: v for k, v in os.environ.items()
                                                           if k != "PYTHONPATH"})
        results[folder] = proc
    assert results[clone].returncode == 0, results[clone].stderr
    assert "(16, 784)" in results[clone].stdout
    assert results["tinygan"].returncode != 0               # the trap the README avoids
