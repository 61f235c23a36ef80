"""examples/toy_1d.py, the paper's Figure 1, run as a user runs it (the theory it illustrates is
checked in tests/core/test_theory.py)."""

import re
import subprocess
import sys

from conftest import REPO

SEED = 0


def test_figure_1_example_shows_the_theory(tmp_path):
    """examples/toy_1d.py (the paper's Figure 1) runs, writes its PNG, and its numbers say
    what its panels show. With --steps 2000 (about 5 s):
    (b) D trained with G fixed is D*: E_m |D - D*| < 0.02 (observed 0.004-0.006, seeds 0-3);
    (a) -> (d) Algorithm 1 drives JSD(p_data || p_g) from 0.40 to < 0.02 (observed 0.006),
    and D to D* (= 1/2 where p_g = p_data): E_m |D - D*| < 0.05 in (d) (observed 0.012-0.018).
    """
    out = tmp_path / "fig1.png"
    run = subprocess.run([sys.executable, str(REPO / "examples" / "toy_1d.py"), "--steps",
                          "2000", "--seed", str(SEED), "--out", str(out)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    found = re.findall(r"^\((\w)\).*JSD\(p_data \|\| p_g\) = ([\d.]+)\s+E_m \|D - D\*\| = ([\d.]+)",
                       run.stdout, flags=re.M)
    panels = {name: (float(j), float(g)) for name, j, g in found}
    assert sorted(panels) == list("abcd"), run.stdout
    assert panels["b"][1] < 0.02, run.stdout
    assert panels["a"][0] > 0.3 and panels["d"][0] < 0.02, run.stdout
    assert panels["d"][1] < 0.05, run.stdout
