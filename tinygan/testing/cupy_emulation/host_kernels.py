"""A CuPy ``ElementwiseKernel``'s CUDA body, compiled for the host with g++ and run on NumPy buffers.

The emulation's ElementwiseKernel runs the kernel's own CUDA text through this module, so the
code a GPU would run is the code the tests run. What CuPy's generator writes
(``cupy/_core/_kernel.pyx``, ``_get_elementwise_kernel_code``) and what is written here instead:

    CuPy (device)                                 here (host C++)
    typedef float T;  (the type map)              the same
    extern "C" __global__ void name(CArray ...)   extern "C" void name(n, void** args, steps)
    CUPY_FOR(i, _ind.size()) {                    for (ptrdiff_t i = 0; i < n; ++i) {
      const T &x = _raw_x[_ind.get()];              const T &x = _raw_x[i * step_x];
      T &y = _raw_y[_ind.get()];                    T &y = _raw_y[i * step_y];
      <operation>                                   <operation>
    raw arguments: CArray, indexed in C order     a pointer to a C-contiguous buffer
    CUDA math (exp, fabs, log1p, fmax, tanh)      <cmath> (float and double overloads)
    -ftz=true (float32 denormals flushed)         optional: the x86 FTZ/DAZ bits while it runs

Non-raw arguments are read at ``i``, or at 0 when 0-d or a scalar (step 0); partly broadcast
or non-contiguous arrays are copied to contiguous buffers first, outputs copied back after.
Types are decided as CuPy decides them (``decide_types``: its exact ``TypeError`` messages).

Each (source, types) is compiled once, cached on disk under ``cache_dir()`` by the hash of the
source and the compiler, and loaded with ctypes; within a process it is compiled at most once.
Where no C++ compiler is found, ``COMPILER`` is None and the emulation falls back to the
kernels' NumPy twins (the tests of this module skip, saying so in one line).
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

COMPILER = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++") or shutil.which("c++")
NO_COMPILER = "no C++ compiler (g++) on PATH: the CUDA bodies cannot be compiled for the host"
FLAGS = ("-O2", "-shared", "-fPIC", "-std=c++17", "-ffp-contract=off", "-fno-fast-math")

C_TYPES = {"bool": "bool", "int8": "signed char", "uint8": "unsigned char", "int16": "short",
           "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int",
           "int64": "long long", "uint64": "unsigned long long", "float32": "float",
           "float64": "double"}


def c_type(dtype):
    """numpy dtype -> the C type CuPy's generator names it (``_scalar.get_typename``)."""
    name = np.dtype(dtype).name
    if name not in C_TYPES:
        raise NotImplementedError(f"the host build of CUDA bodies has no C type for {name}")
    return C_TYPES[name]


class Param:
    """One 'type name' or 'raw type name' of an ElementwiseKernel (CuPy's ParameterInfo)."""

    def __init__(self, text, is_const):
        words = text.split()
        if len(words) < 2:
            raise Exception(f"Syntax error: {text}")
        t, self.name = words[-2:]
        self.raw = False
        for w in words[:-2]:
            if w != "raw":
                raise Exception(f'Unknown keyword "{w}"')
            self.raw = True
        self.ctype = t if len(t) == 1 else None                 # a type placeholder (T, U, ...)
        self.dtype = None if len(t) == 1 else np.dtype(t)
        self.is_const = is_const


def parse_params(spec, is_const):
    spec = spec.strip()
    return tuple(Param(p, is_const) for p in spec.split(",")) if spec else ()


def decide_types(in_params, out_params, in_dtypes, out_dtypes):
    """CuPy's ``_decide_params_type_core``: each placeholder's dtype from the array arguments
    (outputs first, then inputs; scalars decide nothing); every disagreement is CuPy's
    ``TypeError('Type is mismatched. ...')``. Returns (in_types, out_types, {placeholder: dtype})."""
    types = {}
    for params, dtypes in ((out_params, out_dtypes), (in_params, in_dtypes)):
        for p, a in zip(params, dtypes):
            if a is None:
                if params is out_params:
                    raise TypeError("Output arguments must be cupy.ndarray")
                continue
            if p.dtype is not None:
                if np.dtype(a) != p.dtype:
                    raise TypeError(f"Type is mismatched. {p.name} {np.dtype(a)} {p.dtype}")
            elif p.ctype in types:
                if np.dtype(types[p.ctype]) != np.dtype(a):
                    raise TypeError(f"Type is mismatched. {p.name} {np.dtype(a)} "
                                    f"{np.dtype(types[p.ctype])} {p.ctype}")
            else:
                types[p.ctype] = np.dtype(a)
    in_types = tuple(types[p.ctype] if p.dtype is None else p.dtype for p in in_params)
    out_types = tuple(types[p.ctype] if p.dtype is None else p.dtype for p in out_params)
    return in_types, out_types, types


def host_source(name, in_params, out_params, operation, types, preamble="", ftz=False):
    """The host C++ translation unit of one kernel for one type map (see the module doc)."""
    lines = ["#include <cmath>", "#include <math.h>", "#include <cstddef>", "#include <cstdint>"]
    if ftz:
        lines.append("#include <xmmintrin.h>")
    lines.append("using namespace std;")
    lines += [f"typedef {c_type(dt)} {ph};" for ph, dt in sorted(types.items())]
    lines.append(preamble)
    lines.append(f'extern "C" void {name}(ptrdiff_t _n, void **_args, const ptrdiff_t *_steps) {{')
    if ftz:      # CUDA's -ftz=true: denormal results flushed to 0 (FTZ), denormal inputs read as 0 (DAZ)
        lines.append("  const unsigned int _csr = _mm_getcsr(); _mm_setcsr(_csr | 0x8040);")
    params = in_params + out_params
    for j, p in enumerate(params):
        t = p.ctype or c_type(p.dtype)
        const = "const " if p.is_const else ""
        var = p.name if p.raw else f"_raw_{p.name}"
        lines.append(f"  {const}{t} *{var} = ({const}{t} *)_args[{j}];")
    lines.append("  for (ptrdiff_t i = 0; i < _n; ++i) {")
    for j, p in enumerate(params):
        if not p.raw:
            t = p.ctype or c_type(p.dtype)
            const = "const " if p.is_const else ""
            lines.append(f"    {const}{t} &{p.name} = _raw_{p.name}[i * _steps[{j}]];")
    lines.append(operation)
    lines.append("  }")
    if ftz:
        lines.append("  _mm_setcsr(_csr);")
    lines.append("}")
    return "\n".join(lines) + "\n"


def cache_dir():
    """Where compiled bodies are kept: $TINYGAN_HOST_KERNEL_CACHE, else ~/.cache/tinygan/host-kernels."""
    env = os.environ.get("TINYGAN_HOST_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinygan" / "host-kernels"


_LOADED = {}
COMPILES = []
"""The sources this process compiled (cache misses), for tests of the cache."""


def compile_source(name, source):
    """The ctypes function ``name`` of ``source``, compiled once (memory, then disk cache)."""
    if COMPILER is None:
        raise RuntimeError(NO_COMPILER)
    key = hashlib.sha256("\0".join((COMPILER, *FLAGS, source)).encode()).hexdigest()[:24]
    if key not in _LOADED:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        lib = folder / f"{name}-{key}.so"
        if not lib.exists():
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                src = Path(tmp) / f"{name}.cpp"
                src.write_text(source)
                out = Path(tmp) / "k.so"
                proc = subprocess.run([COMPILER, *FLAGS, str(src), "-o", str(out)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"host build of CUDA kernel {name!r} failed:\n"
                                       f"{proc.stderr.strip()}\n--- source ---\n{source}")
                os.replace(out, lib)                  # atomic: a racing process loads either
            COMPILES.append(source)
        fn = getattr(ctypes.CDLL(str(lib)), name)
        fn.restype = None
        fn.argtypes = [ctypes.c_ssize_t, ctypes.POINTER(ctypes.c_void_p),
                       ctypes.POINTER(ctypes.c_ssize_t)]
        _LOADED[key] = fn
    return _LOADED[key]


class HostKernel:
    """An ElementwiseKernel's body compiled for the host: call with NumPy arrays / scalars
    (inputs, then outputs, or inputs only), as CuPy's ``ElementwiseKernel.__call__``."""

    def __init__(self, in_params, out_params, operation, name="kernel", preamble="", ftz=False):
        self.in_params = parse_params(in_params, True)
        self.out_params = parse_params(out_params, False)
        if "i" in [p.name for p in self.in_params + self.out_params]:
            raise ValueError("Can not use 'i' as a parameter name")
        self.operation, self.name, self.preamble, self.ftz = operation, name, preamble, ftz

    def source(self, types):
        """The host C++ for this type map. -ftz touches float32 only: no FTZ where a double is."""
        dtypes = list(types.values()) + [p.dtype for p in self.in_params + self.out_params]
        ftz = self.ftz and not any(d is not None and d == np.float64 for d in dtypes)
        return host_source(self.name, self.in_params, self.out_params, self.operation, types,
                           self.preamble, ftz)

    def prepare(self, args, size=None):
        """CuPy's checks and type decision: (inputs, outputs, in_types, out_types, types, shape)."""
        nin, nout = len(self.in_params), len(self.out_params)
        if len(args) not in (nin, nin + nout):
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either "
                            f"{nin} or {nin + nout} (with outputs), but given {len(args)}.")
        ins, outs = list(args[:nin]), list(args[nin:])
        params = self.in_params + self.out_params
        arrays = [a for a, p in zip(ins + outs, params) if isinstance(a, np.ndarray) and not p.raw]
        if size is not None:
            if arrays:
                raise ValueError("Specified 'size' can be used only if all of the ndarray are 'raw'.")
            shape = (int(size),)
        elif not arrays:
            raise ValueError("Loop size is undecided.")
        else:
            shape = np.broadcast_shapes(*(a.shape for a in arrays))
        in_types, out_types, types = decide_types(
            self.in_params, self.out_params,
            [a.dtype if isinstance(a, np.ndarray) else None for a in ins],
            [a.dtype if isinstance(a, np.ndarray) else None for a in outs])
        if not outs:
            if any(p.raw for p in self.out_params) and size is None:
                raise ValueError("Output array size is Undecided")
            outs = [np.empty(shape, t) for t in out_types]
        for a, p in zip(outs, self.out_params):
            if not isinstance(a, np.ndarray):
                raise TypeError("Output arguments type must be cupy.ndarray")
            if not p.raw and a.shape != shape:
                raise ValueError("Out shape is mismatched")
        return ins, outs, in_types, out_types, types, shape

    def __call__(self, *args, size=None):
        ins, outs, in_types, _, types, shape = self.prepare(args, size)
        n = int(np.prod(shape, dtype=np.int64))
        if n == 0:
            return outs
        fn = compile_source(self.name, self.source(types))
        buffers, steps, copy_back = [], [], []
        for j, (a, p) in enumerate(zip(ins + outs, self.in_params + self.out_params)):
            is_out = j >= len(ins)
            if not isinstance(a, np.ndarray):                       # a scalar: cast to its type
                b, step = np.array(a, dtype=in_types[j]).reshape(1), 0
            elif p.raw:
                b, step = np.ascontiguousarray(a), 1
            elif a.ndim == 0 or a.size == 1 and not is_out and a.shape != shape:
                b, step = np.ascontiguousarray(a).reshape(1), 0
            else:
                b = a if a.shape == shape else np.broadcast_to(a, shape)
                b, step = np.ascontiguousarray(b), 1
            if is_out and b is not a and not np.shares_memory(a, b):
                copy_back.append((a, b))             # a non-contiguous output: written back
            buffers.append(b)
            steps.append(step)
        ptrs = (ctypes.c_void_p * len(buffers))(*(b.ctypes.data for b in buffers))
        fn(n, ptrs, (ctypes.c_ssize_t * len(steps))(*steps))
        for a, b in copy_back:
            a[...] = b.reshape(a.shape)
        return outs
