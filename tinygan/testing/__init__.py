"""Test support (as ``numpy.testing``): not used by the library itself.

cupy_emulation  CuPy's rules on NumPy, with the kernels' CUDA bodies compiled for the host.
"""
