import json
from collections import Counter
from dataclasses import replace

import pytest

from mabsa.data.records import Aspect, Polarity, Post
from mabsa.errors import MabsaError
from mabsa.metrics import jmasa_scores, masc_scores, mate_scores, polarity_scores, score

POS, NEU, NEG = Polarity.POS, Polarity.NEU, Polarity.NEG


def post(post_id: str, n_tokens: int, *spans) -> Post:
    """A post of ``n_tokens`` dummy tokens with aspects ``(start, end[, polarity])``."""
    tokens = tuple(f"{post_id}{i}" for i in range(n_tokens))
    aspects = [Aspect(s[0], s[1], " ".join(tokens[s[0] : s[1]]), *s[2:]) for s in spans]
    return Post(post_id, tokens, tuple(aspects))


# Gold: 5 aspects in 3 posts.
GOLD = [
    post("p1", 6, (0, 1, POS), (2, 4, NEG)),
    post("p2", 5, (1, 2, NEU)),
    post("p3", 4, (0, 2, POS), (3, 4, NEU)),
]
# Predictions: 6 aspects.
#   p1 (0,1,POS) exact | (2,3,NEG) partial span of gold (2,4): wrong for every task
#   p2 (1,2,POS) right span, wrong polarity: correct for MATE only
#   p3 (0,2,POS) exact | (3,4,NEU) exact | (2,3,NEG) spurious
PRED = [
    post("p1", 6, (0, 1, POS), (2, 3, NEG)),
    post("p2", 5, (1, 2, POS)),
    post("p3", 4, (0, 2, POS), (3, 4, NEU), (2, 3, NEG)),
]


def test_jmasa_partial_matches():
    # correct = p1(0,1) + p3(0,2) + p3(3,4) = 3;  P = 3/6 = 0.5,  R = 3/5 = 0.6,
    # F1 = 2 * 0.5 * 0.6 / (0.5 + 0.6) = 0.6 / 1.1 = 6/11
    got = jmasa_scores(GOLD, PRED)
    assert got == {
        "precision": 0.5,
        "recall": 0.6,
        "f1": pytest.approx(6 / 11),
        "n_gold": 5,
        "n_pred": 6,
        "n_correct": 3,
    }


def test_mate_partial_matches():
    # correct = the 3 JMASA hits + p2(1,2) = 4;  P = 4/6 = 2/3,  R = 4/5,
    # F1 = 2 * (2/3)(4/5) / (2/3 + 4/5) = (16/15) / (22/15) = 8/11
    got = mate_scores(GOLD, PRED)
    assert got["n_correct"] == 4 and got["n_pred"] == 6 and got["n_gold"] == 5
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(4 / 5)
    assert got["f1"] == pytest.approx(8 / 11)


def test_masc_partial_matches():
    # (gold, predicted) per gold aspect: p1(0,1) POS->POS, p1(2,4) NEG->none (no predicted
    # aspect has that span), p2(1,2) NEU->POS, p3(0,2) POS->POS, p3(3,4) NEU->NEU.
    # accuracy = 3/5.
    # POS: tp 2, predicted 3, gold 2 -> P 2/3, R 1, F1 = (4/3)/(5/3) = 0.8
    # NEG: tp 0, predicted 0, gold 1 -> P 0 (undefined), R 0, F1 0
    # NEU: tp 1, predicted 1, gold 2 -> P 1, R 1/2, F1 = 1/(3/2) = 2/3
    # macro F1 = (0.8 + 0 + 2/3) / 3 = 22/45
    got = masc_scores(GOLD, PRED)
    assert got["n"] == 5
    assert got["accuracy"] == pytest.approx(0.6)
    assert got["macro_f1"] == pytest.approx(22 / 45)
    per = got["per_class"]
    assert list(per) == ["POS", "NEU", "NEG"]
    assert per["POS"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2}
    assert per["NEG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert per["NEU"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}


def test_wrong_polarity_counts_for_mate_not_jmasa():
    gold = [post("a", 3, (0, 1, POS))]
    pred = [post("a", 3, (0, 1, NEG))]
    assert jmasa_scores(gold, pred) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "n_gold": 1,
        "n_pred": 1,
        "n_correct": 0,
    }
    assert mate_scores(gold, pred) == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "n_gold": 1,
        "n_pred": 1,
        "n_correct": 1,
    }
    # labels {POS, NEG}: both F1 0 -> macro 0; accuracy 0/1
    m = masc_scores(gold, pred)
    assert (m["accuracy"], m["macro_f1"], sorted(m["per_class"])) == (0.0, 0.0, ["NEG", "POS"])


@pytest.mark.parametrize("pred", [[], [replace(p, aspects=()) for p in GOLD]])
def test_empty_predictions(pred):
    # n_pred = 0 -> P = 0;  n_correct = 0 -> R = 0/5 = 0;  P + R = 0 -> F1 = 0
    for scorer in (jmasa_scores, mate_scores):
        assert scorer(GOLD, pred) == {
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "n_gold": 5,
            "n_pred": 0,
            "n_correct": 0,
        }
    # every gold aspect is unanswered: accuracy 0/5; classes present = gold's, all F1 0
    m = masc_scores(GOLD, pred)
    assert (m["accuracy"], m["macro_f1"], m["n"]) == (0.0, 0.0, 5)
    assert {c: v["recall"] for c, v in m["per_class"].items()} == {"POS": 0.0, "NEU": 0.0, "NEG": 0.0}


def test_empty_gold():
    gold = [replace(p, aspects=()) for p in GOLD]
    # n_gold = 0 -> R = 0;  n_correct = 0 of n_pred 6 -> P = 0;  F1 = 0
    assert jmasa_scores(gold, PRED) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "n_gold": 0,
        "n_pred": 6,
        "n_correct": 0,
    }
    assert mate_scores(gold, gold)["f1"] == 0.0
    assert masc_scores(gold, PRED) == {"accuracy": 0.0, "macro_f1": 0.0, "n": 0, "per_class": {}}
    assert score([], [], "all")["jmasa"]["n_gold"] == 0


def test_duplicates_count_once():
    gold = [post("a", 4, (0, 1, POS), (0, 1, POS), (2, 4, NEU))]  # 2 distinct aspects
    # the same (span, polarity) 3 times is one prediction: 1 correct of 1 predicted, 2 gold
    # P = 1, R = 1/2, F1 = 1/(3/2) = 2/3
    dup = [post("a", 4, (0, 1, POS), (0, 1, POS), (0, 1, POS))]
    got = jmasa_scores(gold, dup)
    assert (got["n_gold"], got["n_pred"], got["n_correct"]) == (2, 1, 1)
    assert (got["precision"], got["recall"], got["f1"]) == (1.0, 0.5, pytest.approx(2 / 3))
    # one span with two polarities is two JMASA predictions (1 correct): P = 1/2, R = 1/2,
    # F1 = 1/2; for MATE it is one span: P = 1, R = 1/2, F1 = 2/3
    two = [post("a", 4, (0, 1, POS), (0, 1, NEG))]
    got = jmasa_scores(gold, two)
    assert (got["n_pred"], got["n_correct"], got["precision"], got["f1"]) == (2, 1, 0.5, 0.5)
    got = mate_scores(gold, two)
    assert (got["n_pred"], got["precision"], got["f1"]) == (1, 1.0, pytest.approx(2 / 3))
    # MASC: (0,1) has two predicted polarities -> no answer; (2,4) has none -> accuracy 0/2
    assert masc_scores(gold, two)["accuracy"] == 0.0
    assert masc_scores(gold, dup)["accuracy"] == 0.5


def test_missing_post_predicts_nothing():
    pred = [PRED[0], PRED[2]]  # no prediction for p2
    # JMASA: same 3 correct, n_pred 6 - 1 = 5, n_gold 5 -> P = R = F1 = 3/5
    got = jmasa_scores(GOLD, pred)
    assert (got["n_pred"], got["n_correct"]) == (5, 3)
    assert (got["precision"], got["recall"], got["f1"]) == (0.6, 0.6, pytest.approx(0.6))
    # MATE loses p2's hit: 3/5 as well
    assert mate_scores(GOLD, pred)["f1"] == pytest.approx(0.6)
    # MASC: p2(1,2) NEU is now unanswered instead of POS: still 3/5 right;
    # POS: tp 2, pred 2, gold 2 -> F1 1;  NEG: 0;  NEU: tp 1, pred 1, gold 2 -> F1 2/3
    # macro = (1 + 0 + 2/3) / 3 = 5/9
    m = masc_scores(GOLD, pred)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["macro_f1"] == pytest.approx(5 / 9)


def test_unknown_and_duplicate_ids_raise():
    stray = [PRED[0], post("zz9", 3, (0, 1, POS)), post("zz8", 2)]
    with pytest.raises(ValueError, match=r"2 predicted post id\(s\) are not in gold: 'zz9', 'zz8'"):
        jmasa_scores(GOLD, stray)
    with pytest.raises(MabsaError, match="not in gold"):
        score(GOLD, stray, "masc")
    with pytest.raises(ValueError, match="predictions has several posts with the same id: 'p1'"):
        mate_scores(GOLD, [PRED[0], PRED[0]])
    with pytest.raises(ValueError, match="gold has several posts with the same id: 'p2'"):
        mate_scores(GOLD + [GOLD[1]], PRED)


def test_gold_without_polarity():
    gold = [post("a", 3, (0, 1))]
    assert mate_scores(gold, gold)["f1"] == 1.0
    with pytest.raises(ValueError, match=r"gold post 'a': aspect 'a0' \[0, 1\) has no polarity"):
        jmasa_scores(gold, gold)
    # a predicted aspect without polarity is a JMASA prediction that is never right
    got = jmasa_scores([post("a", 3, (0, 1, POS))], gold)
    assert (got["n_pred"], got["n_correct"]) == (1, 0)


def test_macro_f1_with_class_absent_from_gold():
    gold = [post("a", 3, (0, 1, POS), (1, 2, POS), (2, 3, NEU))]
    pred = [post("a", 3, (0, 1, POS), (1, 2, NEG), (2, 3, NEU))]
    # labels = gold or predicted classes = {POS, NEU, NEG}
    # POS: tp 1, pred 1, gold 2 -> P 1, R 1/2, F1 2/3
    # NEG: tp 0, pred 1, gold 0 -> P 0, R 0 (undefined), F1 0
    # NEU: tp 1, pred 1, gold 1 -> F1 1
    # macro = (2/3 + 0 + 1) / 3 = 5/9 (over gold classes only it would be 5/6)
    m = masc_scores(gold, pred)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(5 / 9)
    assert m["per_class"]["NEG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # a class in neither gold nor predictions is not averaged: NEG absent -> (1 + 1) / 2
    assert masc_scores(gold[:1], gold)["macro_f1"] == 1.0
    assert list(masc_scores(gold, gold)["per_class"]) == ["POS", "NEU"]


def test_polarity_over_gold_aspects_and_over_found_spans():
    # gold aspects 5; spans found (MATE hits): p1(0,1) POS ok, p2(1,2) POS vs NEU wrong,
    # p3(0,2) POS ok, p3(3,4) NEU ok -> 4 found, 3 right: sentiment_acc_on_found = 3/4.
    # Over all 5 gold aspects (p1(2,4) not found counts wrong): 3/5 = JMASA recall here.
    got = polarity_scores(GOLD, PRED)
    assert got["n_found"] == 4 and got["n_gold"] == 5
    assert got["sentiment_acc_on_found"] == pytest.approx(3 / 4)
    assert got["accuracy_over_gold_aspects"] == pytest.approx(3 / 5) == jmasa_scores(GOLD, PRED)["recall"]
    # JMASA F1 6/11 vs MATE F1 8/11 x 3/4 = 6/11: the decomposition holds exactly here
    assert jmasa_scores(GOLD, PRED)["f1"] == pytest.approx(mate_scores(GOLD, PRED)["f1"] * 3 / 4)


def test_score_dispatch_and_json():
    everything = score(iter(GOLD), iter(PRED), "all")
    assert set(everything) == {"jmasa", "mate", "polarity"}
    assert everything["jmasa"] == jmasa_scores(GOLD, PRED)
    assert everything["mate"] == mate_scores(GOLD, PRED)
    assert everything["polarity"] == polarity_scores(GOLD, PRED)
    assert score(GOLD, PRED, "MATE") == mate_scores(GOLD, PRED)
    assert json.loads(json.dumps(everything)) == everything
    for task in everything.values():
        for key in ("precision", "recall", "f1", "accuracy_over_gold_aspects", "sentiment_acc_on_found"):
            if key in task:
                assert type(task[key]) is float
    with pytest.raises(ValueError, match="unknown task 'absa'"):
        score(GOLD, PRED, "absa")


# -- real data -------------------------------------------------------------------------
def read_t15_test() -> list[Post]:
    """Twitter-2015 test straight from the JMASA JSON release (independent of mabsa.data)."""
    from mabsa.data import data_root  # only to locate the files ($MABSA_DATA or ../shared/datasets)

    t15_test = data_root() / "twitter2015" / "jmasa_json" / "test.json"
    records = json.loads(t15_test.read_text(encoding="utf-8"))
    posts = []
    for i, r in enumerate(records):
        aspects = [Aspect(a["from"], a["to"], " ".join(a["term"]), Polarity(a["polarity"])) for a in r["aspects"]]
        posts.append(Post(f"t15-test-{i}", tuple(r["words"]), tuple(aspects), image=r["image_id"]))
    return posts


def test_real_data_gold_against_itself_and_all_neutral():
    gold = read_t15_test()
    counts = Counter(a.polarity for p in gold for a in p.aspects)
    n = sum(counts.values())
    assert (len(gold), n, counts[NEU]) == (674, 1037, 607)  # the README's verified counts

    perfect = score(gold, gold, "all")
    for task in ("jmasa", "mate"):
        assert perfect[task]["f1"] == 1.0 and perfect[task]["n_correct"] == n
    assert perfect["polarity"]["accuracy_over_gold_aspects"] == perfect["polarity"]["sentiment_acc_on_found"] == 1.0

    neutral = [p.with_aspects(replace(a, polarity=NEU) for a in p.aspects) for p in gold]
    got = score(gold, neutral, "all")
    assert got["mate"]["f1"] == 1.0
    # only the gold-NEU aspects stay right: P = R = F1 = 607 / 1037
    share = counts[NEU] / n
    for key in ("precision", "recall", "f1"):
        assert got["jmasa"][key] == pytest.approx(share)
    assert got["jmasa"]["n_correct"] == counts[NEU]
    assert got["polarity"]["accuracy_over_gold_aspects"] == pytest.approx(share)
    assert got["polarity"]["sentiment_acc_on_found"] == pytest.approx(share)  # every span found
    # NEU: P 607/1037, R 1 -> F1 = 2*607/(1037+607); POS and NEG F1 0 -> macro = that / 3
    assert got["polarity"]["macro_f1_over_gold_aspects"] == pytest.approx(2 * 607 / (1037 + 607) / 3)
