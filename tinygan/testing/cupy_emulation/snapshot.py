"""Write ``cupy14_api.json``: the names and keyword arguments real CuPy offers, for the emulation.

Needs the real CuPy installed (``pip install cupy-cuda12x``; no GPU needed: only array
creation fails without one). The committed JSON lets the emulation run where CuPy is absent.

    python -m tinygan.testing.cupy_emulation.snapshot       # rewrites cupy14_api.json
"""

import inspect
import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("cupy14_api.json")


def _params(fn):
    """Parameter names, with "*args"/"**kwargs" marking variadics; None when not introspectable."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names = []
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_POSITIONAL:
            names.append("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            names.append("**" + p.name)
        else:
            names.append(p.name)
    return names


def _kind(obj):
    tname = type(obj).__name__
    if tname in ("ufunc", "_GUFunc"):
        return "ufunc"
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "type"
    if callable(obj):
        return "function"
    return "constant"


def _namespace(mod):
    out = {}
    for name in sorted(dir(mod)):
        if name.startswith("_"):
            continue
        obj = getattr(mod, name)
        entry = {"kind": _kind(obj)}
        if entry["kind"] == "function":
            entry["params"] = _params(obj)
        out[name] = entry
    return out


def snapshot():
    import cupy
    gen = cupy.random.Generator
    return {
        "cupy_version": cupy.__version__,
        "module": _namespace(cupy),
        "random": _namespace(cupy.random),
        "linalg": _namespace(cupy.linalg),
        "Generator": {n: _params(getattr(gen, n)) for n in sorted(dir(gen))
                      if not n.startswith("_") and callable(getattr(gen, n))},
        "XORWOW": sorted(n for n in dir(cupy.random.XORWOW) if not n.startswith("_")),
        "ndarray": sorted(n for n in dir(cupy.ndarray)
                          if not n.startswith("_") or n in ("__array__", "__index__")),
        "cuda": sorted(n for n in dir(cupy.cuda) if not n.startswith("_")),
    }


if __name__ == "__main__":
    data = snapshot()
    OUT.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUT} (CuPy {data['cupy_version']}, {len(data['module'])} names)", file=sys.stderr)
