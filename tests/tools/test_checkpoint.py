"""Tests of tinygan.tools.checkpoint: round trips, every bad file, crash safety, fuzzing."""

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygan
from tinygan import get_backend
from tinygan.tools import checkpoint as ck
from tinygan.tools.checkpoint import (FORMAT_VERSION, check_compatible, checkpoint_exists,
                                load_checkpoint, save_checkpoint)
from tinygan.errors import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _arrays(value=1.0):
    return {"G/W1": np.full((3, 4), value, np.float32),
            "D/b.2": np.arange(5, dtype=np.float64) * value,
            "step": np.array(7, np.int64),
            "mask": np.array([True, False])}


META = {"config": {"lr": 1e-3, "layers": [784, 240, 1], "name": "mnist ünïcode"},
        "step": 12, "rng": {"state": 2**100 + 3, "inc": -(2**127)}, "history": [[0.5, 1.25]]}


def _assert_same(a, b):
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
        np.testing.assert_array_equal(a[name], b[name])


def _write(filename, data):
    """Replace a file's contents (unlinking first: ext4 flushes on truncate-rewrite)."""
    if os.path.exists(filename):
        os.remove(filename)
    with open(filename, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _read(filename):
    with open(filename, "rb") as f:
        return f.read()


def _sealed(rec):
    """The .json text of ``rec`` as the writer writes it, with a matching record_sha256 (an
    edit an attacker reseals: to test the checks behind the checksums)."""
    if isinstance(rec, dict):
        rec["record_sha256"] = ck._record_sha256(rec)
        return ck._record_text(rec)
    return json.dumps(rec)


def _rehash(base):
    """Rewrite base.json's sha256 to match base.npz (to test checks behind the hash)."""
    rec = json.loads(_read(base + ".json"))
    rec["npz_sha256"] = hashlib.sha256(_read(base + ".npz")).hexdigest()
    _write(base + ".json", _sealed(rec))


def _edit_json(base, fn):
    rec = json.loads(_read(base + ".json"))
    fn(rec)
    _write(base + ".json", _sealed(rec))


# ---------------------------------------------------------------- round trips

def test_round_trip_and_files(tmp_path):
    base = str(tmp_path / "ck")
    save_checkpoint(base, _arrays(), META)
    arrays, meta = load_checkpoint(base)
    _assert_same(arrays, _arrays())
    assert meta == META and meta["rng"]["state"] == 2**100 + 3
    assert sorted(os.listdir(tmp_path)) == ["ck.json", "ck.npz"]
    rec = json.loads(_read(base + ".json"))
    assert rec["format_version"] == FORMAT_VERSION
    assert rec["tinygan_version"] == tinygan.__version__
    assert rec["arrays"]["G/W1"] == {"shape": [3, 4], "dtype": "<f4"}
    assert rec["npz_sha256"] == hashlib.sha256(_read(base + ".npz")).hexdigest()
    with np.load(base + ".npz", allow_pickle=False) as npz:  # a plain npz
        assert sorted(npz.files) == sorted(_arrays())


@pytest.mark.parametrize("save_as,load_as", [("ck.npz", "ck"), ("ck", "ck.json"),
                                             ("ck.json", "ck.npz")])
def test_suffix_normalisation(tmp_path, save_as, load_as):
    assert not checkpoint_exists(tmp_path / load_as)
    save_checkpoint(tmp_path / save_as, _arrays(), META)
    assert sorted(os.listdir(tmp_path)) == ["ck.json", "ck.npz"]
    assert checkpoint_exists(tmp_path / load_as) and checkpoint_exists(str(tmp_path / "ck"))
    assert load_checkpoint(tmp_path / load_as)[1] == META


def test_second_save_keeps_previous(tmp_path):
    base = str(tmp_path / "ck")
    save_checkpoint(base, _arrays(1.0), {"n": 1})
    save_checkpoint(base, _arrays(2.0), {"n": 2})
    assert sorted(os.listdir(tmp_path)) == ["ck.json", "ck.npz", "ck.prev.json", "ck.prev.npz"]
    assert load_checkpoint(base)[1] == {"n": 2}
    prev_arrays, prev_meta = load_checkpoint(base + ".prev")
    assert prev_meta == {"n": 1}
    _assert_same(prev_arrays, _arrays(1.0))


def test_names_that_clash_with_savez_keywords(tmp_path):
    arrays = {"file": np.ones(2), "allow_pickle": np.zeros(1), "x": np.ones(1),
              "x.npy": np.full(3, 2.0), "arr_0": np.float32(5)}
    save_checkpoint(tmp_path / "ck", arrays, {})
    loaded, _ = load_checkpoint(tmp_path / "ck")
    arrays["arr_0"] = np.asarray(arrays["arr_0"])
    _assert_same(loaded, arrays)


@settings(max_examples=25, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(0, 4), max_size=3), min_size=1, max_size=4),
       dtype=st.sampled_from(["float32", "float64", "int64", "int8", "uint16", "complex64"]),
       step=st.integers(-(2**200), 2**200))
def test_round_trip_property(tmp_path_factory, shapes, dtype, step):
    base = str(tmp_path_factory.mktemp("p") / "ck")
    arrays = {f"a{i}/w": np.arange(int(np.prod(s)), dtype=dtype).reshape(s)
              for i, s in enumerate(shapes)}
    save_checkpoint(base, arrays, {"step": step})
    loaded, meta = load_checkpoint(base)
    _assert_same(loaded, arrays)
    assert meta == {"step": step}


# ---------------------------------------------------------------- refusals on save

@pytest.mark.parametrize("arrays", [{"w": np.array([1, "a", None], dtype=object)},
                                    {"w": np.array(["a", "b"])}, {"w": [1.0, 2.0]},
                                    {"": np.ones(1)}, {3: np.ones(1)}])
def test_save_rejects_bad_arrays(tmp_path, arrays):
    with pytest.raises(CheckpointError):
        save_checkpoint(tmp_path / "ck", arrays, {})
    assert not checkpoint_exists(tmp_path / "ck")


def test_save_rejects_unserialisable_meta(tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "ck", _arrays(), {"f": object()})
    assert not checkpoint_exists(tmp_path / "ck")


def test_unwritable_directory(tmp_path):
    parent = tmp_path / "a_file"
    parent.write_text("not a directory")  # fails for root too, unlike chmod
    with pytest.raises(CheckpointError, match="a_file"):
        save_checkpoint(parent / "ck", _arrays(), META)
    with pytest.raises(CheckpointError, match="nowhere"):
        save_checkpoint(tmp_path / "nowhere" / "ck", _arrays(), META)


def test_write_failure_names_directory_and_keeps_old(tmp_path):
    base = str(tmp_path / "ck")
    save_checkpoint(base, _arrays(1.0), {"n": 1})
    os.mkdir(base + ".json.tmp")  # the json temp file cannot be opened
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        save_checkpoint(base, _arrays(2.0), {"n": 2})
    assert load_checkpoint(base)[1] == {"n": 1}


# ---------------------------------------------------------------- bad files on load

@pytest.fixture
def saved(tmp_path):
    base = str(tmp_path / "ck")
    save_checkpoint(base, _arrays(), META)
    return base


def test_missing_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match="other.json"):
        load_checkpoint(tmp_path / "other")
    os.remove(saved + ".npz")
    with pytest.raises(CheckpointError, match=r"ck\.npz' is missing"):
        load_checkpoint(saved)


@pytest.mark.parametrize("frac", [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_npz(saved, frac):
    data = _read(saved + ".npz")
    _write(saved + ".npz", data[:int(len(data) * frac)])
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(saved)
    _rehash(saved)  # and with a matching hash the zip/npy checks still refuse it
    with pytest.raises(CheckpointError, match="corrupt|truncated"):
        load_checkpoint(saved)


@pytest.mark.parametrize("frac", [0.0, 0.1, 0.5, 0.99])
def test_truncated_json(saved, frac):
    data = _read(saved + ".json")
    _write(saved + ".json", data[:int(len(data) * frac)])
    with pytest.raises(CheckpointError, match="json"):
        load_checkpoint(saved)


@pytest.mark.parametrize("ext", [".npz", ".json"])
def test_garbage_bytes(saved, ext):
    _write(saved + ext, random.Random(0).randbytes(3000))
    with pytest.raises(CheckpointError):
        load_checkpoint(saved)


def test_hash_mismatch(tmp_path, saved):
    save_checkpoint(tmp_path / "other", _arrays(2.0), META)
    os.replace(tmp_path / "other.npz", saved + ".npz")
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(saved)


def test_newer_format_version(saved):
    save_checkpoint(saved, _arrays(), META)  # a valid prev is no excuse to fall back
    _edit_json(saved, lambda rec: rec.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="newer tinygan.*upgrade"):
        load_checkpoint(saved)


@pytest.mark.parametrize("declared", ["|O", "<f8"])
def test_object_array_refused(tmp_path, declared):
    base = str(tmp_path / "ck")
    np.savez(base + ".npz", w=np.array([1, "a", None], dtype=object), allow_pickle=True)
    rec = {"format_version": FORMAT_VERSION, "npz_sha256": "", "meta": {},
           "arrays": {"w": {"shape": [3], "dtype": declared}}}
    _write(base + ".json", json.dumps(rec))
    _rehash(base)
    with pytest.raises(CheckpointError, match="refusing to load pickled data"):
        load_checkpoint(base)


@pytest.mark.parametrize("edit", [
    lambda r: r["arrays"].pop("G/W1"),
    lambda r: r["arrays"].update(extra={"shape": [1], "dtype": "<f4"}),
    lambda r: r["arrays"]["G/W1"].update(shape=[4, 3]),
    lambda r: r["arrays"]["G/W1"].update(dtype="<f8"),
    lambda r: r.pop("arrays"), lambda r: r.pop("meta"), lambda r: r.pop("format_version"),
    lambda r: r.update(format_version="1"), lambda r: r.update(meta=[1]),
])
def test_json_does_not_match_npz(saved, edit):
    _edit_json(saved, edit)
    with pytest.raises(CheckpointError):
        load_checkpoint(saved)


def test_json_not_an_object(saved):
    _write(saved + ".json", "[1, 2, 3]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_checkpoint(saved)


def test_falls_back_to_previous_with_warning(saved):
    save_checkpoint(saved, _arrays(2.0), {"n": 2})
    with open(saved + ".npz", "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 8)
    with pytest.warns(RuntimeWarning, match="previous checkpoint"):
        arrays, meta = load_checkpoint(saved)
    assert meta == META
    _assert_same(arrays, _arrays())
    _write(saved + ".prev.json", "{")
    with pytest.raises(CheckpointError, match="previous checkpoint is unusable too"):
        load_checkpoint(saved)


# ---------------------------------------------------------------- architecture

def test_check_compatible():
    arrays = _arrays()
    check_compatible(arrays, {n: a.shape for n, a in arrays.items()})
    expected = {"G/W1": (4, 3), "D/b.2": (5,), "step": (), "new": (2,)}
    with pytest.raises(CheckpointError, match="another architecture") as info:
        check_compatible(arrays, expected)
    msg = str(info.value)
    assert "new" in msg and "mask" in msg and "G/W1: (3, 4) != (4, 3)" in msg
    assert "D/b.2" not in msg


# ---------------------------------------------------------------- crash safety

class _Crash(BaseException):
    """Stands in for SIGKILL: not an OSError, so save_checkpoint does not catch it."""


def _crashing_save(monkeypatch, base, n, crash_at):
    """Save counter n, dying just before filesystem operation number crash_at."""
    calls = [0]

    def wrap(real):
        def op(*args, **kwargs):
            calls[0] += 1
            if calls[0] == crash_at:
                raise _Crash
            return real(*args, **kwargs)
        return op

    with monkeypatch.context() as m:
        m.setattr(ck.os, "replace", wrap(os.replace))
        m.setattr(ck.os, "link", wrap(os.link))
        try:
            save_checkpoint(base, {"w": np.full(10, n)}, {"n": n})
        except _Crash:
            pass


def _load_n(base):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arrays, meta = load_checkpoint(base)
    assert (arrays["w"] == meta["n"]).all()
    return meta["n"]


@pytest.mark.parametrize("first", range(1, 8))
def test_crash_at_every_step_twice(tmp_path, monkeypatch, first):
    """Crash at every step of a save, then again at every step of the next save."""
    monkeypatch.setattr(ck, "_fsync", lambda *args, **kwargs: None)  # speed only
    for second in range(1, 8):
        base = str(tmp_path / f"ck{second}")
        save_checkpoint(base, {"w": np.full(10, 1)}, {"n": 1})
        save_checkpoint(base, {"w": np.full(10, 2)}, {"n": 2})
        _crashing_save(monkeypatch, base, 3, first)
        n1 = _load_n(base)
        _crashing_save(monkeypatch, base, 4, second)
        n2 = _load_n(base)
        assert 2 <= n1 <= 3 and n1 <= n2 <= 4
        save_checkpoint(base, {"w": np.full(10, 5)}, {"n": 5})
        assert _load_n(base) == 5


CHILD = """
import os, sys, time
import numpy as np
from tinygan.tools.checkpoint import save_checkpoint
base, n = sys.argv[1], int(sys.argv[2])
def slow(op):  # widen the windows between the renames so that kills land in each
    return lambda *args: (time.sleep(0.003), op(*args))[1]
os.replace, os.link = slow(os.replace), slow(os.link)
print("ready", flush=True)
while True:
    n += 1
    save_checkpoint(base, {"w": np.full(300_000, n, np.float64),
                           "g/b.1": np.full((100, 1000), n, np.int32)},
                    {"n": n, "rng": 2**100 + n})
"""


def test_sigkill_at_random_moments(tmp_path):
    """24 children saving in a loop, each SIGKILLed after a seeded random delay."""
    base = str(tmp_path / "ck")
    save_checkpoint(base, {"w": np.zeros(3), "g/b.1": np.zeros(3, np.int32)}, {"n": 0, "rng": 0})
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rng, last = random.Random(1234), 0
    for _ in range(24):
        with subprocess.Popen([sys.executable, "-c", CHILD, base, str(last)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            try:
                assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()
                time.sleep(rng.uniform(0.0, 0.12))
                assert proc.poll() is None, proc.stderr.read().decode()
            finally:
                proc.send_signal(signal.SIGKILL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a fallback to prev is fine
            arrays, meta = load_checkpoint(base)
        n = meta["n"]
        assert meta["rng"] == (2**100 + n if n else 0)
        assert all((a == n).all() for a in arrays.values())
        assert n >= last
        last = n
    assert last > 0, "the child never finished a save"


# ---------------------------------------------------------------- fuzzing

def _mutate(rng, data):
    kind = rng.randrange(4)
    if kind == 0 or not data:
        return data[:rng.randrange(len(data) + 1)]
    data = bytearray(data)
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 2:
        i = rng.randrange(len(data))
        data[i:i + rng.randint(1, 16)] = rng.randbytes(rng.randint(0, 16))
    else:
        return rng.randbytes(rng.randrange(600))
    return bytes(data)


def _rezip(rng, npz):
    """The npz with one .npy member mutated inside a valid zip (so the CRC passes)."""
    with zipfile.ZipFile(io.BytesIO(npz)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    victim = rng.choice(sorted(members))
    members[victim] = _mutate(rng, members[victim])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_fuzz_load(tmp_path):
    """2,500 corrupted checkpoints: each loads or raises CheckpointError, nothing else."""
    src = str(tmp_path / "src")
    save_checkpoint(src, {"a/w": np.arange(12, dtype=np.float32).reshape(3, 4),
                          "b": np.arange(3)}, {"n": 2**70, "s": "x"})
    npz, js = _read(src + ".npz"), _read(src + ".json")
    base = str(tmp_path / "ck")
    rng, outcomes = random.Random(42), {"ok": 0, "refused": 0}
    for case in range(2500):
        which = case % 5  # 0: npz, 1: json, 2: both, 3: npz + matching hash, 4: npy member
        new_npz = _rezip(rng, npz) if which == 4 else _mutate(rng, npz) if which != 1 else npz
        new_js = _mutate(rng, js) if which in (1, 2) else js
        _write(base + ".npz", new_npz)
        _write(base + ".json", new_js)
        if which >= 3:
            _rehash(base)
        try:
            load_checkpoint(base)
            outcomes["ok"] += 1
        except CheckpointError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1500


# ---------------------------------------------------------------- the .json verified (issue 15)

def _two_saves(tmp_path):
    """ck with a prev: prev holds n=1, the current one n=2 (META-like meta)."""
    base = str(tmp_path / "ck")
    save_checkpoint(base, _arrays(1.0), {**META, "n": 1})
    save_checkpoint(base, _arrays(2.0), {**META, "n": 2})
    return base


def _loads_prev(base):
    with pytest.warns(RuntimeWarning, match="previous checkpoint"):
        arrays, meta = load_checkpoint(base)
    assert meta["n"] == 1
    _assert_same(arrays, _arrays(1.0))


def test_json_bit_flips_fall_back_to_prev(tmp_path):
    """1,500 single bit flips spread over the whole .json (its first and last bytes always
    among them): each is refused and the prev pair loads, with a warning."""
    base = _two_saves(tmp_path)
    good = _read(base + ".json")
    rng = random.Random(15)
    positions = [0, len(good) - 1] + [rng.randrange(len(good)) for _ in range(1498)]
    for pos in positions:
        data = bytearray(good)
        data[pos] ^= 1 << rng.randrange(8)
        _write(base + ".json", bytes(data))
        _loads_prev(base)


@pytest.mark.parametrize("old, new", [
    ('"n": 2', '"n": 3'), ('"lr": 0.001', '"dr": 0.001'), ('"config"', '"cknfig"'),
    ('"lr": 0.001', '"lr": 1e400'), ('"lr": 0.001', '"lr": "0.001"'),
    ('"lr": 0.001', '"lr": [0.001]'), ('"step": 12', '"step": 12.0'), ('"step": 12', '"step": -12'),
    ('"lr": 0.001', '"lr": NaN'), ('"format_version": 2', '"format_version": 3'),
    ('"format_version": 2', '"format_version": 1'), ('"layers"', '"l\\u0061yers"'),
    ('\n "meta"', '\n  "meta"'), ('"G/W1"', '"G/W2"'),
])
def test_json_edits_fall_back_to_prev(tmp_path, old, new):
    """Edits that used to load, some with another meaning: refused, prev loaded."""
    base = _two_saves(tmp_path)
    text = _read(base + ".json").decode()
    assert old in text
    _write(base + ".json", text.replace(old, new, 1))
    _loads_prev(base)


def test_resealed_edit_loads_and_old_format_is_refused(tmp_path):
    """The checksum is over the content: a consistent record (as the writer would write it)
    loads; a format-1 file (no record checksum) is one clear error."""
    base = _two_saves(tmp_path)
    _edit_json(base, lambda r: r["meta"].update(n=5))
    assert load_checkpoint(base)[1]["n"] == 5
    rec = json.loads(_read(base + ".json"))
    del rec["record_sha256"]
    rec["format_version"] = 1
    for b in (base, base + ".prev"):
        _write(b + ".json", json.dumps(rec, indent=1))
    with pytest.raises(CheckpointError, match="format version 1.*reads only version 2"):
        load_checkpoint(base)


def test_validate_failure_falls_back_to_prev(saved):
    save_checkpoint(saved, _arrays(2.0), {"n": 2})

    def validate(arrays, meta):
        if meta.get("n") == 2:
            raise CheckpointError("n must not be 2")
    with pytest.warns(RuntimeWarning, match="n must not be 2"):
        assert load_checkpoint(saved, validate=validate)[1] == META


def test_save_refuses_nan_meta(tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "ck", _arrays(), {"x": float("nan")})


# ---------------------------------------------------------------- zip members (issue 15)

def _rewrite_npz(base, members, compress=zipfile.ZIP_STORED, **kwargs):
    """Replace base.npz by a zip of {name: bytes} with matching hashes (so only the member
    checks stand between it and numpy)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compress, **kwargs) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    _write(base + ".npz", out.getvalue())
    _rehash(base)


def _members(base):
    with zipfile.ZipFile(base + ".npz") as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_compressed_members_refused(saved, method):
    members = _members(saved)
    _rewrite_npz(saved, members, method)
    with pytest.raises(CheckpointError, match="compressed"):
        load_checkpoint(saved)
    # damaged compressed payload: still our error, not the decoder's
    blob = bytearray(_read(saved + ".npz"))
    blob[len(blob) // 3] ^= 0x55
    _write(saved + ".npz", bytes(blob))
    _rehash(saved)
    with pytest.raises(CheckpointError):
        load_checkpoint(saved)


def test_compressed_bomb_is_not_inflated(tmp_path):
    """A small pair declaring a 64 MB array in a DEFLATE member: refused before inflating."""
    import tracemalloc
    base = str(tmp_path / "ck")
    big = np.zeros(64 * 2**20 // 8)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, big)
    save_checkpoint(base, {"w": np.zeros(1)}, {})
    _edit_json(base, lambda r: r["arrays"]["w"].update(shape=[len(big)]))
    _rewrite_npz(base, {"w.npy": buf.getvalue()}, zipfile.ZIP_DEFLATED)
    del big, buf
    assert os.path.getsize(base + ".npz") < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="compressed"):
            load_checkpoint(base)
        assert tracemalloc.get_traced_memory()[1] < 10 * 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("damage", ["extra member", "duplicate", "trailing bytes", "renamed",
                                    "encrypted flag", "short member"])
def test_malformed_members_refused(saved, damage):
    members = _members(saved)
    name = "G/W1.npy"
    if damage == "extra member":
        members["readme.txt"] = b"hello"
    elif damage == "trailing bytes":
        members[name] += b"\0" * 8
    elif damage == "short member":
        members[name] = members[name][:-4]
    elif damage == "renamed":
        members["G/W1.NPY"] = members.pop(name)
    if damage == "duplicate":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # zipfile: "Duplicate name"
            _rewrite_npz(saved, {**members})
            with zipfile.ZipFile(saved + ".npz", "a") as zf:
                zf.writestr(name, members[name])
        _rehash(saved)
    else:
        _rewrite_npz(saved, members)
    if damage == "encrypted flag":                   # set bit 0 in the central directory
        blob = bytearray(_read(saved + ".npz"))
        at = blob.rindex(b"PK\x01\x02")
        blob[at + 8] |= 1
        _write(saved + ".npz", bytes(blob))
        _rehash(saved)
    with pytest.raises(CheckpointError):
        load_checkpoint(saved)


def _rezip_any(rng, npz):
    """The npz rebuilt with a random compression method and random damage: a member mutated,
    added, dropped or renamed; or bytes flipped after zipping."""
    with zipfile.ZipFile(io.BytesIO(npz)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    kind = rng.randrange(4)
    victim = rng.choice(sorted(members))
    if kind == 0:
        members[victim] = _mutate(rng, members[victim])
    elif kind == 1:
        members[rng.choice(["x.npy", "a/w.npy.npy", victim.upper()])] = members[victim]
    elif kind == 2:
        del members[victim]
    method = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                         zipfile.ZIP_LZMA])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = out.getvalue()
    return _mutate(rng, data) if kind == 3 else data


def test_fuzz_members(tmp_path):
    """1,000 rebuilt archives (random compression, member damage) behind a matching hash:
    each raises CheckpointError or loads exactly the saved arrays (stored, undamaged)."""
    src = str(tmp_path / "src")
    saved = {"a/w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.arange(3)}
    save_checkpoint(src, saved, {"n": 1})
    npz, js = _read(src + ".npz"), _read(src + ".json")
    base = str(tmp_path / "ck")
    rng, outcomes = random.Random(7), {"ok": 0, "refused": 0}
    for _ in range(1000):
        _write(base + ".npz", _rezip_any(rng, npz))
        _write(base + ".json", js)
        _rehash(base)
        try:
            arrays, _ = load_checkpoint(base)
        except CheckpointError:
            outcomes["refused"] += 1
            continue
        _assert_same(arrays, saved)
        outcomes["ok"] += 1
    assert outcomes["refused"] > 700 and outcomes["ok"] > 0


def test_failed_save_leaves_no_temp_files(tmp_path, monkeypatch):
    base = str(tmp_path / "ck")
    save_checkpoint(base, _arrays(), META)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ck.os, "replace", full_disk)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(base, _arrays(2.0), META)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert load_checkpoint(base)[1] == META
    monkeypatch.undo()
    _write(base + ".npz.tmp", b"left by a SIGKILL")
    _write(base + ".json.tmp", b"{")
    ck.remove_leftovers(base)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# today's checkpoint format (tinygan.tools.train's schema, unchanged by issue 23): parameters
# "G/<i>.<key>", "D/<i>.<key>"; each optimizer's "velocity" one flat vector in parameter order
TODAYS_NAMES = ["G/0.W", "G/0.b", "G/2.W", "G/2.b", "G/4.W", "G/4.b", "D/1.W", "D/1.b", "D/3.W",
                "D/3.b", "D/5.W", "D/5.b", "opt_G/velocity", "opt_G/t", "opt_G/momentum",
                "opt_D/velocity", "opt_D/t", "opt_D/momentum"]


@pytest.mark.parametrize("path", ["plain", "fast"])
def test_a_checkpoint_of_todays_format_loads_on_both_paths(tmp_path, path):
    from tinygan.tools.checkpoint import load_checkpoint, save_checkpoint
    from tinygan.tools.config import TrainConfig, build_gan
    from tinygan.tools.schema import load_gan_arrays
    cfg = TrainConfig(hidden=6, units=3)
    shapes = {"G/0.W": (100, 6), "G/0.b": (6,), "G/2.W": (6, 6), "G/2.b": (6,), "G/4.W": (6, 784),
              "G/4.b": (784,), "D/1.W": (784, 15), "D/1.b": (15,), "D/3.W": (3, 15),
              "D/3.b": (15,), "D/5.W": (3, 1), "D/5.b": (1,)}
    host = np.random.default_rng(5)
    arrays = {k: host.normal(0, 0.05, s).astype(np.float32) for k, s in shapes.items()}
    for net in "GD":
        size = sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith(net))
        arrays[f"opt_{net}/velocity"] = host.normal(0, 1e-3, size).astype(np.float32)
        arrays[f"opt_{net}/t"], arrays[f"opt_{net}/momentum"] = np.array(300), np.array(0.6)
    assert sorted(arrays) == sorted(TODAYS_NAMES)
    save_checkpoint(str(tmp_path / "ck"), arrays, {"step": 300})
    loaded, _ = load_checkpoint(str(tmp_path / "ck"))
    gan = build_gan(cfg, get_backend("numpy", seed=0), fast=path == "fast")
    load_gan_arrays(gan, loaded)
    for prefix, net, opt in (("G/", gan.G, gan.g_opt), ("D/", gan.D, gan.d_opt)):
        for name, p in net.params:
            np.testing.assert_array_equal(p, arrays[prefix + name])
        state = opt.state()
        np.testing.assert_array_equal(state["velocity"], arrays[f"opt_{prefix[0]}/velocity"])
        assert state["t"] == 300 and state["momentum"] == 0.6
    # and it saves back in the same format
    from tinygan.tools.schema import gan_arrays
    assert sorted(gan_arrays(gan, np.asarray)) == sorted(TODAYS_NAMES)
