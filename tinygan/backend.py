"""The array backend: the one module that knows whether NumPy or CuPy is underneath.

Every compute module receives a :class:`Backend` and uses ``backend.xp`` (the array
module), ``backend.dtype`` and ``backend.rng``; none of them imports numpy or cupy.

    >>> be = get_backend("numpy", dtype="float32", seed=0)
    >>> x = be.asarray([[1, 2], [3, 4]])       # host data -> backend array (float32)
    >>> be.to_numpy(x * 2)                     # backend array -> numpy.ndarray
"""

import sys

import numpy

from .errors import BackendError, check_choice

BACKENDS = ("numpy", "cupy", "auto")
DTYPES = ("float32", "float64")

_CUPY_MISSING = ('CuPy is not installed. Install the GPU extra: pip install "tinygan[gpu]" '
                 '(CUDA 12) or pip install "tinygan[gpu-cuda13]" (CUDA 13), '
                 'or use --backend numpy.')
_NO_DEVICE = ("CuPy is installed but no CUDA device is usable (cupy.cuda.is_available() is "
              "False): check the NVIDIA driver and CUDA_VISIBLE_DEVICES, or use --backend numpy.")


def _import_cupy():
    """Return the cupy module, or None when it is not installed."""
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def cupy_usable():
    """(usable, reason): whether CuPy is installed and sees a CUDA device."""
    cupy = _import_cupy()
    if cupy is None:
        return False, _CUPY_MISSING
    try:
        available = bool(cupy.cuda.is_available())
    except Exception as exc:  # a broken driver can raise instead of returning False
        return False, f"{_NO_DEVICE} ({type(exc).__name__}: {exc})"
    return (True, "") if available else (False, _NO_DEVICE)


class Backend:
    """An array module with its dtype and random generator.

    Attributes:
        name:  "numpy" or "cupy".
        xp:    the array module (numpy or cupy).
        dtype: the floating dtype every parameter and activation uses.
        rng:   an ``xp.random.Generator`` (PCG64 on numpy, XORWOW on cupy).
        seed:  the seed the generator was made from (None: from entropy).
    """

    def __init__(self, name, xp, dtype="float32", seed=None):
        check_choice("dtype", str(dtype), DTYPES, BackendError)
        self.name = name
        self.xp = xp
        self.dtype = xp.dtype(str(dtype))
        self.seed = seed
        self.rng = xp.random.default_rng(seed)

    def __repr__(self):
        return f"Backend({self.name!r}, dtype={self.dtype.name!r}, seed={self.seed!r})"

    # --- arrays ------------------------------------------------------------------
    def asarray(self, a, dtype=None):
        """Host or device data -> backend array of ``dtype`` (default: the backend's)."""
        return self.xp.asarray(a, dtype=self.dtype if dtype is None else dtype)

    def to_numpy(self, a):
        """Backend array (or scalar) -> numpy.ndarray on the host. Synchronises on CuPy."""
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return numpy.asarray(a)

    def zeros(self, shape, dtype=None):
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def empty(self, shape, dtype=None):
        return self.xp.empty(shape, dtype=self.dtype if dtype is None else dtype)

    # --- random numbers (always in the backend's dtype) ------------------------------
    def uniform(self, low, high, size):
        """Uniform on [low, high), drawn from ``self.rng``."""
        if self.name == "cupy":                     # one kernel
            return self.rng.uniform(low, high, size, dtype=self.dtype)
        u = self.rng.random(size, dtype=self.dtype)
        u *= high - low
        u += low
        return u

    def normal(self, size, mean=0.0, std=1.0):
        """Gaussian N(mean, std^2), drawn from ``self.rng``."""
        g = self.rng.standard_normal(size, dtype=self.dtype)
        if std != 1.0:
            g *= std
        if mean != 0.0:
            g += mean
        return g

    def bernoulli(self, p, size):
        """0/1 array in the backend's dtype, each entry 1 with probability p (dropout masks)."""
        return (self.rng.random(size, dtype=self.dtype) < p).astype(self.dtype)

    def permutation(self, n):
        """A random permutation of range(n) as a host numpy array (for shuffling host data).

        CuPy's Generator has no ``permutation``: there it is the argsort of n uniform keys."""
        if self.name == "numpy":
            return self.rng.permutation(n)
        return self.to_numpy(self.rng.random(n).argsort())

    def rng_state(self):
        """The generator's state as a JSON-able dict, or None where the library has none.

        NumPy's PCG64 state is exact and restorable; CuPy's generator exposes no state,
        so a CuPy run resumes with a generator reseeded from (seed, step) instead.
        """
        if self.name == "numpy":
            return self.rng.bit_generator.state
        return None

    def set_rng_state(self, state):
        if self.name == "numpy" and state is not None:
            self.rng.bit_generator.state = state

    def reseed(self, *keys):
        """Replace the generator by one seeded from (seed, *keys): a reproducible fresh stream."""
        base = [] if self.seed is None else [int(self.seed)]
        self.rng = self.xp.random.default_rng(base + [int(k) for k in keys])

    def cuda_graph_problem(self):
        """None when this backend can capture a CUDA graph, else a one-line reason
        (tinygan/tools/cuda_graph.py). Found out once by capturing a tiny graph (two kernels on
        a non-blocking stream) and checking that its replay computes."""
        if self.name != "cupy":
            return f"CUDA graphs need the cupy backend (this is {self.name})"
        if not hasattr(self, "_graph_problem"):
            self._graph_problem = self._try_capture()
        return self._graph_problem

    def _try_capture(self):
        xp = self.xp
        if not hasattr(xp.cuda.Stream, "begin_capture"):
            return "this CuPy has no stream capture (Stream.begin_capture): no CUDA graphs"
        try:
            x = xp.arange(4, dtype=self.dtype)
            y = xp.empty_like(x)
            stream = xp.cuda.Stream(non_blocking=True)
            with stream:
                xp.multiply(x, 2, out=y)                  # compiled and loaded before capture
                y += 1
                stream.synchronize()
                stream.begin_capture()
                try:
                    xp.multiply(x, 2, out=y)
                    y += 1
                finally:
                    graph = stream.end_capture()
            x += 1
            graph.launch(stream=stream)
            stream.synchronize()
            if self.to_numpy(y).tolist() != [3.0, 5.0, 7.0, 9.0]:
                return "stream capture is broken here: a replayed CUDA graph computed wrong values"
        except Exception as exc:  # a driver or CuPy that cannot capture raises any of several
            why = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return f"stream capture fails here ({why}): no CUDA graphs"
        return None

    def synchronize(self):
        """Wait for the device to finish queued work (needed before reading a clock). No-op on NumPy."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


def get_backend(name="numpy", dtype="float32", seed=None, verbose=True):
    """Return a :class:`Backend`.

    Args:
        name:  "numpy", "cupy", or "auto" (CuPy when a CUDA device is usable, else NumPy;
               it prints which one it took when ``verbose``).
        dtype: "float32" (default) or "float64" (gradient checks).
        seed:  int or None, for the backend's random generator.

    Raises:
        BackendError: unknown name or dtype; CuPy not installed; no usable CUDA device.
    """
    if isinstance(name, Backend):
        return name
    check_choice("backend", name, BACKENDS, BackendError)
    if name == "numpy":
        return Backend("numpy", numpy, dtype, seed)
    usable, reason = cupy_usable()
    if name == "cupy":
        if not usable:
            raise BackendError(reason)
        return Backend("cupy", _import_cupy(), dtype, seed)
    # auto
    if usable:
        cupy = _import_cupy()
        be = Backend("cupy", cupy, dtype, seed)
        if verbose:
            dev = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
            dev = dev.decode() if isinstance(dev, bytes) else dev
            print(f"tinygan: backend auto -> cupy ({dev})", file=sys.stderr)
        return be
    if verbose:
        why = "CuPy not installed" if _import_cupy() is None else "no usable CUDA device"
        print(f"tinygan: backend auto -> numpy ({why})", file=sys.stderr)
    return Backend("numpy", numpy, dtype, seed)


def array_module(a):
    """The array module (numpy or cupy) an array belongs to."""
    if type(a).__module__.startswith("cupy"):
        return _import_cupy()
    return numpy


_KERNELS = {}


def elementwise_kernel(xp, kernel):
    """The callable that runs ``kernel`` (a tinygan.fast.kernels.Kernel) on library ``xp``.

    On CuPy: a ``cupy.ElementwiseKernel`` built from the kernel's parameters and CUDA body
    (compiled on first use, then cached): one launch per call. On NumPy: the kernel's NumPy
    twin. Either way it is called with the inputs, then the preallocated outputs.
    """
    if xp is numpy:
        return kernel.numpy_twin
    key = (id(xp), kernel.name)
    if key not in _KERNELS:
        _KERNELS[key] = xp.ElementwiseKernel(kernel.in_params, kernel.out_params, kernel.cuda,
                                             name=kernel.name)
    return _KERNELS[key]


_DEFAULT = {}


def default_backend(dtype="float32"):
    """The shared NumPy backend layers fall back to when given none (float32 unless asked)."""
    if dtype not in _DEFAULT:
        _DEFAULT[dtype] = get_backend("numpy", dtype)
    return _DEFAULT[dtype]
