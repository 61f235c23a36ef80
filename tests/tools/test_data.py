"""Tests of tinygan.tools.data: the IDX reader, the search order, downloads from a local server."""

import gzip
import hashlib
import http.server
import os
import socket
import threading
import time
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tinygan.tools import data
from tinygan.tools.data import DataError, find_file, load_mnist, read_idx, write_idx

from conftest import MNIST_DIR as SHARED_MNIST  # noqa: E402
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def idx_bytes(array, type_byte=0x08, ndim=None):
    """The raw IDX encoding of a uint8 array (header fields overridable to build bad files)."""
    array = np.asarray(array, dtype=np.uint8)
    ndim = array.ndim if ndim is None else ndim
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return bytes([0, 0, type_byte, ndim]) + dims + array.tobytes()


def write_pair(directory, n=7, label=3, prefix="t10k"):
    """A small images/labels IDX pair; every label is ``label`` so tests can tell copies apart."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images = (np.arange(n * 784) % 256).astype(np.uint8).reshape(n, 28, 28)
    write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", np.full(n, label, np.uint8))
    return images


def isolate_data(tmp_path, monkeypatch):
    """Cache under tmp_path, no TINYGAN_DATA, no proxies (downloads go to 127.0.0.1 only),
    short timeouts."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setattr(data, "TIMEOUT", 5.0)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated environment: cache under tmp_path, no TINYGAN_DATA, no proxies, no Debian dir."""
    isolate_data(tmp_path, monkeypatch)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")
    return tmp_path


# --------------------------------------------------------------------------- IDX reader

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 28, 28), (2, 3, 4, 5), (0, 28, 28)])
def test_idx_round_trip(tmp_path, suffix, shape):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.uint8 and b.shape == shape
    np.testing.assert_array_equal(a, b)
    b[...] = 0  # writable
    assert read_idx(str(path)).shape == shape  # str paths work too


def test_write_idx_refuses_other_dtypes(tmp_path):
    with pytest.raises(DataError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros(3, np.float32))
    with pytest.raises(DataError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros((1,) * 5, np.uint8))


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
BROKEN = {
    "empty file": (b"", "truncated IDX header"),
    "truncated magic": (GOOD[:3], "truncated IDX header"),
    "truncated dims": (GOOD[:9], "truncated IDX header"),
    "truncated payload": (GOOD[:-1], "truncated payload"),
    "header only": (GOOD[:12], "truncated payload"),
    "trailing bytes": (GOOD + b"\x00", "trailing bytes"),
    "wrong magic": (b"\x01" + GOOD[1:], "not an IDX file"),
    "wrong magic 2": (b"\x00\x07" + GOOD[2:], "not an IDX file"),
    "int32 type": (idx_bytes(np.zeros(4, np.uint8), type_byte=0x0C), "unsupported IDX type 0x0c"),
    "unknown type": (idx_bytes(np.zeros(4, np.uint8), type_byte=0x42), "unsupported IDX type 0x42"),
    "ndim 0": (bytes([0, 0, 8, 0]) + b"\x05", "ndim is 0"),
    "ndim 5": (idx_bytes(np.zeros((1, 1, 1, 1, 1), np.uint8)), "ndim is 5"),
    "ndim 255": (bytes([0, 0, 8, 255]) + b"\x00" * 64, "ndim is 255"),
}


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_idx_raises_data_error(tmp_path, case, suffix):
    blob, message = BROKEN[case]
    path = tmp_path / f"bad.idx{suffix}"
    path.write_bytes(gzip.compress(blob) if suffix else blob)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope.gz")


@pytest.mark.parametrize("case", ["not gzip", "bad crc", "truncated gzip", "bad deflate",
                                  "garbage after member"])
def test_corrupt_gzip_raises_data_error(tmp_path, case):
    z = bytearray(gzip.compress(GOOD))
    if case == "not gzip":
        z = bytearray(GOOD)
    elif case == "bad crc":
        z[-8] ^= 0xFF
    elif case == "truncated gzip":
        z = z[:-5]
    elif case == "bad deflate":
        z[10:] = b"\xff" * (len(z) - 10)
    else:
        z += b"garbage!"
    path = tmp_path / "c.idx.gz"
    path.write_bytes(bytes(z))
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_huge_header_does_not_allocate(tmp_path, suffix):
    blob = bytes([0, 0, 8, 2]) + b"\xff" * 8 + b"\x01" * 100
    path = tmp_path / f"huge.idx{suffix}"
    path.write_bytes(gzip.compress(blob) if suffix else blob)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DataError, match="truncated payload|more than") as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < 8 << 20, f"read_idx allocated {peak} bytes for a lying header"
    assert "(4294967295, 4294967295)" in str(info.value)


def test_gz_reads_at_most_claimed_plus_one(tmp_path):
    # a small header in front of a 64 MiB payload of zeros (a "gzip bomb" of trailing bytes)
    path = tmp_path / "bomb.idx.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big"))
        for _ in range(64):
            f.write(b"\x00" * (1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="trailing bytes"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def _bomb(path, n_images, zero_mb, level=9):
    """An IDX .gz whose header declares n_images 28x28 images, followed by zero_mb MiB of
    zeros (compressing ~1000:1)."""
    with gzip.open(path, "wb", compresslevel=level) as f:
        f.write(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n_images, 28, 28)))
        for _ in range(zero_mb):
            f.write(b"\x00" * (1 << 20))
    return path


@pytest.mark.parametrize("n_images, zero_mb, fault", [
    (2**31, 64, "more than the"),               # the bomb: a small .gz declaring 2^31 images
    (2**31 // 784, 8, "compressed bytes can hold"),   # under the limit, beyond the gzip ratio
])
def test_gzip_bomb_refused_before_inflating(tmp_path, n_images, zero_mb, fault):
    path = _bomb(tmp_path / "bomb-idx3-ubyte.gz", n_images, zero_mb)
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DataError, match=fault) as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0 and peak < 4 << 20, peak
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_fuzz_gzip_bombs(tmp_path):
    """60 bombs with random declared sizes and zero streams: a DataError or the declared array,
    and never more inflated than the declaration plus one byte (memory peak checked)."""
    rng = np.random.default_rng(15)
    for case in range(60):
        n, zero_mb = int(rng.integers(1, 2**22)), int(rng.integers(0, 3))
        path = _bomb(tmp_path / f"b{case}.gz", n, zero_mb, level=1)
        tracemalloc.start()
        try:
            try:
                out = read_idx(path)
                assert out.shape == (n, 28, 28)
            except DataError:
                pass
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 2 * min(n * 784, zero_mb << 20) + (4 << 20), (case, n, zero_mb, peak)


def test_fuzz_read_idx(tmp_path):
    """Random bytes, truncations and byte flips: an array or a DataError, nothing else."""
    rng = np.random.default_rng(20140610)
    good = idx_bytes(rng.integers(0, 256, (3, 5, 4), dtype=np.uint8))
    good_gz = gzip.compress(good, mtime=0)
    raw_path, gz_path = tmp_path / "f.idx", tmp_path / "f.idx.gz"
    outcomes = {"array": 0, "error": 0}
    for i in range(3200):
        kind = i % 8
        base = good_gz if kind in (1, 3, 5) else good
        if kind in (0, 1):  # random bytes, sometimes with a valid-looking magic
            blob = rng.integers(0, 256, int(rng.integers(0, 80)), dtype=np.uint8).tobytes()
            if rng.random() < 0.5:
                blob = bytes([0, 0, 8, int(rng.integers(0, 6))]) + blob
            if kind == 1 and rng.random() < 0.5:
                blob = gzip.compress(blob, mtime=0)
        elif kind in (2, 3):  # truncation
            blob = base[: int(rng.integers(0, len(base) + 1))]
        elif kind in (4, 5):  # byte flips
            arr = bytearray(base)
            for pos in rng.integers(0, len(arr), int(rng.integers(1, 4))):
                arr[pos] = int(rng.integers(0, 256))
            blob = bytes(arr)
        elif kind == 6:  # header flips in the raw file, then re-gzip
            arr = bytearray(good)
            arr[int(rng.integers(0, 16))] = int(rng.integers(0, 256))
            blob = gzip.compress(bytes(arr), mtime=0)
        else:  # trailing junk
            blob = good + rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        path = gz_path if kind in (1, 3, 5, 6) else raw_path
        path.write_bytes(blob)
        try:
            out = read_idx(path)
        except DataError:
            outcomes["error"] += 1
        else:
            assert out.dtype == np.uint8
            outcomes["array"] += 1
    assert sum(outcomes.values()) == 3200
    assert outcomes["array"] > 0 and outcomes["error"] > 0


# --------------------------------------------------------------------------- load_mnist

def test_load_small_pair(env):
    images = write_pair(env / "d", n=7, label=4)
    x, y = load_mnist("mnist", "test", data_dir=env / "d", download=False)
    assert x.shape == (7, 784) and x.dtype == np.float32
    assert y.shape == (7,) and y.dtype == np.int64 and (y == 4).all()
    np.testing.assert_allclose(x, images.reshape(7, 784) / 255.0, rtol=1e-6)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_split_boundaries(env):
    """train = images 0..49,999, validation = 50,000..59,999, full-train = all 60,000."""
    d = env / "d"
    d.mkdir()
    n = 60000
    index = np.arange(n)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = index % 256
    images[:, 0, 1] = index // 256
    write_idx(d / "train-images-idx3-ubyte", images)  # raw (no .gz) names are accepted too
    write_idx(d / "train-labels-idx1-ubyte", (index % 10).astype(np.uint8))

    def ids(x):
        return np.rint(x[:, 0] * 255).astype(int) + 256 * np.rint(x[:, 1] * 255).astype(int)

    for split, lo, hi in [("train", 0, 50000), ("validation", 50000, 60000),
                          ("full-train", 0, 60000)]:
        x, y = load_mnist("mnist", split, data_dir=d, download=False)
        np.testing.assert_array_equal(ids(x), np.arange(lo, hi))
        np.testing.assert_array_equal(y, np.arange(lo, hi) % 10)


def test_train_split_needs_60000(env):
    write_pair(env / "d", n=5, prefix="train")
    with pytest.raises(DataError, match="60,000"):
        load_mnist("mnist", "train", data_dir=env / "d", download=False)
    for split in ("full-train", "train+validation"):
        x, _ = load_mnist("mnist", split, data_dir=env / "d", download=False)
        assert x.shape == (5, 784)


def test_bad_name_split_and_dir(env):
    with pytest.raises(DataError, match="fashion-mnist"):
        load_mnist("cifar10")
    with pytest.raises(DataError, match="validation"):
        load_mnist("mnist", "dev")
    with pytest.raises(DataError, match="does not exist"):
        load_mnist("mnist", "test", data_dir=env / "missing")


@pytest.mark.parametrize("fault", ["count", "image shape", "label ndim", "label range"])
def test_mismatched_files(env, fault):
    d = env / "d"
    write_pair(d, n=6)
    if fault == "count":
        write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
        match = "holds 6 images but .* holds 5 labels"
    elif fault == "image shape":
        write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((6, 32, 32), np.uint8))
        match = "28, 28"
    elif fault == "label ndim":
        write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros((6, 1), np.uint8))
        match = "labels of shape"
    else:
        write_idx(d / "t10k-labels-idx1-ubyte.gz", np.full(6, 10, np.uint8))
        match = "out of range"
    with pytest.raises(DataError, match=match):
        load_mnist("mnist", "test", data_dir=d, download=False)


def test_search_order(env, monkeypatch):
    explicit, envdir, cache = env / "explicit", env / "envdir", data.cache_dir("mnist")
    write_pair(explicit, label=1)
    write_pair(envdir / "mnist", label=2)  # the <dir>/<name> form
    write_pair(cache, label=3)
    monkeypatch.setenv("TINYGAN_DATA", str(envdir))

    def label(**kw):
        return int(load_mnist("mnist", "test", download=False, **kw)[1][0])

    assert label(data_dir=explicit) == 1
    assert label() == 2
    monkeypatch.delenv("TINYGAN_DATA")
    assert label() == 3
    assert find_file("mnist", TEST_FILES[0]) == cache / TEST_FILES[0]
    for f in TEST_FILES:
        (cache / f).unlink()
    assert find_file("mnist", TEST_FILES[0]) is None
    with pytest.raises(DataError, match="download=False") as info:
        load_mnist("mnist", "test", download=False)
    assert str(cache) in str(info.value) and "TINYGAN_DATA" in str(info.value)


def test_fashion_search_order(env, monkeypatch):
    debian, envdir = env / "debian", env / "envdir"
    write_pair(debian, label=5)
    write_pair(data.cache_dir("fashion-mnist"), label=6)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", debian)
    assert load_mnist("fashion-mnist", "test", download=False)[1][0] == 5  # Debian beats cache
    write_pair(envdir, label=7)
    monkeypatch.setenv("TINYGAN_DATA", str(envdir))
    assert load_mnist("fashion-mnist", "test", download=False)[1][0] == 7
    # the Debian dir is never used for MNIST
    assert data.search_dirs("mnist").count(debian) == 0


# --------------------------------------------------------------------------- downloads

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _ShortBody(_Quiet):
    """Promises 100,000 bytes, sends 10, hangs up: a download cut off half way."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def serve():
    """serve(directory, handler) -> base URL of an HTTP server on 127.0.0.1 (stopped after)."""
    servers = []

    def start(directory, handler=_Quiet):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 partial(handler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_mirror():
    """A URL on a port that is bound but not listening: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


@pytest.fixture
def remote(env, monkeypatch):
    """A directory of small 'published' files, with CHECKSUMS patched to their md5."""
    root = env / "remote"
    write_pair(root, n=9, label=8)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {f: md5(root / f) for f in TEST_FILES})
    return root


def cache_listing():
    d = data.cache_dir("mnist")
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_download_success(remote, serve, monkeypatch):
    url = serve(remote)
    monkeypatch.setitem(data.MIRRORS, "mnist", [url])  # the default mirror list is used
    x, y = load_mnist("mnist", "test", progress=False)
    assert x.shape == (9, 784) and (y == 8).all()
    assert cache_listing() == sorted(TEST_FILES)
    for f in TEST_FILES:
        assert md5(data.cache_dir("mnist") / f) == data.CHECKSUMS["mnist"][f]
    # second load comes from the cache: no server needed
    x2, _ = load_mnist("mnist", "test", mirrors=[], progress=False)
    np.testing.assert_array_equal(x, x2)


def test_download_with_progress_bar(remote, serve, capsys):
    x, _ = load_mnist("mnist", "test", mirrors=[serve(remote)], progress=True)
    assert x.shape == (9, 784)


def write_wrong(directory):
    """Files with the published names but other bytes (a tampered or stale mirror)."""
    directory.mkdir()
    for f in TEST_FILES:
        (directory / f).write_bytes(b"this is not the published file")


def test_checksum_mismatch_leaves_nothing(env, remote, serve):
    wrong = env / "wrong"
    write_wrong(wrong)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist("mnist", "test", mirrors=[serve(wrong)], progress=False)
    assert cache_listing() == []  # no file, no .part


def test_bad_mirror_then_good(env, remote, serve, dead_mirror):
    wrong, empty = env / "wrong", env / "empty"
    write_wrong(wrong)
    empty.mkdir()
    mirrors = [dead_mirror, serve(wrong), serve(empty), serve(remote, _ShortBody), serve(remote)]
    x, y = load_mnist("mnist", "test", mirrors=mirrors, progress=False)
    assert (y == 8).all()
    assert cache_listing() == sorted(TEST_FILES)


def test_cut_off_download_leaves_nothing(remote, serve):
    with pytest.raises(DataError, match="IncompleteRead|mismatch"):
        load_mnist("mnist", "test", mirrors=[serve(remote, _ShortBody)], progress=False)
    assert cache_listing() == []


def test_all_mirrors_dead(env, remote, dead_mirror, serve):
    (env / "empty").mkdir()
    mirrors = [dead_mirror, serve(env / "empty")]
    with pytest.raises(DataError) as info:
        load_mnist("mnist", "test", mirrors=mirrors, progress=False)
    msg = str(info.value)
    assert dead_mirror in msg and "404" in msg  # each mirror's failure is listed
    assert str(data.cache_dir("mnist")) in msg
    assert all(f in msg for f in data.FILES)
    assert "TINYGAN_DATA" in msg and "--data-dir" in msg
    assert cache_listing() == []


def test_download_failure_is_short_and_says_how_to_get_fashion_mnist(env, dead_mirror, serve):
    # issue 24 case 14: ~600 characters on several lines ending "(data_dir=)", no apt-get
    (env / "empty").mkdir()
    for name, debian in (("mnist", False), ("fashion-mnist", True)):
        with pytest.raises(DataError) as info:
            load_mnist(name, "test", mirrors=[dead_mirror, serve(env / "empty")], progress=False)
        msg = str(info.value)
        assert "\n" not in msg and len(msg) < 500 and "(data_dir=)" not in msg
        assert f"{dead_mirror}: " in msg and ": HTTP 404" in msg
        assert ("apt-get install dataset-fashion-mnist" in msg) == debian


def test_download_false_never_downloads(remote, serve):
    with pytest.raises(DataError, match="download=False"):
        load_mnist("mnist", "test", mirrors=[serve(remote)], download=False)
    assert cache_listing() == []


def test_real_mirror_defaults():
    assert data.MIRRORS["mnist"][0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert set(data.CHECKSUMS["mnist"]) == set(data.CHECKSUMS["fashion-mnist"]) == set(data.FILES)


# --------------------------------------------------------------------------- real data

@pytest.mark.skipif(not all((SHARED_MNIST / f).is_file() for f in TEST_FILES),
                    reason=f"MNIST test files not found in {SHARED_MNIST}")
def test_real_mnist_test_split(env):
    for f in TEST_FILES:
        assert md5(SHARED_MNIST / f) == data.CHECKSUMS["mnist"][f]
    x, y = load_mnist("mnist", "test", data_dir=SHARED_MNIST, download=False)
    assert x.shape == (10000, 784) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test digits


@pytest.mark.skipif(not all((DEBIAN_FASHION / f).is_file() for f in data.FILES),
                    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION})")
def test_real_fashion_mnist(env, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", DEBIAN_FASHION)  # found by the search order
    counts = {}
    for split, n in [("train", 50000), ("validation", 10000), ("test", 10000)]:
        x, y = load_mnist("fashion-mnist", split, download=False)
        assert x.shape == (n, 784) and x.dtype == np.float32 and y.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        counts[split] = np.bincount(y, minlength=10)
    # Fashion-MNIST is balanced: 6,000 of each class in training, 1,000 in test
    assert (counts["train"] + counts["validation"] == 6000).all()
    assert (counts["test"] == 1000).all()


# --------------------------------------------------------------------------- data identity
# (issue 24 case 1: a --data-dir holding MNIST trained "fashion-mnist" on digits, silently)

@pytest.fixture
def strict(env, monkeypatch):
    """The identity check as a user meets it: unknown files are refused."""
    monkeypatch.delenv(data.UNVERIFIED_ENV, raising=False)
    return env


def fake_known(monkeypatch, directory, name):
    """Make the pair in ``directory`` count as data set ``name``'s published t10k files."""
    for f in TEST_FILES:
        monkeypatch.setitem(data.CHECKSUMS[name], f, md5(directory / f))


def test_files_of_another_data_set_are_named(strict, monkeypatch):
    write_pair(strict / "d", n=7)
    fake_known(monkeypatch, strict / "d", "fashion-mnist")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is Fashion-MNIST's "
                       r"t10k-images-idx3-ubyte \(by its md5\), not MNIST's t10k-images-idx3-ubyte"
                       r" as asked: --dataset fashion-mnist"):
        load_mnist("mnist", "test", data_dir=strict / "d")
    x, _ = load_mnist("fashion-mnist", "test", data_dir=strict / "d")
    assert x.shape == (7, 784)


def test_identity_by_content_whatever_the_gzip(strict, monkeypatch):
    # Debian re-gzips Fashion-MNIST: its .gz md5s are not Zalando's; the IDX bytes are
    images = write_pair(strict / "d", n=5)
    raw = strict / "raw"
    raw.mkdir()
    write_idx(raw / "t10k-images-idx3-ubyte", images)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.full(5, 3, np.uint8))
    for f in TEST_FILES:
        monkeypatch.setitem(data.CONTENT_CHECKSUMS["mnist"], f, md5(raw / f.removesuffix(".gz")))
    for d in ("d", "raw"):
        x, _ = load_mnist("mnist", "test", data_dir=strict / d)
        assert x.shape == (5, 784)
    with pytest.raises(DataError, match="is MNIST's t10k-images-idx3-ubyte"):
        load_mnist("fashion-mnist", "test", data_dir=strict / "raw")


def test_unknown_files_are_refused_unless_allowed(strict, monkeypatch):
    write_pair(strict / "d", n=4)
    with pytest.raises(DataError, match=r"matches no published MNIST file \(md5 [0-9a-f]{32}\), "
                       r"so it is not MNIST's t10k-images.*TINYGAN_UNVERIFIED_DATA=1") as exc:
        load_mnist("mnist", "test", data_dir=strict / "d")
    assert "\n" not in str(exc.value)
    monkeypatch.setenv(data.UNVERIFIED_ENV, "1")
    assert load_mnist("mnist", "test", data_dir=strict / "d")[0].shape == (4, 784)


def test_digests_are_cached_by_size_and_mtime(strict, monkeypatch):
    n = data.CACHE_MIN_BYTES // 784 + 1                # large enough to be cached
    images = (np.arange(n * 784) % 251).astype(np.uint8).reshape(n, 28, 28)
    path = strict / "t10k-images-idx3-ubyte"
    write_idx(path, images)
    first = data.file_digests(path)
    assert first["md5"] == md5(path) and (strict / "cache" / "tinygan" / "verified.json").is_file()
    monkeypatch.setattr(data, "_md5_of", lambda *a, **k: pytest.fail("hashed again"))
    assert data.file_digests(path) == first            # the second look costs a stat
    os.utime(path, ns=(1, 1))                          # touched: hashed again
    with pytest.raises(pytest.fail.Exception, match="hashed again"):
        data.file_digests(path)


@pytest.mark.skipif(not all((SHARED_MNIST / f).is_file() for f in TEST_FILES),
                    reason=f"MNIST test files not found in {SHARED_MNIST}")
def test_real_mnist_is_not_fashion_mnist(strict):
    with pytest.raises(DataError, match=r"is MNIST's t10k-images-idx3-ubyte \(by its md5\), not "
                                        r"Fashion-MNIST's"):
        load_mnist("fashion-mnist", "test", data_dir=SHARED_MNIST)
    assert load_mnist("mnist", "test", data_dir=SHARED_MNIST)[0].shape == (10000, 784)


@pytest.mark.skipif(not all((DEBIAN_FASHION / f).is_file() for f in data.FILES),
                    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION})")
def test_real_fashion_mnist_is_not_mnist(strict):
    with pytest.raises(DataError, match=r"is Fashion-MNIST's t10k-images-idx3-ubyte \(by its "
                                        r"md5\), not MNIST's"):
        load_mnist("mnist", "test", data_dir=DEBIAN_FASHION)
