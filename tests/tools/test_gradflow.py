"""Seeing the gradients (issue 18): the logged gradient norms, D's saturation, G's gradient
field in 2-D, and ``python -m tinygan gradcheck --explain``.

Each measured number is checked against the same quantity computed another way: a logged
layer norm against the norm of that step's gradient buffer, the saturation fraction and both
objectives' gradients on a D built by hand, the 2-D arrows against finite differences of
G's loss; and none of it adds a host synchronisation to a training step (the CuPy emulation).
"""

import importlib.util
import math

import numpy as np
import pytest

from conftest import REPO
from tinygan.backend import get_backend
from tinygan.fast import GAN, SGD, Sequential, mlp
from tinygan.layers import Linear, Maxout
from tinygan.losses import generator_loss
from tinygan.tools.gradcheck_cli import explain_layer, main as gradcheck_main
from tinygan.tools.gradflow import (generator_field, gradient_ratio, saturation,
                                    weight_gradient_norms)
from tinygan.tools.plot import read_history


def tiny_trainer(tmp_path, log_every, backend=None, **kw):
    from tinygan.tools.config import TrainConfig
    from tinygan.tools.train import Trainer
    images = np.random.default_rng(0).random((40, 784), dtype=np.float32)
    cfg = TrainConfig(epochs=2, batch_size=10, hidden=16, units=8, n_fixed_samples=6,
                      log_every=log_every, out=str(tmp_path / "run"), **kw)
    return Trainer(cfg, images, backend=backend, progress=False)


def test_logged_layer_norms_equal_the_norms_of_each_steps_gradients(tmp_path):
    """metrics.csv holds each epoch's mean of the per-step norms; intervals.csv (one step per
    interval here) each step's own; both equal to np.linalg.norm of the gradient buffers."""
    t = tiny_trainer(tmp_path, log_every=1)
    step = t.gan.train_step
    seen = []

    def recording_step(real):
        stats = step(real)
        grads = {f"grad_{tag}.{name}": np.linalg.norm(g) for tag, net in
                 (("G", t.gan.G), ("D", t.gan.D)) for name, g in net.grads if name.endswith("W")}
        seen.append(grads)
        return stats
    t.gan.train_step = recording_step
    t.run()
    assert len(seen) == 8 and set(seen[0]) == {"grad_G.0.W", "grad_G.2.W", "grad_G.4.W",
                                               "grad_D.1.W", "grad_D.3.W", "grad_D.5.W"}
    intervals = read_history(t.run_dir.intervals)
    epochs = read_history(t.run_dir.metrics)
    assert len(intervals) == 8 and len(epochs) == 2
    for row, direct in zip(intervals, seen):
        for key, value in direct.items():
            assert row[key] == pytest.approx(value, rel=1e-5), key
            assert value > 0
    for e, row in enumerate(epochs):
        for key in seen[0]:
            mean = np.mean([s[key] for s in seen[4 * e:4 * e + 4]])
            assert row[key] == pytest.approx(mean, rel=1e-5), key
    assert [r["epoch"] for r in intervals] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    for name in ("gradients.png", "saturation.png"):
        assert (t.out / name).stat().st_size > 10_000, name


def test_grad_x_is_the_norm_of_gs_gradient_arriving_through_d():
    be = get_backend("numpy", dtype="float64", seed=3)
    for schedule in ("simultaneous", "alternating"):
        G, D = mlp([3, 6, 5], backend=be), mlp([5, 6, 1], backend=be)
        gan = GAN(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), noise_dim=3, schedule=schedule)
        backward, received = G.backward, []
        G.backward = lambda dy, **kw: (received.append(np.linalg.norm(dy)), backward(dy, **kw))[1]
        gan.train_step(be.uniform(0, 1, (4, 5)))
        assert len(received) == 1
        norm = float(weight_gradient_norms(gan)["grad_x"])
        assert norm == pytest.approx(received[0], rel=1e-12)


def hand_made_gan(be, z0):
    """G(z) = z (a 2 -> 2 identity Linear), D's logit = 2 * x_0 - 1: D(G(z)) known exactly."""
    G = Sequential([Linear(2, 2, backend=be)])
    G.params[0][1][...] = np.eye(2)
    D = Sequential([Linear(2, 1, backend=be)])
    D.params[0][1][...] = [[2.0], [0.0]]
    D.params[1][1][...] = -1.0
    gan = GAN(G, D, SGD(G), SGD(D), noise_dim=2)
    z = np.stack([z0, np.zeros_like(z0)], axis=1)
    return gan, z


def test_saturation_on_a_constructed_d():
    be = get_backend("numpy", dtype="float64", seed=0)
    z0 = np.array([-5.0, -2.5, -1.7, 0.0, 0.4, 3.0])
    gan, z = hand_made_gan(be, z0)
    out = {k: float(v) for k, v in saturation(gan, z).items()}
    logit = 2 * z0 - 1
    d = 1 / (1 + np.exp(-logit))
    assert (d < 0.01).sum() == 2                               # -5 and -2.5; -1.7 gives D = 0.012
    assert out["saturated_fraction"] == pytest.approx(2 / 6)
    # dL/dx = dL/dl * W^T = (dL/dl * 2, 0): the per-sample factors are (1 - D) and D, over N
    n = len(z0)
    assert out["grad_x_nonsaturating"] == pytest.approx(np.linalg.norm(2 * (1 - d) / n), rel=1e-12)
    assert out["grad_x_minimax"] == pytest.approx(np.linalg.norm(2 * d / n), rel=1e-12)
    assert gradient_ratio(out) == pytest.approx(np.linalg.norm(d) / np.linalg.norm(1 - d))
    assert not gan.D.grad_vector.any() and not gan.G.grad_vector.any()   # for the record only


def test_saturation_leaves_the_training_run_unchanged(tmp_path, monkeypatch):
    """Measured with dropout off on the fixed noise: no random number drawn, so the run with
    the measurement trains exactly as the run without it."""
    import tinygan.tools.train as train
    measured = tiny_trainer(tmp_path / "a", log_every=2)
    measured.run()
    skipped = tiny_trainer(tmp_path / "b", log_every=2)
    monkeypatch.setattr(train, "saturation", lambda gan, z: {
        k: gan.xp.zeros((), dtype=gan.backend.dtype) for k in train.SATURATION_KEYS})
    skipped.run()
    np.testing.assert_array_equal(measured.gan.G.param_vector, skipped.gan.G.param_vector)
    np.testing.assert_array_equal(measured.gan.D.param_vector, skipped.gan.D.param_vector)


@pytest.mark.parametrize("objective", ["nonsaturating", "minimax"])
def test_arrows_are_minus_dlg_dx_by_finite_differences(objective):
    be = get_backend("numpy", dtype="float64", seed=1)
    D = mlp([2, 7, 7, 1], activation="tanh", backend=be)
    x = be.normal((5, 2)) * 1.5
    d, arrows = generator_field(D, x, objective)
    n, h = len(x), 1e-6

    def loss():
        return float(generator_loss(D.forward(x), objective)[0])
    for i in range(n):
        for j in range(2):
            old = x[i, j]
            x[i, j] = old + h
            up = loss()
            x[i, j] = old - h
            down = loss()
            x[i, j] = old
            # the arrow is sample i's own gradient: N times that of the batch mean, negated
            assert arrows[i, j] == pytest.approx(-n * (up - down) / (2 * h), rel=1e-6, abs=1e-10)
    with D.evaluating():
        np.testing.assert_allclose(d, 1 / (1 + np.exp(-D.forward(x)[:, 0])), rtol=1e-12)


def test_the_gradient_field_example_same_start_and_outputs(tmp_path):
    spec = importlib.util.spec_from_file_location("gradient_field", REPO / "examples" / "gradient_field.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = mod.parse_args(["--steps", "6", "--frames", "3", "--still-frames", "2", "--hidden", "8",
                           "--grid", "12", "--arrows", "10", "--d-head-start", "20",
                           "--out", str(tmp_path)])
    args.mix = mod.MIXTURES["ring"]()
    plane = mod.plane_grid(3.0, args.grid)
    real = np.zeros((4, 2))
    runs = {obj: mod.train(obj, args, {0, 3, 6}, plane, real) for obj in mod.OBJECTIVES}
    a, b = runs["nonsaturating"][0], runs["minimax"][0]
    np.testing.assert_array_equal(a["samples"], b["samples"])        # the same start
    np.testing.assert_array_equal(a["d_plane"], b["d_plane"])
    assert set(runs["minimax"]) == {0, 3, 6}
    assert not np.array_equal(runs["minimax"][6]["samples"], runs["nonsaturating"][6]["samples"])
    assert mod.main(["--steps", "4", "--frames", "2", "--still-frames", "2", "--hidden", "8",
                     "--grid", "10", "--arrows", "8", "--out", str(tmp_path / "out")]) == 0
    for name in ("gradient_field.png", "gradient_field.gif"):
        assert (tmp_path / "out" / name).stat().st_size > 5_000


def test_the_two_objectives_arrows_differ_by_d_over_one_minus_d():
    be = get_backend("numpy", dtype="float64", seed=2)
    D = mlp([2, 5, 1], backend=be)
    x = be.normal((6, 2))
    d, ns = generator_field(D, x, "nonsaturating")
    _, mm = generator_field(D, x, "minimax")
    np.testing.assert_allclose(mm, ns * (d / (1 - d))[:, None], rtol=1e-10)


# --- no host sync: the CuPy emulation's counter ------------------------------------------------
def test_gradient_measurements_make_no_host_sync():
    from tinygan.testing import cupy_emulation as emu
    from tinygan.tools.config import TrainConfig, build_gan
    with emu.installed(14) as cupy:
        be = get_backend("cupy", seed=0)
        gan = build_gan(TrainConfig(batch_size=8, hidden=16, units=8), be, np.full(784, 0.13))
        real = be.asarray(np.random.default_rng(0).random((8, 784), dtype=np.float32))
        z = gan.sample_noise(8)
        gan.train_step(real)                              # the first step allocates
        with emu.counting() as c:
            stats = gan.train_step(real)
            norms = weight_gradient_norms(gan)
            point = saturation(gan, z)
        assert c.syncs == [] and c.h2d == [], (c.syncs, c.h2d)
        for v in list(stats.values()) + list(norms.values()) + list(point.values()):
            assert isinstance(v, cupy.ndarray) and v.shape == ()
        assert len(norms) == 7                           # six weight matrices and dL_G/dx


# --- gradcheck --explain ---------------------------------------------------------------------------
def test_explain_maxout_prints_every_coordinate(capsys):
    status = gradcheck_main(["--layer", "maxout", "--explain"])
    out = capsys.readouterr().out
    assert status == 0
    for part in ("-- inputs", "-- forward", "y = forward(x)", "mask: 1 where that piece is the max",
                 "dy (upstream gradient", "-- backward, coordinate by coordinate",
                 "pass: Maxout"):
        assert part in out, part
    rows = [line.split() for line in out.splitlines() if line[:2] in ("x[", "W[", "b[")]
    # Maxout(3, units=2, pieces=2) on x (3, 3): 9 + 3 * 4 + 4 coordinates, each one row
    assert len(rows) == 9 + 12 + 4
    for row in rows:
        coord_end = next(i for i, tok in enumerate(row) if tok.endswith("]"))
        value, analytic, numerical, diff, result = row[coord_end + 1:]
        assert result == "pass"
        assert abs(float(analytic) - float(numerical)) < 1e-8
    assert "Maxout.backward in tinygan/layers.py" in out


def test_explain_covers_every_layer_class():
    from tinygan.layers import LAYER_CLASSES
    for cls in LAYER_CLASSES:
        text, passed = explain_layer(cls)
        assert passed, text
        assert f"{cls.__name__}.backward in tinygan/layers.py" in text


def test_explain_catches_a_wrong_backward(monkeypatch):
    def wrong(self, dy, param_grads=True, input_grad=True):
        dz = (dy[:, None, :] * 1.0).repeat(self.pieces, 1).reshape(dy.shape[0], -1)  # no mask
        if param_grads:
            self.grads["W"], self.grads["b"] = self.x.T @ dz, dz.sum(0)
        return dz @ self.params["W"].T if input_grad else None
    monkeypatch.setattr(Maxout, "backward", wrong)
    text, passed = explain_layer(Maxout)
    assert not passed and "FAIL" in text


def test_explain_rejects_items_that_are_not_layers(capsys):
    assert gradcheck_main(["--layer", "generator_loss", "--explain"]) == 2
    assert "--explain works for the layers" in capsys.readouterr().err
