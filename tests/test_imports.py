"""Compute modules take the array module from the backend and never import numpy or cupy."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "tinygan"
COMPUTE_MODULES = ["layers", "network", "losses", "optim", "gan", "gradcheck", "evaluate",
                   "metrics", "classifier"]


def imported_names(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", COMPUTE_MODULES)
def test_compute_module_imports_neither_numpy_nor_cupy(module):
    path = PKG / f"{module}.py"
    if not path.exists():
        path = PKG / "tools" / f"{module}.py"
    if not path.exists():
        pytest.skip(f"{module}.py not written yet")
    assert not imported_names(path) & {"numpy", "cupy", "cupyx", "scipy"}


def test_only_backend_imports_cupy():
    # the CuPy emulation's snapshot.py reads the real module's names: a test tool, not a backend
    emulation = PKG / "tools" / "cupy_emulation"
    users = [p.name for p in PKG.rglob("*.py")
             if "cupy" in imported_names(p) and emulation not in p.parents]
    assert users in ([], ["backend.py"])
    assert "_import_cupy" in (PKG / "backend.py").read_text()
