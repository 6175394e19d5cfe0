"""A file's format comes from its content where that is unmistakable (issue #28 item 11): the
Twitter CoNLL release names its files *.txt."""

from click.testing import CliRunner

from mabsa.cli import main
from mabsa.data import load_dataset, read_posts, write_posts
from mabsa.data.formats import sniff_format


def test_conll_named_txt_is_read_as_conll(tmp_path):
    posts = load_dataset("twitter2015", "dev")[:5]
    conll = tmp_path / "dev.conll"
    write_posts(posts, conll)
    named_txt = tmp_path / "dev.txt"
    named_txt.write_text(conll.read_text())
    assert sniff_format(named_txt) == "conll"
    got = read_posts(named_txt)
    assert [p.tokens for p in got] == [p.tokens for p in posts]
    assert [[(a.span, a.polarity) for a in p.aspects] for p in got] == [
        [(a.span, a.polarity) for a in p.aspects] for p in posts
    ]
    r = CliRunner().invoke(main, ["data", "stats", str(named_txt), "--json"])
    assert r.exit_code == 0, r.output
    assert '"posts": 5' in r.output
    # --from wins over the content
    r = CliRunner().invoke(main, ["data", "stats", str(named_txt), "--from", "txt"])
    assert r.exit_code == 2 and "dev.txt" in r.output


def test_jsonl_without_its_suffix_and_unknown_suffixes(tmp_path):
    posts = load_dataset("twitter2015", "dev")[:3]
    path = tmp_path / "posts.data"
    write_posts(posts, path, "jsonl")
    assert sniff_format(path) == "jsonl" and len(read_posts(path)) == 3
    odd = tmp_path / "notes.xyz"
    odd.write_text("just some words\n")
    r = CliRunner().invoke(main, ["data", "stats", str(odd)])
    assert r.exit_code == 2 and "--from FORMAT" in r.output and "--from/--to" not in r.output
