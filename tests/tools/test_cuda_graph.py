"""The training step as a CUDA graph (tinygan/tools/cuda_graph.py, --cuda-graph).

On the CuPy emulation, which follows CuPy's capture rules (a capture records without running,
a replay re-runs every recorded operation, cuBLAS and host synchronisations are refused), and
on a real GPU where one is lent (``gpu``): replays equal eager steps (fresh noise and dropout
masks, each step's learning rate and momentum), a failed capture restores the state and goes
on eagerly, the command line trains with it.
"""

import contextlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import MNIST_DIR, REPO
from tinygan import get_backend
from tinygan.fast import kernels
from tinygan.errors import BackendError
from tinygan.fast import GAN, SGD, Adam, paper_discriminator, paper_generator
from tinygan.optim import ExponentialDecay
from tinygan.testing import cupy_emulation as emu


@pytest.fixture
def emulated():
    with emu.installed(14) as cupy:
        yield cupy


def build(be, opt="sgd", decay=1.05, hidden=64, units=16):
    """A small paper-shaped GAN; the same weights for the same seed. A steep lr decay makes a
    frozen learning rate visible after a few steps."""
    host = np.random.default_rng(7)
    G = paper_generator(noise_dim=10, hidden=hidden, pixel_mean=np.full(784, 0.13), backend=be)
    D = paper_discriminator(units=units, backend=be)
    for net in (G, D):
        net.param_vector[...] = be.asarray(host.normal(0, 0.05, net.param_vector.shape))

    def make(net):
        if opt == "adam":
            return Adam(net, lr=1e-3, decay=ExponentialDecay(decay))
        return SGD(net, lr=0.05, momentum=0.5,
                   decay=ExponentialDecay(decay))
    return GAN(G, D, make(G), make(D), noise_dim=10)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_hyperparameters_then_apply_is_step(opt):
    """step() = apply(*hyperparameters()) with t counted: the seam the graph uses."""
    be = get_backend("numpy", seed=0)
    a, b = build(be, opt), build(be, opt)
    for net in ("G", "D"):
        getattr(a, net).grad_vector[...] = getattr(b, net).grad_vector[...] = 0.01
    for _ in range(3):
        a.d_opt.step()
        numbers = b.d_opt.hyperparameters()
        b.d_opt.t += 1
        b.d_opt.apply(*numbers)
    np.testing.assert_array_equal(a.D.param_vector, b.D.param_vector)
    assert a.d_opt.t == b.d_opt.t == 3


def test_graphed_step_refuses_numpy():
    from tinygan.tools.cuda_graph import GraphedStep
    with pytest.raises(BackendError, match="need the cupy backend"):
        GraphedStep(build(get_backend("numpy", seed=0)), (4, 784))


def test_cuda_graph_problem_tries_a_capture(emulated, monkeypatch):
    """None where a tiny capture replays correctly; one line where capture fails."""
    assert get_backend("cupy", seed=0).cuda_graph_problem() is None

    def refuse(self, mode=None):
        raise emu.CUDARuntimeError(900)
    monkeypatch.setattr(emulated.cuda.Stream, "begin_capture", refuse)
    problem = get_backend("cupy", seed=0).cuda_graph_problem()
    assert "stream capture fails here (CUDARuntimeError: cudaErrorStreamCaptureUnsupported" in problem
    assert "\n" not in problem


def test_capture_records_and_replays_on_the_emulation(emulated):
    """A capture changes no array; each launch re-runs the recorded work in order, drawing
    fresh numbers; cuBLAS and host synchronisations are refused as on CuPy."""
    cupy = emulated
    x = cupy.arange(3, dtype="float32")
    rng = cupy.random.default_rng(0)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        assert stream.is_capturing()
        x += 1
        y = x * 2                                   # a new array: computed at each replay
        u = rng.random(3, dtype="float32")
        graph = stream.end_capture()
    np.testing.assert_array_equal(cupy.asnumpy(x), [0, 1, 2])         # nothing ran
    graph.launch()
    np.testing.assert_array_equal(cupy.asnumpy(y), [2, 4, 6])
    first = cupy.asnumpy(u)
    graph.launch()
    np.testing.assert_array_equal(cupy.asnumpy(x), [2, 3, 4])
    np.testing.assert_array_equal(cupy.asnumpy(y), [4, 6, 8])
    assert not np.array_equal(cupy.asnumpy(u), first)                  # fresh draws per replay
    np.testing.assert_array_equal(first, cupy.random.default_rng(0).random(3, dtype="float32").get())
    with pytest.raises(RuntimeError, match="cannot capture on the default"):
        cupy.cuda.Stream.null.begin_capture()
    w = cupy.ones((3, 3), dtype="float32")
    for refused in (lambda: w @ w, lambda: cupy.matmul(w, w), lambda: cupy.dot(w, w),
                    lambda: w.dot(w), lambda: cupy.tensordot(w, w), lambda: cupy.einsum("ij,jk", w, w)):
        with stream:
            stream.begin_capture()
            with pytest.raises(NotImplementedError, match="^calling cuBLAS API during stream "
                                                          "capture is currently unsupported$"):
                refused()
            stream.end_capture()                    # CuPy raised before CUDA: capture still valid
    for sync in (lambda: float(x.sum()), lambda: x.get(), lambda: stream.synchronize(),
                 lambda: cupy.asarray(np.ones(3)), lambda: x[x > 1], lambda: cupy.bincount(x.astype("int32"))):
        with stream:
            stream.begin_capture()
            with pytest.raises(emu.CUDARuntimeError, match="^cudaErrorStreamCaptureUnsupported: "
                                                           "operation not permitted when stream is capturing$"):
                sync()
            with pytest.raises(emu.CUDARuntimeError, match="cudaErrorStreamCaptureInvalidated"):
                stream.end_capture()
    assert cupy.cuda.runtime.CUDARuntimeError is emu.CUDARuntimeError


def replays_equal_eager_steps(opt):
    """N graph steps (one warm-up, then replays) against N eager steps from the same seed and
    batches: the same parameters, so the replays drew the same fresh noise and dropout masks as
    the eager steps, and read each step's decayed learning rate (and a momentum changed midway).
    """
    from tinygan.tools.cuda_graph import GraphedStep
    host = np.random.default_rng(3)
    batches = [host.random((32, 784), dtype=np.float32) for _ in range(6)]
    results, masks = [], []
    for graphed in (False, True):
        be = get_backend("cupy", seed=11)
        if graphed and be.cuda_graph_problem():
            pytest.skip(be.cuda_graph_problem())
        gan = build(be, opt)
        step = GraphedStep(gan, (32, 784)) if graphed else gan.train_step
        stats = []
        for i, x in enumerate(batches):
            if i == 3 and opt == "sgd":
                gan.d_opt.momentum = gan.g_opt.momentum = 0.7      # as set_epoch does
            stats.append(step(be.asarray(x)))
            if graphed:
                dropout = next(l for l in gan.D.layers if hasattr(l, "keep_prob"))
                masks.append(be.to_numpy(dropout.mask))
        assert gan.step_count == len(batches) and gan.d_opt.t == gan.g_opt.t == len(batches)
        results.append((be.to_numpy(gan.G.param_vector), be.to_numpy(gan.D.param_vector),
                        np.array([[float(s[k]) for k in sorted(s)] for s in stats])))
        if graphed:
            assert step.replays == len(batches) - 1 and step.failed is None
    (g0, d0, s0), (g1, d1, s1) = results
    np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(d1, d0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s1, s0, rtol=1e-4, atol=1e-6)   # the stats are each step's own
    assert all(not np.array_equal(masks[i], masks[i + 1]) for i in range(len(masks) - 1)), \
        "dropout masks repeat across replays"


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_graph_replays_equal_eager_steps_on_the_emulation(emulated, opt):
    replays_equal_eager_steps(opt)


@pytest.mark.parametrize("failure", ["cublas", "sync"])
def test_a_failed_capture_restores_the_state_and_goes_on_eagerly(emulated, failure, monkeypatch,
                                                                   capsys):
    """The warm-up step ran and moved everything; the capture then fails (a cuBLAS product, a
    host sync): parameters, optimizer state and t, the step count and the generator are put
    back, no graph is left, one line says so, and the steps are eager ones, bit for bit."""
    from tinygan.tools.cuda_graph import GraphedStep
    host = np.random.default_rng(5)
    batches = [host.random((16, 784), dtype=np.float32) for _ in range(3)]
    be = get_backend("cupy", seed=2)
    gan = build(be, "adam")
    for x in batches:
        gan.train_step(be.asarray(x))
    want = [be.to_numpy(v) for v in (gan.G.param_vector, gan.D.param_vector, gan.d_opt.m,
                                      gan.g_opt.v)]
    be = get_backend("cupy", seed=2)
    gan = build(be, "adam")
    if failure == "cublas":              # products left on cuBLAS: refused under capture
        monkeypatch.setattr(kernels, "products_in_kernels", contextlib.nullcontext)
    else:
        train_step = gan.train_step

        def syncing_step(real):
            stats = train_step(real)
            float(stats["d_loss"])       # a host sync: fine eagerly, refused under capture
            return stats
        monkeypatch.setattr(gan, "train_step", syncing_step)
    step = GraphedStep(gan, (16, 784))
    for x in batches:
        step(be.asarray(x))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA graph capture failed" in err[0], err
    assert ("calling cuBLAS API" if failure == "cublas" else "cudaErrorStreamCapture") in err[0]
    assert step.graph is None and step.packed is None and step.replays == 0 and step.failed
    assert gan.step_count == 3 and gan.d_opt.t == gan.g_opt.t == 3
    got = [be.to_numpy(v) for v in (gan.G.param_vector, gan.D.param_vector, gan.d_opt.m,
                                    gan.g_opt.v)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_trainer_with_cuda_graph_trains_on_the_emulation(emulated, tmp_path):
    trainer_with_cuda_graph_trains(tmp_path)


def trainer_with_cuda_graph_trains(tmp_path):
    """The training loop with cuda_graph: steps counted, stats finite, checkpoint written."""
    from tinygan.tools.config import TrainConfig
    from tinygan.tools.train import Trainer
    be = get_backend("cupy", seed=0)
    images = np.random.default_rng(0).random((60, 784), dtype=np.float32)
    cfg = TrainConfig(epochs=2, batch_size=10, out=str(tmp_path / "run"), n_fixed_samples=4,
                      log_every=2, hidden=64, units=16)
    t = Trainer(cfg, images, backend=be, progress=False, cuda_graph=True)
    rows = t.run()
    assert t.step == 12 and t._graphed.replays == 11 and t._graphed.failed is None
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
    assert (tmp_path / "run" / "checkpoint.npz").exists()


def run_train(args, env=None):
    return subprocess.run([sys.executable, "-m", "tinygan", "train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cuda_graph_on_numpy_is_a_usage_error(tmp_path):
    proc = run_train(["--backend", "numpy", "--cuda-graph", "--out", str(tmp_path / "run")])
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--cuda-graph needs --backend cupy" in lines[0]


@pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                    reason=f"MNIST test split not found in {MNIST_DIR}")
def test_train_with_cuda_graph_on_the_emulation(tmp_path):
    """tinygan train --backend cupy --cuda-graph: the step captured and replayed."""
    proc = run_train(["--backend", "cupy", "--cuda-graph", "--out", str(tmp_path / "run"),
                      "--data-dir", str(MNIST_DIR), "--split", "test", "--limit", "60",
                      "--batch-size", "20", "--epochs", "2", "--hidden", "64", "--units", "16",
                      "--no-progress"], env=emu.subprocess_env(14))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDA graph" in proc.stdout + proc.stderr and "capture failed" not in proc.stderr
    assert (tmp_path / "run" / "checkpoint.npz").exists()


# --- on a real GPU ------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_graph_replays_equal_eager_steps(opt):
    replays_equal_eager_steps(opt)


@pytest.mark.gpu
def test_trainer_with_cuda_graph_trains(tmp_path):
    trainer_with_cuda_graph_trains(tmp_path)


def test_capturing_a_whole_step_changes_nothing_until_launched(emulated):
    """Real capture records without running: after capturing gan.train_step no parameter,
    gradient or optimizer array has changed; one launch then equals one eager step."""
    be = get_backend("cupy", seed=4)
    gan, twin = build(be), build(get_backend("cupy", seed=4))
    real = be.asarray(np.random.default_rng(0).random((8, 784), dtype=np.float32))
    arrays = lambda g: [g.G.param_vector, g.D.param_vector, g.G.grad_vector, g.D.grad_vector,
                        g.d_opt.velocity, g.g_opt.velocity]
    before = [be.to_numpy(a) for a in arrays(gan)]
    stream = emulated.cuda.Stream(non_blocking=True)
    with kernels.products_in_kernels(), stream:
        stream.begin_capture()
        gan.train_step(real)
        graph = stream.end_capture()
    for a, b in zip(arrays(gan), before):
        np.testing.assert_array_equal(be.to_numpy(a), b)
    graph.launch()
    twin.train_step(real)
    for a, b in zip(arrays(gan), arrays(twin)):
        np.testing.assert_allclose(be.to_numpy(a), be.to_numpy(b), rtol=1e-5, atol=1e-7)
