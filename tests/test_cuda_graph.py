"""The training step as a CUDA graph (tinygan/tools/cuda_graph.py, --cuda-graph).

The graph itself needs a real GPU (``gpu``; skipped on the CuPy emulation, which has no stream
capture); what runs everywhere: the optimizers' split into hyperparameters() and apply(), the
one-line refusals on NumPy and on the emulation.
"""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from tinygan import get_backend
from tinygan.errors import BackendError
from tinygan.gan import GAN
from tinygan.network import paper_discriminator, paper_generator
from tinygan.optim import SGD, Adam, ExponentialDecay
from tinygan.testing import cupy_emulation as emu


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
            return Adam(net.param_vector, net.grad_vector, lr=1e-3, decay=ExponentialDecay(decay))
        return SGD(net.param_vector, net.grad_vector, lr=0.05, momentum=0.5,
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


def test_graphed_step_refuses_numpy_and_the_emulation():
    from tinygan.tools.cuda_graph import GraphedStep
    with pytest.raises(BackendError, match="need the cupy backend"):
        GraphedStep(build(get_backend("numpy", seed=0)), (4, 784))
    with emu.installed(14):
        with pytest.raises(BackendError, match="emulation .* has no CUDA graphs"):
            GraphedStep(build(get_backend("cupy", seed=0)), (4, 784))


def run_train(args, env=None):
    return subprocess.run([sys.executable, "-m", "tinygan", "train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cuda_graph_on_numpy_is_a_usage_error(tmp_path):
    proc = run_train(["--backend", "numpy", "--cuda-graph", "--out", str(tmp_path / "run")])
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--cuda-graph needs --backend cupy" in lines[0]


def test_cuda_graph_on_the_emulation_is_one_line(tmp_path):
    proc = run_train(["--backend", "cupy", "--cuda-graph", "--out", str(tmp_path / "run"),
                      "--no-progress"], env=emu.subprocess_env(14))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(lines) == 1 and "no CUDA graphs" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


# --- on a real GPU ------------------------------------------------------------------------------
def real_gpu():
    be = get_backend("cupy", seed=0)
    if be.cuda_graph_problem():
        pytest.skip(be.cuda_graph_problem())
    return be


@pytest.mark.gpu
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_graph_replays_equal_eager_steps(opt):
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
                dropout = next(l for l in gan.D.layers if hasattr(l, "scaled_mask"))
                masks.append(be.to_numpy(dropout.scaled_mask))
        assert gan.step_count == len(batches) and gan.d_opt.t == gan.g_opt.t == len(batches)
        results.append((be.to_numpy(gan.G.param_vector), be.to_numpy(gan.D.param_vector),
                        np.array([[float(s[k]) for k in sorted(s)] for s in stats])))
        if graphed:
            assert step.replays == len(batches) - 1
    (g0, d0, s0), (g1, d1, s1) = results
    np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(d1, d0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s1, s0, rtol=1e-4, atol=1e-6)   # the stats are each step's own
    assert all(not np.array_equal(masks[i], masks[i + 1]) for i in range(len(masks) - 1)), \
        "dropout masks repeat across replays"


@pytest.mark.gpu
def test_trainer_with_cuda_graph_trains(tmp_path):
    """The training loop with cuda_graph: steps counted, stats finite, checkpoint written."""
    be = real_gpu()
    from tinygan.tools.train import TrainConfig, Trainer
    images = np.random.default_rng(0).random((60, 784), dtype=np.float32)
    cfg = TrainConfig(epochs=2, batch_size=10, out=str(tmp_path / "run"), n_fixed_samples=4,
                      log_every=2, hidden=64, units=16)
    t = Trainer(cfg, images, backend=be, progress=False, cuda_graph=True)
    rows = t.run()
    assert t.step == 12 and t._graphed.replays == 11
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
