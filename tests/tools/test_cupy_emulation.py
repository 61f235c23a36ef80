"""tinygan's CuPy paths on the CuPy emulation (tinygan/testing/cupy_emulation), under CuPy 14's
rules and CuPy 13's: the emulation's rules, the crashes it found (regression tests), zero host
synchronisations in a training step, and every example and benchmark on ``--backend cupy``.

No GPU and no real CuPy needed: the emulation computes with NumPy.
"""

import importlib.util
import inspect
import json
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import MNIST_DIR, REPO
from tinygan.backend import get_backend
from tinygan.testing import cupy_emulation as emu

HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test split not found in {MNIST_DIR}")


@pytest.fixture(params=[14, 13], ids=["cupy14", "cupy13"])
def cupy(request):
    """The emulation installed as ``cupy`` with CuPy 14's (or 13's) rules."""
    with emu.installed(request.param) as module:
        yield module


@pytest.fixture
def cupy14():
    with emu.installed(14) as module:
        yield module


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem + "_under_emulation", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- the emulation's rules --------------------------------------------------------------------
def test_implicit_host_conversion_raises(cupy14, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = cupy14.ones((3, 4), dtype="float32")
    assert not isinstance(x, np.ndarray)
    for convert in (lambda: np.asarray(x), lambda: np.testing.assert_allclose(x, 1.0),
                    lambda: plt.imsave(tmp_path / "a.png", x)):
        with pytest.raises(TypeError, match="Implicit conversion"):
            convert()
    with pytest.raises(TypeError):
        np.lib.format.write_array(io.BytesIO(), x)
    np.testing.assert_array_equal(cupy14.asnumpy(x), np.ones((3, 4)))
    np.testing.assert_array_equal(x.get(), np.ones((3, 4)))


def test_mixing_device_and_host_arrays_raises(cupy14):
    x = cupy14.ones((4,), dtype="float32")
    host = np.ones(4, dtype=np.float32)
    for mix in (lambda: x + host, lambda: host * x, lambda: cupy14.maximum(x, host),
                lambda: np.add(host, x), lambda: cupy14.concatenate([x, host])):
        with pytest.raises(TypeError, match="Unsupported type"):
            mix()
    assert float((x + np.float32(2)).sum()) == 12.0           # scalars are fine


def test_only_what_cupy_14_has(cupy14):
    rng = cupy14.random.default_rng(0)
    for missing in ("permutation", "shuffle", "choice", "normal", "spawn"):
        assert not hasattr(rng, missing), missing
    assert not isinstance(getattr(rng.bit_generator, "state", None), dict)
    rng.random(3, dtype="float32")
    rng.standard_normal((2, 2), dtype="float32")
    with pytest.raises(TypeError, match="unexpected keyword"):
        rng.random(3, dtyp="float32")
    with pytest.raises(TypeError, match="unexpected keyword"):
        cupy14.sum(cupy14.ones(3), axis=0, initial=0)
    with pytest.raises(AttributeError):
        cupy14.not_a_numpy_or_cupy_function
    with pytest.raises(AttributeError):
        cupy14.ones(3).not_an_attribute


def test_reductions_and_scalar_indexing_are_0d_device_arrays(cupy14):
    x = cupy14.arange(6, dtype="float32").reshape(2, 3)
    for v in (x.sum(), x.max(), x.mean(), x[1, 2], cupy14.sum(x)):
        assert isinstance(v, cupy14.ndarray) and v.shape == ()
    x[1, 2][...] = 7                                          # a view, as in CuPy
    assert float(x.max()) == 7


def test_counts_syncs_and_launches_with_their_call_site(cupy14):
    x = cupy14.ones((3, 3), dtype="float32")
    with emu.counting() as c:
        y = x @ x                                             # one launch
        s = y.sum()                                           # one launch
        float(s)                                              # one sync
        cupy14.asnumpy(y)                                     # one sync
        cupy14.asarray(np.zeros(3))                           # one host-to-device copy
    assert len(c.launches) == 2 and len(c.syncs) == 2 and len(c.h2d) == 1
    assert all(site.startswith(os.path.join("tests", "test_cupy_emulation.py:"))
               or site.endswith("test_cupy_emulation.py:" + site.rsplit(":", 1)[1])
               for _, site in c.launches + c.syncs + c.h2d), c.launches


def test_cupy13_rule_matmul_out_with_a_1d_operand(cupy):
    a, b = cupy.ones((5,), dtype="float32"), cupy.ones((5, 3), dtype="float32")
    out = cupy.empty((3,), dtype="float32")
    if emu.STATE.rules == 13:
        with pytest.raises(ValueError, match="axes don't match array"):
            cupy.matmul(a, b, out=out)
    else:
        cupy.matmul(a, b, out=out)
        assert float(out.sum()) == 15
    cupy.matmul(b.T, b, out=cupy.empty((3, 3), dtype="float32"))   # 2-D: fine on both


# --- the crashes it found (each failed before its fix) -------------------------------------------
def test_linear_backward_on_cupy_matches_numpy(cupy):
    """Linear's bias gradient was matmul(ones, dy, out=b): ValueError on CuPy 13."""
    from tinygan.layers import Linear
    cpu, gpu = get_backend("numpy", seed=0), get_backend("cupy", seed=0)
    lc, lg = Linear(6, 4, backend=cpu), Linear(6, 4, backend=gpu)
    for k in lc.params:
        lg.params[k][...] = gpu.asarray(lc.params[k])
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    lc.forward(x), lg.forward(gpu.asarray(x))
    np.testing.assert_allclose(gpu.to_numpy(lg.backward(gpu.asarray(dy))), lc.backward(dy), rtol=1e-6)
    for k in lc.grads:
        np.testing.assert_allclose(gpu.to_numpy(lg.grads[k]), lc.grads[k], rtol=1e-5, atol=1e-6)


def test_parzen_on_cupy_matches_numpy(cupy):
    """The Parzen row sums were matmul(block, ones, out=row): ValueError on CuPy 13."""
    from tinygan.tools.evaluate import parzen_log_likelihood
    rng = np.random.default_rng(0)
    x, s = rng.random((30, 8), dtype=np.float32), rng.random((50, 8), dtype=np.float32)
    want = parzen_log_likelihood(x, s, 0.3, backend=get_backend("numpy"), batch_size=7,
                                 progress=False)
    gpu = get_backend("cupy")
    got = parzen_log_likelihood(gpu.asarray(x), gpu.asarray(s), 0.3, backend=gpu, batch_size=7,
                                progress=False)
    np.testing.assert_allclose(gpu.to_numpy(got), want, rtol=1e-5)


def test_backend_permutation_on_cupy(cupy):
    """cupy.random.Generator has no permutation: Backend.permutation raised AttributeError."""
    be = get_backend("cupy", seed=3)
    p = be.permutation(50)
    assert isinstance(p, np.ndarray) and sorted(p.tolist()) == list(range(50))
    assert not np.array_equal(p, np.arange(50))
    again = get_backend("cupy", seed=3).permutation(50)
    np.testing.assert_array_equal(p, again)                     # reproducible from the seed


def test_backend_permutation_on_numpy_is_numpys():
    np.testing.assert_array_equal(get_backend("numpy", seed=4).permutation(20),
                                  np.random.default_rng(4).permutation(20))


def test_training_loop_syncs_once_per_interval(cupy, tmp_path):
    """The loop read its four running means with four float() calls: four syncs per interval."""
    from tinygan.tools.config import TrainConfig
    from tinygan.tools.train import Trainer
    images = np.random.default_rng(0).random((60, 784), dtype=np.float32)
    cfg = TrainConfig(epochs=2, batch_size=10, out=str(tmp_path / "run"), n_fixed_samples=4,
                      log_every=2)
    t = Trainer(cfg, images, backend=get_backend("cupy", seed=0), progress=False)
    with emu.counting() as c:
        t.run()
    src, first = inspect.getsourcelines(Trainer._means)
    means_line = first + next(i for i, line in enumerate(src) if "to_numpy" in line)
    interval = [s for s in c.syncs if s[1].endswith(f"train.py:{means_line}")]
    steps_per_epoch, epochs = 6, 2
    assert len(interval) == epochs * -(-steps_per_epoch // cfg.log_every), c.by_site("syncs")
    # per epoch, outside the logging intervals: the finite check before saving, the checkpoint
    # (one download per parameter and optimizer array), the fixed samples and their pictures
    per_epoch = (len(c.syncs) - len(interval)) / epochs
    assert per_epoch <= PER_EPOCH_SYNCS, c.by_site("syncs")


PER_EPOCH_SYNCS = 30


# --- zero host synchronisations in a training step ----------------------------------------------
@pytest.mark.parametrize("schedule, k", [("simultaneous", 1), ("alternating", 2)])
@pytest.mark.parametrize("objective", ["nonsaturating", "minimax"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
def test_train_step_makes_no_host_sync_and_no_upload(cupy, schedule, k, objective, fast):
    from tinygan.tools.config import TrainConfig, build_gan
    be = get_backend("cupy", seed=0)
    gan = build_gan(TrainConfig(batch_size=8, schedule=schedule, k=k, objective=objective), be,
                    np.full(784, 0.13), fast=fast)
    real = be.asarray(np.random.default_rng(0).random((8 * k, 784), dtype=np.float32))
    gan.train_step(real)                                  # first step allocates
    with emu.counting() as c:
        stats = gan.train_step(real)
    assert c.syncs == [] and c.h2d == [], (c.syncs, c.h2d)
    assert c.launches                                     # it did run on the device
    assert all(isinstance(v, cupy.ndarray) and v.shape == () for v in stats.values())


# --- the gpu-marked suite, the examples and the benchmarks on the emulation ----------------------
@pytest.mark.parametrize("rules", [14, 13])
def test_gpu_suite_passes_on_the_emulation(rules):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(REPO / "tests" / "core" / "test_gpu.py"),
                           str(REPO / "tests" / "tools" / "test_gpu_checkpoint.py")], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=emu.subprocess_env(rules))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-500:]


@needs_mnist
def test_mnist_evaluate_and_classifier_examples_on_cupy(cupy, tmp_path, capsys):
    mnist = load(REPO / "examples" / "mnist.py")
    evaluate = load(REPO / "examples" / "evaluate.py")
    train_classifier = load(REPO / "examples" / "train_classifier.py")
    clf, run = tmp_path / "clf", tmp_path / "run"
    assert train_classifier.main(["--data-dir", str(MNIST_DIR), "--split", "test", "--out", str(clf),
                                  "--epochs", "1", "--hidden", "32", "--limit", "500",
                                  "--backend", "cupy"]) == 0, \
        capsys.readouterr().err
    argv = ["--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "200", "--batch-size", "50",
            "--out", str(run), "--no-progress", "--backend", "cupy",
            "--classifier", str(clf / "checkpoint")]
    assert mnist.main(argv + ["--epochs", "1"]) == 0, capsys.readouterr().err
    assert mnist.main(argv + ["--epochs", "2", "--resume"]) == 0, capsys.readouterr().err
    assert "epoch 2/2:" in capsys.readouterr().out
    assert evaluate.main([str(run), "--data-dir", str(MNIST_DIR), "--samples", "200",
                          "--no-progress", "--backend", "cupy", "--classifier",
                          str(clf / "checkpoint"), "--interpolation",
                          str(tmp_path / "interp.png")]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "log-likelihood:" in out and "classes covered:" in out and "interpolation:" in out
    assert train_classifier.main(["--data-dir", str(MNIST_DIR), "--out", str(clf), "--backend",
                                  "cupy", "--score-gan", str(run / "checkpoint"),
                                  "--n-samples", "200"]) == 0, capsys.readouterr().err
    assert "| GAN samples (epoch 2) | 200 |" in capsys.readouterr().out


def test_toy_examples_on_cupy(cupy, tmp_path, capsys):
    toy = load(REPO / "examples" / "toy_1d.py")
    assert toy.main(["--steps", "30", "--backend", "cupy", "--out", str(tmp_path / "t.png")]) in (0, None)
    assert (tmp_path / "t.png").exists()
    modes = load(REPO / "examples" / "modes_2d.py")
    assert modes.main(["--steps", "20", "--seeds", "1", "--mixture", "ring", "--checkpoints", "1",
                       "--eval-samples", "100", "--plot-samples", "50", "--backend", "cupy",
                       "--image-dir", str(tmp_path), "--table-dir", str(tmp_path), "--quiet"]) in (0, None)
    assert list(tmp_path.glob("*.png")), capsys.readouterr()


def test_benchmarks_on_cupy(cupy, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        bench = load(REPO / "benchmarks" / "run.py")
        parzen = load(REPO / "benchmarks" / "parzen.py")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    bench.main(["--backends", "auto", "--batch-sizes", "8", "--blocks", "1", "--iters", "1",
                "--warmup", "1", "--no-torch", "--out", str(tmp_path)])
    assert "| cupy | 8 |" in capsys.readouterr().out            # auto labelled with what it used
    parzen.main(["--backend", "cupy", "--n", "64", "--dim", "12", "--repeats", "1",
                 "--batch-size", "16", "--naive-n", "8", "--naive-m", "16"])
    assert "(b) parzen_log_likelihood" in capsys.readouterr().out


@needs_mnist
@pytest.mark.parametrize("rules", [14, 13])
def test_mnist_ctrl_c_on_cupy(tmp_path, rules):
    """A real Ctrl-C to examples/mnist.py --backend cupy: checkpoint saved, exit 0, resumable."""
    out = tmp_path / "out"
    argv = [sys.executable, str(REPO / "examples" / "mnist.py"), "--data-dir", str(MNIST_DIR),
            "--split", "test", "--limit", "300", "--batch-size", "10", "--out", str(out),
            "--no-progress", "--backend", "cupy", "--log-every", "5"]
    env = emu.subprocess_env(rules)
    proc = subprocess.Popen(argv + ["--epochs", "50"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.csv").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "interrupted at step" in stdout, stderr
    from tinygan.tools.checkpoint import load_checkpoint
    meta = load_checkpoint(out / "checkpoint")[1]
    assert meta["backend"] == "cupy" and meta["rng_state"] is None
    resumed = subprocess.run(argv + ["--epochs", str(meta["epoch"] + 1), "--resume"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "checkpoint")[1]["epoch"] == meta["epoch"] + 1


def test_benchmark_counts_the_launches_of_one_step():
    """benchmarks/run.py --count-launches: one paper-model step at batch 100 (simultaneous,
    non-saturating; recorded in benchmarks/README.md) makes at most 70 kernel launches, with no
    host sync and no upload."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        bench = load(REPO / "benchmarks" / "run.py")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    c, sites = bench.count_launches(100)
    # issue 16: the fused kernels (tinygan/fast/kernels.py) took it from 178 to 69
    assert 30 <= len(c.launches) <= 70 and not c.syncs and not c.h2d
    assert sum(sites.values()) == len(c.launches)
    assert all(site.startswith(os.path.join("tinygan", "")) for site in sites), sites


@needs_mnist      # without ../shared, gpu_check trains on the default data: a download
def test_gpu_check_end_to_end_on_the_emulation(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--emulation", "14",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["versions"]["emulated"] and all(v["ok"] for v in result["steps"].values())
    assert len(result["steps"]["mnist_cupy"]["epochs"]) == 3
    # the emulation captures and replays the step too (CuPy's capture rules): its own row
    graph = "cupy (CUDA graph)"
    assert {r["backend"] for r in result["steps"]["benchmark"]["rows"]} == {"numpy", "cupy", graph}
    cifar = result["steps"]["benchmark_cifar10"]["rows"]
    assert {(r["model"], r["backend"]) for r in cifar} == {("cifar10", "numpy"), ("cifar10", "cupy"),
                                                         ("cifar10", graph)}
    assert "| cupy |" in (tmp_path / "gpu_check.md").read_text()


def test_gpu_check_without_a_gpu_is_one_line_exit_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != emu.ENV}
    env["PYTHONPATH"] = str(REPO)
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    if proc.returncode == 0:
        pytest.skip("a usable GPU is here")
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "no usable GPU" in proc.stderr


# --- CuPy's rules read in its source (issue 22) ---------------------------------------------------
def test_unravel_index_takes_arrays_only_as_cupy(cupy14):
    """cupy.unravel_index calls cupy.can_cast(indices, ...): a Python int raises under NumPy 2."""
    with pytest.raises(TypeError, match="can_cast\\(\\) does not support Python ints"):
        cupy14.unravel_index(5, (2, 3))
    with emu.counting() as c:
        r = cupy14.unravel_index(cupy14.asarray(np.array([5, 1])), (2, 3))
    assert [v.get().tolist() for v in r] == [[1, 0], [2, 1]] and len(c.syncs) == 2


def test_gradient_check_by_coordinates_on_cupy(cupy14):
    """gradcheck named each coordinate with cupy.unravel_index(i, shape), i a Python int:
    TypeError on real CuPy 13 and 14 with NumPy 2."""
    from tinygan.gradcheck import check_module
    from tinygan.layers import Linear
    be = get_backend("cupy", dtype="float64", seed=0)
    layer = Linear(3, 2, backend=be)
    rows = check_module(layer, be.asarray(np.random.default_rng(0).standard_normal((4, 3))))
    assert rows and all(r.passed for r in rows), rows
    w = next(r for r in rows if r.shape == (3, 2))
    assert [c[0] for c in w.coords] == [(i, j) for i in range(3) for j in range(2)]


def test_boolean_masks_and_bincount_synchronise(cupy14):
    """CuPy reads the result's size on the host: int(mask_scanned[-1]) for x[mask],
    int(cupy.max(x)) + 1 for bincount."""
    x = cupy14.arange(6, dtype="float32")
    with emu.counting() as c:
        x[x > 2]
        cupy14.bincount(cupy14.asarray(np.array([0, 2, 2])), minlength=3)
        x[x > 4] = 0
    assert [w for w, _ in c.syncs] == ["boolean mask", "bincount", "boolean mask"]


def test_metrics_read_the_device_once(cupy14):
    """mode_metrics and class_histogram counted through a boolean mask and bincount (a host
    sync each); now two syncs each, the input's finiteness check and the counts' download, and
    the same numbers as NumPy."""
    from tinygan.tools.metrics import class_histogram, mode_metrics, ring_mixture
    mix = ring_mixture()
    rng = np.random.default_rng(0)
    pts = (np.asarray(mix.centers)[rng.integers(0, 8, 300)] + rng.normal(0, 0.03, (300, 2))).astype("float32")
    probs = rng.random((50, 10)).astype("float32")
    be = get_backend("cupy")
    with emu.counting() as c:
        got = mode_metrics(be.asarray(pts), mix)
    assert [w for w, _ in c.syncs] == ["bool()", "tolist"], c.syncs
    assert got == mode_metrics(pts, mix)
    with emu.counting() as c:
        hist = class_histogram(be.asarray(probs))
    assert [w for w, _ in c.syncs] == ["bool()", "tolist"], c.syncs
    assert hist == class_histogram(probs) == np.bincount(probs.argmax(1), minlength=10).tolist()


def test_gpu_extras_bring_cudas_pip_components():
    """cupy-cuda12x alone has no NVRTC: on a machine with a driver and no CUDA toolkit the
    first kernel fails (DynamicLibNotFoundError: libnvrtc.so). The [ctk] extra brings it."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    extras = cfg["options.extras_require"]
    assert extras["gpu"].split() == ["cupy-cuda12x[ctk]>=13"]
    assert extras["gpu-cuda13"].split() == ["cupy-cuda13x[ctk]>=13"]
    readme = (REPO / "README.md").read_text()
    assert "cupy-cuda12x[ctk]" in readme and "cupy-cuda13x[ctk]" in readme and "-ftz=true" in readme
    assert "tinygan.testing.cupy_emulation" in cfg["options.package_data"]
