"""examples/evaluate.py: the paper's Parzen protocol on a checkpoint, and Figure 3."""

import json
import re
import sys

import pytest
from matplotlib.image import imread

from conftest import MNIST_DIR, REPO

sys.path.insert(0, str(REPO / "examples"))
import evaluate as example  # noqa: E402
import mnist as train_example  # noqa: E402

HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists()


@pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test split not found in {MNIST_DIR}")
def test_evaluates_a_checkpoint_with_the_test_split_protocol(tmp_path, capsys):
    run = tmp_path / "run"
    assert train_example.main(["--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "8000",
                               "--max-steps", "2", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert example.main([str(run), "--data-dir", str(MNIST_DIR), "--samples", "300",
                         "--no-progress", "--json", str(tmp_path / "r.json"),
                         "--interpolation", str(tmp_path / "interp.png")]) == 0
    out = capsys.readouterr().out
    m = re.search(r"log-likelihood: (-?\d+\.\d) \+- (\d+\.\d) \(sigma=([\d.]+)\)", out)
    assert m, out
    assert "sigma on images 8,000-8,999, scored on 9,000-9,999" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert abs(result["mean"] - float(m[1])) < 0.051 and 0.1 <= result["sigma"] <= 1.0
    assert imread(tmp_path / "interp.png").shape[0] > 100


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert example.main([str(tmp_path / "nothing"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint" in err[0]


@pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test split not found in {MNIST_DIR}")
def test_sample_quality_per_epoch_and_in_evaluation(tmp_path, capsys):
    """A (small, quickly trained) classifier scores the samples in mnist.py and evaluate.py."""
    import train_classifier
    clf = tmp_path / "clf"
    assert train_classifier.main(["--data-dir", str(MNIST_DIR), "--split", "test", "--out", str(clf),
                                  "--epochs", "1",
                                  "--hidden", "64", "--limit", "2000"]) == 0
    run = tmp_path / "run"
    assert train_example.main(["--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "8000",
                               "--out", str(run), "--no-progress", "--epochs", "1",
                               "--batch-size", "1000",
                               "--classifier", str(clf / "checkpoint")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"classes \d+/10  IS [\d.]+  FD [\d.]+", out), out
    assert example.main([str(run), "--data-dir", str(MNIST_DIR), "--samples", "300",
                         "--no-progress", "--classifier", str(clf / "checkpoint")]) == 0
    assert re.search(r"classes covered: \d+/10 .*inception score: [\d.]+; frechet distance: [\d.]+",
                     capsys.readouterr().out)
