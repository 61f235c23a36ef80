"""Shared test fixtures: backends, the location of ../shared, GPU detection."""

import os
from pathlib import Path

# Many small matrix products: OpenBLAS's thread start-up and spinning cost more than they save
# here, and on a shared machine they can make a test 30 times slower. Benchmarks set their own.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The tests' data sets are small IDX files they write themselves, matching no published md5:
# allow them (tools/data.check_identity), here and in the commands tests run. The tests of the
# identity check itself remove the variable (tests/tools/test_data.py, identity tests).
os.environ.setdefault("TINYGAN_UNVERIFIED_DATA", "1")

import pytest  # noqa: E402

from tinygan.backend import cupy_usable, get_backend  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the clone (CI has it; a user's clone may not). TINYGAN_TEST_SHARED points
# elsewhere, e.g. at a missing folder to check that every test needing it skips with a reason.
SHARED = Path(os.environ.get("TINYGAN_TEST_SHARED") or REPO.parent / "shared")
MNIST_DIR = SHARED / "data" / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

GPU_OK, GPU_REASON = cupy_usable()


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a usable CUDA device and CuPy")


def pytest_collection_modifyitems(config, items):
    if GPU_OK:
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {GPU_REASON}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def be64():
    """NumPy float64 backend for gradient checks."""
    return get_backend("numpy", dtype="float64", seed=1234)


@pytest.fixture
def be32():
    return get_backend("numpy", dtype="float32", seed=1234)
