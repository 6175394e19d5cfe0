"""Small command-line surfaces (issue #28 items 10 and 16)."""

from click.testing import CliRunner

from mabsa.cli import main


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
