"""The documentation: a short README whose links resolve, a CLI reference that is the parser's, a site that builds strictly.

The site is MkDocs (``mkdocs.yml``, pages in ``docs/``); ``mkdocs build --strict`` fails on a broken link, a link
to a missing heading, a page left out of the nav, and (through ``docs/hooks.py``) a stale ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def gen_cli() -> ModuleType:
    """``docs/gen_cli.py``, the generator of the CLI reference page (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gen_test_index() -> ModuleType:
    """``docs/gen_test_index.py``, the generator of the test index page."""
    spec = importlib.util.spec_from_file_location("gen_test_index", DOCS / "gen_test_index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_test_index_is_the_tests_own(tmp_path):
    """docs/test-index.md lists every tests/test_*.py with its docstring's first sentence and its tests."""
    gen = gen_test_index()
    assert (DOCS / "test-index.md").read_text() == gen.render(), f"docs/test-index.md is stale: run `{gen.REGENERATE}`"


def test_the_test_index_names_a_new_test(tmp_path, monkeypatch):
    gen = gen_test_index()
    (tmp_path / "test_example.py").write_text('"""Examples. More."""\n\ndef test_one_behaviour():\n    pass\n')
    monkeypatch.setattr(gen, "TESTS", tmp_path)
    assert "## `test_example.py`\n\nExamples.\n\n1 test: `one_behaviour`." in gen.render()


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)  # headings, not comments in code
    return {github_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_readme_is_at_most_200_lines() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_readme_holds_the_ci_test_command_verbatim() -> None:
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command in README.read_text().splitlines()


@pytest.mark.parametrize("target", relative_links(README))
def test_readme_relative_link_resolves(target: str) -> None:
    path, _, anchor = target.partition("#")
    page = (README.parent / path) if path else README
    assert page.exists(), f"README.md links to {path}, which does not exist"
    if anchor:
        assert anchor in anchors(page), f"README.md links to #{anchor}, a heading {page.name} does not have"


def test_cli_reference_is_what_the_parser_gives() -> None:
    assert (DOCS / "cli.md").read_text() == gen_cli().render(), \
        f"docs/cli.md differs from flow.commands.cli.build_parser(): run `{gen_cli().REGENERATE}`"


def test_cli_reference_lists_every_subcommand_and_option() -> None:
    from flow.commands.cli import build_parser

    page = (DOCS / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    for name, command in sub.choices.items():
        assert f"## hlsflow {name}\n" in page
        for action in command._actions:  # noqa: SLF001
            for option in action.option_strings:
                if action.help != argparse.SUPPRESS and option not in ("-h", "--help"):
                    assert f"`{option}`" in page, f"{name} {option} is missing from docs/cli.md"


def nav_pages(nav: list) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    assert sorted(nav_pages(config["nav"])) == sorted(p.name for p in DOCS.glob("*.md"))


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs or mkdocs-material is not installed (pip install -e '.[dev]')")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "cli" / "index.html").exists()
