"""Readers, writers and the registry on the real shipped data, plus every malformed-input error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mabsa.cli import main
from mabsa.data import (
    FORMATS,
    Aspect,
    Polarity,
    Post,
    load_dataset,
    read_posts,
    stats,
    tokenize,
    write_posts,
)
from mabsa.errors import DataFormatError, DatasetNotFoundError

EXPECTED = {  # posts, aspects, POS, NEU, NEG: ../shared/datasets/README.md and both papers
    ("twitter2015", "train"): (2101, 3179, 928, 1883, 368),
    ("twitter2015", "dev"): (727, 1122, 303, 670, 149),
    ("twitter2015", "test"): (674, 1037, 317, 607, 113),
    ("twitter2017", "train"): (1746, 3562, 1508, 1638, 416),
    ("twitter2017", "dev"): (577, 1176, 515, 517, 144),
    ("twitter2017", "test"): (587, 1234, 493, 573, 168),
}
SPLITS = sorted(EXPECTED)
SHIPPED_FILES = [(ds, sp, kind) for ds, sp in SPLITS for kind in ("jmasa_json", "aspects_tsv")]


def _file(root: Path, ds: str, sp: str, kind: str) -> Path:
    return root / ds / kind / f"{sp}.{'json' if kind == 'jmasa_json' else 'tsv'}"


def _core(posts):
    """What every format carries: id, tokens, image and aspects (span, term, polarity)."""
    return [(p.id, p.tokens, p.image, tuple((a.start, a.end, a.term, a.polarity) for a in p.aspects)) for p in posts]


@pytest.mark.parametrize("ds,sp", SPLITS)
def test_counts_match_the_papers(ds, sp):
    s = stats(load_dataset(ds, sp))
    assert (s["posts"], s["aspects"], s["POS"], s["NEU"], s["NEG"]) == EXPECTED[(ds, sp)]


@pytest.mark.parametrize("ds,sp,kind", SHIPPED_FILES)
def test_round_trip_through_conll_is_identical(tmp_path, shared_datasets, ds, sp, kind):
    src = _file(shared_datasets, ds, sp, kind)
    original = read_posts(src)
    write_posts(original, tmp_path / "x.conll")
    via_conll = read_posts(tmp_path / "x.conll")
    assert _core(via_conll) == _core(original)
    # ... and back into the source's own format
    back = tmp_path / src.name
    write_posts(via_conll, back)
    assert _core(read_posts(back)) == _core(original)


@pytest.mark.parametrize("ds,sp", SPLITS)
def test_tsv_and_json_readers_agree_on_every_aspect(shared_datasets, ds, sp):
    from_json = read_posts(_file(shared_datasets, ds, sp, "jmasa_json"))
    from_tsv = read_posts(_file(shared_datasets, ds, sp, "aspects_tsv"))
    assert len(from_tsv) == len(from_json) == EXPECTED[(ds, sp)][0]
    by_key = lambda posts: sorted(_core(posts))  # noqa: E731 - TSV order need not be JSON order
    assert by_key(from_tsv) == by_key(from_json)


def test_repeated_tweet_stays_two_posts_in_tsv(shared_datasets):
    # Twitter-2017 train holds one tweet twice (same image, same text, same two aspects).
    posts = read_posts(_file(shared_datasets, "twitter2017", "train", "aspects_tsv"))
    twins = [p for p in posts if p.image == "17_06_2136.jpg"]
    assert [p.id for p in twins] == ["17_06_2136", "17_06_2136#2"]
    assert all([a.term for a in p.aspects] == ["Emma Watson", "Tribeca Film Festival"] for p in twins)


def test_image_texts_are_joined_by_image_id():
    posts = load_dataset("twitter2015", "train")
    first = posts[0]
    assert first.image == "1860693.jpg" and first.id == "1860693"
    assert first.caption and isinstance(first.caption, str)
    # DeepFace attributes of the single face in 1860693.jpg
    (face,) = first.faces
    assert face.box == (0, 0, 107, 107) and face.age == 20 and face.gender == "man"
    assert face.emotion == "sad" and face.emotion_scores["sad"] == pytest.approx(0.43693547689)
    assert face.race == "latino hispanic" and face.race_scores["latino hispanic"] == pytest.approx(0.3750622570)
    assert first.aspect_face_description.startswith("There are")
    # rationales: 3176 of the 3179 train aspects have one; the rest are None, not a crash
    with_rationale = [a for p in posts for a in p.aspects if a.rationale is not None]
    assert len(with_rationale) == 3176
    chuck = first.aspects[0]
    assert chuck.term == "Chuck Bass" and chuck.rationale.reason.startswith("Sentiment: Neutral")


def test_missing_image_texts_are_none(tmp_path, shared_datasets):
    root = tmp_path / "mini"
    (root / "jmasa_json").mkdir(parents=True)
    shutil.copy(shared_datasets / "twitter2015" / "jmasa_json" / "dev.json", root / "jmasa_json")
    posts = load_dataset(root, "dev")
    assert len(posts) == 727
    assert all(p.caption is None and p.faces is None and p.aspect_face_description is None for p in posts)
    assert all(a.rationale is None for p in posts for a in p.aspects)


def test_extraction_input_strips_gold_and_per_aspect_texts():
    post = load_dataset("twitter2015", "test")[0]
    assert post.has_aspect_texts
    seen = post.extraction_input()
    assert seen.aspects == () and seen.aspect_face_description is None and not seen.has_aspect_texts
    assert seen.caption == post.caption and seen.faces == post.faces  # per-image texts stay


def test_registry_errors(monkeypatch, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'nope'"):
        load_dataset("nope", "test")
    with pytest.raises(DatasetNotFoundError, match="unknown split"):
        load_dataset("twitter2015", "validation")
    monkeypatch.setenv("MABSA_DATA", str(tmp_path / "absent"))
    with pytest.raises(DatasetNotFoundError, match="MABSA_DATA"):
        load_dataset("twitter2015", "test")


def test_mabsa_data_env_var(monkeypatch, shared_datasets):
    monkeypatch.setenv("MABSA_DATA", str(shared_datasets))
    assert len(load_dataset("t17", "dev")) == 577


def test_tokenize_matches_the_dataset_convention():
    assert tokenize("RT @ltsChuckBass: Chuck Bass is everything #MCM") == [
        "RT",
        "@",
        "ltsChuckBass",
        ":",
        "Chuck",
        "Bass",
        "is",
        "everything",
        "#",
        "MCM",
    ]
    assert tokenize("Warren's 1,237 votes at 9.30 :)") == ["Warren", "'", "s", "1,237", "votes", "at", "9.30", ":", ")"]


def test_jsonl_keeps_everything(tmp_path):
    posts = load_dataset("twitter2015", "dev")[:50]
    write_posts(posts, tmp_path / "p.jsonl")
    assert read_posts(tmp_path / "p.jsonl") == posts


def test_jsonl_accepts_raw_text_without_tokens(tmp_path):
    f = tmp_path / "raw.jsonl"
    f.write_text(json.dumps({"id": "a", "text": "Love #Paris!"}) + "\n")
    (post,) = read_posts(f)
    assert post.tokens == ("Love", "#", "Paris", "!") and post.aspects == ()


# -- CLI --------------------------------------------------------------------------------------
def test_cli_stats_prints_the_counts():
    result = CliRunner().invoke(main, ["data", "stats", "twitter2017"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in result.output.splitlines()[1:]}
    assert rows == {
        "train": [1746, 3562, 1508, 1638, 416],
        "dev": [577, 1176, 515, 517, 144],
        "test": [587, 1234, 493, 573, 168],
    }


SUFFIX = {"jsonl": "jsonl", "jmasa-json": "json", "tsv": "tsv", "txt": "txt", "conll": "conll"}


@pytest.mark.parametrize("src_fmt", FORMATS)
def test_cli_convert_between_any_two_formats_preserves_every_aspect(tmp_path, shared_datasets, src_fmt):
    gold = read_posts(shared_datasets / "twitter2015" / "jmasa_json" / "test.json")
    src = tmp_path / f"src.{SUFFIX[src_fmt]}"
    write_posts(gold, src)
    runner = CliRunner()
    for dst_fmt in FORMATS:
        dst = tmp_path / f"dst_{dst_fmt}.out"  # suffix says nothing: formats named explicitly
        result = runner.invoke(main, ["data", "convert", str(src), str(dst), "--from", src_fmt, "--to", dst_fmt])
        assert result.exit_code == 0, result.output
        assert "674 posts, 1037 aspects" in result.output
        assert sorted(_core(read_posts(dst, dst_fmt))) == sorted(_core(gold)), (src_fmt, dst_fmt)


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tl\ti\ts\ts\n1\t7\t1.jpg\tnice $T$\tday\n")
    result = CliRunner().invoke(main, ["data", "convert", str(bad), str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {bad}:2: bad polarity label '7': expected 0 (NEG), 1 (NEU) or 2 (POS)"


# -- malformed inputs: one test per error class; each message names file and line ---------------
def _raises_at(path: Path, line: int, match: str, fmt: str | None = None):
    with pytest.raises(DataFormatError, match=match) as info:
        read_posts(path, fmt)
    assert info.value.path == str(path) and info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_bad_polarity(tmp_path):
    j = tmp_path / "a.json"
    j.write_text(
        '[\n{"words": ["a", "b"], "image_id": "1.jpg",\n "aspects": []},\n'
        '{"words": ["x"], "image_id": "2.jpg", "aspects": [{"from": 0, "to": 1, "polarity": "GOOD"}]}\n]'
    )
    _raises_at(j, 4, "bad polarity 'GOOD'")
    t = tmp_path / "a.txt"
    t.write_text("nice $T$\nday\n1\n1.jpg\nbad $T$\nday\n5\n2.jpg\n")
    _raises_at(t, 7, "bad polarity label '5'")
    c = tmp_path / "a.conll"
    c.write_text("IMGID:1\nnice\tO\nday\tB-GOOD\n")
    _raises_at(c, 3, "bad polarity in tag 'B-GOOD'")


def test_span_out_of_range(tmp_path):
    j = tmp_path / "a.json"
    j.write_text('[{"words": ["a", "b"], "image_id": "1.jpg", "aspects": [{"from": 1, "to": 3, "polarity": "POS"}]}]')
    _raises_at(j, 1, r"span out of range: from=1 to=3 for 2 words")
    jl = tmp_path / "a.jsonl"
    jl.write_text(
        '{"id": "1", "tokens": ["a"], "aspects": []}\n'
        '{"id": "2", "tokens": ["a"], "aspects": [{"start": 0, "end": 2, "polarity": "POS"}]}\n'
    )
    _raises_at(jl, 2, r"out of range")


def test_target_marker_missing(tmp_path):
    t = tmp_path / "a.tsv"
    t.write_text("index\tl\ti\ts\ts\n1\t2\t1.jpg\tnice $T$\tday\n2\t2\t1.jpg\tnice day\tday\n")
    _raises_at(t, 3, r"\$T\$ missing")
    t.write_text("1\t2\t1.jpg\tnice$T$\tday\n")
    _raises_at(t, 1, r"\$T\$ must stand as a token")


def test_wrong_column_count(tmp_path):
    t = tmp_path / "a.tsv"
    t.write_text("index\tl\ti\ts\ts\n1\t2\t1.jpg\tnice $T$\n")
    _raises_at(t, 2, "wrong column count: expected 5 .* found 4")
    c = tmp_path / "a.conll"
    c.write_text("IMGID:1\nnice\tO\n\nIMGID:2\nlonely\n")
    _raises_at(c, 5, "wrong column count")
    x = tmp_path / "a.txt"
    x.write_text("nice $T$\nday\n1\n1.jpg\nbad $T$\n")
    _raises_at(x, 5, "wrong line count")


def test_invalid_json(tmp_path):
    j = tmp_path / "a.json"
    j.write_text('[\n{"words": ["a"], "aspects": []},\n{"words": ["b"] "aspects": []}\n]')
    _raises_at(j, 3, "invalid JSON")
    jl = tmp_path / "a.jsonl"
    jl.write_text('{"id": "1", "tokens": ["a"]}\n\n{"id": "2", tokens: []}\n')
    _raises_at(jl, 3, "invalid JSON")


def test_unreadable_encoding(tmp_path):
    t = tmp_path / "a.tsv"
    t.write_bytes(b"index\tl\ti\ts\ts\n1\t2\t1.jpg\tnice $T$\tday\n2\t2\t2.jpg\tcaf\xe9 $T$\tday\n")
    _raises_at(t, 3, "not UTF-8")
    jl = tmp_path / "a.jsonl"
    jl.write_bytes(b'{"id": "1", "tokens": ["\xff"]}\n')
    _raises_at(jl, 1, "not UTF-8")


def test_invalid_conll_tag_sequence(tmp_path):
    c = tmp_path / "a.conll"
    c.write_text("IMGID:1\nnice\tO\nday\tI-POS\n")
    _raises_at(c, 3, "I- without B-")
    c.write_text("IMGID:1\nnew\tB-POS\nyork\tI-NEG\n")
    _raises_at(c, 3, "changes polarity")


def test_conll_extra_columns_and_plain_bio(tmp_path):
    c = tmp_path / "a.conll"
    c.write_text("IMGID:99\nI\tO\tO\nlove\tO\tB\nNew\tB\tO\nYork\tI\tO\n")
    (post,) = read_posts(c)
    assert post.image == "99.jpg" and post.aspects == (Aspect(2, 4, "New York", None),)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="cannot tell the format"):
        read_posts(tmp_path / "a.xml")
    with pytest.raises(DataFormatError, match="unknown format 'xml'"):
        read_posts(tmp_path / "a.json", "xml")
    with pytest.raises(DataFormatError, match="file not found"):
        read_posts(tmp_path / "absent.json")


def test_records_validate():
    with pytest.raises(ValueError, match="bad aspect span"):
        Aspect(3, 3, "x", Polarity.POS)
    with pytest.raises(ValueError, match="out of range"):
        Post(id="p", tokens=("a",), aspects=(Aspect(0, 2, "a b", Polarity.POS),))
    assert Polarity.parse("negative") is Polarity.NEG and Polarity.parse(-1) is Polarity.NEG


def test_cli_score_hand_computed(tmp_path):
    gold = [
        Post("a", ("I", "love", "New", "York"), (Aspect(2, 4, "New York", Polarity.POS),)),
        Post(
            "b",
            ("Obama", "meets", "Merkel"),
            (Aspect(0, 1, "Obama", Polarity.NEU), Aspect(2, 3, "Merkel", Polarity.NEU)),
        ),
    ]
    pred = [
        Post("a", gold[0].tokens, (Aspect(2, 4, "New York", Polarity.POS, score=0.9),)),
        Post("b", gold[1].tokens, (Aspect(0, 1, "Obama", Polarity.NEG), Aspect(1, 2, "meets", Polarity.NEU))),
    ]
    write_posts(gold, tmp_path / "gold.jsonl")
    write_posts(pred, tmp_path / "pred.jsonl")
    result = CliRunner().invoke(main, ["score", str(tmp_path / "gold.jsonl"), str(tmp_path / "pred.jsonl")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    # JMASA: 1 of 3 predictions right, 1 of 3 gold found -> P = R = F1 = 1/3
    assert out["jmasa"]["precision"] == pytest.approx(1 / 3) and out["jmasa"]["f1"] == pytest.approx(1 / 3)
    # MATE: spans (a,2,4) and (b,0,1) right -> P = R = 2/3
    assert out["mate"]["f1"] == pytest.approx(2 / 3)
    # polarity over 3 gold aspects: New York right, Obama wrong, Merkel unpredicted -> 1/3;
    # over the 2 found spans (New York, Obama): 1/2
    assert out["polarity"]["accuracy_over_gold_aspects"] == pytest.approx(1 / 3)
    assert out["polarity"]["sentiment_acc_on_found"] == pytest.approx(1 / 2)
