import types

import numpy as np
import pytest

from tinygan import backend as backend_mod
from tinygan.backend import Backend, get_backend
from tinygan.errors import BackendError, TinyGANError


def test_numpy_backend_defaults():
    be = get_backend()
    assert be.name == "numpy" and be.xp is np and be.dtype == np.float32
    x = be.asarray([[1, 2], [3, 4]])
    assert x.dtype == np.float32
    assert isinstance(be.to_numpy(x), np.ndarray)
    assert be.uniform(-1, 1, (3, 4)).dtype == np.float32
    assert be.normal((3,)).dtype == np.float32
    be.synchronize()


def test_float64_and_seed_reproducible():
    a = get_backend("numpy", "float64", seed=7).uniform(-2, 3, (1000,))
    b = get_backend("numpy", "float64", seed=7).uniform(-2, 3, (1000,))
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert a.min() >= -2 and a.max() < 3


def test_rng_state_roundtrip():
    be = get_backend(seed=3)
    state = be.rng_state()
    first = be.normal((5,))
    be.set_rng_state(state)
    np.testing.assert_array_equal(first, be.normal((5,)))


def test_unknown_name_lists_choices():
    with pytest.raises(BackendError, match="numpy, cupy, auto"):
        get_backend("torch")
    with pytest.raises(TinyGANError, match="float32, float64"):
        get_backend("numpy", dtype="float16")


def test_cupy_missing_names_the_fix(monkeypatch):
    monkeypatch.setattr(backend_mod, "_import_cupy", lambda: None)
    with pytest.raises(BackendError, match=r'pip install "tinygan\[gpu\]"'):
        get_backend("cupy")


def _fake_cupy(available):
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(is_available=lambda: available)
    return cupy


def test_cupy_without_device_names_the_fix(monkeypatch):
    monkeypatch.setattr(backend_mod, "_import_cupy", lambda: _fake_cupy(False))
    with pytest.raises(BackendError, match=r"is_available\(\) is False.*--backend numpy"):
        get_backend("cupy")


def test_auto_falls_back_to_numpy_and_says_so(monkeypatch, capsys):
    monkeypatch.setattr(backend_mod, "_import_cupy", lambda: _fake_cupy(False))
    be = get_backend("auto")
    assert be.name == "numpy"
    assert "auto -> numpy (no usable CUDA device)" in capsys.readouterr().err
    monkeypatch.setattr(backend_mod, "_import_cupy", lambda: None)
    get_backend("auto")
    assert "CuPy not installed" in capsys.readouterr().err


def test_backend_passthrough():
    be = get_backend(seed=1)
    assert get_backend(be) is be
    assert isinstance(be, Backend)
    assert "numpy" in repr(be)
