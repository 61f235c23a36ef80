"""IDX files and the MNIST / Fashion-MNIST data sets (host-side I/O; NumPy only).

(CIFAR-10 lives in cifar.py and uses the cache, search order and download helpers here.)

``load_mnist`` looks for the four IDX files in, in order: ``data_dir``, ``$TINYGAN_DATA``,
Debian's ``/usr/share/datasets/fashion-mnist`` (Fashion-MNIST only) and the cache
``$XDG_CACHE_HOME/tinygan/<name>`` (default ``~/.cache/tinygan/<name>``); missing files are
downloaded into the cache, checked against their md5 before they are moved into place.

When nothing is downloaded (:func:`may_download`): with a ``data_dir`` (the user said where the
files are) unless ``download=True`` (``--download``); with ``download=False``
(``--no-download``); with ``TINYGAN_OFFLINE=1`` in the environment. A missing file is then one
error naming the directories, the missing files and the offline route.
"""

import errno
import gzip
import hashlib
import json
import os
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path

import numpy as np

from ..errors import DataError
from .files import atomic_write

MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}
CHECKSUMS = {  # md5 of the published .gz files
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
}
# md5 of the decompressed IDX bytes, whatever the packaging (Debian re-gzips Fashion-MNIST, so
# its .gz files differ from Zalando's while holding the same bytes): measured on the files whose
# .gz md5 is the published one (MNIST t10k, ../shared) and on Debian's dataset-fashion-mnist.
CONTENT_CHECKSUMS = {
    "mnist": {
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
DATA_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
UNVERIFIED_ENV = "TINYGAN_UNVERIFIED_DATA"   # =1: accept IDX files matching no published md5
MNIST_SETS = ("mnist", "fashion-mnist")     # the data sets load_mnist reads
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLITS = ("train", "validation", "train+validation", "full-train", "test")
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32",
              0x0E: "float64"}
_CHUNK = 1 << 20
TIMEOUT = 30.0
MAX_IDX_BYTES = 1 << 31     # the largest IDX payload read_idx accepts (MNIST's largest: 47 MB)
CACHE_MIN_BYTES = 1 << 20   # file_digests caches the md5s of files this large or larger
GZIP_MAX_RATIO = 1032       # DEFLATE cannot expand a byte into more than ~1032 bytes


def _read_bounded(f, limit):
    """Read at most ``limit`` bytes from ``f`` in chunks (memory grows only with real data)."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = f.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def read_idx(path):
    """Read an IDX file (raw, or gzip when the name ends in ``.gz``) holding unsigned bytes.

    Returns a writable uint8 array of the shape the header declares (1 to 4 dimensions).
    Raises ``DataError`` naming the file and the fault for a missing or unreadable file, a bad
    magic number, a type other than 0x08 (uint8), a bad ndim, a payload shorter or longer than
    the header declares, or a corrupt gzip stream. Nothing is allocated for a header's claim
    before the file has shown that it holds that much data; a gzip file is inflated in 1 MB
    chunks, never beyond the declared payload plus one byte, and a declared payload above
    MAX_IDX_BYTES or beyond what its compressed size can hold is refused before inflating.
    """
    path = Path(path)
    gz = path.name.endswith(".gz")
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: truncated IDX header ({len(head)} of 4 magic bytes)")
            if head[0] != 0 or head[1] != 0:
                raise DataError(f"{path}: not an IDX file (magic bytes {head.hex()}, "
                                "expected 0000 then type and ndim)")
            if head[2] != 0x08:
                kind = _IDX_TYPES.get(head[2], "unknown")
                raise DataError(f"{path}: unsupported IDX type 0x{head[2]:02x} ({kind}); "
                                "only 0x08 (uint8) is supported")
            ndim = head[3]
            if not 1 <= ndim <= 4:
                raise DataError(f"{path}: IDX ndim is {ndim}; expected 1 to 4")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header ({4 + len(dims_raw)} of "
                                f"{4 + 4 * ndim} bytes)")
            shape = tuple(int.from_bytes(dims_raw[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
            claimed = 1
            for d in shape:
                claimed *= d
            if claimed > MAX_IDX_BYTES:
                raise DataError(f"{path}: header declares shape {shape} = {claimed} bytes, "
                                f"more than the {MAX_IDX_BYTES} read_idx accepts")
            if not gz:
                actual = os.fstat(f.fileno()).st_size - 4 - 4 * ndim
                if actual != claimed:
                    raise _size_error(path, shape, claimed, actual)
            else:         # refuse what the compressed size cannot hold, before inflating it
                packed = os.fstat(f.fileobj.fileno()).st_size
                if 4 + 4 * ndim + claimed > GZIP_MAX_RATIO * packed + 1024:
                    raise DataError(f"{path}: header declares shape {shape} = {claimed} bytes, "
                                    f"more than {packed} compressed bytes can hold")
            payload = _read_bounded(f, claimed + 1)
    except (OSError, EOFError, zlib.error) as exc:
        corrupt = isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error))
        what = "corrupt gzip stream" if corrupt else "cannot read"
        raise DataError(f"{path}: {what} ({type(exc).__name__}: {exc})") from None
    if len(payload) != claimed:
        raise _size_error(path, shape, claimed, len(payload), at_least=len(payload) > claimed)
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def _size_error(path, shape, claimed, actual, at_least=False):
    fault = "trailing bytes" if actual > claimed else "truncated payload"
    more = "at least " if at_least else ""
    return DataError(f"{path}: {fault}: header declares shape {shape} = {claimed} bytes, "
                     f"file holds {more}{actual}")


def write_idx(path, array):
    """Write a uint8 array (1 to 4 dimensions) as an IDX file; gzip when ``path`` ends in .gz.

    The file is written beside its target and moved into place, so a reader never sees half.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 4:
        raise DataError(f"write_idx needs a uint8 array of 1 to 4 dimensions, got "
                        f"{array.dtype} with shape {array.shape}")
    path = Path(path)
    data = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape) + np.ascontiguousarray(array).tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    atomic_write(path, lambda f: f.write(data))


def cache_dir(name):
    """``$XDG_CACHE_HOME/tinygan/<name>`` (``~/.cache/tinygan/<name>`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinygan" / name


def resolve_data_dir(data_dir):
    """``data_dir`` as an absolute Path with its links resolved; a one-line DataError for one
    that does not exist, is not a directory or is a symlink loop."""
    try:
        path = Path(data_dir).resolve(strict=True)
    except (OSError, RuntimeError) as exc:     # RuntimeError: Python < 3.13's symlink loop
        loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
        raise DataError(f"data_dir {data_dir} " + ("is a symlink loop (its links lead back to "
                                                    "themselves)" if loop else
                                                    "does not exist")) from None
    if not path.is_dir():
        raise DataError(f"data_dir {data_dir} is not a directory")
    return path


def search_dirs(name, data_dir=None):
    """The directories ``load_mnist`` searches for data set ``name``, in order."""
    dirs = []
    if data_dir is not None:
        resolve_data_dir(data_dir)
        dirs += [Path(data_dir), Path(data_dir) / name]
    if os.environ.get("TINYGAN_DATA"):
        dirs += [Path(os.environ["TINYGAN_DATA"]), Path(os.environ["TINYGAN_DATA"]) / name]
    if name == "fashion-mnist":
        dirs.append(DEBIAN_FASHION_DIR)
    dirs.append(cache_dir(name))
    return dirs


def find_file(name, filename, data_dir=None):
    """Path of ``filename`` (or the same name without .gz) for data set ``name``, or None."""
    for d in search_dirs(name, data_dir):
        for candidate in (filename, filename.removesuffix(".gz")):
            if (d / candidate).is_file():
                return d / candidate
    return None


# --- data identity: is the file found on disk the one asked for? ------------------------------
def _md5_of(path, gz):
    """md5 of ``path``'s bytes (``gz``: of its decompressed bytes), read in 1 MB chunks."""
    digest = hashlib.md5()
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None              # read_idx names the fault in its own words
    return digest.hexdigest()


def _verified_cache():
    return cache_dir("") / "verified.json"


def file_digests(path):
    """``{"md5": of the file, "content_md5": of its IDX bytes or None}`` for ``path``, cached in
    ``$XDG_CACHE_HOME/tinygan/verified.json`` by real path, size and mtime (a second look costs
    a stat; files under CACHE_MIN_BYTES are hashed each time, as fast). The content md5 is
    computed only when the file's own md5 is no published one."""
    path = Path(path)
    key = os.path.realpath(path)
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns]
    cache_file = _verified_cache()
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry
    gz = path.name.endswith(".gz")
    md5 = _md5_of(path, gz=False)
    published = {h for sums in CHECKSUMS.values() for h in sums.values()}
    entry = {"stamp": stamp, "md5": md5,
             "content_md5": None if md5 in published else (_md5_of(path, gz=True) if gz else md5)}
    if st.st_size < CACHE_MIN_BYTES:
        return entry              # hashing it again is as quick as the cache
    cache = {k: v for k, v in cache.items() if os.path.exists(k)}
    cache[key] = entry
    try:
        text = json.dumps(cache, indent=0).encode()
        atomic_write(cache_file, lambda f: f.write(text))
    except OSError:
        pass                      # a read-only cache: verify again next time
    return entry


def identify(path):
    """``(data set, file name)`` of the published file ``path`` holds (by md5, gzipped or not),
    or None when it matches none."""
    digests = file_digests(path)
    for table, key in ((CHECKSUMS, "md5"), (CONTENT_CHECKSUMS, "content_md5")):
        for name in MNIST_SETS:
            for filename, md5 in table.get(name, {}).items():
                if digests.get(key) is not None and digests[key] == md5:
                    return name, filename
    return None


def unverified_allowed():
    """True when ``TINYGAN_UNVERIFIED_DATA`` is set to anything but '' or 0."""
    return os.environ.get(UNVERIFIED_ENV, "").strip() not in ("", "0")


def check_identity(path, name, filename):
    """Raise a one-line DataError unless ``path`` is data set ``name``'s ``filename`` (its
    published md5, of the .gz or of the IDX bytes). A file of another known data set is named
    as such; a file matching no published one (your own IDX data, a test's) is refused unless
    TINYGAN_UNVERIFIED_DATA=1. Returns True when verified, False when allowed unverified."""
    found = identify(path)
    asked = f"{DATA_NAMES[name]}'s {filename.removesuffix('.gz')}"
    if found == (name, filename):
        return True
    if found is not None:
        other, other_file = found
        fix = (f"--dataset {other} trains on it; for {DATA_NAMES[name]}, give a --data-dir "
               f"holding {DATA_NAMES[name]}'s files" if other != name
               else "the file is misnamed")
        raise DataError(f"{path} is {DATA_NAMES[other]}'s {other_file.removesuffix('.gz')} "
                        f"(by its md5), not {asked} as asked: {fix}")
    if unverified_allowed():
        return False
    raise DataError(f"{path} matches no published {DATA_NAMES[name]} file (md5 "
                    f"{file_digests(path)['md5']}), so it is not {asked}: put the real file "
                    f"there, or set {UNVERIFIED_ENV}=1 to train on your own IDX data")


def offline():
    """True when ``TINYGAN_OFFLINE`` is set to anything but '' or 0."""
    return os.environ.get("TINYGAN_OFFLINE", "").strip() not in ("", "0")


def may_download(download=None, data_dir=None):
    """``download`` True / False as given; None (automatic): only without a ``data_dir`` and
    without TINYGAN_OFFLINE."""
    if download is not None:
        return bool(download)
    return data_dir is None and not offline()


def missing_error(name, missing, data_dir=None, download=None):
    """The one-line DataError for files of data set ``name`` found nowhere, downloads off."""
    where = ", ".join(map(str, search_dirs(name, data_dir)))
    if download is False:
        why = "downloads are off (download=False, --no-download)"
    elif data_dir is not None:
        why = (f"with --data-dir nothing is downloaded (download=False) unless --download "
               f"(into {cache_dir(name)})")
    else:
        why = "downloads are off (download=False: TINYGAN_OFFLINE is set)"
    offline_route = (" Offline, MNIST trains on its test split alone: --split test with "
                     "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in --data-dir."
                     if name == "mnist" else "")
    return DataError(f"{', '.join(missing)} not found for {name} in {where}; {why}. "
                     f"{_where_to_put(name, data_dir)}{offline_route}")


def _where_to_put(name, data_dir=None):
    files = ", ".join(FILES if name in MNIST_SETS else CHECKSUMS.get(name, FILES))
    if data_dir is not None:
        return f"Put the files ({files}) in {data_dir}, or add --download."
    debian = (" On Debian or Ubuntu: apt-get install dataset-fashion-mnist."
              if name == "fashion-mnist" else "")
    return (f"Put the files ({files}) in {cache_dir(name)}, $TINYGAN_DATA or a --data-dir."
            + debian)


def _why(exc):
    """A download failure in a few words: 'HTTP 404', 'Name or service not known', ..."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, OSError):
        return reason.strerror or str(reason)
    text = str(reason if reason is not None else exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _progress_bar(total, desc):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)


def _fetch(url, dest, md5, progress):
    """Stream ``url`` into a temp file beside ``dest``, check md5, move into place
    (files.atomic_write: a failed or mismatched download leaves nothing behind)."""
    bar = None

    def write(out):
        nonlocal bar
        digest = hashlib.md5()
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            if progress:
                length = resp.headers.get("Content-Length")
                bar = _progress_bar(int(length) if length and length.isdigit() else None, dest.name)
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DataError(f"checksum mismatch (md5 {digest.hexdigest()}, expected {md5})")
    try:
        atomic_write(dest, write, suffix=".part")
    finally:
        if bar is not None:
            bar.close()


def download_file(name, filename, mirrors=None, progress=True):
    """Download ``filename`` of data set ``name`` into its cache dir; return the path.

    Mirrors are tried in order; a file is moved into place only after its md5 matched.
    """
    md5 = CHECKSUMS.get(name, {}).get(filename)
    if md5 is None:
        raise DataError(f"no checksum known for {name}/{filename}; refusing to download it")
    dest = cache_dir(name) / filename
    created = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create cache dir {dest.parent} ({exc}). {_where_to_put(name)}")
    failures = []
    for mirror in (MIRRORS[name] if mirrors is None else mirrors):
        url = mirror.rstrip("/") + "/" + filename
        try:
            _fetch(url, dest, md5, progress)
            return dest
        except (DataError, OSError, HTTPException, ValueError) as exc:
            failures.append(f"{mirror}: {_why(exc)}")
    for d in created:                  # leave no empty cache directory behind
        try:
            d.rmdir()
        except OSError:
            break
    raise DataError(f"could not download {filename} for {name} ("
                    + ("; ".join(failures) or "no mirrors given") + "). " + _where_to_put(name))


def load_mnist(name="mnist", split="train", data_dir=None, download=None, mirrors=None,
               progress=True):
    """Load a split of MNIST or Fashion-MNIST.

    ``split``: "train" (training images 0-49,999), "validation" (50,000-59,999),
    "train+validation" or "full-train" (all 60,000), "test" (the 10,000 t10k images).
    Returns ``(images, labels)``: images float32 of shape (N, 784) in [0, 1] (pixel / 255),
    labels int64 of shape (N,) in 0..9. ``download``: True, False, or None (automatic:
    :func:`may_download`, never with a ``data_dir`` or TINYGAN_OFFLINE=1).
    """
    if name not in MNIST_SETS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(MNIST_SETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    prefix = "t10k" if split == "test" else "train"
    filenames = [f"{prefix}-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1")]
    paths = [find_file(name, f, data_dir) for f in filenames]
    missing = [f for f, path in zip(filenames, paths) if path is None]
    if missing and not may_download(download, data_dir):
        raise missing_error(name, missing, data_dir, download)
    arrays = []
    for filename, path in zip(filenames, paths):
        if path is None:
            path = download_file(name, filename, mirrors, progress)
        else:
            check_identity(path, name, filename)
        arrays.append((path, read_idx(path)))
    (ipath, images), (lpath, labels) = arrays
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{ipath}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{lpath}: expected labels of shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{ipath} holds {len(images)} images but {lpath} holds "
                        f"{len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lpath}: label {labels.max()} is out of range 0..9")
    if split in ("train", "validation"):
        if len(images) != 60000:
            raise DataError(f"{ipath}: the {split!r} split needs the 60,000-image training "
                            f"file, this one holds {len(images)}")
        part = slice(0, 50000) if split == "train" else slice(50000, 60000)
        images, labels = images[part], labels[part]
    x = images.reshape(len(images), 784).astype(np.float32)
    x /= np.float32(255)
    return x, labels.astype(np.int64)
