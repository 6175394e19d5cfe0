"""``--engine ray``: Ray Data (map_batches over an actor pool, one model per actor) on a local Ray
instance gives the plain streaming path's predictions, in input order."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mabsa.cli.engine import predict_command
from mabsa.data import load_dataset, write_posts
from mabsa.engine.ray_predict import predict_file_ray
from mabsa.errors import MabsaError
from serve_support import tiny_checkpoint


def test_ray_path_equals_plain_path_on_50_posts(tmp_path_factory, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path_factory)
    posts = [p.extraction_input() for p in load_dataset("twitter2015", "dev", image_texts=False)[:50]]
    source = tmp_path / "posts.jsonl"
    write_posts(posts, source)

    plain, distributed = tmp_path / "plain.jsonl", tmp_path / "ray.jsonl"
    common = ["--checkpoint", str(checkpoint), "--input", str(source), "--batch-size", "8"]
    runner = CliRunner()
    result = runner.invoke(predict_command, [*common, "--output", str(plain)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(predict_command, [*common, "--output", str(distributed), "--engine", "ray"])
    assert result.exit_code == 0, result.output
    assert "wrote 50 posts" in result.output

    a = [json.loads(line) for line in plain.read_text().splitlines()]
    b = [json.loads(line) for line in distributed.read_text().splitlines()]
    assert len(b) == len(a) == 50
    assert [p["id"] for p in b] == [p.id for p in posts]  # input order kept across actors
    assert sum(len(p["aspects"]) for p in a) > 0
    for x, y in zip(a, b):
        assert {k: v for k, v in x.items() if k != "aspects"} == {k: v for k, v in y.items() if k != "aspects"}
        # Same aspects; scores agree to float precision (batches are padded differently).
        strip = lambda asp: [{k: v for k, v in d.items() if k != "score"} for d in asp]
        assert strip(x["aspects"]) == strip(y["aspects"])
        assert [d["score"] for d in x["aspects"]] == pytest.approx([d["score"] for d in y["aspects"]], abs=1e-5)


def test_ray_path_refuses_bad_arguments_before_starting_ray(tmp_path):
    from mabsa.engine.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="checkpoint not found"):
        predict_file_ray(tmp_path / "nope", tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    result = CliRunner().invoke(predict_command, ["--checkpoint", str(tmp_path), "--text", "hi", "--engine", "ray"])
    assert isinstance(result.exception, MabsaError) and "--engine ray needs --input" in str(result.exception)
