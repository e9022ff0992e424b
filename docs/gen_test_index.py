"""Write ``docs/test-index.md``, the index of the test suite, from the tests themselves: every ``tests/test_*.py``
with the first sentence of its module docstring and the names of its tests (they read as specifications).

The page is generated so that it cannot drift from the suite: ``tests/test_docs.py`` compares the committed page
with :func:`render` and fails on a difference.

    python3 docs/gen_test_index.py            # rewrite docs/test-index.md
    python3 docs/gen_test_index.py --check    # exit 1 when docs/test-index.md differs from the tests now
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
PAGE = ROOT / "docs" / "test-index.md"
REGENERATE = "python3 docs/gen_test_index.py"


def first_sentence(doc: str) -> str:
    """The docstring's first sentence (up to the first ``. `` or the end of its first paragraph), on one line."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.search(r"\.(\s|$)", para)
    return para[: m.start() + 1] if m else para


def tests_of(tree: ast.Module) -> list[str]:
    """Names of the test functions (module level and in classes), in file order, without the ``test_`` prefix."""
    names = []
    for node in tree.body:
        body = node.body if isinstance(node, ast.ClassDef) else [node]
        names += [n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.name.startswith("test_")]
    return [n[len("test_"):] for n in names]


def render() -> str:
    lines = ["# Test index (generated)", "",
             f"Every test file with what it specifies and its tests, generated from `tests/` by `{REGENERATE}`",
             "(`tests/test_docs.py` fails when this page is stale). How the suite runs, its markers and its time:",
             "[tests.md](tests.md).", ""]
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        doc = ast.get_docstring(tree)
        if not doc:
            raise SystemExit(f"{path.relative_to(ROOT)}: no module docstring (say what the file specifies)")
        names = tests_of(tree)
        lines += [f"## `{path.name}`", "", first_sentence(doc).replace("|", "\\|"), "",
                  f"{len(names)} test{'' if len(names) == 1 else 's'}: " + ", ".join(f"`{n}`" for n in names) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
