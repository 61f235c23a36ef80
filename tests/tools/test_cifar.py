"""CIFAR-10: the binary reader, safe extraction (hostile archives), downloads from a local server,
global contrast normalisation, the paper's fully-connected G and D, colour pictures, and
examples/cifar10.py end to end on synthetic files written here in the real binary format."""

import hashlib
import io
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from matplotlib.image import imread

from conftest import REPO
from test_data import dead_mirror, isolate_data, serve  # noqa: F401  (fixtures: local HTTP server)
from tinygan.errors import ConfigError, DataError
from tinygan.layers import Dropout, Linear, Maxout, ReLU, Sigmoid
from tinygan.network import paper_cifar_discriminator, paper_cifar_generator
from tinygan.tools import cifar, data
from tinygan.tools.cifar import load_cifar10, read_batch
from tinygan.tools.plot import color_images, save_sample_grid

sys.path.insert(0, str(REPO / "examples"))
import cifar10 as example  # noqa: E402

FOLDER = "cifar-10-batches-bin"


def batch_bytes(images, labels):
    """The binary format, written independently of the reader: per record 1 label byte then
    3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue)."""
    out = bytearray()
    for img, lab in zip(images, labels):
        out.append(int(lab))
        out += bytes(np.asarray(img, dtype=np.uint8).reshape(3072))
    return bytes(out)


def synthetic(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
            rng.integers(0, 10, n, dtype=np.uint8))


def write_dir(directory, n_train=5, n_test=7):
    """data_batch_1..5.bin and test_batch.bin of synthetic records; returns the arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(cifar.TRAIN_FILES + (cifar.TEST_FILE,)):
        x, y = synthetic(n_test if name == cifar.TEST_FILE else n_train, i)
        (directory / name).write_bytes(batch_bytes(x, y))
        written[name] = (x, y)
    return written


def make_tar(path, members):
    """A .tar.gz of members: (name, bytes) regular files or (name, TarInfo-tweak callable)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            if callable(payload):
                payload(info)
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def good_members(n=3):
    members = [(FOLDER, lambda i: setattr(i, "type", tarfile.DIRTYPE))]
    for k, name in enumerate(cifar.TRAIN_FILES + (cifar.TEST_FILE,)):
        members.append((f"{FOLDER}/{name}", batch_bytes(*synthetic(n, k))))
    members.append((f"{FOLDER}/batches.meta.txt", b"airplane\nautomobile\n"))
    return members


@pytest.fixture
def env(tmp_path, monkeypatch):
    isolate_data(tmp_path, monkeypatch)
    return tmp_path


def cache_listing():
    d = data.cache_dir("cifar10")
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# --------------------------------------------------------------------------- reader

def test_read_batch_channel_major(tmp_path):
    x, y = synthetic(4, 0)
    (tmp_path / "b.bin").write_bytes(batch_bytes(x, y))
    images, labels = read_batch(tmp_path / "b.bin")
    assert images.shape == (4, 3072) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(images.reshape(4, 3, 32, 32), x)
    hwc = cifar.to_hwc(images)
    assert hwc.shape == (4, 32, 32, 3)
    assert hwc[2, 5, 7, 1] == x[2, 1, 5, 7]          # green plane, row 5, column 7


@pytest.mark.parametrize("cut, fragment", [(1, "not a whole number"), (3073 * 2 - 5, "not a whole"),
                                           (-1, "not a whole number")])
def test_truncated_batch_is_one_line(tmp_path, cut, fragment):
    raw = batch_bytes(*synthetic(3, 0))
    (tmp_path / "b.bin").write_bytes(raw[:cut] if cut > 0 else raw + b"\0")
    with pytest.raises(DataError, match=fragment) as info:
        read_batch(tmp_path / "b.bin")
    assert "\n" not in str(info.value) and "b.bin" in str(info.value)


def test_bad_label_and_empty_and_missing(tmp_path):
    raw = bytearray(batch_bytes(*synthetic(2, 0)))
    raw[3073] = 200
    (tmp_path / "b.bin").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="label 200"):
        read_batch(tmp_path / "b.bin")
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(DataError, match="0 bytes"):
        read_batch(tmp_path / "e.bin")
    with pytest.raises(DataError, match="cannot read"):
        read_batch(tmp_path / "nope.bin")


def test_gcn_matches_pylearn2_formula():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 3072)).astype(np.float64)
    x[3] = 17.0                                          # a constant image
    expected = x - x.mean(axis=1, keepdims=True)
    norms = np.sqrt((expected ** 2).sum(axis=1)) / 55.0
    norms[norms < 1e-8] = 1.0
    expected /= norms[:, None]
    got = cifar.global_contrast_normalize(x.astype(np.float32) / 255, chunk=4)
    np.testing.assert_allclose(got, expected, atol=2e-4)   # GCN is scale-invariant
    assert (got[3] == 0).all() and np.isfinite(got).all()
    np.testing.assert_allclose(np.linalg.norm(np.delete(got, 3, 0), axis=1), 55.0, rtol=1e-5)


def test_paper_split_boundaries_and_order(env):
    """The real sizes (5 x 10,000 records): train = images 0-39,999, validation 40,000-49,999."""
    d = env / "full"
    d.mkdir()
    for f, name in enumerate(cifar.TRAIN_FILES):
        ids = np.arange(f * 10000, (f + 1) * 10000)
        rec = np.zeros((10000, 3073), np.uint8)
        rec[:, 0] = ids % 10
        rec[:, 1], rec[:, 2] = ids // 256, ids % 256       # the image's index, in its first pixels
        rec.tofile(d / name)
    for split, lo, hi in (("train", 0, 40000), ("validation", 40000, 50000), ("full-train", 0, 50000)):
        x, y = load_cifar10(split, data_dir=d, download=False, gcn=False)
        ids = np.rint(x[:, 0] * 255).astype(int) * 256 + np.rint(x[:, 1] * 255).astype(int)
        np.testing.assert_array_equal(ids, np.arange(lo, hi))
        np.testing.assert_array_equal(y, np.arange(lo, hi) % 10)
        assert x.dtype == np.float32 and x.shape == (hi - lo, 3072)


def test_train_split_needs_50000(env):
    write_dir(env / "small")
    with pytest.raises(DataError, match="50,000"):
        load_cifar10("train", data_dir=env / "small", download=False)
    x, y = load_cifar10("train+validation", data_dir=env / "small", download=False)
    assert x.shape == (25, 3072)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 55.0, rtol=1e-5)


def test_search_order_and_offline(env, monkeypatch):
    written = write_dir(env / "mine" / FOLDER)                 # data_dir/cifar-10-batches-bin
    x, y = load_cifar10("test", data_dir=env / "mine", download=False, gcn=False)
    np.testing.assert_array_equal(y, written[cifar.TEST_FILE][1])
    write_dir(env / "tg", n_test=4)
    monkeypatch.setenv("TINYGAN_DATA", str(env / "tg"))
    assert len(load_cifar10("test", data_dir=env / "mine", download=False)[0]) == 7
    assert len(load_cifar10("test", download=False)[0]) == 4
    monkeypatch.delenv("TINYGAN_DATA")
    with pytest.raises(DataError, match="download=False") as info:
        load_cifar10("test", download=False)
    assert str(data.cache_dir("cifar10")) in str(info.value)
    with pytest.raises(DataError, match="unknown split"):
        load_cifar10("dev")


# --------------------------------------------------------------------------- archive

def test_archive_is_extracted_into_the_cache(env):
    make_tar(env / "cifar-10-binary.tar.gz", good_members())
    x, y = load_cifar10("test", data_dir=env, download=False, gcn=False)
    assert x.shape == (3, 3072)
    assert cache_listing() == [FOLDER]
    folder = data.cache_dir("cifar10") / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        cifar.TRAIN_FILES + (cifar.TEST_FILE, "batches.meta.txt"))
    (env / "cifar-10-binary.tar.gz").unlink()                  # next time: from the cache
    np.testing.assert_array_equal(load_cifar10("test", download=False, gcn=False)[1], y)


def _link(target, kind):
    def tweak(info):
        info.type, info.linkname = kind, target
    return tweak


HOSTILE = {
    "symlink": [(f"{FOLDER}/test_batch.bin", _link("/etc/passwd", tarfile.SYMTYPE))],
    "hardlink": [(f"{FOLDER}/test_batch.bin", _link("/etc/passwd", tarfile.LNKTYPE))],
    "dotdot": [(f"{FOLDER}/../../escaped.bin", b"x" * 3073)],
    "absolute": [("/tmp/tinygan-escaped.bin", b"x" * 3073)],
    "unexpected": [(f"{FOLDER}/evil.py", b"print('hi')")],
    "other folder": [("other/test_batch.bin", b"x" * 3073)],
    "fifo": [(f"{FOLDER}/test_batch.bin", lambda i: setattr(i, "type", tarfile.FIFOTYPE))],
    "device": [(f"{FOLDER}/test_batch.bin", lambda i: setattr(i, "type", tarfile.CHRTYPE))],
    "subdir": [(f"{FOLDER}/sub", lambda i: setattr(i, "type", tarfile.DIRTYPE))],
    "bad size": [(f"{FOLDER}/data_batch_1.bin", b"x" * 3000)],
    "twice": [(f"{FOLDER}/batches.meta.txt", b"a"), (f"{FOLDER}/batches.meta.txt", b"b")],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archive_is_refused(env, kind):
    members = good_members()
    members[2:2] = HOSTILE[kind]                          # after the folder and one good file
    (env / "in").mkdir()
    archive = make_tar(env / "in" / "cifar-10-binary.tar.gz", members)
    before = sorted(p.name for p in env.iterdir())
    with pytest.raises(DataError, match="refusing|appears twice") as info:
        load_cifar10("test", data_dir=env / "in", download=False)
    assert "\n" not in str(info.value) and str(archive) in str(info.value)
    assert cache_listing() == []                          # no folder, no staging left behind
    assert {p.name for p in env.iterdir()} - set(before) <= {"cache"}
    assert not (env / "escaped.bin").exists() and not (env.parent / "escaped.bin").exists()


def test_incomplete_and_corrupt_archives(env):
    (env / "a").mkdir()
    make_tar(env / "a" / "cifar-10-binary.tar.gz", good_members()[:3])
    with pytest.raises(DataError, match="lacks"):
        load_cifar10("test", data_dir=env / "a", download=False)
    (env / "b").mkdir()
    raw = (env / "a" / "cifar-10-binary.tar.gz").read_bytes()
    (env / "b" / "cifar-10-binary.tar.gz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(DataError, match="corrupt|truncated") as info:
        load_cifar10("test", data_dir=env / "b", download=False)
    assert "\n" not in str(info.value)
    assert cache_listing() == []


# --------------------------------------------------------------------------- download

@pytest.fixture
def remote(env, monkeypatch):
    root = env / "remote"
    root.mkdir()
    make_tar(root / "cifar-10-binary.tar.gz", good_members(5))
    md5 = hashlib.md5((root / "cifar-10-binary.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setitem(data.CHECKSUMS, "cifar10", {"cifar-10-binary.tar.gz": md5})
    return root


def test_download_from_local_server(remote, serve, monkeypatch):  # noqa: F811
    monkeypatch.setitem(data.MIRRORS, "cifar10", [serve(remote)])
    x, y = load_cifar10("test", progress=False)
    assert x.shape == (5, 3072)
    assert cache_listing() == sorted(["cifar-10-binary.tar.gz", FOLDER])
    x2, _ = load_cifar10("test", mirrors=[], progress=False)      # from the cache now
    np.testing.assert_array_equal(x, x2)


def test_download_checksum_mismatch_leaves_nothing(env, remote, serve, dead_mirror):  # noqa: F811
    wrong = env / "wrong"
    wrong.mkdir()
    (wrong / "cifar-10-binary.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load_cifar10("test", mirrors=[dead_mirror, serve(wrong)], progress=False)
    assert dead_mirror in str(info.value) and "cifar-10-binary.tar.gz" in str(info.value)
    assert cache_listing() == []


def test_real_checksum_and_mirror():
    assert data.CHECKSUMS["cifar10"] == {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"}
    assert data.MIRRORS["cifar10"] == ["https://www.cs.toronto.edu/~kriz/"]


# --------------------------------------------------------------------------- models

def test_architecture_small(be32):
    G = paper_cifar_generator(noise_dim=10, hidden=30, out_dim=12, backend=be32)
    assert [type(l) for l in G.layers] == [Linear, ReLU, Linear, Sigmoid, Linear]
    assert [(l.n_in, l.n_out) for l in G.layers if isinstance(l, Linear)] == [(10, 30), (30, 30), (30, 12)]
    D = paper_cifar_discriminator(in_dim=12, units=4, pieces=5, backend=be32)
    assert [type(l) for l in D.layers] == [Dropout, Maxout, Dropout, Maxout, Dropout, Linear]
    assert [l.keep_prob for l in D.layers if isinstance(l, Dropout)] == [0.8, 0.5, 0.5]


def test_full_size_parameters_and_init_ranges(be32):
    """The yaml's sizes (126,788,673 parameters) and irange of every layer."""
    G = paper_cifar_generator(backend=be32)
    D = paper_cifar_discriminator(backend=be32)
    assert G.num_params == 100 * 8000 + 8000 + 8000 * 8000 + 8000 + 8000 * 3072 + 3072
    assert D.num_params == 3072 * 8000 + 8000 + 1600 * 8000 + 8000 + 1600 + 1
    assert G.num_params + D.num_params == 126_788_673
    shapes = {"G": [(100, 8000), (8000, 8000), (8000, 3072)],
              "D": [(3072, 8000), (1600, 8000), (1600, 1)]}
    ranges = {"G": [0.05, 0.05, 0.5], "D": [0.005, 0.005, 0.005]}
    for name, net in (("G", G), ("D", D)):
        Ws = [a for k, a in net.params if k.endswith("W")]
        assert [w.shape for w in Ws] == shapes[name]
        for w, r in zip(Ws, ranges[name]):
            assert np.abs(w).max() <= np.float32(r)
            if w.size > 1000:
                assert float(np.abs(w).max()) > 0.99 * r and abs(float(w.mean())) < 5 * r / np.sqrt(3 * w.size)
        assert all(float(np.abs(a).max()) == 0 for k, a in net.params if k.endswith("b"))
    del G, D


# --------------------------------------------------------------------------- pictures

def test_color_images_min_max_per_image(tmp_path):
    x = np.zeros((3, 3072), np.float32)
    x[0] = np.linspace(-7, 5, 3072)
    x[1, 1024:2048] = 2.0                                   # green plane only
    x[2] = 3.0                                              # constant: mid-grey
    rgb = color_images(x)
    assert rgb.shape == (3, 32, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert rgb[0].min() == 0 and rgb[0].max() == 1
    np.testing.assert_array_equal(rgb[1, ..., 1], 1.0)
    np.testing.assert_array_equal(rgb[1, ..., [0, 2]], 0.0)
    np.testing.assert_array_equal(rgb[2], 0.5)
    png = imread(save_sample_grid(x, tmp_path / "g.png", ncol=3, shape=(3, 32, 32), pad=2))
    assert png.shape[:2] == (36, 2 + 3 * 34)
    with pytest.raises(ConfigError):
        color_images(np.zeros((2, 784)))


# --------------------------------------------------------------------------- end to end

def test_example_trains_resumes_and_evaluates(env, capsys):
    """examples/cifar10.py on synthetic CIFAR-format files (small hidden sizes), resumed, then
    examples/evaluate.py's Parzen protocol on the run."""
    write_dir(env / "data", n_train=2, n_test=10000)
    out = env / "run"
    argv = ["--data-dir", str(env / "data"), "--split", "test", "--limit", "400", "--epochs", "1",
            "--hidden", "64", "--units", "16", "--out", str(out), "--no-progress"]
    assert example.main(argv) == 0
    argv[argv.index("--epochs") + 1] = "2"
    assert example.main(argv + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "cifar10 test (400 images)" in printed and "epoch 2/2:" in printed
    grid = imread(out / "samples" / "epoch_0002.png")
    assert grid.ndim == 3 and grid[..., :3].std(axis=-1).max() > 0     # colour, not grey
    assert imread(out / "nearest_neighbours.png").ndim == 3
    import json
    cfg = json.loads((out / "checkpoint.json").read_text())["meta"]["config"]
    assert cfg["dataset"] == "cifar10" and cfg["lr"] == 0.025 and cfg["hidden"] == 64
    import evaluate
    assert evaluate.main([str(out), "--data-dir", str(env / "data"), "--samples", "300",
                          "--no-progress", "--interpolation", str(env / "interp.png")]) == 0
    printed = capsys.readouterr().out
    assert "log-likelihood:" in printed and "no Parzen-window number for CIFAR-10" in printed
    assert imread(env / "interp.png").ndim == 3


def test_example_usage_errors():
    r = subprocess.run([sys.executable, str(REPO / "examples" / "cifar10.py"), "--dataset", "mnist"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice: 'mnist'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    args = example.mnist.parse_args([], example.CIFAR10)
    assert (args.dataset, args.lr, args.out, args.batch_size) == ("cifar10", 0.025, "runs/cifar10", 100)


def test_trainer_takes_unbounded_cifar_but_not_mnist(tmp_path):
    from tinygan.tools.config import TrainConfig
    from tinygan.tools.train import Trainer
    x = np.random.default_rng(0).normal(0, 1, (20, 3072)).astype(np.float32)
    cfg = TrainConfig.paper("cifar10", batch_size=10, hidden=8, units=4, out=str(tmp_path / "c"))
    assert cfg.lr == 0.025 and cfg.momentum == 0.5 and cfg.final_momentum == 0.7
    assert cfg.lr_decay == 1.000004 and cfg.min_lr == 1e-6 and cfg.momentum_saturate == 250
    t = Trainer(cfg, x, progress=False)
    assert t.gan.G.layers[-1].n_out == 3072
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        Trainer(TrainConfig(batch_size=10, out=str(tmp_path / "m")), x[:, :784], progress=False)
    with pytest.raises(ConfigError, match="unknown dataset"):
        TrainConfig(dataset="cifar100").validate()


def test_archive_of_many_members_is_refused_early(tmp_path):
    """Issue 15: a small archive repeating a header thousands of times (each one kept in memory
    by tarfile) is refused after a few members, and nothing is extracted."""
    import io
    import tarfile
    from tinygan.errors import DataError
    from tinygan.tools.cifar import extract_archive
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for _ in range(5000):
            info = tarfile.TarInfo("cifar-10-batches-bin")
            info.type = tarfile.DIRTYPE
            tar.addfile(info, io.BytesIO())
    with pytest.raises(DataError, match="more than 16 members"):
        extract_archive(archive, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())
