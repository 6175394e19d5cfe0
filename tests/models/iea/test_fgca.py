"""FGCA generation (determinism, spans, splits, files) and the aligner's span accuracy."""

import json

from click.testing import CliRunner

from mabsa.data import load_dataset
from mabsa.models.iea.aligner import span_accuracy
from mabsa.models.iea.fgca import (
    ALIGNER_INSTRUCTION,
    PASCAL_CONTEXT_59,
    SURFACE,
    FgcaSample,
    make_fgca,
    read_fgca,
    write_fgca,
)

SMALL = {"train": 60, "dev": 20, "test": 20}


def test_59_pascal_context_classes_each_with_surface_forms():
    assert len(PASCAL_CONTEXT_59) == 59 == len(set(PASCAL_CONTEXT_59))
    assert all(SURFACE[c] for c in PASCAL_CONTEXT_59)


def test_default_sizes_and_determinism():
    a = make_fgca()
    assert {k: len(v) for k, v in a.items()} == {"train": 2000, "dev": 500, "test": 500}
    assert make_fgca() == a
    assert make_fgca(seed=14)["train"] != a["train"]
    assert len({s.id for v in a.values() for s in v}) == 3000  # ids unique across splits


def test_spans_point_at_the_phrase_and_none_regions_are_not_in_the_text():
    data = make_fgca(sizes=SMALL, seed=3)
    n_none = 0
    for s in (x for v in data.values() for x in v):
        if s.span is None:
            n_none += 1
            continue
        start, end = s.span
        assert 0 <= start < end <= len(s.tokens)
        phrase = " ".join(s.tokens[start:end]).lower()
        if s.cls != "person":  # people are named (Chuck Bass, @ TaylorSwift, # Emma)
            assert any(phrase == " ".join(f.lower().split()) for f in SURFACE[s.cls]), (s, phrase)
        else:
            assert "expression" in s.interpretation
        assert "Sentiment:" in s.interpretation
    assert 0 < n_none < 100  # both kinds of labels occur


def test_regions_of_one_image_share_its_text_and_point_at_different_phrases():
    data = make_fgca(sizes={"train": 200}, seed=5)["train"]
    by_image = {}
    for s in data:
        by_image.setdefault(s.image_id, []).append(s)
    for samples in by_image.values():
        assert len({s.tokens for s in samples}) == 1
        spans = [s.span for s in samples if s.span]
        assert len(spans) == len(set(spans))


def test_written_dataset_reads_as_mate_data_with_the_query_as_caption(tmp_path):
    data = make_fgca(sizes=SMALL, seed=3)
    write_fgca(data, tmp_path)
    posts = load_dataset(tmp_path, "dev")
    assert len(posts) == 20
    for post, sample in zip(posts, data["dev"]):
        assert post.tokens == sample.tokens
        assert [a.span for a in post.aspects] == ([sample.span] if sample.span else [])
        assert post.caption.startswith(ALIGNER_INSTRUCTION) and sample.interpretation in post.caption
    assert read_fgca(tmp_path, "test") == data["test"]


def test_make_fgca_cli(tmp_path):
    from mabsa.cli import main
    from mabsa.cli.iea import iea

    main.add_command(iea)
    out = CliRunner().invoke(main, ["iea", "make-fgca", "--output", str(tmp_path / "f"), "--sizes", "30,10,10"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["train"]["samples"] == 30
    assert (tmp_path / "f" / "jmasa_json" / "train.json").is_file()
    bad = CliRunner().invoke(main, ["iea", "make-fgca", "--output", str(tmp_path / "g"), "--sizes", "30,10"])
    assert bad.exit_code == 2 and "three" in bad.output


def test_span_accuracy_counts_none_as_a_label():
    def s(span):
        return FgcaSample("x", "i", "dog", "This region shows a dog.", ("a", "dog"), span, "template")

    gold = [s((1, 2)), s((1, 2)), s(None), s(None)]
    result = span_accuracy(gold, [(1, 2), (0, 2), None, (0, 1)])
    assert result["span_accuracy"] == 0.5
    assert result["accuracy_with_phrase"] == 0.5 and result["accuracy_none"] == 0.5
