"""examples/mnist.py end to end on real images (the MNIST test split in ../shared, or Debian's
Fashion-MNIST), and its command-line errors."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from conftest import FASHION_DIR, MNIST_DIR, REPO

sys.path.insert(0, str(REPO / "examples"))
import mnist as example  # noqa: E402

HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists()
HAVE_FASHION = (FASHION_DIR / "train-images-idx3-ubyte.gz").exists()


def check_outputs(out, epochs):
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    for r in rows:
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert np.isfinite(float(r[key]))
    for e in range(1, epochs + 1):
        grid = imread(out / "samples" / f"epoch_{e:04d}.png")
        assert grid.ndim in (2, 3) and grid.min() >= 0 and grid.max() <= 1
    assert imread(out / "curves.png").size and imread(out / "nearest_neighbours.png").size
    assert (out / "checkpoint.npz").exists() and (out / "checkpoint.json").exists()


@pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test split not found in {MNIST_DIR}")
def test_trains_on_real_mnist_and_resumes(tmp_path, capsys):
    out = tmp_path / "mnist"
    argv = ["--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "400", "--epochs", "2",
            "--batch-size", "50", "--out", str(out), "--no-progress"]
    assert example.main(argv) == 0
    check_outputs(out, 2)
    assert example.main(argv[:-3] + ["--epochs", "3", "--out", str(out), "--resume",
                                     "--no-progress"]) == 0
    check_outputs(out, 3)
    assert "epoch 3/3:" in capsys.readouterr().out


@pytest.mark.skipif(not HAVE_FASHION, reason=f"Debian's Fashion-MNIST not found in {FASHION_DIR}")
def test_trains_on_real_fashion_mnist(tmp_path):
    out = tmp_path / "fashion"
    assert example.main(["--dataset", "fashion-mnist", "--limit", "300", "--epochs", "1",
                         "--batch-size", "100", "--out", str(out), "--no-progress",
                         "--schedule", "alternating", "--k", "3"]) == 0
    check_outputs(out, 1)


@pytest.mark.parametrize("argv, fragment", [
    (["--backend", "torch"], "invalid choice: 'torch'"),
    (["--batch-size", "0"], "expected a positive integer"),
    (["--epochs", "1.5"], "expected a positive integer"),
    (["--lr", "-1"], "expected a positive number"),
    (["--k", "3"], "--k > 1 needs --schedule alternating"),
    (["--dataset", "cifar"], "invalid choice: 'cifar'"),
])
def test_bad_flags_one_line_exit_2(argv, fragment):
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "mnist.py"), *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_missing_data_dir_is_one_line_exit_1(tmp_path, capsys):
    assert example.main(["--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                         "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


@pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test split not found in {MNIST_DIR}")
def test_limit_larger_than_data(tmp_path, capsys):
    assert example.main(["--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "20000",
                         "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "--limit 20000 is larger than the 10000 images" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test split not found in {MNIST_DIR}")
def test_refuses_to_overwrite_a_run(tmp_path, capsys):
    argv = ["--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "100", "--epochs", "1",
            "--out", str(tmp_path / "o"), "--no-progress", "--max-steps", "1"]
    assert example.main(argv) == 0
    assert example.main(argv) == 1
    assert "already holds a run's checkpoint" in capsys.readouterr().err
