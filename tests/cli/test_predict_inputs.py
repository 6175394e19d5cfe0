"""`mabsa predict` on odd inputs and outputs (issue #28, items 1-5, 8, 9): one-line errors that
name the file and line, exit 2, nothing half-written, checks before the model loads."""

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from mabsa.cli import main
from serve_support import tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


def predict(*args):
    return CliRunner().invoke(main, ["predict", *map(str, args)])


def test_a_non_string_text_names_file_and_line_and_writes_nothing(checkpoint, tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "a", "text": "Chuck Bass is everything"}\n{"id": "b", "text": 42}\n')
    out = tmp_path / "out.jsonl"
    r = predict("--checkpoint", checkpoint, "--input", posts, "--output", out)
    assert r.exit_code == 2 and "posts.jsonl:2: 'text' must be a string" in r.output
    assert "Traceback" not in r.output
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))  # nothing half-written


def test_tokens_must_be_a_list_and_a_missing_id_is_the_line_number(checkpoint, tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "a", "tokens": "abc def"}\n')
    r = predict("--checkpoint", checkpoint, "--input", posts, "--output", tmp_path / "o.jsonl")
    assert r.exit_code == 2 and "posts.jsonl:1: 'tokens' must be a list of strings" in r.output
    posts.write_text('{"text": "Chuck Bass is everything"}\n\n{"text": "Serena is here", "image": null}\n')
    out = tmp_path / "new" / "dir" / "o.jsonl"  # folders that do not exist yet
    r = predict("--checkpoint", checkpoint, "--input", posts, "--output", out)
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["1", "3"]
    posts.write_text('{"id": "x"}\n')
    r = predict("--checkpoint", checkpoint, "--input", posts, "--output", out)
    assert r.exit_code == 2 and "missing field 'text' (or 'tokens')" in r.output


def test_checks_that_need_no_model_come_before_loading_it(tmp_path):
    missing_checkpoint = tmp_path / "no-such-checkpoint"  # never reached: the input is checked first
    r = predict("--checkpoint", missing_checkpoint, "--text", "   ")
    assert r.exit_code == 2 and "--text is empty" in r.output
    r = predict("--checkpoint", missing_checkpoint, "--text", "hi there", "--image", tmp_path / "nope.jpg")
    assert r.exit_code == 2 and "nope.jpg: cannot load image: no such file" in r.output
    (tmp_path / "fake.jpg").write_text("not an image")
    r = predict("--checkpoint", missing_checkpoint, "--text", "hi there", "--image", tmp_path / "fake.jpg")
    assert r.exit_code == 2 and "fake.jpg: cannot load image" in r.output


def test_a_text_only_model_says_it_ignores_the_image_and_output_is_honoured(checkpoint, tmp_path):
    photo = tmp_path / "grey.png"
    Image.new("RGB", (40, 30), (128, 128, 128)).save(photo)
    out = tmp_path / "preds.jsonl"
    r = CliRunner().invoke(
        main,
        [
            "predict",
            "--checkpoint",
            str(checkpoint),
            "--text",
            "Chuck Bass is everything",
            "--image",
            str(photo),
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "does not use images; --image is ignored" in r.stderr
    (post,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert post["id"] == "1" and post["tokens"] == ["Chuck", "Bass", "is", "everything"]
    assert r.stdout == ""  # predictions went to the file
