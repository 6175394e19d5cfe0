"""What training and ``mabsa evaluate`` score: a JMASA answer is also scored for its terms alone
and for its sentiment on the terms it found."""

from mabsa.cli.engine import _summary_table
from mabsa.data.records import Aspect, Polarity, Post
from mabsa.engine.inference import task_scores

TOKENS = ("Messi", "and", "Ronaldo", "at", "Camp", "Nou")


def post(*aspects):
    return Post("p1", TOKENS, tuple(Aspect(s, e, " ".join(TOKENS[s:e]), Polarity(p)) for s, e, p in aspects))


def test_jmasa_is_scored_as_jmasa_mate_and_polarity_on_found_terms():
    gold = [post((0, 1, "POS"), (2, 3, "NEG"), (4, 6, "NEU"))]
    # Messi found and right, Ronaldo found with the wrong sentiment, Camp Nou missed, "at" spurious
    pred = [post((0, 1, "POS"), (2, 3, "NEU"), (3, 4, "NEU"))]
    scores = task_scores(gold, pred, "jmasa")
    assert set(scores) == {"jmasa", "mate", "polarity"}
    assert scores["jmasa"]["f1"] == 1 / 3  # 1 right of 3 predicted and 3 gold
    assert scores["mate"]["f1"] == 2 / 3  # 2 spans right of 3 and 3
    assert scores["polarity"]["sentiment_acc_on_found"] == 1 / 2  # of the 2 found, 1 right
    assert scores["polarity"]["n_found"] == 2
    assert set(task_scores(gold, gold, "masc")) == {"masc"}


def test_the_training_summary_shows_the_polarity_accuracy(capsys, tmp_path):
    gold = [post((0, 1, "POS"), (2, 3, "NEG"))]
    pred = [post((0, 1, "POS"), (2, 3, "POS"))]
    metrics = {"best_epoch": 1, "epochs_run": 2, "dev": task_scores(gold, pred, "jmasa"), "test": None}
    _summary_table(metrics, tmp_path, 90.0)
    lines = capsys.readouterr().err.splitlines()
    assert any(line.split() == ["dev", "polarity", "sentiment_acc_on_found", "50.00"] for line in lines), lines
    assert any(line.split() == ["dev", "mate", "f1", "100.00"] for line in lines), lines
