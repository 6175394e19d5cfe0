"""LRSA rationales: the prompt template file, generation through an OpenAI-compatible endpoint on
127.0.0.1, the disk cache reused on a second run, an unreachable LLM, and a MASC model that
fills in a missing rationale at prediction time."""

from __future__ import annotations

import socket
import warnings
from dataclasses import replace

import pytest
import torch

from mabsa.data import load_dataset
from mabsa.data.records import Aspect, Post
from mabsa.engine.inference import predict_posts
from mabsa.models import get_model_class
from mabsa.models.lrsa.model import BACKEND_ENV, RationaleNotice
from mabsa.models.lrsa.rationales import PromptTemplate, PromptTemplateError, RationaleSource
from mabsa.models.saving import save_model
from mabsa.perception.llm import OpenAIChatClient
from perception_support import fake_chat_server, reply

POST = Post(
    id="7",
    tokens=("Chuck", "Bass", "is", "everything", "#", "MCM"),
    caption="A man in a suit .",
    aspects=(Aspect(0, 2, "Chuck Bass"),),
)


def test_packaged_template_renders_each_section():
    t = PromptTemplate.load()
    assert set(t.sections) == {"describe-aspect", "describe-post", "aspect", "post"}
    text = t.render("aspect", text="Chuck Bass is everything", description="A man in a suit.", aspect="Chuck Bass")
    assert "Post: Chuck Bass is everything\nImage: A man in a suit.\nAspect: Chuck Bass" in text
    assert '"Chuck Bass"' in text and "{" not in text
    post = t.render("post", text="Chuck Bass is everything", description="A man.")
    assert "Chuck Bass is everything" in post and "Aspect" not in post
    assert "Chuck" in t.render("describe-aspect", aspect="Chuck")


def test_a_template_file_of_ones_own(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text(
        "# mine\n[describe-aspect]\nLook at {aspect}.\n[describe-post]\nLook.\n"
        "[aspect]\nT={text} D={description} A={aspect}\n[post]\nT={text} D={description}\n"
    )
    t = PromptTemplate.load(path)
    assert t.render("aspect", text="x", description="y", aspect="z") == "T=x D=y A=z"
    assert t.source == str(path)


@pytest.mark.parametrize(
    "body, message",
    [
        ("[aspect]\n{text}\n", "missing section"),
        (
            "[describe-aspect]\n{aspect}\n[describe-post]\nx\n[aspect]\n{text}\n[post]\n{aspect}\n",
            r"p.txt:7: section \[post\] uses unknown field\(s\) \{aspect\}",
        ),
        ("[wrong]\nx\n", r"p.txt:1: unknown section \[wrong\]"),
        ("hello\n[aspect]\nx\n", r"p.txt:1: text before the first"),
        (
            "[describe-aspect]\n\n[describe-post]\nx\n[aspect]\nx\n[post]\nx\n",
            r"p.txt:1: section \[describe-aspect\] is empty",
        ),
    ],
)
def test_template_errors_name_the_file_and_line(tmp_path, body, message):
    path = tmp_path / "p.txt"
    path.write_text(body)
    with pytest.raises(PromptTemplateError, match=message):
        PromptTemplate.load(path)


def rationale_reply(index, body):
    prompt = body["messages"][-1]["content"]
    return 200, reply(f"Sentiment: positive. Reason: call {index}; prompt had {len(prompt)} chars"), 0.0


def test_endpoint_generation_is_cached_for_the_second_run(tmp_path):
    with fake_chat_server(rationale_reply) as server:
        first = RationaleSource(f"openai:{server.url}#tiny", mode="aspect", cache=tmp_path)
        r = first(POST, POST.aspects[0])
        assert r.reason.startswith("Sentiment: positive. Reason: call 0")
        assert r.description == "A man in a suit ."  # text-only use: the caption stands for the image
        assert first.generated == 1 and len(server.requests) == 1
        sent = server.requests[0]["body"]["messages"][-1]["content"]
        assert "Aspect: Chuck Bass" in sent and "Post: Chuck Bass is everything # MCM" in sent
        second = RationaleSource(f"openai:{server.url}#tiny", mode="aspect", cache=tmp_path)
        assert second(POST, POST.aspects[0]) == r
        assert len(server.requests) == 1 and second.generated == 0  # the cache answered
        per_post = RationaleSource(f"openai:{server.url}#tiny", mode="post", cache=tmp_path)
        p = per_post(POST)
        assert len(server.requests) == 2 and p.reason != r.reason  # another prompt, another entry
        assert "Aspect" not in server.requests[1]["body"]["messages"][-1]["content"]


def test_a_per_aspect_rationale_needs_its_aspect(tmp_path):
    with pytest.raises(Exception, match="needs the aspect"):
        RationaleSource(object(), mode="aspect", cache=tmp_path)(POST)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_an_unreachable_llm_is_not_fatal(tmp_path):
    client = OpenAIChatClient(f"http://127.0.0.1:{closed_port()}/v1", "tiny", retries=0, timeout=2)
    source = RationaleSource(client, mode="aspect", cache=tmp_path)
    assert source(POST, POST.aspects[0]) is None
    assert source.failed == 1 and "failed" in source.last_error
    assert source(POST, POST.aspects[0]) is None and source.failed == 1  # not asked again


def test_a_misspelt_backend_is_an_error_not_a_missing_llm(tmp_path):
    from mabsa.perception.errors import BackendSpecError

    with pytest.raises(BackendSpecError):
        RationaleSource("smolm2", mode="aspect", cache=tmp_path)(POST, POST.aspects[0])


TINY = {
    "encoder": "minilm",
    "random_init": True,
    "encoder_overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37},
    "heads": 4,
    "dropout": 0.0,
    "visual_max_length": 24,
    "rationale_max_length": 24,
    "max_length": 72,
}


def test_masc_prediction_generates_a_missing_rationale_through_the_endpoint(tmp_path, monkeypatch):
    posts = [
        p.with_aspects([replace(a, rationale=None) for a in p.aspects]) for p in load_dataset("twitter2015", "test")[:2]
    ]
    n = sum(len(p.aspects) for p in posts)
    with fake_chat_server(rationale_reply) as server:
        monkeypatch.setenv(BACKEND_ENV, f"openai:{server.url}#tiny")
        torch.manual_seed(0)
        m = get_model_class("lrsa").create({**TINY, "rationale_cache": str(tmp_path)}, "masc").eval()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = predict_posts(m, posts).posts
        assert len(server.requests) == n
    notes = [str(w.message) for w in caught if issubclass(w.category, RationaleNotice)]
    assert notes == [f"LRSA: a rationale was used for {n} of {n} aspect(s) (source: aspect, {n} generated by an LLM)"]
    assert all(a.rationale is not None and "Sentiment: positive" in a.rationale.reason for p in out for a in p.aspects)
    # the endpoint is gone now: the same model predicts without rationales and says why
    monkeypatch.setenv(BACKEND_ENV, f"openai:http://127.0.0.1:{closed_port()}/v1#tiny")
    torch.manual_seed(0)
    m = get_model_class("lrsa").create({**TINY, "rationale_cache": str(tmp_path / "empty")}, "masc").eval()
    m.processor.rationale_source._backend = OpenAIChatClient(
        f"http://127.0.0.1:{closed_port()}/v1", "tiny", retries=0, timeout=2
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = predict_posts(m, posts).posts
    notes = [str(w.message) for w in caught if issubclass(w.category, RationaleNotice)]
    assert len(notes) == 1 and notes[0].startswith(f"LRSA: a rationale was used for 0 of {n} aspect(s)")
    assert "no LLM reachable" in notes[0]
    assert all(a.polarity is not None and a.rationale is None for p in out for a in p.aspects)


def test_deployed_two_stage_pipeline_generates_a_rationale_per_extracted_term(tmp_path, monkeypatch):
    """mate checkpoint + lrsa masc checkpoint composed as a fite-pipeline: every extracted term
    gets a rationale from the endpoint, and the answer reports it."""
    import mabsa
    from mabsa.models.pipeline.model import compose_pipeline

    torch.manual_seed(0)
    terms = (
        get_model_class("text-crf")
        .create({k: TINY[k] for k in ("encoder", "random_init", "encoder_overrides")}, "mate")
        .eval()
    )
    torch.nn.init.constant_(terms.head.emissions.bias, 0.0)
    with torch.no_grad():
        terms.head.emissions.bias[terms.processor.labels.index("B")] = 5.0  # every word a one-word term
    save_model(terms, tmp_path / "terms")
    masc = get_model_class("lrsa").create({**TINY, "rationale_cache": str(tmp_path / "cache")}, "masc").eval()
    save_model(masc, tmp_path / "masc")
    compose_pipeline(tmp_path / "terms", tmp_path / "masc", tmp_path / "pipeline")
    with fake_chat_server(rationale_reply) as server:
        monkeypatch.setenv(BACKEND_ENV, f"openai:{server.url}#tiny")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RationaleNotice)
            result = mabsa.load(tmp_path / "pipeline").predict("Chuck Bass is everything")
        assert len(result.aspects) == 4 and len(server.requests) == 4
    assert all(a.polarity is not None and "Sentiment: positive" in a.rationale.reason for a in result.aspects)


def test_mabsa_predict_states_whether_a_rationale_was_used(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mabsa.cli import main

    monkeypatch.delenv(BACKEND_ENV, raising=False)
    torch.manual_seed(0)
    save_model(get_model_class("lrsa").create(TINY, "masc").eval(), tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "predict",
            "--checkpoint",
            str(tmp_path),
            "--text",
            "Chuck Bass is everything # MCM",
            "--aspect",
            "Chuck Bass",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "LRSA: a rationale was used for 0 of 1 aspect(s) (source: aspect, 0 generated by an LLM); "
        "no rationale given and no rationale backend configured"
    ) in result.output
