"""The generic two-stage pipeline and ensembles: terms are the term stage's and never change,
the polarity stage reads no text built with the gold aspects, corrupting the gold changes no
prediction, ensembles average what they say they average."""

from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mabsa.data import load_dataset
from mabsa.data.records import Aspect, Polarity, Rationale
from mabsa.engine.inference import evaluate, predict_posts
from mabsa.errors import MabsaError
from mabsa.models import get_model_class
from mabsa.models.ensemble.model import compose_ensemble
from mabsa.models.pipeline.model import classify_terms, combine, compose_pipeline, predict_two_stage
from mabsa.models.saving import load_model, save_model
from model_support import TINY_ENCODER

ENCODER = TINY_ENCODER


def tiny(model, task, seed=0, **args):
    torch.manual_seed(seed)
    return get_model_class(model).create({**ENCODER, **args}, task).eval()


def every_word_a_term(model):
    """A tiny MATE model made to tag every word B (so the pipeline has terms to classify)."""
    with torch.no_grad():
        model.head.emissions.weight.zero_()
        model.head.emissions.bias.copy_(torch.tensor([0.0, 20.0, 0.0]))
    return model


@pytest.fixture(scope="module")
def posts():
    return load_dataset("twitter2015", "dev")[:8]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    save_model(tiny("text-crf", "mate", image_text=["caption"]), root / "mate")
    save_model(every_word_a_term(tiny("text-crf", "mate", image_text=["caption"])), root / "every")
    save_model(tiny("fite", "masc"), root / "fite")
    save_model(tiny("text-cls", "masc", seed=1), root / "cls1")
    save_model(tiny("text-cls", "masc", seed=2), root / "cls2")
    return root


def test_pipeline_terms_are_the_term_stages(stages, posts, tmp_path):
    pipe, config = load_model(compose_pipeline(stages / "mate", stages / "fite", tmp_path / "p"))
    assert config["model"] == "pipeline" and config["model_args"]["polarity_input"] == "extraction"
    terms, _ = load_model(stages / "mate")
    expected = predict_posts(terms, [p.extraction_input() for p in posts]).posts
    got = predict_posts(pipe, posts).posts
    assert [[a.span for a in p.aspects] for p in got] == [[a.span for a in p.aspects] for p in expected]
    assert all(a.polarity in Polarity for p in got for a in p.aspects)
    assert set(evaluate(pipe, posts)) >= {"jmasa", "mate"}


@pytest.mark.parametrize("polarity_input, reads_shipped", [("extraction", False), ("post", True)])
def test_polarity_stage_reads_shipped_per_aspect_text_only_in_the_labelled_mode(
    stages, posts, tmp_path, polarity_input, reads_shipped
):
    pipe, _ = load_model(compose_pipeline(stages / "every", stages / "fite", tmp_path / "p", polarity_input))
    secret = [replace(p, aspect_face_description="zzsecret a face") for p in posts[:4]]
    tok = pipe.terms.processor.tokenizer
    for f in pipe.processor.encode(secret, with_labels=False):  # the term extractor never sees it
        assert "zzsecret" not in tok.decode(f.input_ids).replace(" ", "")
    for pred, post in zip(predict_posts(pipe, secret).posts, secret):
        assert [a.span for a in pred.aspects] == [(i, i + 1) for i in range(len(post.tokens))]
        read = [a.rationale.description.startswith("zzsecret") for a in pred.aspects if a.rationale]
        assert any(read) if reads_shipped else not any(read)


@pytest.mark.parametrize("polarity", ["fite", "cls1"])  # cls1: text-cls, the best configuration's kind
def test_corrupting_the_gold_changes_no_prediction(stages, posts, tmp_path, polarity):
    pipe, _ = load_model(compose_pipeline(stages / "every", stages / polarity, tmp_path / "p"))
    corrupted = [
        replace(
            p,
            aspect_face_description="zz a 90-year-old man with a disgust expression.",
            aspects=tuple(
                replace(a, polarity=Polarity.NEG, rationale=Rationale(reason="zz", description="zz"))
                for a in reversed(p.aspects)
            )
            + (Aspect(0, 1, p.tokens[0], Polarity.POS),),
        )
        for p in posts
    ]
    clean, dirty = predict_posts(pipe, posts).posts, predict_posts(pipe, corrupted).posts
    assert any(p.aspects for p in clean)
    assert [p.aspects for p in clean] == [p.aspects for p in dirty]


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_the_polarity_stage_can_never_add_drop_or_move_a_term(stage_models, posts, data):
    post = posts[data.draw(st.integers(0, len(posts) - 1))]
    n = len(post.tokens)
    cuts = sorted(data.draw(st.sets(st.integers(0, n), max_size=8)))
    spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if a < b and data.draw(st.booleans())]
    given_terms = [Aspect(a, b, " ".join(post.tokens[a:b]), score=0.5) for a, b in spans]
    model = stage_models[data.draw(st.sampled_from(sorted(stage_models)))]
    classified = classify_terms(model, [post.extraction_input().with_aspects(given_terms)])[0]
    out = [combine(t, c) for t, c in zip(given_terms, classified)]
    assert [a.span for a in out] == spans and all(a.polarity in Polarity for a in out)
    assert all(0 <= a.score <= 0.5 for a in out)


@pytest.fixture(scope="module")
def stage_models(stages):
    return {name: load_model(stages / name)[0] for name in ("fite", "cls1")}


def test_two_stage_helper_passes_rationales_only_to_found_terms(stages, posts):
    terms, _ = load_model(stages / "every")
    polarity, _ = load_model(stages / "cls1")
    seen = []

    def lookup(post, term):
        seen.append((post.id, term.span))
        return None

    out, counts = predict_two_stage(terms, polarity, posts, lookup)
    assert counts["terms"] == sum(len(p.tokens) for p in posts) == len(seen)
    assert [[a.span for a in p.aspects] for p in out] == [[(i, i + 1) for i in range(len(p.tokens))] for p in posts]


def test_ensemble_of_one_model_twice_predicts_as_the_model(stages, posts, tmp_path):
    single, _ = load_model(stages / "mate")
    ensemble, config = load_model(compose_ensemble([stages / "mate", stages / "mate"], tmp_path / "e"))
    assert config["model"] == "ensemble" and ensemble.task == "mate"
    a, b = predict_posts(single, posts).posts, predict_posts(ensemble, posts).posts
    assert [[(x.span, x.polarity) for x in p.aspects] for p in a] == [
        [(x.span, x.polarity) for x in p.aspects] for p in b
    ]
    scores = [(x.score, y.score) for p, q in zip(a, b) for x, y in zip(p.aspects, q.aspects)]
    assert all(x == pytest.approx(y, abs=1e-5) for x, y in scores)


def test_classifier_ensemble_averages_probabilities(stages, posts, tmp_path):
    members = [load_model(stages / n)[0] for n in ("cls1", "cls2")]
    ensemble, _ = load_model(compose_ensemble([stages / "cls1", stages / "cls2"], tmp_path / "e"))
    given_posts = [p for p in posts if p.aspects][:4]
    batch = ensemble.processor.collate(ensemble.processor.encode(given_posts, with_labels=False))
    with torch.no_grad():
        expected = torch.stack(
            [
                m.logits(m.processor.collate(m.processor.encode(given_posts, with_labels=False))).softmax(-1)
                for m in members
            ]
        ).mean(0)
    got = ensemble.decode(batch)
    assert [a[0].score for a in got] == pytest.approx(expected.max(-1).values.tolist(), abs=1e-6)
    # and it runs wherever a checkpoint does, as a pipeline's polarity stage too
    pipe, _ = load_model(compose_pipeline(stages / "mate", tmp_path / "e", tmp_path / "p"))
    assert len(predict_posts(pipe, given_posts).posts) == len(given_posts)


def test_ensemble_members_must_share_a_task(stages, tmp_path):
    with pytest.raises(MabsaError, match="one task"):
        compose_ensemble([stages / "mate", stages / "cls1"], tmp_path / "e")


def test_cli_composes_and_predict_and_serve_run_them(stages, tmp_path):
    """`mabsa ensemble` and `mabsa pipeline` write checkpoints that `mabsa predict` and the service
    run end to end."""
    import json
    import time

    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from mabsa.cli import main
    from mabsa.serve import ServeConfig, create_app

    runner = CliRunner()
    r = runner.invoke(main, ["ensemble", str(stages / "cls1"), str(stages / "cls2"), "--output", str(tmp_path / "e")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main,
        [
            "pipeline",
            "--terms",
            str(stages / "every"),
            "--polarity",
            str(tmp_path / "e"),
            "--output",
            str(tmp_path / "p"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["model"] == "pipeline"
    text = "Chuck Bass is everything # MCM"
    r = runner.invoke(main, ["predict", "--checkpoint", str(tmp_path / "p"), "--text", text])
    assert r.exit_code == 0, r.output
    predicted = json.loads(r.stdout.splitlines()[0])
    assert [a["term"] for a in predicted["aspects"]] == text.split()
    app = create_app(ServeConfig(checkpoints={"pipe": str(tmp_path / "p")}, evidence=None))
    with TestClient(app) as client:
        for _ in range(100):  # the model loads in the background
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.1)
        served = client.post("/v1/predict", json={"text": text, "model": "pipe"})
        assert served.status_code == 200, served.text
        assert [(a["term"], a["polarity"]) for a in served.json()["aspects"]] == [
            (a["term"], a["polarity"]) for a in predicted["aspects"]
        ]
    r = runner.invoke(
        main,
        [
            "pipeline",
            "--terms",
            str(stages / "cls1"),
            "--polarity",
            str(tmp_path / "e"),
            "--output",
            str(tmp_path / "q"),
        ],
    )
    assert r.exit_code == 2 and "term stage must be a mate or jmasa model" in r.output
