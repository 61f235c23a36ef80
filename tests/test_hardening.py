"""Bad input gets one clear line and a non-zero exit; interruptions lose nothing.

Library-level refusals are tested beside each module (test_data, test_checkpoint, test_train,
test_layers, ...); these tests drive examples/mnist.py as a user would.
"""

import gzip
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import MNIST_DIR, REPO
from tinygan.tools import data as data_mod
from tinygan.tools.checkpoint import load_checkpoint
from tinygan.tools.data import write_idx

sys.path.insert(0, str(REPO / "examples"))
import mnist as example  # noqa: E402

EXAMPLE = str(REPO / "examples" / "mnist.py")


def tiny_mnist(directory, n=200, seed=0):
    """A small but well-formed MNIST test split (random digits) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return directory


def run_main(argv, capsys):
    code = example.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No downloads: every mirror is a closed local port, the cache is empty."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    dead = {k: ["http://127.0.0.1:9/"] for k in data_mod.MIRRORS}
    monkeypatch.setattr(data_mod, "MIRRORS", dead)


def common(tmp_path, data_dir):
    return ["--data-dir", str(data_dir), "--split", "test", "--out", str(tmp_path / "out"),
            "--no-progress", "--epochs", "1", "--batch-size", "50"]


def test_cupy_missing_or_no_gpu(tmp_path, capsys, offline):
    from tinygan.backend import cupy_usable
    if cupy_usable()[0]:
        pytest.skip("a GPU is usable here")
    code, err = run_main(common(tmp_path, tiny_mnist(tmp_path / "d")) + ["--backend", "cupy"], capsys)
    assert code == 1 and len(err) == 1
    assert 'pip install "tinygan[gpu]"' in err[0] or "no CUDA device" in err[0]


@pytest.mark.parametrize("argv, fragment", [
    (["--batch-size", "-5"], "positive integer"), (["--batch-size", "ten"], "positive integer"),
    (["--epochs", "0"], "positive integer"), (["--k", "0"], "positive integer"),
    (["--lr", "0"], "positive number"), (["--lr", "nan"], "positive number"),
    (["--limit", "0"], "positive integer"), (["--split", "validation"], "invalid choice"),
    (["--objective", "wgan"], "invalid choice"), (["--schedule", "random"], "invalid choice"),
    (["--seed", "-1"], "non-negative"),
])
def test_usage_errors_exit_2_in_one_line(argv, fragment):
    proc = subprocess.run([sys.executable, EXAMPLE, *argv], capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_data_dir_without_the_files(tmp_path, capsys, offline):
    (tmp_path / "empty").mkdir()
    code, err = run_main(common(tmp_path, tmp_path / "empty"), capsys)
    assert code == 1 and len(err) == 1
    # with --data-dir nothing is downloaded (issue 14): the line names the directory and files
    assert "could not download" not in err[0] and str(tmp_path / "empty") in err[0]
    assert "t10k-images-idx3-ubyte.gz" in err[0] and "--download" in err[0]
    assert not list((tmp_path / "cache").rglob("*.part*"))


@pytest.mark.parametrize("damage", ["truncated", "corrupt gzip", "wrong magic", "mislabelled"])
def test_broken_idx_files(tmp_path, capsys, offline, damage):
    d = tiny_mnist(tmp_path / "d")
    images = d / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    if damage == "truncated":
        images.write_bytes(gzip.compress(raw[:-100]))
    elif damage == "corrupt gzip":
        blob = bytearray(images.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        images.write_bytes(bytes(blob))
    elif damage == "wrong magic":
        images.write_bytes(gzip.compress(b"\x01\x02" + raw[2:]))
    else:
        write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(150, dtype=np.uint8))
    code, err = run_main(common(tmp_path, d), capsys)
    assert code == 1 and len(err) == 1, err
    assert "t10k-" in err[0]                      # names the file


def test_resume_without_checkpoint(tmp_path, capsys):
    code, err = run_main(common(tmp_path, tiny_mnist(tmp_path / "d")) + ["--resume"], capsys)
    assert code == 1 and len(err) == 1 and "no checkpoint to resume" in err[0]


def test_resume_from_truncated_or_newer_checkpoint(tmp_path, capsys):
    argv = common(tmp_path, tiny_mnist(tmp_path / "d")) + ["--max-steps", "1"]
    assert example.main(argv) == 0
    ckpt = tmp_path / "out" / "checkpoint.npz"
    for prev in (tmp_path / "out").glob("checkpoint.prev.*"):
        prev.unlink()                              # no fallback: the damage must be reported
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    capsys.readouterr()
    code, err = run_main(argv + ["--resume"], capsys)
    assert code == 1 and len(err) == 1 and "checkpoint" in err[0]


def test_unwritable_output_directory(tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    argv = common(tmp_path, tiny_mnist(tmp_path / "d"))
    argv[argv.index("--out") + 1] = str(tmp_path / "blocker" / "run")
    code, err = run_main(argv, capsys)
    assert code == 1 and len(err) == 1 and "cannot write to output directory" in err[0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_and_resume_continues(tmp_path, sig):
    """A real Ctrl-C (or SIGTERM) to a training process: checkpoint saved, exit 0, resumable."""
    d = tiny_mnist(tmp_path / "d", n=2000)
    out = tmp_path / "out"
    argv = [sys.executable, EXAMPLE, "--data-dir", str(d), "--split", "test", "--out", str(out),
            "--epochs", "50", "--batch-size", "20", "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.csv").exists():
        time.sleep(0.2)                            # wait until training is under way
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "interrupted at step" in stdout and "Traceback" not in stderr
    arrays, meta = load_checkpoint(out / "checkpoint")
    assert 0 < meta["step"] < 50 * 100 and all(np.isfinite(a).all() for a in arrays.values())
    resumed = subprocess.run(argv[:argv.index("--epochs")] + ["--epochs", str(meta["epoch"] + 1),
                                                              "--batch-size", "20", "--no-progress",
                                                              "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from epoch {meta['epoch']} step {meta['step']}" in resumed.stdout
    assert load_checkpoint(out / "checkpoint")[1]["epoch"] == meta["epoch"] + 1


@pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(), reason="no MNIST")
def test_nan_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, capsys):
    """A learning rate this large blows the parameters up: the run stops with the step and
    values, and the checkpoint on disk is the last good one."""
    argv = ["--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "500", "--epochs", "3",
            "--batch-size", "50", "--out", str(tmp_path / "o"), "--no-progress", "--lr", "1e30",
            "--log-every", "1"]
    code, err = run_main(argv, capsys)
    assert code == 1 and len(err) == 1
    assert "diverged at step" in err[0] or "nan or inf" in err[0]
    if (tmp_path / "o" / "checkpoint.npz").exists():
        arrays, _ = load_checkpoint(tmp_path / "o" / "checkpoint")
        assert all(np.isfinite(a).all() for a in arrays.values())
