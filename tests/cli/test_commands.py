"""Small command-line surfaces (issue #28 items 10, 16 and 19)."""

import re
import subprocess
import sys

import click
from click.testing import CliRunner

from mabsa.cli import LAZY_COMMANDS, main


def test_perceive_on_a_folder_without_images_says_so_and_fails(tmp_path):
    (tmp_path / "notes.txt").write_text("no photos here")
    r = CliRunner().invoke(main, ["perceive", str(tmp_path)])
    assert r.exit_code == 2 and f"no images found in {tmp_path}" in r.output


def test_models_list_is_an_aligned_table():
    r = CliRunner().invoke(main, ["models", "list"])
    assert r.exit_code == 0, r.output
    header, *rows = r.output.splitlines()
    assert header.split()[:4] == ["name", "state", "size", "description"]
    column = header.index("description")
    assert rows and all(row[column - 2 : column] == "  " and row[column] != " " for row in rows)
    minilm = next(row for row in rows if row.startswith("minilm "))
    assert " installed " in minilm and " MB " in minilm


def test_help_lists_every_command_without_importing_them():
    # A fresh interpreter: `mabsa --help` must not pull in torch or any lazy command module.
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from mabsa.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "from mabsa.cli import LAZY_COMMANDS\n"
        "lazy = {target.split(':')[0] for target, _ in LAZY_COMMANDS.values()}\n"
        "heavy = sorted(m for m in sys.modules if m in lazy or m == 'torch' or m.startswith('mabsa.engine'))\n"
        "print(heavy)\n"
        "print(r.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded, listing = out.split("\n", 1)
    assert loaded == "[]"
    for name in [*LAZY_COMMANDS, "data", "score", "models"]:
        assert re.search(rf"^  {name}\s+\S", listing, re.M), name


def test_lazy_summaries_match_the_commands_own_help():
    # The stored summaries stand in for the real ones in --help: they must not drift.
    fresh = click.Context(main)
    for name, (_, summary) in LAZY_COMMANDS.items():
        command = main.get_command(fresh, name)
        for limit in (30, 45, 200):
            stand_in = click.Command(name, help=summary)
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), name
