"""Rewrite every [Name](../path#L<n>) link in docs/gradients.md to the line where Name is defined.

Run after moving code: python docs/update_links.py (tests/tools/test_gradcheck_cli.py checks the links)."""
import re, sys
from pathlib import Path
DOC = Path(__file__).resolve().parent / "gradients.md"
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s#]+)#L(\d+)\)")

def enclosing_class(lines, n):
    for line in reversed(lines[:n]):
        m = re.match(r"(class|def) (\w+)", line)
        if m:
            return m[2] if m[1] == "class" else None

def find(text, path):
    lines = (DOC.parent / path).resolve().read_text().splitlines()
    name = text.strip("`").removesuffix("()")
    owner, _, func = name.rpartition(".")
    pat = re.compile(rf"^\s*(def|class) {re.escape(func)}\b")
    return [i + 1 for i, l in enumerate(lines) if pat.match(l) and (not owner or enclosing_class(lines, i + 1) == owner)]

bad = []
def sub(m):
    found = find(m[1], m[2])
    if len(found) != 1:
        bad.append((m[1], m[2], found)); return m[0]
    return f"[{m[1]}]({m[2]}#L{found[0]})"
doc = LINK.sub(sub, DOC.read_text())
DOC.write_text(doc)
print("unresolved:", bad) if bad else print("all anchors resolved")
