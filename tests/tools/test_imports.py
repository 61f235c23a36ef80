"""Compute modules take the array module from the backend and never import numpy or cupy."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "tinygan"
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
    emulation = PKG / "testing" / "cupy_emulation"
    users = [p.name for p in PKG.rglob("*.py")
             if "cupy" in imported_names(p) and emulation not in p.parents]
    assert users in ([], ["backend.py"])
    assert "_import_cupy" in (PKG / "backend.py").read_text()


# --- the layering rule: the study core imports only itself and errors; tools import the core --

CORE = ["backend", "errors", "layers", "network", "losses", "optim", "gan", "gradcheck"]
FAST = ["kernels", "layers", "network", "losses", "optim", "gan", "__init__", "fast_threads"]
"""tinygan/fast/: the fast path, importing the core and itself; the core never imports it."""
STDLIB_OK = {"math", "contextlib", "collections", "functools", "numbers"}
THREADS_OK = {"os", "threading", "concurrent"}     # fast_threads alone: its pool, TINYGAN_THREADS
# no file I/O, argparse, plots or datasets in the core; backend.py alone also takes sys and numpy


def imported(node, package):
    """The absolute module names one import statement names (relative ones resolved in
    ``package``; ``from . import x`` names ``package.x``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not node.level:
        return [node.module]
    base = package.split(".")[:len(package.split(".")) - node.level + 1]
    mod = ".".join(base + ([node.module] if node.module else []))
    return [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]


def module_level_imports(path, package):
    """Absolute names of the modules ``path`` imports at module level (outside functions and
    outside an ``if __name__ == "__main__":`` block), relative imports resolved in ``package``."""
    tree = ast.parse(path.read_text())
    out = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                out.update(imported(node, package))
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if test not in ('__name__ == "__main__"', "__name__ == '__main__'"):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
    visit(tree.body)
    return out


def package_modules(root=PKG):
    """{dotted name: path} of every module of the package at ``root``."""
    mods = {}
    for p in root.rglob("*.py"):
        rel = p.relative_to(root.parent).with_suffix("")
        name = ".".join(rel.parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def internal_graph(root=PKG, imports=None):
    """{module: the package's modules it imports}: at module level (the default), or with
    ``imports=all_imports`` every import anywhere, in functions and ``__main__`` blocks too."""
    imports = imports or module_level_imports
    mods = package_modules(root)
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for imp in imports(path, package):
            while imp and imp not in mods:            # "tinygan.errors.ConfigError" -> module
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                deps.add(imp)
        graph[name] = deps
    return graph


@pytest.mark.parametrize("module", CORE)
def test_core_imports_only_the_core_and_errors(module):
    path = PKG / f"{module}.py"
    imports = module_level_imports(path, "tinygan")
    internal = {i for i in imports if i.split(".")[0] == "tinygan"}
    external = {i.split(".")[0] for i in imports} - {"tinygan"}
    allowed = {f"tinygan.{m}" for m in CORE}
    assert all(any(i == a or i.startswith(a + ".") for a in allowed) for i in internal), internal
    if module != "backend":               # backend alone knows numpy / cupy (loaded lazily)
        assert external <= STDLIB_OK, external
    else:
        assert external <= STDLIB_OK | {"numpy", "sys"}, external


def all_imports(path, package):
    """Every module ``path`` imports anywhere (inside functions and ``__main__`` blocks too),
    relative imports resolved in ``package``."""
    return {name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom)) for name in imported(node, package)}


@pytest.mark.parametrize("module", CORE)
def test_the_plain_core_never_imports_the_fast_path(module):
    """Issue 23: the plain core is what a learner reads; the fast path lives beside it."""
    imports = all_imports(PKG / f"{module}.py", "tinygan")
    assert not {i for i in imports if i == "tinygan.fast" or i.startswith("tinygan.fast.")}, imports
    assert "tinygan.kernels" not in imports and not (PKG / "kernels.py").exists()


def test_the_fast_path_check_sees_a_violation(tmp_path):
    bad = tmp_path / "layers.py"
    bad.write_text("def f():\n    from .fast import kernels\n")
    assert "tinygan.fast" in all_imports(bad, "tinygan")


@pytest.mark.parametrize("module", FAST)
def test_the_fast_path_imports_the_core_and_itself(module):
    path = PKG / "fast" / f"{module}.py"
    imports = all_imports(path, "tinygan.fast")
    internal = {i for i in imports if i.split(".")[0] == "tinygan"}
    allowed = {f"tinygan.{m}" for m in CORE} | {"tinygan.fast"}
    assert all(any(i == a or i.startswith(a + ".") for a in allowed) for i in internal), internal
    external = {i.split(".")[0] for i in imports} - {"tinygan"}
    assert external <= STDLIB_OK | (THREADS_OK if module == "fast_threads" else set()), external


def test_main_entry_point_is_a_tool():
    """``python -m tinygan`` (tinygan/__main__.py) is a guarded entry point: it imports the
    tools' command and nothing of the core imports it; it counts as a tool, not the core."""
    graph = internal_graph()
    assert graph["tinygan.__main__"] == {"tinygan.tools.commands"}
    assert not any("tinygan.__main__" in deps for deps in graph.values())
    assert "__main__" not in CORE


def test_the_core_never_imports_the_test_support():
    """tinygan/testing (the CuPy emulation, a test double) is used by tests and tools only."""
    graph = internal_graph()
    for name in (f"tinygan.{m}" for m in CORE):
        assert not {d for d in graph[name] if d.startswith("tinygan.testing")}, name
    assert "tinygan.testing.cupy_emulation" in graph


def test_tools_import_the_core_never_the_reverse():
    graph = internal_graph()
    core = {f"tinygan.{m}" for m in CORE}
    for name in core:
        assert not {d for d in graph[name] if d.startswith("tinygan.tools")}, name
    tools = [n for n in graph if n.startswith("tinygan.tools.") or n == "tinygan.__main__"]
    assert len(tools) >= 8
    assert any(graph[t] & core for t in tools)


def import_cycles(graph):
    """The import cycles of ``graph``: its strongly connected components of more than one
    module (Tarjan's algorithm), each a sorted list; a module importing itself counts too."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def describe(graph, cycles):
    return "; ".join(" <-> ".join(c) + " (" + ", ".join(
        f"{v} -> {sorted(graph[v] & set(c))}" for v in c) + ")" for c in cycles)


def test_no_import_cycles_at_any_level():
    """Issue 23: no cycle in the package's imports, counting every import anywhere (inside
    functions and ``if __name__ == "__main__":`` blocks too), not only the module-level ones."""
    graph = internal_graph(imports=all_imports)
    assert len(graph) >= 30 and graph["tinygan.tools.train"]
    cycles = import_cycles(graph)
    assert not cycles, "import cycles: " + describe(graph, cycles)


def test_the_cycle_check_sees_a_planted_cycle(tmp_path):
    """The check's own test: a cycle through a function-level import and a ``__main__`` block
    (the two forms the module-level graph cannot see) is found, and a chain is not a cycle."""
    pkg = tmp_path / "tinygan"
    (pkg / "tools").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text('import math\nif __name__ == "__main__":\n'
                                 '    from .tools.cmd import main\n')
    (pkg / "tools" / "__init__.py").write_text("")
    (pkg / "tools" / "cmd.py").write_text("def main():\n    from .. import core\n")
    (pkg / "tools" / "leaf.py").write_text("from .cmd import main\n")
    assert import_cycles(internal_graph(pkg)) == []          # the module-level view misses it
    graph = internal_graph(pkg, imports=all_imports)
    assert import_cycles(graph) == [["tinygan.core", "tinygan.tools.cmd"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert import_cycles({"a": {"a"}}) == [["a"]]


def test_the_layering_test_sees_a_violation(tmp_path):
    """The rule's own check: a core module importing a tool is caught."""
    bad = tmp_path / "gan.py"
    bad.write_text("from .tools.train import Trainer\nimport argparse\n")
    imports = module_level_imports(bad, "tinygan")
    assert imports == {"tinygan.tools.train", "argparse"}
    guarded = tmp_path / "gradcheck.py"
    guarded.write_text('import math\nif __name__ == "__main__":\n    from .tools import cli\n')
    assert module_level_imports(guarded, "tinygan") == {"math"}


def test_readme_layout_lists_every_module_and_the_reading_path():
    """The README's layout names every module; its reading path gives each core file's line
    count (within 10%: a small edit need not touch the README, a rewrite must)."""
    import re
    text = (PKG.parent / "README.md").read_text()
    layout = text[text.index("## The layout"):]
    for p in PKG.rglob("*.py"):
        if p.parent in (PKG, PKG / "tools", PKG / "fast"):
            assert str(p.relative_to(PKG.parent)) in layout, p
        elif p.parent == PKG / "testing":       # test support: tinygan/testing/__init__.py, ...
            assert "tinygan/testing/" in layout, p
        else:                                   # a package inside a package: named as a folder
            rel = p.relative_to(PKG).parts
            assert f"tinygan/{rel[0]}/{rel[1]}/" in layout or f"tinygan/{rel[0]}/" in layout, p
    for m in CORE:
        row = re.search(rf"\| \[`tinygan/{m}\.py`\]\(tinygan/{m}\.py\) \| (\d+) \|", layout)
        assert row, f"{m}.py missing from the reading path"
        actual = (PKG / f"{m}.py").read_text().count("\n")
        assert abs(int(row[1]) - actual) <= 0.1 * actual, (m, row[1], actual)
    total = sum((PKG / f"{m}.py").read_text().count("\n") for m in CORE)
    said = re.search(r"the plain core, in this order, (\d[\d,]*) lines in all", layout)
    assert said and abs(int(said[1].replace(",", "")) - total) <= 0.1 * total, (said, total)
    assert "under an hour" in layout


def test_design_doc_tools_table_lists_every_tools_module():
    """docs/design.md's tools table has a row for every module of tinygan/tools/, and names
    no module that does not exist."""
    import re
    text = (PKG.parent / "docs" / "design.md").read_text()
    table = text[text.index("**The tools**"):]
    table = table[:table.index("\n\n", table.index("| module |"))]
    rows = set(re.findall(r"^\| `tools/(\w+)\.py` \|", table, re.M))
    modules = {p.stem for p in (PKG / "tools").glob("*.py")}
    assert rows == modules, (sorted(modules - rows), sorted(rows - modules))


# --- the tests mirror the layers: tests/core tests the core and the fast path alone -----------

TESTS = PKG.parent / "tests"


def test_core_tests_import_no_tool_and_no_matplotlib():
    """tests/core/ imports the core, the fast path and the test support (tinygan.testing), never
    a tool nor matplotlib; tests/tools/ holds everything else. Every test file is in one of them."""
    assert not list(TESTS.glob("test_*.py")), "a test file outside tests/core and tests/tools"
    core = sorted((TESTS / "core").glob("test_*.py"))
    assert len(core) >= 10 and list((TESTS / "tools").glob("test_*.py"))
    for path in core:
        imports = all_imports(path, "tests.core")
        bad = {i for i in imports if i.startswith("tinygan.tools") or i.split(".")[0] == "matplotlib"
               or (i.startswith("test_") and not (TESTS / "core" / f"{i}.py").exists())}
        assert not bad, (path.name, bad)


def test_the_test_split_check_sees_a_tool_import(tmp_path):
    bad = tmp_path / "test_x.py"
    bad.write_text("def test_y():\n    from tinygan.tools.train import Trainer\n")
    assert "tinygan.tools.train" in all_imports(bad, "tests.core")


def test_core_tests_collect_without_matplotlib():
    """tests/core loads with matplotlib made unimportable (what it imports at module level,
    transitively); the AST check above covers the imports inside its functions."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['matplotlib'] = None; import pytest; "
            "sys.exit(pytest.main(['-q', '--collect-only', '-p', 'no:cacheprovider', 'tests/core']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=PKG.parent, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "error" not in proc.stdout.lower().split("collected")[-1], proc.stdout[-1000:]
