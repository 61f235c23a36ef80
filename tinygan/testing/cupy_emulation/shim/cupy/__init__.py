"""``import cupy`` -> tinygan's CuPy emulation, with the rules named by $TINYGAN_CUPY_EMULATION (13 or 14).

Only for tests: a directory on PYTHONPATH ahead of any real CuPy (see
``tinygan.testing.cupy_emulation.subprocess_env``).
"""
import os
import sys

from tinygan.testing import cupy_emulation as _emulation

_emulation.install(os.environ.get(_emulation.ENV) or 14)
sys.modules[__name__] = _emulation.MODULE
