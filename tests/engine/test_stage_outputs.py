"""Recorded stage outputs give what the composed checkpoints give: a pipeline of one term stage
and one polarity stage, and of ensembles of each (including members that cut long posts at
different lengths); the files round-trip exactly; a term the polarity record was not asked about
is an error, not a silent guess."""

import stat

import numpy as np
import pytest
import torch

from mabsa.data import load_dataset
from mabsa.engine.inference import predict_posts, task_scores
from mabsa.engine.stage_outputs import (
    decode_terms,
    load_records,
    pipeline_posts,
    polarity_queries,
    record_polarity,
    record_terms,
    save_records,
)
from mabsa.errors import MabsaError
from mabsa.models import get_model_class
from mabsa.models.ensemble.model import compose_ensemble
from mabsa.models.pipeline.model import compose_pipeline
from mabsa.models.saving import default_file_mode, load_model, save_model
from model_support import TINY_ENCODER


def tiny(model, task, seed, **args):
    torch.manual_seed(seed)
    return get_model_class(model).create({**TINY_ENCODER, **args}, task).eval()


@pytest.fixture(scope="module")
def posts():
    return load_dataset("twitter2015", "dev")[:24]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    save_model(tiny("text-crf", "mate", 0), root / "mate0")
    save_model(tiny("text-crf", "mate", 3, max_length=16), root / "mate3")  # cuts long posts
    save_model(tiny("text-cls", "masc", 1), root / "cls1")
    save_model(tiny("text-cls", "masc", 2), root / "cls2")
    return root


def answers(posts):
    return [[(a.span, a.polarity, round(a.score, 4)) for a in p.aspects] for p in posts]


def records_of(stages, posts, terms, polarity):
    """Term records, then polarity records asked about the gold aspects and every term found."""
    term_records = [record_terms(load_model(stages / n)[0], posts) for n in terms]
    queries = polarity_queries(posts, term_records)
    return term_records, [record_polarity(load_model(stages / n)[0], queries) for n in polarity]


@pytest.mark.parametrize("terms, polarity", [(["mate0"], ["cls1"]), (["mate0", "mate3"], ["cls1", "cls2"])])
def test_recorded_pipeline_predicts_as_the_composed_checkpoints(stages, posts, tmp_path, terms, polarity):
    def stage(names, label):
        if len(names) == 1:
            return stages / names[0]
        return compose_ensemble([stages / n for n in names], tmp_path / label)

    pipe, _ = load_model(compose_pipeline(stage(terms, "terms"), stage(polarity, "polarity"), tmp_path / "pipe"))
    expected = predict_posts(pipe, posts).posts
    assert sum(len(p.aspects) for p in expected) > 5  # random tiny taggers do find terms
    assert any(len(p.tokens) > 14 for p in posts)  # and mate3 cuts some posts
    term_records, polarity_records = records_of(stages, posts, terms, polarity)
    got = pipeline_posts(term_records, polarity_records, posts)
    assert answers(got) == answers(expected)
    assert task_scores(posts, got, "jmasa") == task_scores(posts, expected, "jmasa")


def test_records_round_trip_exactly(stages, posts, tmp_path):
    (term,), (pol,) = records_of(stages, posts, ["mate3"], ["cls1"])
    save_records(tmp_path / "t.npz", {"dev": term}, seed=3)
    save_records(tmp_path / "p.npz", {"dev": pol})
    (t, meta), (p, _) = load_records(tmp_path / "t.npz"), load_records(tmp_path / "p.npz")
    assert meta == {"seed": 3} and t["dev"].ids == term.ids and t["dev"].scheme == "mate"
    assert all(np.array_equal(a, b) for a, b in zip(t["dev"].emissions, term.emissions))
    assert all(np.array_equal(t["dev"].crf[k], term.crf[k]) for k in term.crf)
    assert p["dev"].probs.keys() == pol.probs.keys()
    assert all(np.array_equal(p["dev"].probs[k], pol.probs[k]) for k in pol.probs)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    assert stat.S_IMODE((tmp_path / "t.npz").stat().st_mode) == default_file_mode()  # not private


def test_unrecorded_term_or_other_posts_are_errors(stages, posts):
    term = record_terms(load_model(stages / "mate0")[0], posts)
    gold_only = record_polarity(load_model(stages / "cls1")[0], posts)
    found = decode_terms([term], posts)
    assert any((i, a.start, a.end) not in gold_only.probs for i, f in enumerate(found) for a in f)
    with pytest.raises(MabsaError, match="no probabilities for .* record the polarity stage after"):
        pipeline_posts([term], [gold_only], posts)
    with pytest.raises(MabsaError, match="recorded on other posts"):
        pipeline_posts([term], [gold_only], posts[1:])
