"""Crash-safe, model-agnostic checkpoint store: numpy arrays plus JSON metadata.

A checkpoint at ``path`` is two files: ``path.npz`` (the arrays; a plain .npz, no
pickle) and ``path.json`` (the caller's meta, the array names/shapes/dtypes, the
format version, the sha256 of the .npz and the sha256 of the record itself). The one
before it is kept as ``path.prev.npz`` / ``path.prev.json`` (loadable on its own as
``path.prev``).

Every byte that is loaded is verified before it is used: the .json must be exactly the
bytes this module writes for its content, and that content must hash to its
``record_sha256`` (so no edit or bit flip passes, whatever it changes); the .npz must hash
to ``npz_sha256``, and its zip members must be what the writer writes (stored, not
compressed; the expected names; sizes equal to the .npy header plus the data the .json
declares) before any payload is read. ``load_checkpoint(path, validate=fn)`` then runs the
caller's schema check ``fn(arrays, meta)`` (raising CheckpointError) on the loaded pair, so
a checkpoint the caller cannot use falls back to prev like a damaged one. Format 1 files
(no record checksum) are refused with a one-line error.

Crash safety: a save writes both new files to temp files and fsyncs them; if the
current pair is consistent (its .npz hashes to the sha256 its .json records) it is
hard-linked (or copied) over the prev pair, .npz first; then the new .npz and last
the new .json are moved into place with ``os.replace``. So whenever the process dies
(SIGKILL included) the current pair or the prev pair is consistent; a mix of old
.json and new .npz fails the hash check and ``load_checkpoint`` falls back to the
prev pair with a warning. Directories are fsynced too, so power loss is covered on
filesystems that honour fsync. One writer per path at a time (rundir.RunDirectory holds a
lock for it); a save that fails removes its temp files, and :func:`remove_leftovers` clears
those a killed process left behind.
"""

import hashlib
import json
import os
import shutil
import tokenize
import warnings
import zipfile
import zlib

import numpy as np

from ..errors import CheckpointError
from .files import fsync_path as _fsync

FORMAT_VERSION = 2                   # 2: the .json carries record_sha256 over itself
_MAX_JSON = 1 << 24        # bytes: far above any real record (the meta is small)
_NUMERIC_KINDS = "biufc"  # bool, int, uint, float, complex
# What reading damaged or crafted files can raise (numpy's .npy header parser included).
_BAD_FILE = (OSError, EOFError, ValueError, KeyError, TypeError, IndexError,
             zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
             OverflowError, MemoryError, RecursionError, SyntaxError, tokenize.TokenError)


class WrongKind(CheckpointError):
    """A sound checkpoint of another kind than the caller's (a classifier given for a GAN run,
    or the reverse): raised by a schema check, reported as it is, no fallback to prev."""


def _base(path):
    """The checkpoint's path without a .npz/.json suffix."""
    path = os.fspath(path)
    for suffix in (".npz", ".json"):
        if path.endswith(suffix):
            return path[:-len(suffix)]
    return path


def _sha256(filename):
    h = hashlib.sha256()
    with open(filename, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record_text(record):
    """The .json's bytes for ``record``, exactly as the writer writes them."""
    return json.dumps(record, indent=1, allow_nan=False)


def _record_sha256(record):
    """sha256 of the record's canonical form, ``record_sha256`` itself left out: any change
    of a name, type or value changes it."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _parse_record(raw):
    """The verified record of a .json's bytes; ValueError (or UnicodeError) if they are not
    exactly what :func:`save_checkpoint` writes or fail the record checksum."""
    text = raw.decode("ascii")
    record = json.loads(text, parse_constant=_refuse_constant)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if isinstance(record.get("format_version"), int) and record["format_version"] < 2:
        return record                       # refused by the caller with its own message
    if _record_text(record) != text:
        raise ValueError("not the bytes the writer writes for its content")
    if record.get("record_sha256") != _record_sha256(record):
        raise ValueError("its content does not match its record_sha256")
    return record


def _write_npz(filename, arrays):
    """np.savez's format, written member by member (so no array name can clash with
    savez's keyword arguments), with fixed timestamps."""
    with zipfile.ZipFile(filename, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
    _fsync(filename)


def _consistent(base):
    """Whether base.json is intact and base.npz hashes to the sha256 it records."""
    try:
        with open(base + ".json", "rb") as f:
            return _parse_record(f.read())["npz_sha256"] == _sha256(base + ".npz")
    except (*_BAD_FILE, UnicodeError):
        return False


def _temp_files(base):
    return [base + ext for ext in (".npz.tmp", ".json.tmp", ".prev.npz.tmp", ".prev.json.tmp")]


def remove_leftovers(path):
    """Remove the temp files a save killed mid-way left beside the checkpoint at ``path``
    (only safe while no other process saves there: rundir.RunDirectory holds the lock)."""
    for tmp in _temp_files(_base(path)):
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass


def _link_or_copy(src, dst):
    """Atomically make dst the same bytes as src (a hard link, else a copy)."""
    tmp = dst + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
        _fsync(tmp)
    os.replace(tmp, dst)


def save_checkpoint(path, arrays, meta):
    """Write ``arrays`` (dict name -> numeric numpy.ndarray) and ``meta`` (a JSON-
    serialisable dict) as the checkpoint at ``path``; the old one becomes ``prev``."""
    base = _base(path)
    directory = os.path.dirname(os.path.abspath(base))
    if not isinstance(arrays, dict) or not isinstance(meta, dict):
        raise CheckpointError("save_checkpoint needs a dict of arrays and a dict of meta")
    arrays = {n: np.asarray(a) if isinstance(a, np.generic) else a for n, a in arrays.items()}
    for name, arr in arrays.items():
        if not isinstance(name, str) or not name or "\x00" in name:
            raise CheckpointError(f"array name {name!r} must be a non-empty string without NUL")
        if not isinstance(arr, np.ndarray):
            raise CheckpointError(f"array {name!r} is a {type(arr).__name__}, not a "
                                  "numpy.ndarray (convert it with backend.to_numpy)")
        if arr.dtype.kind not in _NUMERIC_KINDS:
            raise CheckpointError(f"array {name!r} has dtype {arr.dtype}; only numeric "
                                  "arrays can be checkpointed (no object/pickled data)")
    if not os.path.isdir(directory):
        raise CheckpointError(f"cannot write checkpoint {base!r}: directory {directory!r} "
                              "does not exist or is not a directory")
    try:
        from .. import __version__ as version
    except ImportError:
        version = None
    try:
        _write_npz(base + ".npz.tmp", arrays)
        record = {"format_version": FORMAT_VERSION, "tinygan_version": version,
                  "npz_sha256": _sha256(base + ".npz.tmp"),
                  "arrays": {n: {"shape": list(a.shape), "dtype": a.dtype.str}
                             for n, a in arrays.items()}, "meta": meta}
        try:      # through JSON once: tuples become lists, keys strings, as a load sees them
            record = json.loads(json.dumps(record, allow_nan=False))
            record["record_sha256"] = _record_sha256(record)
            text = _record_text(record)
        except (TypeError, ValueError, RecursionError) as exc:
            raise CheckpointError(f"checkpoint meta is not JSON-serialisable: {exc}") from None
        with open(base + ".json.tmp", "w", encoding="ascii") as f:
            f.write(text)
        _fsync(base + ".json.tmp")
        if _consistent(base):  # the current pair becomes prev, npz first
            _link_or_copy(base + ".npz", base + ".prev.npz")
            _link_or_copy(base + ".json", base + ".prev.json")
            _fsync(directory, directory=True)
        os.replace(base + ".npz.tmp", base + ".npz")
        os.replace(base + ".json.tmp", base + ".json")
        _fsync(directory, directory=True)
    except OSError as exc:
        _remove_quietly(_temp_files(base))
        raise CheckpointError(f"cannot write checkpoint {base!r} in directory {directory!r}: "
                              f"{exc.strerror or exc}") from None
    except BaseException:      # CheckpointError, KeyboardInterrupt (a second Ctrl-C), ...
        _remove_quietly(_temp_files(base))
        raise


def _remove_quietly(paths):
    for p in paths:
        try:
            os.remove(p)
        except OSError:
            pass


def _fail(base, why):
    raise CheckpointError(f"checkpoint {base!r} is unusable: {why}")


def _check_members(base, zf, specs):
    """Accept exactly what _write_npz writes, before any payload is read: one stored (not
    compressed, not encrypted) member per array, named ``<name>.npy``, whose size is its .npy
    header plus the data the .json declares; the header must match the .json."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if sorted(names) != sorted(n + ".npy" for n in specs) or len(set(names)) != len(names):
        _fail(base, f"array names in {base}.npz {sorted(names)} do not match "
              f"those in {base}.json {sorted(specs)}")
    for info in infos:
        name = info.filename[:-4]
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            _fail(base, f"array {name!r} is a compressed or encrypted zip member "
                  f"(method {info.compress_type}); tinygan writes stored members only")
        if info.compress_size != info.file_size:
            _fail(base, f"array {name!r}: its zip sizes disagree")
        with zf.open(info) as fh:
            major, _ = np.lib.format.read_magic(fh)
            read = {1: np.lib.format.read_array_header_1_0,
                    2: np.lib.format.read_array_header_2_0}.get(major)
            if read is None:
                _fail(base, f"array {name!r} uses an unsupported .npy version {major}")
            shape, _, dtype = read(fh)
            header = fh.tell()
        if dtype.hasobject:
            _fail(base, f"array {name!r} holds Python objects; refusing to load pickled data")
        if dtype.kind not in _NUMERIC_KINDS:
            _fail(base, f"array {name!r} has the non-numeric dtype {dtype}")
        spec = specs[name]
        if list(shape) != spec["shape"] or dtype.str != spec.get("dtype"):
            _fail(base, f"array {name!r} is {dtype.str}{list(shape)} in the .npz but "
                  f"{spec.get('dtype')}{spec['shape']} in the .json")
        if header + dtype.itemsize * int(np.prod(shape, dtype=object)) != info.file_size:
            _fail(base, f"array {name!r} is truncated or has trailing bytes")


def _valid_specs(specs):
    def dim(d):
        return isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**63
    return isinstance(specs, dict) and all(
        isinstance(n, str) and n and isinstance(s, dict) and set(s) == {"shape", "dtype"}
        and isinstance(s["shape"], list) and len(s["shape"]) <= 32
        and all(dim(d) for d in s["shape"]) and isinstance(s["dtype"], str)
        for n, s in specs.items())


def _load_one(base, validate=None):
    """Load and fully verify one file pair (and run ``validate`` on it)."""
    for ext in (".json", ".npz"):
        if not os.path.isfile(base + ext):
            raise CheckpointError(f"checkpoint file {base + ext!r} is missing")
    try:
        if os.path.getsize(base + ".json") > _MAX_JSON:
            raise ValueError(f"larger than {_MAX_JSON} bytes")
        with open(base + ".json", "rb") as f:
            record = _parse_record(f.read())
    except (*_BAD_FILE, UnicodeError) as exc:
        _fail(base, f"{base}.json is truncated, corrupt or edited ({type(exc).__name__}: {exc})")
    version = record.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        _fail(base, f"{base}.json has no valid format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {base!r} has format version {version}: written by a "
                              f"newer tinygan (this one reads up to {FORMAT_VERSION}); upgrade")
    if version < FORMAT_VERSION:
        _fail(base, f"{base}.json has format version {version}, from before checkpoints "
              f"verified their metadata; this tinygan reads only version {FORMAT_VERSION}: "
              "train again (or load it with tinygan 0.1.0)")
    specs, meta = record.get("arrays"), record.get("meta")
    if not _valid_specs(specs) or not isinstance(meta, dict) \
            or not isinstance(record.get("npz_sha256"), str):
        _fail(base, f"{base}.json lacks a valid 'arrays'/'meta' record")
    try:
        if _sha256(base + ".npz") != record.get("npz_sha256"):
            _fail(base, f"{base}.npz does not match the sha256 in {base}.json "
                  "(truncated, corrupt, or from another save)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's notes on odd (e.g. Python 2) headers
            with zipfile.ZipFile(base + ".npz") as zf:
                _check_members(base, zf, specs)
            with np.load(base + ".npz", allow_pickle=False) as npz:
                arrays = {name: npz[name + ".npy"] for name in specs}  # member names: exact
    except CheckpointError:
        raise
    except Exception as exc:     # every decoder's own error (zlib, lzma, bz2, ...) is ours
        if isinstance(exc, ValueError) and "pickle" in str(exc):
            _fail(base, "it holds Python objects; refusing to load pickled data")
        _fail(base, f"{base}.npz is truncated or corrupt ({type(exc).__name__}: {exc})")
    if validate is not None:
        try:
            validate(arrays, meta)
        except WrongKind as exc:
            raise WrongKind(f"{base}: {exc}") from None
        except CheckpointError as exc:
            _fail(base, str(exc))
    return arrays, meta


def load_checkpoint(path, validate=None):
    """Return ``(arrays, meta)`` saved at ``path``. If that pair is inconsistent (a crash
    mid-save, corruption, an edit) or ``validate(arrays, meta)`` raises CheckpointError (the
    caller's schema), the prev pair is loaded instead, with a RuntimeWarning."""
    base = _base(path)
    try:
        return _load_one(base, validate)
    except CheckpointError as exc:
        if ("newer tinygan" in str(exc) or isinstance(exc, WrongKind)
                or not os.path.exists(base + ".prev.json")):
            raise
        try:
            result = _load_one(base + ".prev", validate)
        except CheckpointError as prev_exc:
            raise CheckpointError(f"{exc}; the previous checkpoint is unusable too: "
                                  f"{prev_exc}") from None
        warnings.warn(f"{exc}; loaded the previous checkpoint {base + '.prev'!r} instead",
                      RuntimeWarning, stacklevel=2)
        return result


def checkpoint_path(path, hint="give the --out directory of the training run (or its checkpoint)"):
    """The one rule for naming a checkpoint on a command line: a run directory (its
    ``dir/checkpoint``), or the checkpoint itself in any form (``.../checkpoint``, ``.npz`` or
    ``.json``). Returns the path to load; CheckpointError (``hint`` says what to give) if there
    is none."""
    from pathlib import Path
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint"
    if not checkpoint_exists(path):
        if path.name == "checkpoint" and path.parent.is_dir():
            raise CheckpointError(f"no run directory or checkpoint at {path}: {path.parent} "
                                  "holds no checkpoint (a run that stopped before its first "
                                  f"save?); {hint}")
        raise CheckpointError(f"no run directory or checkpoint at {path}: {hint}")
    return path


def checkpoint_exists(path):
    """Whether a checkpoint file pair (current or prev) is present; not verified."""
    base = _base(path)
    return any(os.path.isfile(b + ".json") and os.path.isfile(b + ".npz")
               for b in (base, base + ".prev"))


def check_compatible(arrays, expected):
    """Raise CheckpointError unless ``arrays`` has exactly the names and shapes of
    ``expected`` (dict name -> shape tuple)."""
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    wrong = [f"{n}: {tuple(arrays[n].shape)} != {tuple(expected[n])}" for n in sorted(expected)
             if n in arrays and tuple(arrays[n].shape) != tuple(expected[n])]
    problems = ([f"missing {missing}"] if missing else []) + \
        ([f"unexpected {unexpected}"] if unexpected else []) + \
        ([f"shape mismatch {'; '.join(wrong)}"] if wrong else [])
    if problems:
        raise CheckpointError("checkpoint is from another architecture: " + ", ".join(problems))
