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
from hypothesis import HealthCheck, given, settings, strategies as st
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


# ---------------------------------------------------------------- issue 15

import json  # noqa: E402
import os  # noqa: E402
import warnings  # noqa: E402

from tinygan.errors import CheckpointError  # noqa: E402
from tinygan.tools import checkpoint as ck  # noqa: E402

EVALUATE = str(REPO / "examples" / "evaluate.py")
CLASSIFIER = str(REPO / "examples" / "train_classifier.py")


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **extra)


def test_two_runs_on_one_out(tmp_path):
    """Two real processes on one --out: the second ends at once, in one line naming the
    first's PID; the first finishes undisturbed."""
    d = tiny_mnist(tmp_path / "d", n=2000)
    out = tmp_path / "out"
    argv = [sys.executable, EXAMPLE, "--data-dir", str(d), "--split", "test", "--out", str(out),
            "--epochs", "3", "--batch-size", "20", "--no-progress", "--hidden", "16", "--units", "8"]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / ".tinygan.lock").exists():
        time.sleep(0.05)
    time.sleep(0.2)
    second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first run ended before the second started"
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, second.stderr
    assert f"in use by another run (PID {first.pid})" in lines[0]
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert load_checkpoint(out / "checkpoint")[1]["epoch"] == 3
    # the lock died with its holder: a later run on the directory is welcome
    rerun = subprocess.run(argv + ["--resume", "--epochs", "4"], capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr


def test_classifier_out_locked_and_checked_first(tmp_path):
    from tinygan.tools.runlock import lock_directory, unlock_directory
    d = tiny_mnist(tmp_path / "d", n=200)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from tinygan.tools.runlock import lock_directory\n"
                               "lock_directory(sys.argv[1]); print('locked', flush=True)\n"
                               "time.sleep(60)", str(tmp_path / "clf")],
                              env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        proc = subprocess.run([sys.executable, CLASSIFIER, "--data-dir", str(d), "--out",
                               str(tmp_path / "clf"), "--epochs", "1"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert f"PID {holder.pid}" in proc.stderr and "training on" not in proc.stdout
    finally:
        holder.kill()
        holder.wait()
    proc = subprocess.run([sys.executable, CLASSIFIER, "--data-dir", str(d), "--out",
                           "/dev/null/x", "--epochs", "1"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot write to output directory /dev/null/x" in proc.stderr
    assert "training on" not in proc.stdout                  # refused before training
    lock_directory(tmp_path / "mine")                        # one process: taken once, shared
    lock_directory(tmp_path / "mine")
    unlock_directory(tmp_path / "mine")


@pytest.mark.parametrize("argv, fragment", [
    ([EVALUATE, "run", "--seed", "-1"], "non-negative"),
    ([EVALUATE, "run", "--samples", "0"], "positive integer"),
    ([CLASSIFIER, "--seed", "-1"], "non-negative"),
])
def test_more_usage_errors_exit_2(argv, fragment):
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], proc.stderr


def _tiny_run(tmp_path, extra=()):
    d = tiny_mnist(tmp_path / "d", n=200)
    out = tmp_path / "run"
    assert example.main(["--data-dir", str(d), "--split", "test", "--out", str(out),
                         "--no-progress", "--epochs", "1", "--batch-size", "50", "--hidden", "8",
                         "--units", "4", *extra]) == 0
    return out


def test_evaluate_refuses_samples_that_cannot_fit(tmp_path, capsys):
    out = _tiny_run(tmp_path)
    capsys.readouterr()
    sys.path.insert(0, str(REPO / "examples"))
    import evaluate
    code = evaluate.main([str(out), "--samples", "1000000000000", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "needs about" in err[0] and "GiB" in err[0], err


def test_non_utf8_out_under_strict_stdout(tmp_path):
    """A path with undecodable bytes in the one-line error and the start line, with
    PYTHONIOENCODING=utf-8:strict: no UnicodeEncodeError."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    bad = os.fsencode(str(blocker)) + b"/\xff\xfe-run"
    d = tiny_mnist(tmp_path / "d", n=200)
    proc = subprocess.run([sys.executable, EXAMPLE, "--data-dir", str(d), "--split", "test",
                           "--out", bad, "--epochs", "1", "--no-progress"],
                          capture_output=True, env=_env(PYTHONIOENCODING="utf-8:strict"), timeout=120)
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1, proc.stderr
    assert "\\udcff" in err[0] and "Traceback" not in err[0]
    good = tmp_path / b"\xff-run".decode(errors="surrogateescape")
    proc = subprocess.run([sys.executable, EXAMPLE, "--data-dir", str(d), "--split", "test",
                           "--out", os.fsencode(str(good)), "--epochs", "1", "--batch-size", "50",
                           "--hidden", "8", "--units", "4", "--no-progress"],
                          capture_output=True, env=_env(PYTHONIOENCODING="utf-8:strict"), timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_divergence_before_the_first_save_says_so(tmp_path, capsys):
    d = tiny_mnist(tmp_path / "d", n=500)
    code, err = run_main(["--data-dir", str(d), "--split", "test", "--out", str(tmp_path / "o"),
                          "--no-progress", "--epochs", "3", "--batch-size", "50", "--lr", "1e30",
                          "--log-every", "1", "--hidden", "8", "--units", "4"], capsys)
    assert code == 1 and len(err) == 1, err
    assert "no checkpoint was saved yet" in err[0] and "is kept" not in err[0]
    assert not (tmp_path / "o" / "checkpoint.npz").exists()


def test_leftover_temp_files_cleaned_at_start(tmp_path):
    out = _tiny_run(tmp_path)
    (out / "checkpoint.npz.tmp").write_bytes(b"\0" * 1000)      # a save killed mid-way
    (out / "checkpoint.json.tmp").write_bytes(b"{")
    out2 = _tiny_run(tmp_path, ["--resume", "--epochs", "2"])     # (a finished run is not restarted)
    assert out2 == out and not list(out.glob("*.tmp"))


# --- the schema: what evaluate, --score-gan, --classifier and --resume read ----------------

def _reseal(base, fn):
    rec = json.loads((base.parent / (base.name + ".json")).read_text())
    fn(rec)
    rec["record_sha256"] = ck._record_sha256(rec)
    (base.parent / (base.name + ".json")).write_text(ck._record_text(rec))


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m["config"].update(noise_dim=10**9), "noise_dim"),
    (lambda m: m["config"].update(hidden="8"), "hidden"),
    (lambda m: m["config"].update(lr=[0.1]), "'lr'"),
    (lambda m: m.update(step=-3), "step"),
    (lambda m: m.update(cknfig=m.pop("config")), "config"),
    (lambda m: m["config"].update(dr=m["config"].pop("lr")), "dr"),
    (lambda m: m["rng_state"]["state"].update(state="x"), "rng_state"),
    (lambda m: m.update(rng_state={"bit_generator": "MT19937"}), "rng_state"),
    (lambda m: m["config"].update(dataset="svhn"), "dataset"),
])
def test_edited_run_meta_is_one_line(tmp_path, capsys, edit, fragment):
    """Resealed (checksums right) but unusable metas: evaluate, --resume: one line, exit 1;
    with a prev present it is loaded instead, with a warning."""
    out = _tiny_run(tmp_path, ["--max-steps", "2"])
    capsys.readouterr()
    for prev in out.glob("checkpoint.prev.*"):
        prev.unlink()
    _reseal(out / "checkpoint", lambda rec: edit(rec["meta"]))
    sys.path.insert(0, str(REPO / "examples"))
    import evaluate
    assert evaluate.main([str(out), "--samples", "10", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "unusable" in err[0], err
    code, err = run_main(["--data-dir", str(tmp_path / "d"), "--split", "test", "--out", str(out),
                          "--no-progress", "--epochs", "1", "--batch-size", "50", "--hidden", "8",
                          "--units", "4", "--resume"], capsys)
    assert code == 1 and len(err) == 1 and fragment in err[0], err


def test_classifier_architecture_of_wrong_type_is_one_line(tmp_path, capsys):
    from tinygan.backend import get_backend
    from tinygan.tools.classifier import Classifier
    from tinygan.tools.checkpoint import save_checkpoint
    clf = Classifier(hidden=[8], backend=get_backend("numpy", seed=0))
    base = tmp_path / "clf" / "checkpoint"
    base.parent.mkdir()
    save_checkpoint(base, {f"net/{k}": v.copy() for k, v in clf.state().items()},
                    {"architecture": {**clf.config, "hidden": "8"}, "accuracy": 0.5})
    from tinygan.tools.classifier import load_classifier
    with pytest.raises(CheckpointError, match="architecture") as info:
        load_classifier(base)
    assert "\n" not in str(info.value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([10**9, -1, 0, 2**63])
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schema")
    from tinygan.tools.config import TrainConfig
    from tinygan.tools.train import Trainer
    cfg = TrainConfig(epochs=1, batch_size=20, hidden=8, units=4, out=str(tmp / "run"),
                      n_fixed_samples=4, max_steps=1)
    images = np.random.default_rng(0).random((40, 784), dtype=np.float32)
    Trainer(cfg, images, progress=False).run()
    base = tmp / "run" / "checkpoint"
    return base, (base.parent / "checkpoint.json").read_text(), images, cfg


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_run_meta(fuzz_run, data):
    """150 resealed edits of a run's meta (a key dropped or renamed, any JSON value at any
    place): load_run and Trainer.resume load it or raise CheckpointError, nothing else; and
    nothing is allocated beyond what the arrays hold."""
    from tinygan.tools.rundir import load_run
    from tinygan.tools.train import Trainer
    base, text, images, cfg = fuzz_run
    rec = json.loads(text)
    node, key = rec["meta"], None
    while True:                                       # walk down to a random place
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        if not isinstance(node[key], (dict, list)) or not node[key] or data.draw(st.booleans()):
            break
        node = node[key]
    action = data.draw(st.sampled_from(["value", "drop", "rename"]))
    if action == "value" or isinstance(node, list):
        node[key] = data.draw(JSON_VALUES)
    elif action == "drop":
        del node[key]
    else:
        node[data.draw(st.text(max_size=6))] = node.pop(key)
    rec["record_sha256"] = ck._record_sha256(rec)
    (base.parent / "checkpoint.json").write_text(ck._record_text(rec))
    for load in (lambda: load_run(base), lambda: Trainer.resume(cfg, images, progress=False)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load()
        except CheckpointError as exc:
            assert "\n" not in str(exc)


SLOW_WINDOW = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tinygan.tools import rundir
name = {"save": "save_checkpoint", "figure": "nearest_neighbours"}[sys.argv[2]]
original = getattr(rundir.RunDirectory, name)
def slow(self, *args, **kwargs):      # hold the window open so the signal lands inside it
    print("WINDOW", flush=True)
    time.sleep(2)
    return original(self, *args, **kwargs)
setattr(rundir.RunDirectory, name, slow)
import mnist
sys.exit(mnist.main(sys.argv[3:]))
"""


@pytest.mark.parametrize("window, sig, times", [
    ("save", signal.SIGINT, 1), ("save", signal.SIGTERM, 1), ("figure", signal.SIGINT, 1),
    ("figure", signal.SIGTERM, 1), ("save", signal.SIGINT, 2)])
def test_signal_at_the_final_save_and_the_figure(tmp_path, window, sig, times):
    """A signal during the final save (a run stopped mid-epoch by --max-steps saves after the
    loop) or the nearest-neighbour figure: the work in hand completes, exit 0, no traceback.
    A second Ctrl-C still stops at once (and leaves no temp files)."""
    d = tiny_mnist(tmp_path / "d", n=200)
    out = tmp_path / "out"
    argv = ["--data-dir", str(d), "--split", "test", "--out", str(out), "--epochs", "1",
            "--batch-size", "20", "--hidden", "8", "--units", "4", "--no-progress"]
    if window == "save":
        argv += ["--max-steps", "3"]             # 10 steps per epoch: the only save is the final
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WINDOW, str(REPO / "examples"), window,
                             *argv], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    while (line := proc.stdout.readline()) and line != "WINDOW\n":
        lines.append(line)
    assert line == "WINDOW\n", proc.stderr.read()
    t0 = time.time()
    for _ in range(times):
        proc.send_signal(sig)
        time.sleep(0.2)
    stdout, stderr = proc.communicate(timeout=120)
    if times == 2:
        assert proc.returncode != 0 and time.time() - t0 < 1.5   # stopped at once
        assert not list(out.glob("*.tmp"))
        assert "Traceback" not in stderr and "stopped at once" in stderr.strip().splitlines()[-1]
        return
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    arrays, meta = load_checkpoint(out / "checkpoint")
    assert meta["step"] == (3 if window == "save" else 10)
    if window == "save":
        assert "interrupted during the final save at step 3" in stdout
        assert not (out / "nearest_neighbours.png").exists()
    else:
        assert "interrupted while drawing the nearest-neighbour figure" in stdout
        assert (out / "nearest_neighbours.png").stat().st_size > 0
