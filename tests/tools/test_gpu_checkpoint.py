"""A checkpoint written on the GPU loads on the CPU and back (real CuPy: marked gpu; the CuPy
emulation runs it too, through tests/tools/test_cupy_emulation.py)."""

import numpy as np
import pytest

from tinygan import get_backend

pytestmark = pytest.mark.gpu


def test_checkpoint_from_cupy_loads_on_numpy_and_back(tmp_path):
    from tinygan.tools.config import TrainConfig
    from tinygan.tools.train import Trainer
    images = np.random.default_rng(0).random((100, 784), dtype=np.float32)
    cfg = TrainConfig(epochs=1, batch_size=20, out=str(tmp_path / "run"), max_steps=3,
                      n_fixed_samples=8, log_every=1)
    gpu_run = Trainer(cfg, images, backend=get_backend("cupy", seed=0), progress=False)
    gpu_run.run()
    on_cpu = Trainer.resume(cfg, images, backend=get_backend("numpy", seed=0), progress=False)
    np.testing.assert_array_equal(on_cpu.gan.G.param_vector, gpu_run.be.to_numpy(gpu_run.gan.G.param_vector))
    on_cpu.save()
    back = Trainer.resume(cfg, images, backend=get_backend("cupy", seed=0), progress=False)
    np.testing.assert_array_equal(back.be.to_numpy(back.gan.D.param_vector), on_cpu.gan.D.param_vector)
