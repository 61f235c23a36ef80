"""Issue 24: every script as careful as ``tinygan train`` (the data asked for, Ctrl-C everywhere,
one-line errors and warnings), through the command lines as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import MNIST_DIR, REPO
from tinygan.tools.data import write_idx

HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test split not in {MNIST_DIR}")
TINY = ["--split", "test", "--batch-size", "50", "--hidden", "16", "--units", "8",
        "--no-progress"]


def environment(**extra):
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": "/nonexistent-cache",
           "TINYGAN_UNVERIFIED_DATA": "1"}
    env.pop("TINYGAN_DATA", None)
    env.update(extra)
    return env


def tinygan(*argv, **env):
    return subprocess.run([sys.executable, "-m", "tinygan", *map(str, argv)], cwd=REPO,
                          env=environment(**env), capture_output=True, text=True, timeout=180)


def example(script, *argv, **env):
    return subprocess.run([sys.executable, str(REPO / "examples" / script), *map(str, argv)],
                          cwd=REPO, env=environment(**env), capture_output=True, text=True,
                          timeout=180)


def one_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def fake_t10k(directory, n=10000):
    """A test split of ``n`` random images (raw IDX, quick to write), labels 0..9."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(directory / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    return directory


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    return fake_t10k(tmp_path_factory.mktemp("data"))


def train_run(out, data, *more, steps=2):
    proc = tinygan("train", "--data-dir", data, *TINY, "--limit", "100", "--max-steps", steps,
                   "--out", out, *more)
    assert proc.returncode == 0, proc.stderr
    return out


# --- case 1: the data asked for ---------------------------------------------------------------
@needs_mnist
def test_fashion_mnist_asked_mnist_found_is_one_line(tmp_path):
    proc = tinygan("train", "--dataset", "fashion-mnist", "--data-dir", MNIST_DIR, *TINY,
                   "--limit", "500", "--epochs", "1", "--out", tmp_path / "run",
                   TINYGAN_UNVERIFIED_DATA="")
    assert proc.returncode == 1
    line = one_line(proc)
    assert "t10k-images-idx3-ubyte.gz is MNIST's t10k-images-idx3-ubyte (by its md5), not " \
           "Fashion-MNIST's" in line and "--dataset mnist" in line
    assert "fashion-mnist test" not in proc.stdout


@needs_mnist
def test_evaluate_refuses_another_data_set_than_the_runs(tmp_path, fake_data):
    run = train_run(tmp_path / "run", fake_data, "--dataset", "fashion-mnist")
    proc = tinygan("evaluate", run, "--data-dir", MNIST_DIR, "--samples", "100", "--no-progress",
                   TINYGAN_UNVERIFIED_DATA="")
    assert proc.returncode == 1 and "log-likelihood" not in proc.stdout
    assert "is MNIST's t10k-images-idx3-ubyte (by its md5), not Fashion-MNIST's" in one_line(proc)


def test_unknown_data_is_refused_in_one_line(tmp_path, fake_data):
    proc = tinygan("train", "--data-dir", fake_data, *TINY, "--limit", "100", "--max-steps", "1",
                   "--out", tmp_path / "run", TINYGAN_UNVERIFIED_DATA="")
    assert proc.returncode == 1
    assert "matches no published MNIST file" in one_line(proc)
    assert "TINYGAN_UNVERIFIED_DATA=1" in proc.stderr


# --- case 6: a symlink loop --------------------------------------------------------------------
def test_symlink_loop_data_dir_is_one_line(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for run in (lambda *a: tinygan("train", *a), lambda *a: example("train_classifier.py", *a)):
        proc = run("--data-dir", tmp_path / "loop", "--split", "test", "--out", tmp_path / "o")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "is a symlink loop" in one_line(proc)


# --- case 7: a checkpoint that falls back to prev warns in one line ----------------------------
def test_fallback_to_prev_is_one_warning_line(tmp_path, fake_data):
    run = train_run(tmp_path / "run", fake_data, steps=4)       # 2 steps/epoch: a prev exists
    npz = run / "checkpoint.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    proc = tinygan("sample", run, "--n", "4", "--npy", tmp_path / "s.npy")
    assert proc.returncode == 0, proc.stderr
    line = one_line(proc)
    assert line.startswith("tinygan sample: warning: ") and "previous checkpoint" in line
    assert "RuntimeWarning" not in line and "warnings.warn" not in proc.stderr


# --- case 9: a failed run leaves no --out behind -----------------------------------------------
def test_failed_run_leaves_no_lock_only_directory(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "new" / "run"
    proc = tinygan("train", "--data-dir", empty, *TINY, "--out", out)
    assert proc.returncode == 1 and "not found" in one_line(proc)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    proc = tinygan("train", "--data-dir", empty, *TINY, "--out", existing)
    assert proc.returncode == 1 and existing.is_dir() and list(existing.iterdir()) == []
    (existing / "samples").mkdir()                    # a run that stopped before its first save
    proc = tinygan("evaluate", existing)
    assert proc.returncode == 1 and "holds no checkpoint" in one_line(proc)


# --- case 10: evaluate reads the run's own --data-dir ------------------------------------------
def test_evaluate_uses_the_runs_data_dir(tmp_path, fake_data):
    run = train_run(tmp_path / "run", fake_data)
    proc = tinygan("evaluate", run, "--samples", "100", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "log-likelihood:" in proc.stdout and "test split" in proc.stdout


# --- case 11: a classifier run where a GAN run is expected, and the reverse --------------------
def test_classifier_run_is_named_as_such(tmp_path, fake_data):
    clf = tmp_path / "clf"
    proc = example("train_classifier.py", "--data-dir", fake_data, "--split", "test",
                   "--epochs", "1", "--hidden", "8", "--limit", "200", "--out", clf)
    assert proc.returncode == 0, proc.stderr
    for argv in (["sample", clf, "--n", "2"], ["evaluate", clf]):
        proc = tinygan(*argv)
        assert proc.returncode == 1
        line = one_line(proc)
        assert "this is a classifier run" in line and "not a GAN run" in line
        assert "missing" not in line and "unknown" not in line
    run = train_run(tmp_path / "run", fake_data)
    proc = tinygan("evaluate", run, "--classifier", run)
    assert proc.returncode == 1 and "this is a GAN run" in one_line(proc)


# --- case 5: Ctrl-C in every script ------------------------------------------------------------
def handler_installed(pid):
    """Whether process ``pid`` catches SIGTERM (Linux /proc): tools/signals.DeferredInterrupt
    is in place (Python itself catches only SIGINT)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True                 # no /proc: rely on ``ready`` alone
    caught = int(next(l for l in status.splitlines() if l.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def interrupt(argv, ready, timeout=120, second=False, sig=signal.SIGINT):
    """Start ``argv``, wait until ``ready(stderr_so_far)`` is true, send ``sig`` (twice with
    ``second``), return (status, stdout, stderr)."""
    import threading
    proc = subprocess.Popen(argv, cwd=REPO, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err_lines = []
    reader = threading.Thread(target=lambda: err_lines.extend(iter(proc.stderr.readline, "")))
    reader.start()
    deadline = time.monotonic() + timeout
    while not (handler_installed(proc.pid) and ready("".join(err_lines))) \
            and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, (proc.communicate(), err_lines)
    proc.send_signal(sig)
    if second:
        time.sleep(0.05)
        proc.send_signal(sig)
    out = proc.stdout.read()
    proc.wait(timeout=timeout)
    reader.join(timeout)
    return proc.returncode, out, "".join(err_lines)


def test_classifier_ctrl_c_keeps_its_last_finished_epoch(tmp_path, fake_data):
    clf = tmp_path / "clf"
    status, out, err = interrupt(
        [sys.executable, "examples/train_classifier.py", "--data-dir", str(fake_data),
         "--split", "test", "--epochs", "500", "--hidden", "8", "--out", str(clf)],
        lambda err: (clf / "checkpoint.json").exists())
    assert status == 0, err
    assert err == "" and "Traceback" not in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("train_classifier.py: interrupted (SIGINT) in epoch ")
    assert "is kept in" in last
    meta = json.loads((clf / "checkpoint.json").read_text())["meta"]
    epoch = int(last.split("in epoch ")[1].split(";")[0]) - 1
    assert meta["epochs"] == epoch == len(meta["accuracy_per_epoch"]) >= 1
    proc = example("train_classifier.py", "--data-dir", fake_data, "--out", clf,   # it loads
                   "--score-gan", tmp_path / "none")
    assert "no run directory or checkpoint" in one_line(proc)


@pytest.mark.parametrize("script, argv, marker", [
    ("toy_1d.py", ["--steps", "100000", "--out", "{tmp}/toy.png"], None),
    ("modes_2d.py", ["--mixture", "ring", "--steps", "60", "--seeds", "200", "--hidden", "8",
                     "--eval-samples", "100", "--table-dir", "{tmp}", "--image-dir", "{tmp}"],
     "modes_2d_ring.md"),
    ("gradient_field.py", ["--steps", "100000", "--out", "{tmp}"], None),
])
def test_every_example_stops_in_one_line(tmp_path, script, argv, marker):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    ready = ((lambda err: (tmp_path / marker).exists()) if marker
             else (lambda err: f"{script}: training" in err))     # inside the deferred window
    status, out, err = interrupt([sys.executable, f"examples/{script}", *argv], ready)
    assert status == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert out.strip().splitlines()[-1].startswith(f"{script}: interrupted (SIGINT)")
    if marker:
        assert "finished runs are in" in out and (tmp_path / marker).read_text().strip()


def test_second_interrupt_is_one_line_and_130(tmp_path):
    status, out, err = interrupt([sys.executable, "examples/toy_1d.py", "--steps", "100000",
                                  "--out", str(tmp_path / "toy.png")],
                                 lambda err: "toy_1d.py: training" in err, second=True,
                                 sig=signal.SIGTERM)
    assert status in (0, 130), (out, err)   # 0: the first had ended the work before the second
    assert "Traceback" not in err
    if status == 130:
        assert err.strip().splitlines()[-1] == \
            "toy_1d.py: stopped at once (interrupted); what was finished before is kept"
    else:
        assert out.strip().splitlines()[-1].startswith("toy_1d.py: interrupted (SIGTERM)")


# --- case 8: the suite in a clone without ../shared ----------------------------------------------
def test_tests_needing_shared_skip_with_a_reason_without_it(tmp_path):
    """The tests that use ../shared, run in a copy of the clone with nothing beside it."""
    clone = tmp_path / "clone" / "tinygan"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            (clone / name).write_bytes((REPO / name).read_bytes())
    tests = ["tests/tools/test_cupy_emulation.py::test_gpu_check_end_to_end_on_the_emulation",
             "tests/tools/test_cupy_emulation.py::test_mnist_ctrl_c_on_cupy",
             "tests/tools/test_data.py::test_real_mnist_test_split",
             "tests/tools/test_careful.py::test_fashion_mnist_asked_mnist_found_is_one_line",
             "tests/tools/test_commands.py::test_train_sample_and_resume_from_the_checkpoint",
             "tests/tools/test_example_mnist.py::test_trains_on_real_mnist_and_resumes",
             "tests/tools/test_evaluate.py::test_float32_vs_float64_mnist"]
    env = environment(PYTHONPATH=str(clone))
    env.pop("TINYGAN_TEST_SHARED", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           *tests], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary and "skipped" in summary, summary
    assert "passed" not in summary, summary                   # each one skipped, with its reason
    assert str(clone.parent / "shared") in proc.stdout


# --- case 15: sample's output files ------------------------------------------------------------
def test_sample_output_paths_are_checked_alike(tmp_path, fake_data):
    run = train_run(tmp_path / "run", fake_data)
    for flag, name, fragment in (("--png", "nodir/x.png", "does not exist"),
                                 ("--npy", "nodir/x.npy", "does not exist"),
                                 ("--npy", "x.txt", "ending in .npy"),
                                 ("--png", "x.jpg", "ending in .png")):
        proc = tinygan("sample", run, "--n", "2", flag, tmp_path / name)
        assert proc.returncode == 1 and fragment in one_line(proc), (flag, name, proc.stderr)
    assert not (tmp_path / "nodir").exists() and not (tmp_path / "x.txt").exists()
    proc = tinygan("sample", run, "--n", "2", "--npy", tmp_path / "x.npy")
    assert proc.returncode == 0 and np.load(tmp_path / "x.npy").shape == (2, 784)


# --- case 16: --no-progress keeps the plain lines; no carriage returns in a log ---------------
def test_no_progress_keeps_the_plain_lines(capsys):
    from tinygan.tools.progress import ProgressReporter
    rep = ProgressReporter(enabled=False, tty=True, every_s=0)
    rep.start_epoch(1, 2, 10)
    rep.interval({"d_loss": 1.0, "g_loss": 2.0, "d_real": 0.5, "d_fake": 0.5}, 2, 100.0)
    assert rep.bar is None
    assert capsys.readouterr().out.startswith("  epoch 1/2 step 2/10 (20%)")


def test_evaluate_writes_no_carriage_returns_into_a_log(tmp_path, fake_data):
    run = train_run(tmp_path / "run", fake_data)
    proc = subprocess.run([sys.executable, "-m", "tinygan", "evaluate", str(run), "--data-dir",
                           str(fake_data), "--samples", "100"], cwd=REPO, env=environment(),
                          capture_output=True, timeout=180)      # bytes: "\r" kept as it is
    assert proc.returncode == 0, proc.stderr
    assert b"log-likelihood" in proc.stdout
    assert b"\r" not in proc.stderr and b"\r" not in proc.stdout


# --- case 13: gradcheck names the code that computes a gradient; the notes link it ---------------
def test_gradcheck_names_the_fused_kernel_and_the_notes_link_it():
    """The plain core's check names the plain backward; ``--fast`` checks the fast path and
    names the fused kernel its backward calls; docs/gradients.md links every fused form."""
    proc = tinygan("gradcheck", "--layer", "maxout")
    assert proc.returncode == 0, proc.stderr
    assert "code: Maxout.backward in tinygan/layers.py\n" in proc.stdout
    proc = tinygan("gradcheck", "--layer", "maxout", "--fast")
    assert proc.returncode == 0, proc.stderr
    assert ("code: FastMaxout.backward in tinygan/fast/layers.py, via maxout_backward in "
            "tinygan/fast/kernels.py") in proc.stdout
    from tinygan.tools.gradcheck_cli import FAST, LAYER_CHECKS, code_location
    import re
    doc = (REPO / "docs" / "gradients.md").read_text()
    places = [code_location(type(FAST.layer(c.make(None))).backward) for c in LAYER_CHECKS.values()]
    places += [code_location(FAST.losses.discriminator_loss),
               code_location(FAST.losses.generator_loss)]
    fused = {m for code in places for m in re.findall(r"via (\w+) in (\S+?\.py)", code)}
    assert fused, places
    for name, path in fused:
        assert f"[`{name}`](../{path}#L" in doc, (name, path)


# --- case 17: help texts are plain text and point at what exists -----------------------------
def test_help_texts_have_no_markup_and_name_existing_notes(monkeypatch):
    from test_commands import every_parser
    import re
    for parser in every_parser():
        text = parser.format_help()
        assert not re.search(r":(func|class|meth|mod):`|``", text), (parser.prog, text)
    from tinygan.tools import gradcheck_cli
    assert Path(gradcheck_cli.notes_location()).is_file()              # in a clone: its path
    monkeypatch.setattr(gradcheck_cli.os.path, "isfile", lambda p: False)   # installed: no docs/
    assert "source repository" in gradcheck_cli.notes_location()


# --- case 18: figures of a short run read plainly ------------------------------------------------
def short_run_rows(n=5):
    rows = []
    for i in range(n):
        rows.append({"epoch": (i + 1) / n, "step": i + 1, "saturated_fraction": 0.1,
                     "grad_x_nonsaturating": 1.0 + 1e-5 * i, "grad_x_minimax": 1.0 - 2e-5 * i,
                     "grad_ratio": 1.00005 - 6e-5 * i, "grad_G.0.W": 0.5 + 0.01 * i,
                     "grad_G.2.W": 0.6, "grad_D.1.W": 0.7, "grad_x": 0.55})
    return rows


def drawn_figures(monkeypatch):
    from tinygan.tools import gradflow
    figures = []

    class Recorded(gradflow.Figure):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            figures.append(self)
    monkeypatch.setattr(gradflow, "Figure", Recorded)
    return gradflow, figures


def test_short_run_figures_have_plain_ratio_labels_and_whole_epochs(tmp_path, monkeypatch):
    gradflow, figures = drawn_figures(monkeypatch)
    rows = short_run_rows()
    gradflow.save_saturation(rows, tmp_path / "saturation.png", "nonsaturating")
    gradflow.save_gradient_flow(rows[-1:], tmp_path / "gradients.png", rows)
    for fig in figures:
        fig.canvas.draw()
    sat, grads = figures
    bottom = sat.axes[2]
    labels = [t.get_text() for t in bottom.get_yticklabels() if t.get_text()]
    assert labels and not any("10^" in t or "times" in t or "cdot" in t for t in labels), labels
    for ax in [bottom, *grads.axes]:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    wide = [dict(r, grad_ratio=10.0 ** i) for i, r in enumerate(rows)]   # decades: log scale
    gradflow.save_saturation(wide, tmp_path / "wide.png", "nonsaturating")
    assert figures[-1].axes[2].get_yscale() == "log"


def test_nearest_neighbour_pictures_carry_their_title(tmp_path):
    from PIL import Image
    from tinygan.tools.plot import save_nearest_neighbour_grid
    rng = np.random.default_rng(0)
    path = save_nearest_neighbour_grid(rng.random((4, 784)), rng.random((4, 784)),
                                       tmp_path / "nn.png", ncol=2, title="left: G's sample, x")
    assert Image.open(path).text.get("Title") == "left: G's sample, x"
    shipped = Image.open(REPO / "docs" / "images" / "mnist_nearest_neighbours.png")
    assert shipped.text.get("Title", "").startswith("left: G's sample, right (framed)")


@pytest.mark.parametrize("argv", [["gradcheck", "--full"], ["evaluate", "{run}", "--samples", "20000"]])
def test_commands_without_partial_work_stop_in_one_line(tmp_path, fake_data, argv):
    # nothing finished to keep: SIGTERM (as Ctrl-C) stops at once, one line, status 130
    # (gradcheck --full: a few seconds, so the signal arrives while it works)
    if "{run}" in argv:
        run = train_run(tmp_path / "run", fake_data)
        argv = [str(run) if a == "{run}" else a for a in argv]
    status, out, err = interrupt([sys.executable, "-m", "tinygan", *argv], lambda err: True,
                                 sig=signal.SIGTERM)
    assert status == 130
    assert err.strip().splitlines()[-1] == (f"tinygan {argv[0]}: stopped at once (interrupted); "
                                            "what was finished before is kept")
    assert "Traceback" not in err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # the drop itself
def test_a_signal_swallowed_by_a_finalizer_still_stops(capsys):
    """Python drops an exception raised inside a __del__: a SIGTERM whose KeyboardInterrupt
    lands in a finalizer must still stop the command (130, one line), not let it end with 0."""
    import os
    from tinygan.tools import signals

    class Finalizer:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)        # the handler runs inside __del__
            for _ in range(1000):                       # bytecode here: the signal is taken
                pass

    def main(argv):
        Finalizer()                                    # made and finalized at once
        return 0
    assert signals.run_main(main, "demo", [], exiting=False) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "demo: stopped at once (interrupted); what was finished before is kept"
