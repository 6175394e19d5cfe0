"""Distillation: the teacher's soft JMASA tags are the term marginals times the polarity of the
span that holds the word; a student trained on one-hot teacher targets of the gold tags learns
exactly as from the gold; misuse is a one-line error."""

import numpy as np
import pytest

from mabsa.data import load_dataset
from mabsa.data.records import Aspect
from mabsa.engine import trainer
from mabsa.engine.config import load_run_config
from mabsa.engine.distillation import load_targets, save_targets, teacher_targets
from mabsa.engine.stage_outputs import PolarityRecord, TermRecord
from mabsa.errors import ConfigError
from mabsa.modules.crf import CRF, bio_transition_constraints
from mabsa.tagging import JMASA, MATE, spans_to_tags, tags_to_ids
from model_support import TINY_RUN_SETS

TINY = TINY_RUN_SETS


def crf_state():
    allowed, allowed_start = bio_transition_constraints(MATE.labels)
    return {k: v.numpy() for k, v in CRF(3, allowed, allowed_start).state_dict().items()}


def test_teacher_targets_hand_computed(tmp_path):
    post = load_dataset("twitter2015", "dev")[0].with_aspects([])
    n = len(post.tokens)
    post = post.with_aspects([Aspect(n - 1, n, post.tokens[-1])])  # gold: the last word
    state = crf_state()
    for k in ("start", "end", "transitions"):
        state[k] = np.zeros_like(state[k])
    emissions = np.full((n - 1, 3), [20.0, 0.0, 0.0], dtype=np.float32)  # O, except:
    emissions[0] = [0.0, 20.0, 0.0]  # a certain one-word term at word 0
    emissions[1] = [np.log(3.0), np.log(1.0), -1e4]  # word 1: O 3:1 B, never I
    terms = TermRecord([post.id], [emissions], state, "mate")  # the last word was cut: O
    probs = {(0, 0, 1): np.array([0.7, 0.2, 0.1]), (0, n - 1, n): np.array([0.1, 0.1, 0.8])}
    polarity = PolarityRecord([post.id], probs)

    q = teacher_targets([terms], [polarity], [post])[post.id]
    assert q.shape == (n, 7) and np.allclose(q.sum(1), 1)
    assert q[0, JMASA.label2id["B-POS"]] == pytest.approx(0.7, abs=1e-6)
    assert q[0, JMASA.label2id["B-NEG"]] == pytest.approx(0.1, abs=1e-6)
    assert q[1, JMASA.label2id["O"]] == pytest.approx(0.75, abs=1e-4)  # no span: uniform polarity
    assert q[1, JMASA.label2id["B-NEU"]] == pytest.approx(0.25 / 3, abs=1e-4)
    assert q[n - 1, JMASA.label2id["O"]] == 1.0  # cut by the teacher: O, whatever the gold says

    save_targets(tmp_path / "t.npz", {post.id: q}, teacher="hand")
    assert np.array_equal(load_targets(tmp_path / "t.npz")[post.id], q)


def gold_targets(posts):
    return {
        p.id: np.eye(7, dtype=np.float32)[tags_to_ids(spans_to_tags(len(p.tokens), p.aspects, JMASA), JMASA)]
        for p in posts
    }


def test_one_hot_teacher_of_the_gold_trains_as_the_gold(tmp_path):
    save_targets(tmp_path / "gold.npz", gold_targets(load_dataset("twitter2015", "train")[:16]))
    plain = trainer.train(
        load_run_config("text-crf", sets=TINY), "twitter2015", "jmasa", tmp_path / "a", progress=False
    )
    config = load_run_config(
        "text-crf", sets=[*TINY, f"train.teacher={tmp_path / 'gold.npz'}", "train.distill_weight=0.7"]
    )
    taught = trainer.train(config, "twitter2015", "jmasa", tmp_path / "b", progress=False)
    assert taught["history"][0]["train_loss"] == pytest.approx(plain["history"][0]["train_loss"], rel=1e-5)
    assert taught["dev"] == plain["dev"]


def test_a_different_teacher_changes_training(tmp_path):
    posts = load_dataset("twitter2015", "train")[:16]
    flipped = {k: v[:, [0, 5, 6, 3, 4, 1, 2]] for k, v in gold_targets(posts).items()}  # POS <-> NEG
    save_targets(tmp_path / "flip.npz", flipped)
    plain = trainer.train(
        load_run_config("text-crf", sets=TINY), "twitter2015", "jmasa", tmp_path / "a", progress=False
    )
    config = load_run_config(
        "text-crf", sets=[*TINY, f"train.teacher={tmp_path / 'flip.npz'}", "train.distill_weight=1"]
    )
    taught = trainer.train(config, "twitter2015", "jmasa", tmp_path / "b", progress=False)
    assert taught["history"][0]["train_loss"] != pytest.approx(plain["history"][0]["train_loss"], rel=1e-3)


@pytest.mark.parametrize(
    "task, extra, message",
    [
        ("mate", [], "distilled into a JMASA CRF tagger"),
        ("jmasa", ["train.distill_weight=1.5"], r"distill_weight must be in \[0, 1\]"),
        ("jmasa", ["train.max_train_posts=20"], "no targets for 4 training posts"),
    ],
)
def test_misuse_is_a_config_error(tmp_path, task, extra, message):
    save_targets(tmp_path / "t.npz", gold_targets(load_dataset("twitter2015", "train")[:16]))
    config = load_run_config("text-crf", sets=[*TINY, f"train.teacher={tmp_path / 't.npz'}", *extra])
    with pytest.raises(ConfigError, match=message):
        trainer.train(config, "twitter2015", task, tmp_path / "run", progress=False)


def test_a_file_of_something_else_is_named(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(ConfigError, match="x.npz is not a teacher targets file"):
        load_targets(tmp_path / "x.npz")
