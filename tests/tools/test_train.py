"""The training loop: outputs, exact resume, Ctrl-C, divergence, bad settings."""

import csv
import os
import signal

import numpy as np
import pytest

from tinygan import get_backend
from tinygan.tools.checkpoint import load_checkpoint, save_checkpoint
from tinygan.errors import CheckpointError, ConfigError, TrainingDiverged
from tinygan.tools.config import TrainConfig
from tinygan.tools.train import Trainer


def images(n=100, seed=0):
    return np.random.default_rng(seed).random((n, 784), dtype=np.float32)


def config(tmp_path, name="run", **kw):
    base = dict(epochs=2, batch_size=20, seed=3, out=str(tmp_path / name), log_every=2,
                n_fixed_samples=16)
    base.update(kw)
    return TrainConfig(**base)


def params(trainer):
    g = trainer.gan
    return np.concatenate([g.G.param_vector, g.D.param_vector, g.g_opt.velocity, g.d_opt.velocity])


def test_run_leaves_its_outputs(tmp_path):
    t = Trainer(config(tmp_path), images(), progress=False)
    rows = t.run()
    out = tmp_path / "run"
    assert [r["epoch"] for r in rows] == [1, 2] and t.step == 10
    for name in ("metrics.csv", "curves.png", "nearest_neighbours.png", "checkpoint.npz",
                 "checkpoint.json", "samples/epoch_0001.png", "samples/epoch_0002.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == 2
    for row in logged:
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "lr", "momentum", "seconds"):
            assert np.isfinite(float(row[key])), key
        assert 0 < float(row["d_real"]) < 1 and 0 < float(row["d_fake"]) < 1
    samples = t.be.to_numpy(t.gan.sample(8))
    assert samples.min() >= 0 and samples.max() <= 1


def test_resume_gives_identical_parameters(tmp_path):
    """N steps in one go == N/2 steps, a checkpoint, a fresh process state, N/2 more."""
    straight = Trainer(config(tmp_path, "a", max_steps=8), images(), progress=False)
    straight.run()
    first = Trainer(config(tmp_path, "b", max_steps=4), images(), progress=False)
    first.run()
    assert first.step == 4
    resumed = Trainer.resume(config(tmp_path, "b", max_steps=8), images(), progress=False)
    assert resumed.step == 4 and resumed.epoch == 0
    resumed.run()
    assert resumed.step == 8 and resumed.epoch == 1
    np.testing.assert_array_equal(params(resumed), params(straight))


def test_ctrl_c_saves_and_resume_continues(tmp_path):
    t = Trainer(config(tmp_path, "c", epochs=1), images(), progress=False)
    step = t.gan.train_step

    def interrupting(real):
        stats = step(real)
        if t.gan.step_count == 3:
            os.kill(os.getpid(), signal.SIGINT)          # what Ctrl-C sends
        return stats
    t.gan.train_step = interrupting
    t.run()
    assert t.interrupted and t.step == 3
    arrays, meta = load_checkpoint(tmp_path / "c" / "checkpoint")
    assert meta["step"] == 3
    resumed = Trainer.resume(config(tmp_path, "c", epochs=1), images(), progress=False)
    resumed.run()
    straight = Trainer(config(tmp_path, "d", epochs=1), images(), progress=False)
    straight.run()
    np.testing.assert_array_equal(params(resumed), params(straight))


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    t = Trainer(config(tmp_path, "e", epochs=3), images(), progress=False)
    t.cfg.epochs = 1
    t.run()
    good, meta = load_checkpoint(tmp_path / "e" / "checkpoint")
    t.cfg.epochs = 3
    step = t.gan.train_step

    def poisoned(real):
        stats = step(real)
        if t.gan.step_count == 7:
            t.gan.D.param_vector[0] = np.nan
        return stats
    t.gan.train_step = poisoned
    with pytest.raises(TrainingDiverged, match=r"step \d+.*nan"):
        t.run()
    after, meta_after = load_checkpoint(tmp_path / "e" / "checkpoint")
    assert meta_after["step"] == meta["step"] == 5
    for k in good:
        np.testing.assert_array_equal(after[k], good[k])


def test_diagnostics_may_be_inf_or_nan_without_stopping_the_run(tmp_path, monkeypatch):
    # issue 24 case 2: grad_ratio = inf (the non-saturating gradient underflowed) stopped a
    # healthy run; only losses, parameters and gradients decide a divergence
    import tinygan.tools.train as train_mod
    real = train_mod.saturation

    def odd(gan, z):
        point = real(gan, z)
        point["grad_x_nonsaturating"] = point["grad_x_nonsaturating"] * 0
        point["saturated_fraction"] = point["saturated_fraction"] * np.nan
        return point
    monkeypatch.setattr(train_mod, "saturation", odd)
    monkeypatch.setattr(train_mod, "gradient_ratio", lambda host: float("inf"))
    t = Trainer(config(tmp_path, "diag"), images(), progress=False)
    rows = t.run()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["grad_ratio"] == float("inf") and np.isnan(rows[-1]["saturated_fraction"])
    with open(tmp_path / "diag" / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert float(logged[-1]["grad_ratio"]) == float("inf")
    assert np.isnan(float(logged[-1]["saturated_fraction"]))
    with pytest.raises(TrainingDiverged, match="d_loss=nan"):     # a loss still decides
        t._check_finite({"d_loss": float("nan"), "grad_ratio": float("inf")})


def test_refuses_to_save_nan_parameters(tmp_path):
    t = Trainer(config(tmp_path, "f"), images(), progress=False)
    t.gan.G.param_vector[3] = np.inf
    with pytest.raises(TrainingDiverged, match="nan or inf"):
        t.save()


def test_all_finite_checks_every_slab():
    from tinygan.tools.train import all_finite
    a, b = np.ones(10, np.float32), np.ones(23, np.float32)
    assert all_finite(np, (a, b), slab=4)
    for bad in (np.nan, np.inf, -np.inf):
        b[21] = bad                                    # in the last, partial slab of the second
        assert not all_finite(np, (a, b), slab=4)
        b[21] = 1


@pytest.mark.parametrize("kw, msg", [
    ({"batch_size": 0}, "batch-size"), ({"epochs": -1}, "epochs"), ({"k": 2}, "alternating"),
    ({"lr": 0.0}, "lr"), ({"lr": float("nan")}, "lr"), ({"objective": "x"}, "objective"),
    ({"batch_size": 2.5}, "batch-size"), ({"schedule": "x"}, "schedule"),
])
def test_bad_settings(tmp_path, kw, msg):
    with pytest.raises(ConfigError, match=msg):
        Trainer(config(tmp_path, **kw), images(), progress=False)


def test_bad_data_and_out_dir(tmp_path):
    with pytest.raises(ConfigError, match="fewer than one batch"):
        Trainer(config(tmp_path), images(10), progress=False)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        Trainer(config(tmp_path), images() * 255, progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot write to output directory"):
        Trainer(config(tmp_path, "file/sub"), images(), progress=False)


def test_resume_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer.resume(config(tmp_path, "none"), images(), progress=False)
    Trainer(config(tmp_path, "g", max_steps=1), images(), progress=False).run()
    with pytest.raises(CheckpointError, match="batch_size"):
        Trainer.resume(config(tmp_path, "g", batch_size=10), images(), progress=False)
    # a checkpoint of another architecture
    arrays, meta = load_checkpoint(tmp_path / "g" / "checkpoint")
    arrays["G/0.W"] = arrays["G/0.W"][:, :10]
    save_checkpoint(tmp_path / "g" / "checkpoint", arrays, meta)
    for prev in (tmp_path / "g").glob("checkpoint.prev.*"):
        prev.unlink()         # else the schema's refusal falls back to it (with a warning)
    with pytest.raises(CheckpointError, match="do not fit the configuration"):
        Trainer.resume(config(tmp_path, "g"), images(), progress=False)


def test_checkpoint_loads_on_another_backend_instance(tmp_path):
    """Checkpoints hold host arrays only: a fresh backend (as after a CuPy run) loads them."""
    t = Trainer(config(tmp_path, "h", max_steps=2), images(), progress=False)
    t.run()
    other = Trainer.resume(config(tmp_path, "h", max_steps=2), images(),
                           backend=get_backend("numpy", seed=99), progress=False)
    np.testing.assert_array_equal(params(other), params(t))


def test_previous_checkpoint_is_the_epoch_before(tmp_path):
    """Regression: run() saved again after the last epoch had saved, so checkpoint.prev held
    the same step as checkpoint and the previous epoch's fallback was lost."""
    Trainer(config(tmp_path, "p"), images(), progress=False).run()
    _, current = load_checkpoint(tmp_path / "p" / "checkpoint")
    _, previous = load_checkpoint(tmp_path / "p" / "checkpoint.prev")
    assert (current["step"], previous["step"]) == (10, 5)


def test_load_run_from_every_form_of_path(tmp_path):
    """load_run takes the run directory, the checkpoint prefix, the .npz or the .json, and gives
    back the GAN as saved (G, D, optimizer state) with its TrainConfig."""
    from tinygan.tools.rundir import load_run, sample_images
    t = Trainer(config(tmp_path, max_steps=3), images(), progress=False)
    t.run()
    out = tmp_path / "run"
    for path in (out, out / "checkpoint", out / "checkpoint.npz", out / "checkpoint.json"):
        gan, cfg, meta = load_run(path, get_backend("numpy", seed=1))
        assert cfg == t.cfg and meta["step"] == 3
        np.testing.assert_array_equal(params(t), np.concatenate(
            [gan.G.param_vector, gan.D.param_vector, gan.g_opt.velocity, gan.d_opt.velocity]))
        assert gan.d_opt.t == t.gan.d_opt.t == 3
    x = sample_images(gan, 5, batch=2)
    assert x.shape == (5, 784) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    with pytest.raises(CheckpointError, match="no run directory or checkpoint"):
        load_run(tmp_path / "nothing")
