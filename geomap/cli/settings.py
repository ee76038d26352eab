"""``geomap settings``: every setting declared in :mod:`geomap.config`, for people to read.

Plain text by default; ``--format markdown`` is the table README.md's settings section holds
between ``<!-- settings:start -->`` and ``<!-- settings:end -->``, which ``--readme README.md``
rewrites (``make readme``). ``tests/test_settings_doc.py`` fails while the two differ, so the
declarations in ``config.py`` are the one copy of names, types, defaults and help.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import click

from geomap import config

README_START = "<!-- settings:start -->"
README_END = "<!-- settings:end -->"

# The converters' names, in words (a converter not listed shows its own name).
_TYPE_WORDS = {
    "str": "text",
    "int": "integer",
    "float": "number",
    "_bool": "boolean",
    "_path": "path",
    "_str_list": "list",
}


def type_text(setting: config.Setting) -> str:
    """The kind of value a setting takes, in words (``integer``, ``path``, ``list``, …)."""
    name = getattr(setting.type, "__name__", repr(setting.type))
    return _TYPE_WORDS.get(name, name)


def default_text(setting: config.Setting) -> str:
    """A setting's default as one would write it in its variable.

    Paths inside the checkout are shown relative to it (``./data``), so the text is the same
    on every machine; no default is ``unset``, an empty list ``none``.
    """
    value: Any = setting.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) if value else "none"
    if isinstance(value, Path):
        try:
            return f"./{value.relative_to(config.PROJECT_DIR).as_posix()}"
        except ValueError:
            return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_text(settings: tuple[config.Setting, ...] = config.SETTINGS) -> str:
    """The settings as plain text: a heading line each, the help indented below it."""
    blocks = []
    for setting in settings:
        head = f"{setting.env} ({type_text(setting)}, default: {default_text(setting)})"
        body = textwrap.fill(setting.help, width=88, initial_indent="    ",
                             subsequent_indent="    ")  # fmt: skip
        blocks.append(f"{head}\n{body}\n")
    return "\n".join(blocks)


def as_markdown(settings: tuple[config.Setting, ...] = config.SETTINGS) -> str:
    """The settings as a Markdown table (setting, type, default, meaning), one row each."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for setting in settings:
        default = default_text(setting)
        if setting.default is not None and setting.default != ():
            default = f"`{default}`"
        rows.append(
            f"| `{setting.env}` | {type_text(setting)} | {cell(default)} | {cell(setting.help)} |"
        )
    return "\n".join(rows) + "\n"


def replace_in_readme(text: str, table: str) -> str:
    """``text`` with what stands between the settings markers replaced by ``table``.

    Raises
    ------
    click.ClickException
        When the markers are missing or out of order.
    """
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise click.ClickException(
            f"the file lacks the markers {README_START} ... {README_END} around its table"
        )
    head = text[: start + len(README_START)]
    return f"{head}\n{table}{text[end:]}"


def readme_table(text: str) -> str:
    """What stands between the settings markers of a README (the generated table)."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return ""
    return text[start + len(README_START) : end].removeprefix("\n")


@click.command("settings")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="Plain text, or the Markdown table of README.md.",
)
@click.option(
    "--readme",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Write the Markdown table into this file, between its "
    f"{README_START} and {README_END} markers (implies --format markdown).",
)
@click.option(
    "--check",
    is_flag=True,
    help="With --readme: only compare; exit 1 when the file's table is out of date.",
)
def settings_cmd(fmt: str, readme: Path | None, check: bool) -> None:
    """All settings: variable, type, default, help.

    As declared in geomap/config.py: the defaults, not the values in force here.
    """
    if readme is None:
        if check:
            raise click.UsageError("--check compares a file: give --readme too")
        click.echo(as_markdown() if fmt == "markdown" else as_text(), nl=False)
        return
    current = readme.read_text(encoding="utf-8")
    wanted = replace_in_readme(current, as_markdown())
    if wanted == current:
        click.echo(f"{readme}: up to date")
    elif check:
        click.echo(f"{readme}: out of date (run: geomap settings --readme {readme})")
        sys.exit(1)
    else:
        readme.write_text(wanted, encoding="utf-8")
        click.echo(f"{readme}: written")
