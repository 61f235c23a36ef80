"""The whole training step captured once as a CUDA graph and replayed (CuPy only).

    step = GraphedStep(gan, (m, D_x))
    stats = step(real)            # as gan.train_step(real): 0-d device arrays, no host sync

A step of the paper's model is ~70 kernel launches of a few microseconds of work each: on a
GPU it is bound by launch overhead, not arithmetic. A CUDA graph records the launches once
(stream capture) and replays them with one launch. What that needs, and how it is met here:

  - Only what CuPy allows on a capturing stream: CuPy refuses every cuBLAS call there
    (cupy_backends/cuda/libs/cublas.pyx, setStream: NotImplementedError), so the warm-up and
    the captured step run their matrix products through tinygan's own GEMM kernel
    (``kernels.products_in_kernels()``: ``kernels.matmul`` launches ``tinygan_gemm``, an
    ElementwiseKernel); the rest of the step is elementwise kernels, reductions and cuRAND
    draws, all plain kernel launches. docs/design.md ("CUDA graphs") cites the lines.
  - Capture failure of any kind (a refused call, a host synchronisation, a driver error)
    restores everything the warm-up changed (parameters, optimizer state and t, the step
    count, the generator's cuRAND states), leaves no graph, says so in one line on stderr and
    continues with eager steps.

  - Capture on a non-default stream, after a warm-up: the first call runs one ordinary step
    (compiling every kernel, filling the memory pool) on the capture stream, then records the
    step into the graph without running it. Every later call replays the graph on the current
    stream, so it stays ordered with the caller's other work.
  - Every capture-time temporary kept alive: the warm-up and the capture allocate from a
    private memory pool that nothing else allocates from and that lives as long as this object,
    so no address the graph reads or writes is handed to anyone else.
  - Host numbers are frozen into a graph: the optimizers' learning rate and momentum (Adam's
    step sizes) are read by the update kernels from 0-d device arrays, written before each
    replay from ``optimizer.hyperparameters()`` in one host-to-device copy; the optimizers'
    step counts and the GAN's are advanced on the host.
  - A static input buffer: each real batch is copied into it before the replay.
  - Random draws stay random: CuPy's ``Generator`` (``cupy.random.default_rng``) keeps its
    cuRAND states in device memory, and each draw kernel loads them and stores them back
    advanced. A replayed draw therefore continues the stream where the last one left it, the
    same numbers the eager step would draw (the noise z and D's dropout masks). The legacy
    ``cupy.random.RandomState`` API, which advances an offset on the host, would replay the
    same numbers: tinygan does not use it. The generator captured is kept; replacing
    ``backend.rng`` afterwards (``reseed``) is refused rather than silently ignored.

The stats returned are copies (one copy launch of a packed vector): the graph rewrites its
own outputs at every replay, and callers may keep stats across steps. ``gan.grad_x`` and the
layers' caches refer to the graph's buffers and show the last replay's values.
"""

import sys

import numpy as np

from ..fast import kernels
from ..errors import BackendError, ConfigError

STATS = ("d_loss", "g_loss", "d_real", "d_fake")


class _DeviceScalarOptimizer:
    """Stands in for an optimizer inside the captured step: its update kernel reads the
    hyperparameters from 0-d device arrays (views into GraphedStep's scalar vector)."""

    def __init__(self, optimizer, scalars):
        self.optimizer, self.scalars = optimizer, scalars

    def step(self):
        self.optimizer.apply(*self.scalars)


class GraphedStep:
    """``gan.train_step`` on a fixed batch shape, captured once as a CUDA graph (see module doc).

    Raises BackendError where the backend cannot capture (NumPy; a CuPy whose tiny test
    capture fails: ``Backend.cuda_graph_problem``)."""

    def __init__(self, gan, batch_shape):
        be = gan.backend
        problem = be.cuda_graph_problem()
        if problem:
            raise BackendError(problem)
        self.gan, self.be, self.xp = gan, be, be.xp
        self.batch_shape = tuple(int(n) for n in batch_shape)
        self.real = be.zeros(self.batch_shape)                  # the static input buffer
        self.optimizers = (gan.d_opt, gan.g_opt)
        counts = [len(opt.hyperparameters()) for opt in self.optimizers]
        self.scalars = be.zeros((sum(counts),))                 # every lr / momentum, one vector
        views, start = [], 0
        for n in counts:
            views.append(tuple(self.scalars[start + i] for i in range(n)))
            start += n
        self.stand_ins = tuple(_DeviceScalarOptimizer(o, v) for o, v in zip(self.optimizers, views))
        self.rng = be.rng                   # the generator whose device states the graph advances
        self.stream = self.xp.cuda.Stream(non_blocking=True)
        self.pool = self.xp.cuda.MemoryPool()                   # capture-time memory, kept
        self.graph = None
        self.packed = None                                      # the graph's stats, packed
        self.replays = 0
        self.failed = None              # why capture failed (then every step is eager), or None

    def _upload_hyperparameters(self):
        """This step's numbers into the device scalars (one copy); the optimizers count it."""
        numbers = []
        for opt in self.optimizers:
            numbers += [float(x) for x in opt.hyperparameters()]
            opt.t += 1
        self.scalars.set(np.asarray(numbers, dtype=self.be.dtype.name))

    def _step_with_stand_ins(self):
        """gan.train_step on the static buffer, the optimizers' updates reading device scalars;
        returns the stats packed into one vector."""
        gan = self.gan
        saved = gan.d_opt, gan.g_opt
        gan.d_opt, gan.g_opt = self.stand_ins
        try:
            stats = gan.train_step(self.real)
        finally:
            gan.d_opt, gan.g_opt = saved
        return self.xp.stack([stats[k] for k in STATS])

    def _snapshot(self):
        """Copies of everything a step changes; returns the function that puts them back."""
        gan = self.gan
        arrays = [gan.G.param_vector, gan.D.param_vector]
        for opt in self.optimizers:
            arrays += [a for a in opt.state().values() if hasattr(a, "shape")]
        copies = [a.copy() for a in arrays]
        counts = [opt.t for opt in self.optimizers], gan.step_count
        rng_state = getattr(self.rng.bit_generator, "_state", None)    # cuRAND states (device)
        rng_copy = None if rng_state is None else rng_state.copy()

        def restore():
            for a, c in zip(arrays, copies):
                a[...] = c
            for opt, t in zip(self.optimizers, counts[0]):
                opt.t = t
            gan.step_count = counts[1]
            if rng_state is not None:
                rng_state[...] = rng_copy
        return restore

    def _warm_up_and_capture(self):
        """Run the first step eagerly on the capture stream, then record it into the graph;
        the matrix products through tinygan's GEMM kernel in both (cuBLAS is refused)."""
        xp = self.xp
        xp.cuda.get_current_stream().synchronize()    # once: the inputs written, in order
        with kernels.products_in_kernels(), xp.cuda.using_allocator(self.pool.malloc), self.stream:
            warm = self._step_with_stand_ins()                   # the warm-up: a real step
            warm_grad_x = self.gan.grad_x
            self.stream.synchronize()
            self.stream.begin_capture()
            try:
                packed = self._step_with_stand_ins()             # recorded, not run
            except BaseException:
                try:
                    self.stream.end_capture()                    # no graph is kept
                except Exception:
                    pass
                raise
            graph = self.stream.end_capture()
            # gan.grad_x now names the graph's buffer, unwritten until the first replay: the
            # warm-up's values go there, for whoever reads it after this step (the trainer)
            if warm_grad_x is not None and self.gan.grad_x is not warm_grad_x:
                self.gan.grad_x[...] = warm_grad_x
        self.graph, self.packed = graph, packed
        self.gan.step_count -= 1                                 # the capture took no step
        self.stream.synchronize()
        return warm.copy()

    def _first_step(self, real):
        """Warm-up and capture; on any failure, the state from before, and an eager step."""
        restore = self._snapshot()
        self.real[...] = real
        self._upload_hyperparameters()
        try:
            return self._warm_up_and_capture()
        except BaseException as exc:
            self.graph = self.packed = None
            restore()
            if not isinstance(exc, Exception):
                raise
            self.failed = f"{type(exc).__name__}: {exc}".splitlines()[0]
            print(f"tinygan: CUDA graph capture failed ({self.failed}); continuing with eager "
                  "steps", file=sys.stderr)
            stats = self.gan.train_step(real)
            return self.xp.stack([stats[k] for k in STATS])

    def __call__(self, real):
        if tuple(real.shape) != self.batch_shape:
            raise ConfigError(f"the CUDA graph was captured for batches of shape "
                              f"{self.batch_shape}, got {tuple(real.shape)}")
        if self.failed:
            return self.gan.train_step(real)
        if self.be.rng is not self.rng:
            raise BackendError("the backend's random generator was replaced after the CUDA "
                               "graph was captured (its draws would not follow): make a new "
                               "GraphedStep")
        if self.graph is None:
            packed = self._first_step(real)
        else:
            self.real[...] = real
            self._upload_hyperparameters()
            self.graph.launch()
            self.gan.step_count += 1
            self.replays += 1
            packed = self.packed.copy()
        return {k: packed[i] for i, k in enumerate(STATS)}
