"""The losses: values against direct formulas, gradients by finite differences, extremes."""

import numpy as np
import pytest

from tinygan.errors import ConfigError
from tinygan.gradcheck import check_discriminator_loss, check_generator_loss, max_error
from tinygan.losses import discriminator_loss, generator_loss

TOL = 1e-6


def direct_sigmoid(l):
    return 1 / (1 + np.exp(-l))


def test_discriminator_loss_value(be64):
    lr, lf = be64.normal((7, 1)), be64.normal((5, 1))
    loss, _, _ = discriminator_loss(lr, lf)
    expect = 0.5 * (-np.log(direct_sigmoid(lr)).mean() - np.log(1 - direct_sigmoid(lf)).mean())
    assert loss.shape == () and abs(float(loss) - expect) < 1e-12


@pytest.mark.parametrize("kind", ["nonsaturating", "minimax"])
def test_generator_loss_value(be64, kind):
    lf = be64.normal((9, 1))
    loss, _ = generator_loss(lf, kind)
    d = direct_sigmoid(lf)
    expect = -np.log(d).mean() if kind == "nonsaturating" else np.log(1 - d).mean()
    assert abs(float(loss) - expect) < 1e-12


@pytest.mark.parametrize("scale", [1.0, 8.0, 30.0])
def test_discriminator_loss_gradient(be64, scale):
    rows = check_discriminator_loss(be64.normal((6, 1)) * scale, be64.normal((4, 1)) * scale)
    assert max_error(rows) < TOL


@pytest.mark.parametrize("kind", ["nonsaturating", "minimax"])
@pytest.mark.parametrize("scale", [1.0, 8.0, 30.0])
def test_generator_loss_gradient(be64, kind, scale):
    rows = check_generator_loss(be64.normal((6, 1)) * scale, kind)
    assert max_error(rows) < TOL


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_logits_are_finite_and_correct(dtype):
    l = np.array([[-1e4], [-100.0], [0.0], [100.0], [1e4]], dtype=dtype)
    loss, d_real, d_fake = discriminator_loss(l, l)
    for a in (loss, d_real, d_fake):
        assert np.all(np.isfinite(a)) and a.dtype == dtype
    # softplus(-l) = [1e4, 100, log 2, ~0, ~0] and softplus(l) is its mirror image
    expect = (1e4 + 100 + np.log(2)) / 5
    assert abs(float(loss) - expect) / expect < 1e-6
    np.testing.assert_allclose(d_real[:, 0], -0.5 / 5 * np.array([1, 1, 0.5, 0, 0]), atol=1e-12)
    np.testing.assert_allclose(d_fake[:, 0], 0.5 / 5 * np.array([0, 0, 0.5, 1, 1]), atol=1e-12)
    for kind in ("nonsaturating", "minimax"):
        g_loss, g = generator_loss(l, kind)
        assert np.isfinite(g_loss) and np.all(np.isfinite(g))
    ns, g_ns = generator_loss(l, "nonsaturating")
    np.testing.assert_allclose(g_ns[:, 0], -np.array([1, 1, 0.5, 0, 0]) / 5, atol=1e-12)
    mm, g_mm = generator_loss(l, "minimax")
    np.testing.assert_allclose(g_mm[:, 0], -np.array([0, 0, 0.5, 1, 1]) / 5, atol=1e-12)


def test_saturation_is_why_nonsaturating_exists():
    """When D rejects fakes (logit -20), minimax's gradient vanishes, non-saturating's does not."""
    l = np.full((10, 1), -20.0)
    _, g_mm = generator_loss(l, "minimax")
    _, g_ns = generator_loss(l, "nonsaturating")
    assert np.abs(g_mm).max() < 1e-8 * np.abs(g_ns).max()    # e^-20 = 2e-9


def test_unknown_objective():
    with pytest.raises(ConfigError, match="nonsaturating, minimax"):
        generator_loss(np.zeros((2, 1)), "wasserstein")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_is_accurate_on_the_left_tail(dtype):
    """Regression: 0.5 tanh(l/2) + 0.5 gave sigmoid(-20) = 0 in float32 (the minimax gradient)."""
    from tinygan.layers import sigmoid
    l = np.array([-80.0, -30.0, -20.0, -17.5, -5.0, 0.0, 5.0, 30.0], dtype=dtype)
    ref = 1 / (1 + np.exp(-l.astype(np.float64)))
    got = sigmoid(l)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref, rtol=1e-6 if dtype == "float32" else 1e-14)
    _, g = generator_loss(np.full((4, 1), -20.0, dtype=dtype), "minimax")
    assert np.all(g < 0)
