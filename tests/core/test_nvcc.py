"""Every fused kernel compiles for real GPUs: each kernel's full source, as CuPy's own code
generator writes it (``cupy._core._kernel._get_elementwise_kernel_code``, which runs without a
GPU), with CuPy's headers and its -ftz=true, compiled by nvcc for sm_80, sm_90 and sm_100 in
one call; float32 and float64, scalars and arrays as the library passes them. Where CuPy is
not importable, the project's own template of that source (plain pointers, the same loop and
bindings) is compiled instead. Skipped, in one line, without nvcc."""

import shutil
import subprocess

import numpy as np
import pytest

from tinygan.fast import kernels
from tinygan.testing.cupy_emulation import host_kernels as hk

NVCC = shutil.which("nvcc")
ARCHS = ("80", "90", "100")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) not on PATH: no "
                                                     "compile test for real GPUs here")


def cupy_generator():
    """(generate(kernel, dtype, name) -> source, header, include options), or None."""
    try:
        import cupy  # noqa: F401
        from cupy._core import _carray, _kernel, _scalar, core
    except Exception:
        return None
    NDARRAY, INDEXER, SCALAR = 1, 2, 3                  # cupy/_core/_kernel.pxd, _ArgKind

    def generate(kernel, dtype, name, shapes):
        params = (_kernel._get_param_info(kernel.in_params, True)
                  + _kernel._get_param_info(kernel.out_params, False))
        infos = []
        for p in params:
            ndim, contiguous = shapes.get(p.name, (1, True))
            t = np.dtype(dtype) if p.dtype is None else p.dtype
            if ndim is None:                            # a Python scalar: a CScalar
                infos.append(_kernel._ArgInfo(SCALAR, _scalar.CScalar, t, 0, True, True))
            else:
                infos.append(_kernel._ArgInfo(NDARRAY, cupy.ndarray, t, ndim, contiguous, True))
        infos.append(_kernel._ArgInfo(INDEXER, _carray.Indexer, None, 1, True, True))
        all_params = params + _kernel._get_param_info("CIndexer _ind", False)
        type_map = _kernel._TypeMap((("T", np.dtype(dtype)),))
        return _kernel._get_elementwise_kernel_code(tuple(infos), type_map, all_params,
                                                    kernel.cuda, name, "")
    header = "".join(f"#include <{h}>\n" for h in core._cupy_header_list)
    options = [f"-I{core._get_header_dir_path()}", *core._get_cccl_include_options()]
    return generate, header, options


def own_template(kernel, dtype, name, shapes):
    """The project's template of CuPy's generated source: the same typedef, parameters bound
    by reference at i, raw ones as pointers, the body in a grid-stride loop."""
    ins = hk.parse_params(kernel.in_params, True)
    outs = hk.parse_params(kernel.out_params, False)
    args, binds = [], []
    for p in ins + outs:
        t = p.ctype or hk.c_type(p.dtype)
        const = "const " if p.is_const else ""
        if p.raw:
            args.append(f"{const}{t}* {p.name}")
        elif shapes.get(p.name, (1, True))[0] is None:
            args.append(f"const {t} {p.name}")
        else:
            args.append(f"{const}{t}* _raw_{p.name}")
            binds.append(f"{const}{t} &{p.name} = _raw_{p.name}[i];")
    return (f"typedef {hk.c_type(dtype)} T;\n"
            f'extern "C" __global__ void {name}({", ".join(args)}, long long _n) {{\n'
            "  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < _n;"
            " i += (long long)blockDim.x * gridDim.x) {\n"
            + "\n".join(binds) + "\n" + kernel.cuda + "\n  }\n}\n")


# how the library calls each kernel: (ndim, C-contiguous) of the arrays, None for a scalar
SHAPES = {
    "tinygan_logistic": {"sign": (None, True), "scale": (None, True)},
    "tinygan_maxout": {"z": (2, True), "b": (1, True), "pieces": (None, True), "units": (None, True)},
    "tinygan_maxout_backward": {"dy": (2, True), "k": (2, True), "pieces": (None, True),
                                "units": (None, True)},
    "tinygan_dropout": {"keep_prob": (None, True), "scale": (None, True)},
    "tinygan_sgd_momentum": {"lr": (None, True), "mu": (None, True)},
    "tinygan_adam": {n: (None, True) for n in ("b1", "c1", "b2", "c2", "lr_t", "eps_t")},
    "tinygan_gemm": {"a": (2, False), "b": (2, False), "depth": (None, True), "cols": (None, True)},
}
VARIANTS = {  # and as a CUDA graph calls them: the optimizers' numbers from 0-d device arrays
    "tinygan_sgd_momentum": {"lr": (0, True), "mu": (0, True)},
    "tinygan_adam": {"lr_t": (0, True), "eps_t": (0, True)},
}


def sources():
    """One translation unit per source kind: every kernel x dtype (x variant), each in its
    own namespace (each has its typedef T) and with its own name."""
    gen = cupy_generator()
    units = []
    for name, kernel in sorted(kernels.KERNELS.items()):
        for dtype in ("float32", "float64"):
            shapes = [SHAPES.get(name, {})]
            if name in VARIANTS:
                shapes.append({**SHAPES[name], **VARIANTS[name]})
            for v, sh in enumerate(shapes):
                fn = f"{name}_{dtype}_{v}"
                code = gen[0](kernel, dtype, fn, sh) if gen else own_template(kernel, dtype, fn, sh)
                units.append(f"namespace k_{fn} {{\n{code}\n}}\n")
    header = gen[1] if gen else "#include <cmath>\n"
    return header + "".join(units), (gen[2] if gen else []), bool(gen)


def test_every_kernel_compiles_with_nvcc_for_sm80_sm90_sm100(tmp_path):
    source, options, from_cupy = sources()
    src = tmp_path / "tinygan_kernels.cu"
    src.write_text(source)
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    cmd = [NVCC, "-c", "-std=c++17", "-ftz=true", "-Werror=all-warnings", *gencode, *options,
           str(src), "-o", str(tmp_path / "k.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stderr.strip() == "", proc.stderr[-4000:]           # no warning either
    if shutil.which("cuobjdump"):    # the object holds code for each architecture
        listing = subprocess.run(["cuobjdump", "--list-elf", str(tmp_path / "k.o")],
                                 capture_output=True, text=True)
        for a in ARCHS:
            assert f"sm_{a}" in listing.stdout, listing.stdout
    names = [f"{n}_{d}_0" for n in kernels.KERNELS for d in ("float32", "float64")]
    assert all(f"void {n}(" in source for n in names)
    if from_cupy:                    # CuPy's generated form: CArray parameters, CUPY_FOR loop
        assert "CUPY_FOR(i, _ind.size())" in source and "CArray<float, 1, 1, 1>" in source


def test_a_broken_body_fails_to_compile(tmp_path):
    """The check can fail: a body naming an undeclared variable is an nvcc error."""
    kernel = kernels.KERNELS["tinygan_sigmoid_backward"]
    broken = kernels.Kernel.__new__(kernels.Kernel)
    broken.__dict__.update(kernel.__dict__, cuda=kernel.cuda.replace("dy *", "dyy *"))
    gen = cupy_generator()
    code = gen[0](broken, "float32", "broken", {}) if gen else own_template(broken, "float32",
                                                                             "broken", {})
    src = tmp_path / "broken.cu"
    src.write_text((gen[1] if gen else "") + code)
    proc = subprocess.run([NVCC, "-c", "-std=c++17", "-arch=sm_90", *(gen[2] if gen else []),
                           str(src), "-o", str(tmp_path / "b.o")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and "dyy" in proc.stderr


def test_the_projects_own_template_compiles(tmp_path, monkeypatch):
    """The fallback where CuPy is not importable stays compilable (one architecture: quick)."""
    monkeypatch.setitem(globals(), "cupy_generator", lambda: None)
    source, options, from_cupy = sources()
    assert not from_cupy and options == []
    src = tmp_path / "own.cu"
    src.write_text(source)
    proc = subprocess.run([NVCC, "-c", "-std=c++17", "-ftz=true", "-Werror=all-warnings",
                           "-arch=sm_80", str(src), "-o", str(tmp_path / "own.o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr[-4000:]
