"""An emulation of CuPy for tests: computes with NumPy, enforces the CuPy rules that break ported
NumPy code, and counts host synchronisations and kernel launches.

It is a test double, not a backend: tinygan's core never imports it. It is injected by
installing the emulated module as ``cupy``:

    from tinygan.testing import cupy_emulation as emu
    with emu.installed(14) as cupy:            # sys.modules["cupy"] is the emulation
        be = get_backend("cupy")                # tinygan's own code path for CuPy
        with emu.counting() as c:
            gan.train_step(real)
        c.syncs, c.launches, c.h2d             # lists of (what, "file:line")

or, for a subprocess, ``env=emu.subprocess_env(14)`` (puts a ``cupy`` shim on PYTHONPATH and
sets ``TINYGAN_CUPY_EMULATION=14``).

The rules (CuPy 14, names and keyword arguments from ``cupy14_api.json``, a snapshot of the
real module made by ``snapshot.py``):
  - arrays are not numpy.ndarray; implicit conversion to NumPy (``np.asarray``, ``np.testing``,
    matplotlib, ``np.lib.format``) raises TypeError; ``cupy.asnumpy`` and ``.get()`` convert;
  - a ufunc or operator mixing a device array with a non-scalar numpy.ndarray raises TypeError;
  - only names CuPy has exist (module functions, ``random.Generator`` methods, ndarray
    attributes), and their keyword arguments are checked; the bit generator has no state dict;
  - reductions and scalar indexing return 0-d device arrays;
  - rules=13 adds CuPy 13's ``matmul(..., out=)`` failure when an operand or ``out`` is 1-D
    (``ValueError: axes don't match array``);
  - ``ElementwiseKernel`` runs the kernel's CUDA body compiled for the host (host_kernels.py,
    g++; float32 under CUDA's -ftz) after CuPy's type decision (``Type is mismatched``); the
    NumPy twin only where no C++ compiler exists;
  - boolean-mask indexing, ``bincount``, ``nonzero`` and ``unravel_index`` count as host
    synchronisations (CuPy reads a size on the host); ``unravel_index`` refuses a Python int;
  - stream capture: ``Stream(non_blocking=True)``, ``begin_capture()`` / ``end_capture()`` ->
    ``Graph``, ``graph.launch()``. A capture records the work issued on the stream without
    running it (no existing array changes); a launch re-runs it in order, random draws drawing
    afresh. While capturing, a cuBLAS-backed call raises CuPy's ``NotImplementedError('calling
    cuBLAS API during stream capture is currently unsupported')``, a host synchronisation or a
    host-to-device copy raises ``CUDARuntimeError: cudaErrorStreamCaptureUnsupported`` and
    invalidates the capture (``end_capture`` then raises cudaErrorStreamCaptureInvalidated).
"""

import contextlib
import copy
import json
import os
import sys
import types
from pathlib import Path

import numpy as np

from . import host_kernels

HERE = Path(__file__).resolve().parent
SHIM = HERE / "shim"
ENV = "TINYGAN_CUPY_EMULATION"
RULES = (13, 14)
API = json.loads((HERE / "cupy14_api.json").read_text())
_NUMPY_DIR = str(Path(np.__file__).resolve().parent)
_HERE_STR = str(HERE)
_BACKEND = str(HERE.parents[1] / "backend.py")     # a thin wrapper: its callers are the sites


# --- counting ---------------------------------------------------------------------------------
class Counters:
    """Events recorded while counting: each a (what, "file:line") pair of the caller's site."""

    def __init__(self):
        self.syncs, self.launches, self.h2d = [], [], []

    def __repr__(self):
        return (f"Counters(syncs={len(self.syncs)}, launches={len(self.launches)}, "
                f"h2d={len(self.h2d)})")

    def by_site(self, kind="launches"):
        out = {}
        for what, site in getattr(self, kind):
            out.setdefault(site, []).append(what)
        return out


class _State:
    rules = 14
    counters = []          # stack of active Counters
    streams = []           # the current-stream stack (``with stream:``)
    compile = True         # ElementwiseKernels run their compiled CUDA bodies (else the twins)


STATE = _State()


def _site():
    f = sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if not (fn.startswith(_HERE_STR) or fn.startswith(_NUMPY_DIR) or fn == _BACKEND):
            return f"{os.path.relpath(fn)}:{f.f_lineno}"
        f = f.f_back
    return "?"


def _record(kind, what):
    if kind != "launches":                  # refused on a capturing stream, as CUDA does
        _capture_check("sync" if kind == "syncs" else "h2d")
    if STATE.counters:
        site = _site()
        for c in STATE.counters:
            getattr(c, kind).append((what, site))


@contextlib.contextmanager
def counting():
    """Count syncs, launches and host-to-device copies made inside the block."""
    c = Counters()
    STATE.counters.append(c)
    try:
        yield c
    finally:
        STATE.counters.remove(c)


# --- stream capture ------------------------------------------------------------------------------
class CUDARuntimeError(RuntimeError):
    """cupy_backends.cuda.api.runtime.CUDARuntimeError: ``'<name>: <message>'``, with .status."""

    def __init__(self, status):
        self.status = status
        name, msg = _CUDA_ERRORS[status]
        super().__init__(f"{name}: {msg}")


_CUDA_ERRORS = {
    401: ("cudaErrorIllegalState", "the operation cannot be performed in the present state"),
    900: ("cudaErrorStreamCaptureUnsupported", "operation not permitted when stream is capturing"),
    901: ("cudaErrorStreamCaptureInvalidated",
          "operation failed due to a previous error during capture"),
}
CUBLAS_UNDER_CAPTURE = "calling cuBLAS API during stream capture is currently unsupported"
"""cupy_backends/cuda/libs/cublas.pyx, setStream: every cuBLAS call checks the stream first."""


def _capturing():
    """The capture of the current stream, or None."""
    stream = STATE.streams[-1] if STATE.streams else None
    return getattr(stream, "_capture", None)


def _capture_check(what):
    """What CUDA and CuPy refuse on a capturing stream: a host synchronisation or a synchronous
    host-to-device copy (CUDA: cudaErrorStreamCaptureUnsupported, and the capture is
    invalidated), a cuBLAS call (CuPy: NotImplementedError, before any CUDA call)."""
    capture = _capturing()
    if capture is None:
        return
    if what == "cublas":
        raise NotImplementedError(CUBLAS_UNDER_CAPTURE)
    if what in ("sync", "h2d"):
        capture.invalid = True
        raise CUDARuntimeError(900)


def _run_or_record(fn):
    """Work that writes existing arrays: run now, or, while capturing, record it for replay
    (a capture runs nothing: no array changes until the graph is launched)."""
    capture = _capturing()
    if capture is None:
        return fn()
    capture.ops.append(fn)
    return None


def _new_result(fn):
    """Work whose result is a new array: computed now (on whatever the inputs hold, touching
    nothing that exists), and while capturing also recorded to recompute into the same buffer
    at each replay."""
    capture = _capturing()
    if capture is None:
        return fn()
    with np.errstate(all="ignore"):
        r = fn()
    if isinstance(r, np.generic):
        r = np.asarray(r)
    if isinstance(r, np.ndarray):
        capture.ops.append(lambda: np.copyto(r, fn()))
    elif isinstance(r, tuple) and all(isinstance(v, np.ndarray) for v in r):
        def again():
            for dst, src in zip(r, fn()):
                np.copyto(dst, src)
        capture.ops.append(again)
    return r


# --- arrays -----------------------------------------------------------------------------------
_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
             "construct a NumPy array explicitly.")


def _host_check(x):
    if isinstance(x, np.ndarray) and x.ndim > 0:
        raise TypeError(f"Unsupported type {type(x)}")


def _unwrap(x, host_ok=False):
    """Device arrays -> their NumPy buffer; a non-scalar numpy.ndarray raises unless host_ok."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, host_ok) for v in x)
    if not host_ok:
        _host_check(x)
    return x


def _wrap(r):
    if isinstance(r, np.ndarray):
        return ndarray._of(r)
    if isinstance(r, np.generic):
        return ndarray._of(np.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap(v) for v in r)
    return r


def _basic_key(key):
    key = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer))
               and not isinstance(k, bool) for k in key), key


def _index(key):
    """Index components to NumPy; host arrays or lists in an index are copied to the device."""
    key = key if isinstance(key, tuple) else (key,)
    out = []
    for k in key:
        if isinstance(k, ndarray):
            out.append(k._a)
        elif isinstance(k, (np.ndarray, list)):
            _record("h2d", "index")
            out.append(np.asarray(k))
        else:
            out.append(k)
    return tuple(out)


_VIEW_METHODS = {"reshape", "view", "transpose", "swapaxes", "squeeze", "diagonal"}
_SYNC_METHODS = {"item", "tolist", "tobytes", "tofile", "dump", "dumps"}
_NDARRAY_ATTRS = set(API["ndarray"])
_INPLACE_METHODS = {"fill", "sort", "partition", "put", "itemset"}
_INPLACE_FUNCTIONS = {"put", "place", "putmask", "fill_diagonal", "put_along_axis"}
_CUBLAS_METHODS = {"dot"}
_CUBLAS_FUNCTIONS = {"dot", "vdot", "inner", "tensordot", "einsum", "matmul", "kron"}


class ndarray:
    """A device array of the emulation: a NumPy buffer behind CuPy's rules."""

    __slots__ = ("_a",)
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a):
        obj = object.__new__(cls)
        obj._a = a
        return obj

    # metadata (no device work)
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    mT = property(lambda self: ndarray._of(self._a.mT))
    real = property(lambda self: ndarray._of(self._a.real))
    imag = property(lambda self: ndarray._of(self._a.imag))
    base = property(lambda self: None if self._a.base is None else ndarray._of(self._a.base))
    device = property(lambda self: _Device(0))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield self[i]

    # host conversion: explicit only, and each one a synchronisation
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order="C", out=None, blocking=True):
        _record("syncs", "get")
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        _record("h2d", "set")
        self._a[...] = arr

    def _sync(self, what):
        _record("syncs", what)
        return self._a

    def __float__(self):
        return float(self._sync("float()"))

    def __int__(self):
        return int(self._sync("int()"))

    def __complex__(self):
        return complex(self._sync("complex()"))

    def __bool__(self):
        return bool(self._sync("bool()"))

    def __repr__(self):
        return repr(self._sync("repr()"))

    def __str__(self):
        return str(self._sync("str()"))

    def __format__(self, spec):
        return format(self._sync("format()")[()] if self._a.ndim == 0 else self._a, spec)

    # NumPy protocols: ufuncs and functions CuPy has run on the device; the rest fail
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or API["module"].get(ufunc.__name__, {}).get("kind") != "ufunc":
            return NotImplemented
        return _ufunc(ufunc.__name__)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        name = func.__name__
        if API["module"].get(name, {}).get("kind") not in ("function", "ufunc"):
            return NotImplemented
        try:
            fn = getattr(MODULE, name)
        except AttributeError:
            return NotImplemented
        return fn(*args, **kwargs)

    # indexing
    def __getitem__(self, key):
        basic, k = _basic_key(key)
        if basic:
            if Ellipsis not in k:
                k = k + (Ellipsis,)            # scalar indexing -> a 0-d view, as in CuPy
            return ndarray._of(self._a[k])
        _record("launches", "take")
        a, index = self._a, _index(key)
        if any(isinstance(k, np.ndarray) and k.dtype == bool for k in index):
            _record("syncs", "boolean mask")      # CuPy: int(mask_scanned[-1]), the result size
        return ndarray._of(_new_result(lambda: np.asarray(a[index])))

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray) and value.ndim > 0:
            _record("h2d", "setitem")
        _record("launches", "setitem")
        basic, k = _basic_key(key)
        index = k if basic else _index(key)
        if not basic and any(isinstance(i, np.ndarray) and i.dtype == bool for i in index):
            _record("syncs", "boolean mask")
        a, v = self._a, _unwrap(value, host_ok=True)

        def write():
            a[index] = v
        _run_or_record(write)

    # methods: only those CuPy's ndarray has
    def __getattr__(self, name):
        if name not in _NDARRAY_ATTRS or name.startswith("_"):
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        attr = getattr(self._a, name, None)
        if attr is None:
            raise AttributeError(f"cupy.ndarray.{name}: in CuPy 14 but not emulated")
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            if name in _SYNC_METHODS:
                _record("syncs", name)
            elif name not in _VIEW_METHODS:
                _record("launches", name)
            if name in _CUBLAS_METHODS:
                _capture_check("cublas")
            out = kwargs.get("out")
            a, kw = _unwrap(args), {k: _unwrap(v) for k, v in kwargs.items()}
            if name in _SYNC_METHODS or name in _VIEW_METHODS:
                r = attr(*a, **kw)
                return r if name in _SYNC_METHODS else _wrap(r)
            if isinstance(out, ndarray) or name in _INPLACE_METHODS:
                _run_or_record(lambda: attr(*a, **kw))
                return out if isinstance(out, ndarray) else None
            return _wrap(_new_result(lambda: attr(*a, **kw)))
        return method

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self._a.dtype:
            return self
        _record("launches", "astype")
        a = self._a
        return ndarray._of(_new_result(lambda: a.astype(dtype, order=order)))

    def copy(self, order="C"):
        _record("launches", "copy")
        a = self._a
        return ndarray._of(_new_result(lambda: a.copy(order=order)))

    def reshape(self, *shape, order="C"):
        return ndarray._of(self._a.reshape(*shape, order=order))


ndarray.__module__ = "cupy"
ndarray.__qualname__ = "ndarray"


def _operator(ufunc_name, reflected=False, inplace=False):
    def op(self, other):
        if inplace:
            _ufunc(ufunc_name)(self, other, out=self)
            return self
        return _ufunc(ufunc_name)(*((other, self) if reflected else (self, other)))
    return op


_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
           "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul",
           "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
           "lshift": "left_shift", "rshift": "right_shift"}
for _d, _u in _BINARY.items():
    setattr(ndarray, f"__{_d}__", _operator(_u))
    setattr(ndarray, f"__r{_d}__", _operator(_u, reflected=True))
    if _d != "matmul":
        setattr(ndarray, f"__i{_d}__", _operator(_u, inplace=True))
for _d, _u in {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
               "eq": "equal", "ne": "not_equal"}.items():
    setattr(ndarray, f"__{_d}__", _operator(_u))
for _d, _u in {"neg": "negative", "pos": "positive", "abs": "absolute", "invert": "invert"}.items():
    setattr(ndarray, f"__{_d}__", lambda self, _u=_u: _ufunc(_u)(self))


# --- module functions ---------------------------------------------------------------------------
def _check_kwargs(qualname, params, kwargs):
    if params is None or any(p.startswith("**") for p in params):
        return
    allowed = {p.lstrip("*") for p in params if not p.startswith("*")}
    for k in kwargs:
        if k not in allowed:
            raise TypeError(f"{qualname}() got an unexpected keyword argument {k!r}")


_UFUNC_KWARGS = {"out", "dtype", "casting"}
_UFUNCS = {}


def _ufunc(name):
    if name not in _UFUNCS:
        _UFUNCS[name] = _Ufunc(name)
    return _UFUNCS[name]


class _Ufunc:
    def __init__(self, name):
        self.__name__ = name
        self._np = getattr(np, name)

    def __repr__(self):
        return f"<ufunc 'cupy_{self.__name__}'>"

    def __call__(self, *args, **kwargs):
        name = self.__name__
        allowed = _UFUNC_KWARGS if name != "matmul" else \
            {p for p in API["module"].get("matmul", {}).get("params") or () if not p.startswith("*")} | _UFUNC_KWARGS
        for k in kwargs:
            if k not in allowed:
                raise TypeError(f"Wrong arguments {{{k!r}}}" if name != "matmul"
                                else f"matmul() got an unexpected keyword argument {k!r}")
        out = kwargs.get("out")
        if isinstance(out, tuple):
            out = out[0] if len(out) == 1 else out
            kwargs["out"] = out
        if out is not None and not isinstance(out, ndarray):
            raise TypeError(f"Output arguments must be cupy arrays, got {type(out)}")
        if name == "matmul" and out is not None and STATE.rules == 13 and \
                any(getattr(a, "ndim", 0) == 1 for a in (*args, out)):
            raise ValueError("axes don't match array")     # CuPy 13's GUFunc path
        a = [_unwrap(x) for x in args]
        _record("launches", name)
        if name == "matmul":
            _capture_check("cublas")               # cuBLAS (gemmEx) behind every matmul
        kw, fn = {k: _unwrap(v) for k, v in kwargs.items()}, self._np
        if out is not None:
            _run_or_record(lambda: fn(*a, **kw))
            return out
        return _wrap(_new_result(lambda: fn(*a, **kw)))


_SYNC_FUNCTIONS = {"bincount", "nonzero", "argwhere", "flatnonzero", "unique", "extract",
                   "compress"}
"""Functions whose output size CuPy reads on the host (a synchronisation): bincount
(``int(cupy.max(x)) + 1``), nonzero and the others sized by the data."""

_NO_LAUNCH = {"empty", "empty_like", "shape", "ndim", "size", "result_type", "can_cast",
              "reshape", "transpose", "swapaxes", "squeeze", "expand_dims", "broadcast_to",
              "atleast_1d", "atleast_2d", "isscalar", "iscomplexobj", "min_scalar_type",
              "promote_types", "may_share_memory", "shares_memory"}


def _function(name):
    params = API["module"][name].get("params")
    fn_np = getattr(np, name, None)
    if fn_np is None:
        return None

    def fn(*args, **kwargs):
        _check_kwargs(name, params, kwargs)
        if name in ("save", "savez", "savez_compressed", "savetxt"):
            _record("syncs", name)
        elif name not in _NO_LAUNCH:
            _record("launches", name)
        if name in _CUBLAS_FUNCTIONS:
            _capture_check("cublas")
        if name in _SYNC_FUNCTIONS:
            _record("syncs", name)                  # CuPy reads a size on the host first
        out = kwargs.get("out")
        a, kw = _unwrap(args), {k: _unwrap(v) for k, v in kwargs.items()}
        if name in _NO_LAUNCH or name in ("save", "savez", "savez_compressed", "savetxt"):
            r = fn_np(*a, **kw)
        elif isinstance(out, ndarray) or name in _INPLACE_FUNCTIONS:
            _run_or_record(lambda: fn_np(*a, **kw))
            return out
        else:
            r = _new_result(lambda: fn_np(*a, **kw))
        return out if isinstance(out, ndarray) else _wrap(r)
    fn.__name__ = name
    return fn


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray):
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a
        _record("launches", "astype")
        src = a._a
        return ndarray._of(_new_result(lambda: src.astype(dtype)))
    _record("h2d", "asarray")
    return ndarray._of(np.array(_unwrap(a, host_ok=True), dtype=dtype, order=order or "K"))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        _record("launches", "copy")
        src = obj._a
        return ndarray._of(_new_result(lambda: np.array(src, dtype=dtype, order=order, ndmin=ndmin)))
    _record("h2d", "array")
    return ndarray._of(np.array(_unwrap(obj, host_ok=True), dtype=dtype, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray):
        if a._a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        _record("launches", "copy")
        src = a._a
        return ndarray._of(_new_result(lambda: np.ascontiguousarray(src, dtype=dtype)))
    return asarray(np.ascontiguousarray(a, dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def unravel_index(indices, dims, order="C"):
    """CuPy's (cupy/_indexing/generate.py): ``cupy.can_cast(indices, int64, 'same_kind')`` first,
    which raises TypeError for a Python int under NumPy 2; two ``.any()`` checks synchronise."""
    if not np.can_cast(_unwrap(indices), np.int64, "same_kind"):
        raise TypeError(f"Iterator operand 0 dtype could not be cast from dtype('{indices.dtype}') "
                        f"to dtype('int64') according to the rule 'same_kind'")
    _record("syncs", "unravel_index (indices < 0).any()")
    _record("syncs", "unravel_index (indices > 0).any()")
    _record("launches", "unravel_index")
    return _wrap(np.unravel_index(_unwrap(indices), dims, order=order))


def get_array_module(*args):
    return MODULE if any(isinstance(a, ndarray) for a in args) else np


def copyto(dst, src, casting="same_kind", where=None):
    if not isinstance(dst, ndarray):
        raise TypeError(f"Unsupported type {type(dst)}")
    _record("launches", "copyto")
    d, v = dst._a, _unwrap(src)
    kw = {} if where is None else {"where": _unwrap(where)}
    _run_or_record(lambda: np.copyto(d, v, casting=casting, **kw))


# --- user kernels ------------------------------------------------------------------------------
TWINS = {}
"""kernel name -> NumPy twin ``f(*inputs, *outputs)``: what runs where no C++ compiler is found
(for ElementwiseKernels not in tinygan.fast.kernels, which carry their own twins)."""


def _twin(name):
    if name in TWINS:
        return TWINS[name]
    from tinygan.fast.kernels import KERNELS         # the core's fused kernels carry their twins
    if name in KERNELS:
        return KERNELS[name].numpy_twin
    raise NotImplementedError(f"CuPy emulation: no C++ compiler and no NumPy twin for "
                              f"ElementwiseKernel {name!r} (register one in cupy_emulation.TWINS)")


def compiled_bodies():
    """True when ElementwiseKernels run their CUDA bodies compiled for the host (g++ found)."""
    return host_kernels.COMPILER is not None and STATE.compile


class ElementwiseKernel:
    """CuPy 14's ElementwiseKernel: the CUDA body compiled for the host (host_kernels.py: g++,
    float32 with CUDA's -ftz emulated) and run on the arrays' buffers, one launch counted per
    call; CuPy's type decision and checks (``TypeError: Type is mismatched. ...``). Where no
    C++ compiler exists, the kernel's NumPy twin (found by name) runs instead."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True,
                 preamble="", no_return=False, return_tuple=False, **kwargs):
        _check_kwargs("ElementwiseKernel", ["options", "loop_prep", "after_loop"], kwargs)
        self._host = host_kernels.HostKernel(in_params, out_params, operation, name, preamble,
                                             ftz=True)
        self.in_params, self.out_params = in_params, out_params
        self.operation, self.name, self.preamble = operation, name, preamble
        self.no_return, self.return_tuple = no_return, return_tuple
        self.nin, self.nout = len(self._host.in_params), len(self._host.out_params)

    def __call__(self, *args, size=None, block_size=None, stream=None):
        for a in args:
            if not isinstance(a, ndarray):
                _host_check(a)
        host_args = [_unwrap(a) for a in args]
        ins, outs, *_ = self._host.prepare(host_args, size)
        given = args[self.nin:]
        if given and not all(isinstance(o, ndarray) for o in given):
            raise TypeError("Output arguments type must be cupy.ndarray")
        _record("launches", f"kernel:{self.name}")
        _capture_check("kernel")
        run = (lambda: self._host(*ins, *outs, size=size)) if compiled_bodies() else \
            (lambda: _twin(self.name)(*ins, *outs))
        _run_or_record(run)
        results = list(given) if given else [ndarray._of(o) for o in outs]
        if self.no_return:
            return None
        return tuple(results) if (self.nout > 1 or self.return_tuple) else results[0]


# --- random --------------------------------------------------------------------------------------
class _GeneratorState:
    """Stands for CuPy's ``bit_generator._state`` (the cuRAND states, a device array): ``copy()``
    snapshots the stream, ``state[...] = snapshot`` puts it back."""

    def __init__(self, np_generator):
        self._g = np_generator

    def copy(self):
        return _GeneratorState(copy.deepcopy(self._g))

    def __setitem__(self, key, snapshot):
        def restore():
            self._g.bit_generator.state = snapshot._g.bit_generator.state
        _run_or_record(restore)


class BitGenerator:
    def __init__(self, seed=None, *, size=-1):
        if isinstance(seed, Generator):
            seed = seed.bit_generator
        if isinstance(seed, BitGenerator):
            seed = seed._seq
        self._seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self._np = np.random.Generator(np.random.PCG64(self._seq))
        self._state = _GeneratorState(self._np)     # the draws advance this, as cuRAND's states

    def state(self):
        """A device pointer in CuPy (an int): there is no restorable state dict."""
        return id(self)

    def random_raw(self, size=None, out=False):
        _record("launches", "random_raw")
        g = self._np
        return ndarray._of(_draw(g, lambda g: g.integers(0, 2 ** 32, size=size, dtype=np.uint64)))


def _draw(g, fn):
    """A draw from numpy Generator g: now, or while capturing, recorded to draw afresh into the
    same buffer at each replay (the generator advances at replay only, as cuRAND's states)."""
    if _capturing() is None:
        return np.asarray(fn(g))
    r = np.asarray(fn(copy.deepcopy(g)))            # its shape and dtype, the stream untouched
    _capturing().ops.append(lambda: np.copyto(r, fn(g)))
    return r


class XORWOW(BitGenerator):
    pass


class Generator:
    def __init__(self, bit_generator):
        self.bit_generator = bit_generator

    def __getattr__(self, name):
        if name.startswith("_") or name not in API["Generator"]:
            raise AttributeError(f"'cupy.random._generator_api.Generator' object has no "
                                 f"attribute {name!r}")
        params = API["Generator"][name]

        def draw(*args, **kwargs):
            _check_kwargs(f"Generator.{name}", params, kwargs)
            _record("launches", f"random.{name}")
            dtype = kwargs.pop("dtype", None)
            out = kwargs.pop("out", None)

            def fn(g):
                fn_np = getattr(g, name)
                try:
                    return fn_np(*args, **kwargs, **({} if dtype is None else {"dtype": dtype}))
                except TypeError:
                    r = fn_np(*args, **kwargs)
                    return np.asarray(r).astype(dtype) if dtype is not None else r
            g = self.bit_generator._np
            if out is not None:
                dst = out._a

                def into():
                    dst[...] = fn(g)
                _run_or_record(into)
                return out
            return _wrap(_draw(g, fn))
        return draw


def default_rng(seed=None):
    return Generator(XORWOW(seed))


# --- cuda ------------------------------------------------------------------------------------------
class _Capture:
    def __init__(self):
        self.ops, self.invalid = [], False


class Stream:
    """cupy.cuda.Stream: ``with stream:`` makes it current; begin_capture / end_capture record
    the work issued on it into a :class:`Graph` instead of running it (cupy/cuda/stream.pyx)."""

    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0 if null else id(self)
        self.device_id = -1 if null else 0
        self._capture = None

    def __enter__(self):
        STATE.streams.append(self)
        return self

    def __exit__(self, *exc):
        STATE.streams.remove(self)
        return False

    def use(self):
        STATE.streams.append(self)
        return self

    def synchronize(self):
        if self._capture is not None:
            self._capture.invalid = True
            raise CUDARuntimeError(900)
        _record("syncs", "stream.synchronize")

    def begin_capture(self, mode=None):
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if self._capture is not None:
            raise CUDARuntimeError(401)
        self._capture = _Capture()

    def end_capture(self):
        capture, self._capture = self._capture, None
        if capture is None:
            raise CUDARuntimeError(401)
        if capture.invalid:
            raise CUDARuntimeError(901)
        return Graph(capture.ops)

    def is_capturing(self):
        return self._capture is not None


Stream.null = Stream(null=True)


class Graph:
    """cupy.cuda.Graph: launch() replays every recorded operation, in order (one launch)."""

    def __init__(self, ops):
        self._ops = list(ops)

    def launch(self, stream=None):
        _record("launches", "graph.launch")
        if _capturing() is not None:
            raise CUDARuntimeError(900)
        for op in self._ops:
            op()

    def upload(self, stream=None):
        pass


class MemoryPool:
    def malloc(self, size):
        return None

    def used_bytes(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass


@contextlib.contextmanager
def using_allocator(allocator=None):
    yield


def get_current_stream(device_id=-1):
    return STATE.streams[-1] if STATE.streams else Stream.null


class _Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        self.compute_capability = "90"

    def synchronize(self):
        if _capturing() is not None:
            _capturing().invalid = True
            raise CUDARuntimeError(900)
        _record("syncs", "device.synchronize")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


DEVICE_NAME = "CuPy emulation (NumPy on the host)"


def _cuda_module():
    cuda = types.ModuleType("cupy.cuda")
    cuda.is_available = lambda: True
    cuda.get_current_stream = get_current_stream
    cuda.Device = _Device
    cuda.Stream = Stream
    cuda.Graph = Graph
    cuda.MemoryPool = MemoryPool
    cuda.using_allocator = using_allocator
    rt = types.ModuleType("cupy.cuda.runtime")
    rt.getDeviceProperties = lambda device: {"name": DEVICE_NAME.encode(), "major": 0, "minor": 0,
                                             "totalGlobalMem": 0, "multiProcessorCount": 0}
    rt.getDeviceCount = lambda: 1
    rt.runtimeGetVersion = lambda: 0
    rt.driverGetVersion = lambda: 0
    rt.CUDARuntimeError = CUDARuntimeError
    cuda.runtime = rt
    cuda.EMULATED = True
    return cuda


# --- the module ------------------------------------------------------------------------------------
_SPECIAL = {"ndarray": ndarray, "asarray": asarray, "array": array, "asnumpy": asnumpy,
            "ascontiguousarray": ascontiguousarray, "get_array_module": get_array_module,
            "copyto": copyto, "ElementwiseKernel": ElementwiseKernel,
            "unravel_index": unravel_index}


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        entry = self._api.get(name)
        if entry is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        kind = entry["kind"]
        if kind == "ufunc" and hasattr(np, name):
            value = _ufunc(name)
        elif kind == "function" and self.__name__ == "cupy":
            value = _function(name)
        elif kind in ("constant", "type") and self.__name__ == "cupy":
            value = getattr(np, name, None)
        else:
            value = None
        if value is None:
            raise AttributeError(f"{self.__name__}.{name}: in CuPy 14 but not emulated")
        setattr(self, name, value)
        return value


def _make_module():
    cupy = _Module("cupy", "CuPy emulation (tinygan.testing.cupy_emulation)")
    cupy._api = API["module"]
    cupy.__version__ = API["cupy_version"] + "+emulated"
    cupy.__file__ = __file__
    cupy.EMULATED = True
    for k, v in _SPECIAL.items():
        setattr(cupy, k, v)
    rnd = _Module("cupy.random")
    rnd._api = API["random"]
    rnd.default_rng, rnd.Generator, rnd.XORWOW, rnd.BitGenerator = \
        default_rng, Generator, XORWOW, BitGenerator
    cupy.random = rnd
    cupy.cuda = _cuda_module()
    lin = _Module("cupy.linalg")
    lin._api = API["linalg"]
    cupy.linalg = lin
    return cupy


MODULE = _make_module()
_SUBMODULES = {"cupy": MODULE, "cupy.random": MODULE.random, "cupy.cuda": MODULE.cuda,
               "cupy.cuda.runtime": MODULE.cuda.runtime, "cupy.linalg": MODULE.linalg}


def set_rules(rules):
    rules = int(rules)
    if rules not in RULES:
        raise ValueError(f"CuPy emulation rules must be one of {RULES}, got {rules}")
    STATE.rules = rules


def install(rules=14):
    """Put the emulation in sys.modules as ``cupy`` (and its submodules). Returns the module."""
    set_rules(rules)
    sys.modules.update(_SUBMODULES)
    return MODULE


@contextlib.contextmanager
def installed(rules=14):
    """The emulation as ``cupy`` inside the block; whatever was there before comes back after."""
    saved = {k: sys.modules.get(k) for k in _SUBMODULES}
    old_rules = STATE.rules
    try:
        yield install(rules)
    finally:
        STATE.rules = old_rules
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def subprocess_env(rules=14, env=None):
    """An environment in which ``import cupy`` in a child Python gives the emulation."""
    env = dict(os.environ if env is None else env)
    repo = str(HERE.parents[2])
    env["PYTHONPATH"] = os.pathsep.join([str(SHIM), repo] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env[ENV] = str(rules)
    return env
