"""docs/design.md is true of the code where a test can tell: every file it cites exists, every
name it cites is defined in the project, and its module tables list every module."""

import ast
import builtins
import keyword
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "tinygan"
DESIGN = REPO / "docs" / "design.md"

EXTERNAL = ("cupy", "cupyx", "numpy", "np", "os", "sys", "torch", "jax", "threadpoolctl",
            "http", "json", "signal", "argparse", "matplotlib", "scipy", "tqdm", "xp",
            "cupy_backends", "runtime", "math", "threading", "socket", "pytest")
"""Names outside the project a design note may cite (their first component)."""

CUDA_NAMES = {"setStream", "gemmEx", "cuLaunchKernel", "linear_launch", "CArray",
              "_cuRANDGenerator", "_state", "cudaErrorStreamCaptureUnsupported", "kern",
              "indexer", "inout_args", "stream", "operator"}
"""Names in CuPy's and CUDA's own source that the CUDA-graph section quotes."""


def code_spans(text):
    """The contents of every `code span` outside fenced blocks."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def project_names():
    """Every name the project's Python defines or uses as an attribute, argument or keyword:
    what a design note may cite."""
    names = set()
    for folder in ("tinygan", "tests", "benchmarks", "examples", "docs"):
        for path in (REPO / folder).rglob("*.py"):
            if path == Path(__file__).resolve():
                continue                         # this file names stale names on purpose
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Name):
                    names.add(node.id)
                elif isinstance(node, ast.Attribute):
                    names.add(node.attr)
                elif isinstance(node, ast.arg):
                    names.add(node.arg)
                elif isinstance(node, ast.keyword) and node.arg:
                    names.add(node.arg)
                elif isinstance(node, ast.alias):
                    names.add((node.asname or node.name).split(".")[-1])
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and node.value.isidentifier():
                    names.add(node.value)          # kernel names, HTTP header names
    return names


def cited_files(text):
    """Paths the design note cites in code spans: tinygan/..., tools/..., fast/..., tests/...,
    benchmarks/..., examples/..., docs/... (a trailing / names a folder)."""
    out = []
    for span in code_spans(text):
        for token in re.findall(r"[\w./-]+", span):
            if re.fullmatch(r"(tinygan|tools|fast|testing|tests|benchmarks|examples|docs)/[\w./-]*", token):
                out.append(token)
    return out


def resolve(token):
    for base in (REPO, PKG):
        if (base / token).exists():
            return base / token
    return None


def test_every_file_the_design_note_cites_exists():
    missing = [t for t in cited_files(DESIGN.read_text()) if resolve(t.rstrip("/")) is None]
    assert not missing, f"docs/design.md cites files that do not exist: {missing}"


def test_every_name_the_design_note_cites_is_defined():
    known = project_names() | set(dir(builtins)) | set(keyword.kwlist) | CUDA_NAMES
    missing = []
    for span in code_spans(DESIGN.read_text()):
        name = re.sub(r"\(.*\)$", "", span.strip())          # f(a, b) -> f
        name = re.sub(r"\[.*\]$", "", name)                  # grads[name] -> grads
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*", name) or name.endswith((".py", "/")):
            continue                                          # code, shapes, paths: not names
        parts = name.split(".")
        if parts[0] in EXTERNAL:
            continue
        if not all(p in known for p in parts):
            missing.append(span)
    assert not missing, f"docs/design.md cites names the code does not have: {missing}"


def test_the_module_tables_list_every_module():
    text = DESIGN.read_text()
    cited = {t.rstrip("/") for t in cited_files(text)}
    missing = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.name == "__init__.py" or rel.parts[0] == "testing" and len(rel.parts) > 2:
            continue
        if str(rel) not in cited and f"tinygan/{rel}" not in cited:
            missing.append(str(rel))
    assert not missing, f"docs/design.md's module tables do not list: {sorted(missing)}"


def test_the_checks_see_a_stale_name(tmp_path):
    """The checks themselves: a made-up name and file are caught."""
    spans = code_spans("use `errors.check_positive_int` and `tools/nothing.py`, not ```\n`x`\n```")
    assert spans == ["errors.check_positive_int", "tools/nothing.py"]
    assert "check_positive_int" not in project_names()
    assert resolve("tools/nothing.py") is None and resolve("tools/train.py") is not None
