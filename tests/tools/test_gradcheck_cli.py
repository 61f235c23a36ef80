"""The gradient-check command (python -m tinygan gradcheck) and the gradient notes (docs/gradients.md).

The command must check every layer class the library defines, report a broken backward as FAIL
with exit status 1, and the notes' links must point at the code and tests they name.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tinygan.layers
from tinygan import get_backend
import tinygan.gan
from tinygan.gradcheck import check_module
from tinygan.tools.gradcheck_cli import check_items, main, run_checks
from tinygan.layers import LAYER_CLASSES, Dropout, Layer, Linear, Tanh
from tinygan.network import paper_discriminator

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "gradients.md"


def run(capsys, *argv):
    """main(argv) -> (exit status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def verdicts(out):
    """{section title: "pass" | "FAIL"} from the lines 'pass: <title> (n rows, ...)'."""
    return {m[2]: m[1] for m in re.finditer(r"^(pass|FAIL): (.+?) \(\d+ rows?, ", out, re.M)}


def wrong_not_raised(out):
    """A deliberately wrong gradient must fail as a mismatch, not as an exception."""
    assert "raised" not in out, out


THROUGH_D = ["G through D, nonsaturating", "G through D, nonsaturating, real+fake batch",
             "G through D, minimax", "G through D, minimax, real+fake batch"]


def run_every_check(capsys, *flags):
    """The command with ``flags``: every layer class and every other check has a passing section."""
    status, out, _ = run(capsys, *flags)
    assert status == 0, out
    got = verdicts(out)
    for cls in LAYER_CLASSES:
        assert got.get(cls.__name__) == "pass", f"no passing section for {cls.__name__}:\n{out}"
    for title in ["discriminator loss", "generator loss", "G", "D"] + THROUGH_D:
        assert got.get(title) == "pass", title
    return out


def test_default_run_checks_every_layer_class_and_passes(capsys):
    out = run_every_check(capsys)
    assert "nonsaturating logits" in out and "minimax logits" in out
    assert "all pass" in out.splitlines()[-1]


def test_fast_run_checks_the_fast_forms_and_passes(capsys):
    """``--fast``: the same checks on the fast path (tinygan/fast), every section passing and
    naming the fast code it ran."""
    out = run_every_check(capsys, "--fast")
    assert "code: FastLinear.backward in tinygan/fast/layers.py" in out
    assert "code: Sequential.backward in tinygan/fast/network.py" in out
    assert "of the fast path" in out.splitlines()[0]


def test_broken_fast_kernel_fails_only_the_fast_run(capsys, monkeypatch):
    """A fault in a fused kernel shows in ``--fast`` and not in the plain core's check."""
    from tinygan.fast import kernels
    monkeypatch.setattr(kernels, "sigmoid_backward", lambda dy, y: dy * y * (1 + y))
    assert run(capsys, "--layer", "sigmoid")[0] == 0
    assert run(capsys, "--layer", "sigmoid", "--fast")[0] == 1


def test_every_layer_class_has_a_command_item():
    items = check_items()
    for cls in LAYER_CLASSES:
        assert cls.__name__.lower() in items


def test_broken_tanh_backward_fails(capsys, monkeypatch):
    """The README's exercise: 1 - y^2 becomes 1 + y^2."""
    monkeypatch.setattr(Tanh, "backward", lambda self, dy, *a, **k: dy * (1 + self.y * self.y))
    status, out, _ = run(capsys, "--layer", "tanh")
    assert status == 1
    wrong_not_raised(out)
    assert verdicts(out) == {"Tanh": "FAIL"}
    assert re.search(r"^x\s+\(6, 7\).*FAIL", out, re.M)


def test_flipped_sign_in_linear_db_fails_only_b(capsys, monkeypatch):
    orig = Linear.backward

    def broken(self, dy, *args, **kwargs):
        dx = orig(self, dy, *args, **kwargs)
        if (args[0] if args else kwargs.get("param_grads", True)):     # param_grads
            self.grads["b"] *= -1
        return dx
    monkeypatch.setattr(Linear, "backward", broken)
    (section,) = run_checks(["linear"])
    assert {r.name for r in section.rows if not r.passed} == {"b"}
    status, out, _ = run(capsys, "--layer", "Linear")
    assert status == 1 and verdicts(out) == {"Linear": "FAIL"}
    # the same bug breaks G (Linear layers) and the path through D, and the full run says so
    status, out, _ = run(capsys)
    assert status == 1
    wrong_not_raised(out)
    got = verdicts(out)
    assert got["Linear"] == got["G"] == got["D"] == "FAIL"
    assert got["Maxout"] == "pass"              # Maxout has its own backward (issue 23)
    assert all(got[t] == "FAIL" for t in THROUGH_D)
    assert got["Tanh"] == got["discriminator loss"] == "pass"
    assert "FAIL, in Linear" in out.splitlines()[-1]


def test_dropout_ignoring_its_mask_breaks_g_through_d(capsys, monkeypatch):
    """A bug in D's backward shows up in G's gradient: the path that goes wrong most often."""
    monkeypatch.setattr(Dropout, "backward", lambda self, dy, *a, **k: dy)
    status, out, _ = run(capsys, "--layer", "g_through_d")
    assert status == 1
    wrong_not_raised(out)
    assert verdicts(out) == dict.fromkeys(THROUGH_D, "FAIL")


def test_wrong_rows_in_the_training_steps_path_through_d_fail(capsys, monkeypatch):
    """gan.grad_through_d handing G the real rows' gradient: only the real+fake checks see it."""
    def swapped(D, dl_fake, rows=slice(None)):
        xp = D.backend.xp
        n_real, m = rows.start or 0, dl_fake.shape[0]
        zeros = xp.zeros((n_real,) + dl_fake.shape[1:], dtype=dl_fake.dtype)
        return D.backward(xp.concatenate([dl_fake, zeros]), param_grads=False)[:m]
    monkeypatch.setattr(tinygan.gan, "grad_through_d", swapped)
    status, out, _ = run(capsys, "--layer", "g_through_d")
    assert status == 1
    wrong_not_raised(out)
    got = verdicts(out)
    assert got == {t: "FAIL" if "real+fake" in t else "pass" for t in THROUGH_D}


def test_backward_that_raises_is_a_failing_row(capsys, monkeypatch):
    """dy @ W instead of dy @ W.T: a shape error, reported as FAIL, the other checks still run."""
    def broken(self, dy, *args, **kwargs):
        return dy @ self.params["W"]
    monkeypatch.setattr(Linear, "backward", broken)
    status, out, _ = run(capsys)
    assert status == 1
    assert verdicts(out)["Linear"] == "FAIL" and verdicts(out)["Tanh"] == "pass"
    assert "ValueError" in out


def test_layer_class_without_a_check_fails(capsys, monkeypatch):
    class Swish(Layer):
        def forward(self, x):
            return x

        def backward(self, dy, param_grads=True, input_grad=True):
            return dy
    monkeypatch.setattr(tinygan.layers, "LAYER_CLASSES", LAYER_CLASSES + (Swish,))
    status, out, _ = run(capsys)
    assert status == 1
    assert "no gradient check for Swish" in out
    assert verdicts(out)["Swish"] == "FAIL"
    assert verdicts(out)["Linear"] == "pass"
    status, out, _ = run(capsys, "--layer", "swish")
    assert status == 1 and "no gradient check for Swish" in out


@pytest.mark.parametrize("name, titles", [
    ("maxout", {"Maxout"}),
    ("MAXOUT", {"Maxout"}),
    ("LeakyReLU", {"LeakyReLU"}),
    ("discriminator_loss", {"discriminator loss"}),
    ("generator_loss", {"generator loss"}),
    ("g", {"G"}),
    ("discriminator", {"D"}),
    ("g_through_d", set(THROUGH_D)),
])
def test_one_item(capsys, name, titles):
    status, out, _ = run(capsys, "--layer", name)
    assert status == 0, out
    assert set(verdicts(out)) == titles
    assert set(verdicts(out).values()) == {"pass"}


def test_unknown_layer_lists_the_choices(capsys):
    status, out, err = run(capsys, "--layer", "batchnorm")
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "batchnorm" in lines[0]
    for name in check_items():
        assert name in lines[0]


def test_float32_shows_why_float64_is_needed(capsys):
    status, out, _ = run(capsys, "--dtype", "float32", "--layer", "linear")
    assert status == 1
    assert verdicts(out) == {"Linear": "FAIL"}
    errors = [float(m) for m in re.findall(r"\s(\d\.\d\de[-+]\d\d)\s+FAIL", out)]
    assert len(errors) == 3 and min(errors) > 1e-4       # float64 gives ~1e-10
    assert "Why float64" in out and "eps |L| / h" in out


def test_tol_and_seed(capsys):
    assert run(capsys, "--layer", "linear", "--tol", "1e-15")[0] == 1
    a = run(capsys, "--layer", "maxout", "--seed", "3")[1]
    b = run(capsys, "--layer", "maxout", "--seed", "3")[1]
    strip = lambda s: s.rsplit(";", 1)[0]                 # the last line ends with the run time
    assert strip(a) == strip(b)


def test_checks_leave_dropout_as_they_found_it():
    be = get_backend("numpy", dtype="float64", seed=0)
    D = paper_discriminator(in_dim=6, units=3, pieces=2, backend=be)
    check_module(D, be.uniform(0, 1, (4, 6)), max_coords=10**6)
    assert not any(layer.fixed_mask for layer in D.layers if isinstance(layer, Dropout))


def test_help():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "tinygan", "gradcheck", "--help"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "python -m tinygan gradcheck" in res.stdout or "tinygan gradcheck" in res.stdout
    for opt in ("--layer", "--dtype", "--seed", "--tol", "--full"):
        assert opt in res.stdout


def test_the_core_module_names_the_command_without_importing_the_tools():
    """Issue 23: ``python -m tinygan.gradcheck`` (the core library run as a script) no longer
    imports the tools' command (that import was a cycle); it says, on one line, what the
    command is, and exits non-zero."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "tinygan.gradcheck", "--layer", "linear"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip() == "the command is: python -m tinygan gradcheck (or tinygan gradcheck)"


# --- docs/gradients.md: every relative link resolves, every line anchor names its function -----

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def doc_links():
    text = DOC.read_text()
    return [(m[1], m[2]) for m in LINK.finditer(text)
            if not re.match(r"[a-z]+:", m[2]) and not m[2].startswith("#")]


def enclosing_class(lines, n):
    """The name of the top-level class that line n (1-based) sits in, or None."""
    for line in reversed(lines[:n]):
        m = re.match(r"(class|def) (\w+)", line)
        if m:
            return m[2] if m[1] == "class" else None
    return None


def anchor_problem(text, target):
    """None when target#L<n> points at the definition that the link text names."""
    path, _, anchor = target.partition("#")
    file = (DOC.parent / path).resolve()
    if not file.is_file():
        return f"{target}: no such file"
    if not anchor:
        return None
    m = re.fullmatch(r"L(\d+)", anchor)
    if not m:
        return f"{target}: anchor is not #L<line>"
    lines = file.read_text().splitlines()
    n = int(m[1])
    name = text.strip("`").removesuffix("()")
    owner, _, func = name.rpartition(".")
    pattern = re.compile(rf"^\s*(def|class) {re.escape(func)}\b")
    found = [i + 1 for i, line in enumerate(lines) if pattern.match(line)
             and (not owner or enclosing_class(lines, i + 1) == owner)]
    if n in found:
        return None
    return f"[{text}]({target}): line {n} is not the definition of {name}; it is at {found}"


def test_doc_exists_and_links_resolve():
    links = doc_links()
    assert len(links) > 30
    problems = [p for text, target in links if (p := anchor_problem(text, target))]
    assert not problems, "\n".join(problems)


def github_slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_doc_section_links_resolve():
    text = DOC.read_text()
    slugs = {github_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    targets = [t[1:] for _, t in (m.groups() for m in LINK.finditer(text)) if t.startswith("#")]
    assert targets and not [t for t in targets if t not in slugs]


def test_doc_covers_every_layer_backward_and_check():
    linked = {text.strip("`") for text, _ in doc_links()}
    for cls in LAYER_CLASSES:
        assert f"{cls.__name__}.backward" in linked, cls.__name__
    for name in ("discriminator_loss", "generator_loss", "Sequential.backward",
                 "check_array", "check_module", "check_generator_through_discriminator"):
        assert name in linked, name
    text = DOC.read_text()
    items = check_items()
    commands = re.findall(r"python -m tinygan gradcheck --layer (\w+)", text)
    assert {c.lower() for c in commands} >= set(items)
    for c in commands:
        assert c.lower() in items, c
