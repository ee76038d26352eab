"""README.md's settings table is `geomap settings --format markdown`, exactly (datasette's way).

Regenerate it with `make readme` (`geomap settings --readme README.md`).
"""

from pathlib import Path

from click.testing import CliRunner

from geomap import config
from geomap.cli import main
from geomap.cli.settings import README_END, README_START, readme_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_table_is_the_generated_one():
    result = CliRunner().invoke(main, ["settings", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    text = README.read_text(encoding="utf-8")
    assert text.count(README_START) == 1 and text.count(README_END) == 1
    assert readme_table(text) == result.output, "README.md is out of date: run make readme"


def test_every_declared_setting_is_a_row_and_a_text_entry():
    markdown = CliRunner().invoke(main, ["settings", "--format", "markdown"]).output
    plain = CliRunner().invoke(main, ["settings"]).output
    rows = [line for line in markdown.splitlines() if line.startswith("| `GEOMAP_")]
    assert [row.split("`")[1] for row in rows] == [s.env for s in config.SETTINGS]
    heads = [line.split(" ")[0] for line in plain.splitlines() if line.startswith("GEOMAP_")]
    assert heads == [s.env for s in config.SETTINGS]
    assert "GEOMAP_PORT (integer, default: 5000)" in plain
    assert "| `GEOMAP_STATE_DIR` | path | `./.geomap` |" in markdown
    assert "| `GEOMAP_DATABASE_URL` | text | unset |" in markdown


def test_the_defaults_are_shown_not_the_values_in_force():
    result = CliRunner().invoke(main, ["settings"], env={"GEOMAP_PORT": "5999"})
    assert result.exit_code == 0, result.output
    assert "GEOMAP_PORT (integer, default: 5000)" in result.output


def test_readme_option_rewrites_between_the_markers_and_check_reports(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text(f"# x\n\n{README_START}\nold table\n{README_END}\n\nafter\n", encoding="utf-8")
    runner = CliRunner()
    stale = runner.invoke(main, ["settings", "--readme", str(doc), "--check"])
    assert stale.exit_code == 1 and "out of date" in stale.output
    assert "old table" in doc.read_text(encoding="utf-8")
    written = runner.invoke(main, ["settings", "--readme", str(doc)])
    assert written.exit_code == 0 and "written" in written.output
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# x\n\n") and text.endswith(f"{README_END}\n\nafter\n")
    assert readme_table(text) == runner.invoke(main, ["settings", "--format", "markdown"]).output
    fresh = runner.invoke(main, ["settings", "--readme", str(doc), "--check"])
    assert fresh.exit_code == 0 and "up to date" in fresh.output


def test_a_file_without_markers_is_refused(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("# no table here\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["settings", "--readme", str(doc)])
    assert result.exit_code == 1 and "markers" in result.output
    assert doc.read_text(encoding="utf-8") == "# no table here\n"
