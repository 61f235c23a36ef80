"""The CIFAR-10 data set, binary version (host-side I/O; NumPy only; no pickle anywhere).

The archive ``cifar-10-binary.tar.gz`` (md5 c32a1d4ab5d03f1284b67883e8d87530) holds
``cifar-10-batches-bin/data_batch_1.bin`` ... ``data_batch_5.bin`` and ``test_batch.bin``:
10,000 records each of one label byte (0-9) and 3,072 pixel bytes, channel-major (1,024 red,
then 1,024 green, then 1,024 blue, each plane row by row, 32 x 32).

Where ``load_cifar10`` looks, in order (the directories of ``data.search_dirs``: ``data_dir``,
``$TINYGAN_DATA``, then the cache ``~/.cache/tinygan/cifar10``):
  1. extracted ``.bin`` files, in a directory itself or in its ``cifar-10-batches-bin/``;
  2. the archive (``.tar.gz``, or the uncompressed ``.tar``), which is extracted into the cache;
  3. a download of the archive into the cache (md5 checked before it is used), then extracted.
Extraction writes only the expected regular files, by names this module makes, into a fresh
staging directory in the cache that is renamed into place when complete: a link, an absolute
path, a ``..``, a special file, an unexpected member or a member of the wrong size stops it,
and nothing is ever written outside the cache directory.
"""

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataError
from .data import (SPLITS, _where_to_put, cache_dir, download_file, find_file, may_download,
                   missing_error, search_dirs)

NAME = "cifar10"
ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
EXTRA_FILES = ("batches.meta.txt", "readme.html")     # small text files the archive also holds
SHAPE = (3, 32, 32)                                   # channels, height, width (channel-major)
PIXELS = 3072
RECORD = 1 + PIXELS                                   # label byte + pixels
RECORDS_PER_FILE = 10000
GCN_SCALE = 55.0                                      # the paper's yaml: CIFAR10 { gcn: 55. }
_EXTRA_LIMIT = 1 << 20
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- batch files

def read_batch(path):
    """One ``.bin`` file -> (images uint8 (N, 3072) channel-major, labels uint8 (N,)).

    N is 1 to 10,000. DataError (one line, naming the file) for a missing or unreadable file,
    a size that is not a whole number of 3,073-byte records (truncated or corrupt), more than
    10,000 records, or a label byte above 9.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0 or size % RECORD:
                raise DataError(f"{path}: truncated or corrupt CIFAR-10 batch: {size} bytes is not "
                                f"a whole number of {RECORD}-byte records (1 label + {PIXELS} pixels)")
            if size > RECORDS_PER_FILE * RECORD:
                raise DataError(f"{path}: {size // RECORD} records; a CIFAR-10 batch holds at most "
                                f"{RECORDS_PER_FILE}")
            raw = np.frombuffer(f.read(size + 1), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    if raw.size != size:
        raise DataError(f"{path}: changed while being read ({raw.size} bytes, expected {size})")
    raw = raw.reshape(-1, RECORD)
    labels = raw[:, 0].copy()
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(f"{path}: record {bad} has label {labels[bad]}, out of range 0..9 "
                        "(corrupt file, or not the binary version)")
    return raw[:, 1:].copy(), labels


def _needed(split):
    return (TEST_FILE,) if split == "test" else TRAIN_FILES


def find_batches(split, data_dir=None):
    """The first directory (in ``search_dirs`` order) holding every .bin file ``split`` needs."""
    for d in search_dirs(NAME, data_dir):
        for candidate in (d, d / FOLDER):
            if all((candidate / f).is_file() for f in _needed(split)):
                return candidate
    return None


# --------------------------------------------------------------------------- the archive

def _member_name(member):
    """The validated file name (inside FOLDER) of a regular-file member, or None for the
    folder's own directory entry. DataError for anything else."""
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"refusing archive member {name!r}: absolute path")
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p != "."]
    if ".." in parts:
        raise DataError(f"refusing archive member {name!r}: '..' in its path")
    if member.issym() or member.islnk():
        raise DataError(f"refusing archive member {name!r}: a link (to {member.linkname!r})")
    if member.isdir():
        if parts == [FOLDER]:
            return None
        raise DataError(f"refusing archive member {name!r}: unexpected directory")
    if not member.isfile():
        raise DataError(f"refusing archive member {name!r}: not a regular file")
    if len(parts) != 2 or parts[0] != FOLDER or parts[1] not in TRAIN_FILES + (TEST_FILE,) + EXTRA_FILES:
        raise DataError(f"refusing archive member {name!r}: not one of the CIFAR-10 binary "
                        f"files ({FOLDER}/data_batch_1..5.bin, test_batch.bin, batches.meta.txt)")
    size = member.size
    if parts[1].endswith(".bin"):
        if size == 0 or size % RECORD or size > RECORDS_PER_FILE * RECORD:
            raise DataError(f"refusing archive member {name!r}: {size} bytes is not 1 to "
                            f"{RECORDS_PER_FILE} records of {RECORD} bytes")
    elif size > _EXTRA_LIMIT:
        raise DataError(f"refusing archive member {name!r}: {size} bytes, more than a text file")
    return parts[1]


def _copy_member(tar, member, dest):
    """Write the member's bytes to ``dest`` (created new, never through a link)."""
    src = tar.extractfile(member)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while written < member.size:
            chunk = src.read(min(_CHUNK, member.size - written))
            if not chunk:
                break
            out.write(chunk)
            written += len(chunk)
    if written != member.size:
        raise DataError(f"archive member {member.name!r} is truncated ({written} of "
                        f"{member.size} bytes)")


_MAX_MEMBERS = 16            # the archive holds 9 entries (its folder, 6 .bin, 2 text files)


class _Bounded:
    """A read-only stream that refuses (DataError) to deliver more than ``limit`` bytes in all:
    the archive is inflated and read in bounded amounts, whatever its headers claim."""

    def __init__(self, f, limit):
        self.f, self.limit, self.count = f, limit, 0

    def read(self, n=-1):
        if n is None or n < 0 or n > self.limit - self.count:
            n = self.limit - self.count + 1          # one byte beyond the limit tells
        data = self.f.read(n)
        self.count += len(data)
        if self.count > self.limit:
            raise DataError(f"more than {self.limit} bytes once inflated: not the CIFAR-10 archive")
        return data


def _max_archive_bytes():
    """The most the genuine archive can hold once inflated (files, tar headers, padding)."""
    data = (len(TRAIN_FILES) + 1) * RECORDS_PER_FILE * RECORD
    return data + len(EXTRA_FILES) * _EXTRA_LIMIT + (1 << 20)


def extract_archive(archive, dest_dir=None):
    """Extract the CIFAR-10 binary archive into ``dest_dir``/cifar-10-batches-bin (default: the
    cache) and return that directory.

    Only the expected regular files are written, under names built here (never a member's
    path), into a staging directory that is renamed into place once every .bin file is there;
    on any fault the staging directory is removed and DataError says which member was refused.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir(NAME)
    target = dest_dir / FOLDER
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest_dir, prefix=f".{FOLDER}.", suffix=".part"))
    except OSError as exc:
        raise DataError(f"cannot create {dest_dir} to extract {archive.name} into ({exc}). "
                        f"{_where_to_put(NAME)}") from None
    try:
        seen, count = set(), 0
        with open(archive, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = _Bounded(gzip.GzipFile(fileobj=raw) if gz else raw, _max_archive_bytes())
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:                 # streaming: one member at a time
                    count += 1
                    if count > _MAX_MEMBERS:
                        raise DataError(f"more than {_MAX_MEMBERS} members: not the CIFAR-10 archive")
                    filename = _member_name(member)
                    if filename is None:
                        continue
                    if filename in seen:
                        raise DataError(f"refusing archive member {member.name!r}: appears twice")
                    seen.add(filename)
                    _copy_member(tar, member, staging / filename)
        missing = [f for f in TRAIN_FILES + (TEST_FILE,) if f not in seen]
        if missing:
            raise DataError(f"lacks {', '.join(missing)}")
        if target.exists():
            raise DataError(f"{target} exists but is incomplete; remove it and try again")
        os.rename(staging, target)
    except DataError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"{archive}: {exc}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"{archive}: corrupt or unreadable archive ({type(exc).__name__}: "
                        f"{exc})") from None
    return target


# --------------------------------------------------------------------------- normalisation

def global_contrast_normalize(x, scale=GCN_SCALE, min_divisor=1e-8, chunk=4096):
    """pylearn2's global contrast normalisation, in place on a float (N, D) array; returns x.

    Per image: subtract its mean, then divide by sqrt(sum of squares) / scale (``use_std`` off,
    ``sqrt_bias`` 0), so every image has mean 0 and Euclidean norm ``scale``. A constant image
    (norm / scale below ``min_divisor``) is divided by 1 and stays all zeros.
    """
    if x.ndim != 2 or x.dtype.kind != "f":
        raise DataError(f"global_contrast_normalize needs a float (N, D) array, got {x.dtype} {x.shape}")
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk]
        block -= block.mean(axis=1, keepdims=True, dtype=np.float64).astype(x.dtype)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64)) / scale
        norms[norms < min_divisor] = 1.0
        block /= norms[:, None].astype(x.dtype)
    return x


# --------------------------------------------------------------------------- the loader

def load_cifar10(split="train", data_dir=None, download=None, mirrors=None, progress=True,
                 gcn=True):
    """Load a split of CIFAR-10 (binary version).

    ``split``: "train" (training images 0-39,999, the paper's), "validation" (40,000-49,999),
    "train+validation" or "full-train" (all 50,000), "test" (the 10,000 of test_batch.bin).
    Returns ``(images, labels)``: images float32 (N, 3072) channel-major, globally contrast
    normalised with scale 55 (``gcn=True``, the paper's) or pixel / 255 in [0, 1]
    (``gcn=False``); labels int64 (N,) in 0..9. ``download``: as data.load_mnist's (None:
    never with a ``data_dir`` or TINYGAN_OFFLINE=1, else when the files are nowhere).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    directory = find_batches(split, data_dir)
    if directory is None:
        archive = find_file(NAME, ARCHIVE, data_dir)
        if archive is None and not may_download(download, data_dir):
            raise missing_error(NAME, [f"CIFAR-10 {split} files ({', '.join(_needed(split))}) "
                                       f"and {ARCHIVE}"], data_dir, download)
        if archive is None:
            archive = download_file(NAME, ARCHIVE, mirrors, progress)
        directory = extract_archive(archive)
    parts = [read_batch(directory / f) for f in _needed(split)]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    if split in ("train", "validation"):
        if len(images) != 5 * RECORDS_PER_FILE:
            raise DataError(f"{directory}: the {split!r} split needs the 50,000 training images, "
                            f"the five data batches hold {len(images)}")
        part = slice(0, 40000) if split == "train" else slice(40000, 50000)
        images, labels = images[part], labels[part]
    x = images.astype(np.float32)
    del images
    if gcn:
        global_contrast_normalize(x)
    else:
        x /= np.float32(255)
    return x, labels.astype(np.int64)


def to_hwc(images):
    """(N, 3072) channel-major -> (N, 32, 32, 3), the layout pictures need."""
    return np.asarray(images).reshape(-1, *SHAPE).transpose(0, 2, 3, 1)
