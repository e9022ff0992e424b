"""Write ``docs/cli.md``, the CLI reference, from ``flow.commands.cli.build_parser()``: every subcommand, every option, its help.

The page is generated so that it cannot drift from the parser: ``tests/test_docs.py`` and the MkDocs hook
``docs/hooks.py`` compare the committed page with :func:`render` and fail on a difference.

    python3 docs/gen_cli.py            # rewrite docs/cli.md
    python3 docs/gen_cli.py --check    # exit 1 when docs/cli.md differs from what the parser gives now
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "cli.md"
REGENERATE = "python3 docs/gen_cli.py"

if str(ROOT) not in sys.path:  # this checkout's flow/, not another installed copy
    sys.path.insert(0, str(ROOT))


def _escape(text: str) -> str:
    """Markdown-escape ``text`` outside its backtick spans (``<``, ``*``, ``_`` and ``|`` are literal in help)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([\\*_|\[\]])", r"\\\1", parts[i]).replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _metavar(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    name = action.metavar or action.dest.upper()
    return f"{name} ..." if action.nargs in ("+", "*") else str(name)


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.required or action.default in (None, argparse.SUPPRESS):
        return ""
    value = action.default
    return " ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _usage(parser: argparse.ArgumentParser) -> str:
    """One-line usage: ``prog`` then positionals, then options (required ones without brackets)."""
    words = [parser.prog]
    for action in parser._actions:  # noqa: SLF001 (argparse has no public accessor for its actions)
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):  # noqa: SLF001
            continue
        if not action.option_strings:
            words.append(_metavar(action))
            continue
        meta = _metavar(action)
        word = action.option_strings[-1] + (f" {meta}" if meta else "")
        words.append(word if action.required else f"[{word}]")
    return " ".join(words)


def _table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | value | default | what it does |", "|---|---|---|---|"]
    for action in parser._actions:  # noqa: SLF001
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):  # noqa: SLF001
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{_metavar(action)}` (positional)"
        if action.required and action.option_strings:
            name += " (required)"
        meta = _metavar(action)
        value = f"`{meta}`" if meta and action.option_strings else ""
        default = _default(action)
        rows.append(f"| {name} | {_escape(value) if value else ''} | {f'`{default}`' if default else ''} | "
                    f"{_escape(action.help or '')} |")
    return rows


def render() -> str:
    """The CLI reference page as Markdown, from the parser as it is now."""
    from flow.commands.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    helps = {a.dest: a.help for a in sub._choices_actions}  # noqa: SLF001
    out = [
        "# CLI reference",
        "",
        f"<!-- Generated from flow.commands.cli.build_parser() by docs/gen_cli.py; do not edit: run `{REGENERATE}`. -->",
        "",
        "Generated from `flow.commands.cli.build_parser()` (`docs/gen_cli.py`), so it lists exactly what `hlsflow --help`",
        "and `hlsflow COMMAND --help` accept. What each command writes, its exit codes and how bad input is",
        "reported: [Commands](commands.md). `python -m flow ...` is the same as `hlsflow ...`.",
        "",
        "`hlsflow [--version] COMMAND [OPTIONS]`, COMMAND one of:",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    out += [f"| [`{name}`](#hlsflow-{name}) | {_escape(helps[name] or '')} |" for name in sub.choices]
    for name, command in sub.choices.items():
        out += ["", f"## hlsflow {name}", "", _escape(helps[name] or "") + ".", ""]
        if command.description:
            out += [_escape(command.description), ""]
        out += ["```", _usage(command), "```", ""]
        out += _table(command)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md differs from the parser")
    check = args.parse_args(argv).check
    text = render()
    if check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} differs from flow.commands.cli.build_parser(): run `{REGENERATE}`",
                  file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
