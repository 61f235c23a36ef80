"""The whole training step captured once as a CUDA graph and replayed (CuPy only).

    step = GraphedStep(gan, (m, D_x))
    stats = step(real)            # as gan.train_step(real): 0-d device arrays, no host sync

A step of the paper's model is ~170 kernel launches of a few microseconds of work each: on a
GPU it is bound by launch overhead, not arithmetic. A CUDA graph records the launches once
(stream capture) and replays them with one launch. What that needs, and how it is met here:

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

import numpy as np

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

    Raises BackendError where the backend cannot capture (NumPy, the CuPy emulation)."""

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

    def _warm_up_and_capture(self):
        """Run the first step eagerly on the capture stream, then record it into the graph."""
        xp = self.xp
        xp.cuda.get_current_stream().synchronize()    # once: the inputs written, in order
        with xp.cuda.using_allocator(self.pool.malloc), self.stream:
            warm = self._step_with_stand_ins()                   # the warm-up: a real step
            self.stream.synchronize()
            self.stream.begin_capture()
            try:
                self.packed = self._step_with_stand_ins()        # recorded, not run
            finally:
                self.graph = self.stream.end_capture()
        self.gan.step_count -= 1                                 # the capture took no step
        self.stream.synchronize()
        return warm.copy()

    def __call__(self, real):
        if tuple(real.shape) != self.batch_shape:
            raise ConfigError(f"the CUDA graph was captured for batches of shape "
                              f"{self.batch_shape}, got {tuple(real.shape)}")
        if self.be.rng is not self.rng:
            raise BackendError("the backend's random generator was replaced after the CUDA "
                               "graph was captured (its draws would not follow): make a new "
                               "GraphedStep")
        self.real[...] = real
        self._upload_hyperparameters()
        if self.graph is None:
            packed = self._warm_up_and_capture()
        else:
            self.graph.launch()
            self.gan.step_count += 1
            self.replays += 1
            packed = self.packed.copy()
        return {k: packed[i] for i, k in enumerate(STATS)}
