"""The HTTP contract of ``mabsa serve``: schemas, answers equal to the engine's, error codes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import multiprocessing
import shutil
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mabsa.api import load
from mabsa.data import tokenize
from mabsa.serve import Limits, ServeConfig, create_app
from mabsa.serve.batching import MicroBatcher
from mabsa.serve.errors import ApiError
from mabsa.serve.schemas import BatchResponse, ErrorResponse, PredictResponse
from serve_support import tiny_checkpoint

LIMITS = Limits(
    max_body_bytes=200_000, max_image_pixels=100_000, max_text_chars=300, max_batch_items=4, request_timeout_s=30
)
TEXTS = [
    "RT @ user : Chuck Bass is everything # MCM",
    "Great game by Federer at Wimbledon today",
    "Obama meets Merkel in Berlin",
]


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def wait_ready(client: TestClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.05)


def wait_load_failed(client: TestClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while "loading failed" not in client.get("/readyz").text:
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def client(checkpoint):
    app = create_app(ServeConfig(checkpoints={"tiny": str(checkpoint)}, limits=LIMITS, evidence=None))
    with TestClient(app) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def engine(checkpoint):
    return load(checkpoint)


def same_aspects(answer: dict, prediction) -> None:
    got = [(a["start"], a["end"], a["term"], a["polarity"]) for a in answer["aspects"]]
    want = [(a.start, a.end, a.term, a.polarity.value) for a in prediction.aspects]
    assert got == want
    for a, b in zip(answer["aspects"], prediction.aspects):
        assert a["score"] == pytest.approx(b.score, abs=1e-4)


def test_health_ready_models_and_openapi(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json() == {"status": "ready", "models": ["tiny"]}
    info = client.get("/v1/models").json()
    assert info["default"] == "tiny" and info["models"][0]["task"] == "jmasa"
    assert info["limits"]["max_text_chars"] == 300 and info["evidence"] is None
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert {"/v1/predict/batch", "/healthz", "/readyz"} <= set(spec["paths"])
    assert "413" in spec["paths"]["/v1/predict"]["post"]["responses"]


def test_json_predict_equals_the_engine(client, engine):
    # the comparisons below need aspects to compare: the tiny checkpoint must tag something
    assert any(engine.predict(t).aspects for t in TEXTS)
    for text in TEXTS:
        r = client.post("/v1/predict", json={"text": text})
        assert r.status_code == 200, r.text
        answer = PredictResponse.model_validate(r.json()).model_dump()
        assert answer["tokens"] == tokenize(text) and answer["model"] == "tiny"
        same_aspects(answer, engine.predict(text))
        for a in answer["aspects"]:  # character offsets point at the aspect in the raw text
            assert tokenize(text[a["char_start"] : a["char_end"]]) == a["term"].split()
        assert answer["image"] is None and answer["timing_ms"]["total"] > 0
        assert answer["image_used"] is False


def test_multipart_base64_and_data_url_images_are_accepted(client, engine):
    """Transport only: the served text model ignores images (same answer with the image is
    checked with an image-reading model in test_a_model_that_reads_the_image_gets_the_upload)."""
    image = png(40, 30)
    form = client.post("/v1/predict", data={"text": TEXTS[1]}, files={"image": ("red.png", image, "image/png")})
    as_json = client.post("/v1/predict", json={"text": TEXTS[1], "image_base64": base64.b64encode(image).decode()})
    assert form.status_code == 200 and as_json.status_code == 200, (form.text, as_json.text)
    assert form.json()["image_used"] is False and as_json.json()["image_used"] is False
    same_aspects(form.json(), engine.predict(TEXTS[1]))
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    assert client.post("/v1/predict", json={"text": TEXTS[1], "image_base64": data_url}).status_code == 200


def test_batch_equals_single_predictions_in_order(client, engine):
    r = client.post("/v1/predict/batch", json={"items": [{"text": t} for t in TEXTS]})
    assert r.status_code == 200, r.text
    results = BatchResponse.model_validate(r.json()).model_dump()["results"]
    assert [x["text"] for x in results] == TEXTS
    assert any(answer["aspects"] for answer in results)
    for answer, text in zip(results, TEXTS):
        same_aspects(answer, engine.predict(text))


def _json(body):
    return {"json": body}


ERROR_CASES = [
    # name, request kwargs, path, status, code, field
    ("no text (JSON)", _json({}), "/v1/predict", 422, "text_missing", "text"),
    ("blank text", _json({"text": "  \n "}), "/v1/predict", 422, "text_missing", "text"),
    (
        "no text (form)",
        {"files": {"image": ("a.png", png(10, 10), "image/png")}},
        "/v1/predict",
        422,
        "text_missing",
        "text",
    ),
    ("text too long", _json({"text": "word " * 100}), "/v1/predict", 422, "text_too_long", "text"),
    (
        "not an image",
        {"data": {"text": "hi there"}, "files": {"image": ("x.png", b"GIF89a? no", "image/png")}},
        "/v1/predict",
        422,
        "bad_image",
        "image",
    ),
    (
        "truncated image",
        {"data": {"text": "hi there"}, "files": {"image": ("x.png", png(64, 64)[:60], "image/png")}},
        "/v1/predict",
        422,
        "bad_image",
        "image",
    ),
    (
        "bad base64",
        _json({"text": "hi", "image_base64": "%%%not-base64"}),
        "/v1/predict",
        422,
        "bad_image",
        "image_base64",
    ),
    (
        "too many pixels",
        _json({"text": "hi", "image_base64": base64.b64encode(png(400, 300)).decode()}),
        "/v1/predict",
        413,
        "image_too_large",
        "image_base64",
    ),
    (
        "oversized body",
        {"data": {"text": "hi"}, "files": {"image": ("big.png", b"\0" * 300_000, "image/png")}},
        "/v1/predict",
        413,
        "body_too_large",
        None,
    ),
    ("unknown model", _json({"text": "hi", "model": "nope"}), "/v1/predict", 404, "unknown_model", "model"),
    (
        "bad JSON",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        "/v1/predict",
        400,
        "bad_json",
        None,
    ),
    (
        "wrong media type",
        {"content": b"text=hi", "headers": {"content-type": "text/plain"}},
        "/v1/predict",
        415,
        "unsupported_media_type",
        None,
    ),
    ("unknown field", _json({"text": "hi", "colour": "red"}), "/v1/predict", 422, "invalid_request", "colour"),
    ("batch too large", _json({"items": [{"text": "a"}] * 5}), "/v1/predict/batch", 422, "batch_too_large", "items"),
    ("empty batch", _json({"items": []}), "/v1/predict/batch", 422, "batch_empty", "items"),
    (
        "batch item without text",
        _json({"items": [{"text": "a b"}, {}]}),
        "/v1/predict/batch",
        422,
        "text_missing",
        "items[1].text",
    ),
    (
        "batch item blank",
        _json({"items": [{"text": "a b"}, {"text": ""}]}),
        "/v1/predict/batch",
        422,
        "text_missing",
        "items[1].text",
    ),
    (
        "batch unknown model",
        _json({"items": [{"text": "a"}], "model": "x"}),
        "/v1/predict/batch",
        404,
        "unknown_model",
        "model",
    ),
]


@pytest.mark.parametrize("name,kwargs,path,status,code,field", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_codes(client, name, kwargs, path, status, code, field):
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    error = ErrorResponse.model_validate(r.json()).error
    assert error.code == code and error.field == field
    assert len(error.message) > 5


def test_chunked_body_over_the_limit_is_refused_while_reading(client):
    def chunks():
        for _ in range(30):
            yield b"x" * 10_000  # 300 kB, no Content-Length

    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert client.post("/v1/predict", json={"text": TEXTS[0]}).status_code == 200  # still serving


def test_page_and_docs_need_no_internet(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="post-form"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "http://" not in r.text and "https://" not in r.text
    assert "http://" not in page.text and "https://" not in page.text
    for url, asset in (("/docs", "/docs-assets/swagger-ui-bundle.js"), ("/redoc", "/docs-assets/redoc.standalone.js")):
        docs = client.get(url).text
        assert asset in docs and "cdn" not in docs.lower() and "https://" not in docs, url
        assert client.get(asset).status_code == 200
    for favicon in ("/favicon.ico", "/static/favicon.svg"):
        r = client.get(favicon)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    examples = client.get("/v1/examples").json()["examples"]
    assert len(examples) >= 3
    image = client.get(examples[0]["image_url"])
    assert image.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(image.content)).size[0] > 100


# -- fakes through the ServePredictor protocol -------------------------------------------------
class _Slow:
    task = "jmasa"
    info = {"task": "jmasa"}

    def __init__(self, seconds: float):
        self.seconds = seconds

    def predict_batch(self, items):
        time.sleep(self.seconds)
        from mabsa.engine.predictor import Prediction

        return [Prediction(i.text, tuple(tokenize(i.text)), ()) for i in items]


class _Refuses(_Slow):
    def predict_batch(self, items):
        from mabsa.processing.errors import InputError

        ok = super().predict_batch(items)
        return [InputError("this model refuses posts with 'bad'") if "bad" in i.text else r for i, r in zip(items, ok)]


def test_timeout_and_per_item_model_errors():
    limits = Limits(request_timeout_s=0.3)
    app = create_app(
        ServeConfig(limits=limits, evidence=None, warm_up=False),
        predictors={"slow": _Slow(1.0), "picky": _Refuses(0.0)},
    )
    with TestClient(app) as c:
        wait_ready(c)
        r = c.post("/v1/predict", json={"text": "takes too long"})
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        time.sleep(1.0)  # models share one worker thread: let the slow call finish
        r = c.post("/v1/predict", json={"text": "a bad post", "model": "picky"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_input"
        assert "refuses" in r.json()["error"]["message"]
        r = c.post("/v1/predict/batch", json={"model": "picky", "items": [{"text": "fine"}, {"text": "bad one"}]})
        assert r.status_code == 422 and r.json()["error"]["field"] == "items[1]"
        assert c.post("/v1/predict", json={"text": "fine", "model": "picky"}).status_code == 200


@pytest.fixture(scope="module")
def caption_checkpoint(tmp_path_factory):
    """A tiny text-crf that reads the per-image texts (caption, faces) of an uploaded image."""
    from mabsa.engine import trainer
    from mabsa.engine.config import load_run_config
    from serve_support import TINY_SETS

    out = tmp_path_factory.mktemp("ckpt-image") / "tiny-caption"
    trainer.train(
        load_run_config("text-crf", sets=TINY_SETS + ['model_args.image_text=["caption","faces"]']),
        "twitter2015",
        "jmasa",
        out,
        progress=False,
    )
    return out


@pytest.fixture
def astronaut_photo(tmp_path):
    from mabsa.serve.examples import example_jpeg

    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(example_jpeg("astronaut"))
    return photo


def test_a_model_that_reads_the_image_gets_the_upload(caption_checkpoint, astronaut_photo):
    """A caption+faces model: the server passes the uploaded photo on; the answer equals the
    engine's own prediction on the same image file."""
    out, photo = caption_checkpoint, astronaut_photo
    text = "Eileen Collins smiles before the launch"
    app = create_app(ServeConfig(checkpoints={"captions": str(out)}, evidence=None))
    with TestClient(app) as c:
        wait_ready(c)
        assert c.get("/v1/models").json()["models"][0]["reads_image"] is True
        with_image = c.post("/v1/predict", data={"text": text}, files={"image": ("a.jpg", photo.read_bytes())})
        as_base64 = c.post(
            "/v1/predict", json={"text": text, "image_base64": base64.b64encode(photo.read_bytes()).decode()}
        )
        without = c.post("/v1/predict", json={"text": text})
    assert with_image.status_code == 200 and with_image.json()["image_used"] is True
    assert without.json()["image_used"] is False
    engine = load(out)
    from_file, text_only = engine.predict(text, image=str(photo)), engine.predict(text)
    # the photo changes the model's scores, so equal answers show the upload reached the model
    assert from_file.aspects and [a.score for a in from_file.aspects] != [a.score for a in text_only.aspects]
    same_aspects(with_image.json(), from_file)
    same_aspects(as_base64.json(), from_file)  # multipart and base64 carry the same image
    same_aspects(without.json(), text_only)


def test_the_upload_reaches_the_model_decoded_without_a_file(caption_checkpoint, astronaut_photo, monkeypatch):
    """The server hands the model the image it decoded: nothing is written (no temporary PNG),
    and the answer equals the engine's on the file and on the same bytes given in memory."""
    from PIL import Image

    out, photo = caption_checkpoint, astronaut_photo
    text = "Eileen Collins smiles before the launch"
    engine = load(out)
    from_file = engine.predict(text, image=str(photo))
    assert same_aspects_as(engine.predict(text, image=photo.read_bytes()), from_file)  # API: bytes in memory

    def no_save(*args, **kwargs):
        raise AssertionError("an image was written to a file")

    monkeypatch.setattr(Image.Image, "save", no_save)
    app = create_app(ServeConfig(checkpoints={"captions": str(out)}, evidence=None))
    with TestClient(app) as c:
        wait_ready(c)
        r = c.post("/v1/predict", data={"text": text}, files={"image": ("a.jpg", photo.read_bytes())})
    assert r.status_code == 200, r.text
    assert r.json()["image_used"] is True
    same_aspects(r.json(), from_file)


def same_aspects_as(a, b) -> bool:
    return [(x.start, x.end, x.polarity, x.score) for x in a.aspects] == [
        (x.start, x.end, x.polarity, x.score) for x in b.aspects
    ]


def test_evidence_panel_and_model_share_one_perception(caption_checkpoint, astronaut_photo, monkeypatch):
    """With the evidence panel on, a caption+faces model reads the panel's perception: the image
    is perceived once per request, and the answer still equals the engine's own prediction."""
    from mabsa.perception import Perceiver
    from mabsa.serve.evidence import EvidenceConfig

    out, photo = caption_checkpoint, astronaut_photo
    text = "Eileen Collins smiles before the launch"
    calls = []
    perceive = Perceiver.perceive_batch
    monkeypatch.setattr(
        Perceiver, "perceive_batch", lambda self, images: calls.extend(images) or perceive(self, images)
    )
    evidence = EvidenceConfig(align=False, workers=0)  # in this process, where the count is kept
    app = create_app(ServeConfig(checkpoints={"captions": str(out)}, evidence=evidence))
    with TestClient(app) as c:
        wait_ready(c)
        calls.clear()  # the warm-up perceives a small image once
        r = c.post("/v1/predict", data={"text": text}, files={"image": ("a.jpg", photo.read_bytes())})
    assert r.status_code == 200, r.text
    assert r.json()["image_used"] is True and r.json()["image"] is not None
    assert len(calls) == 1
    same_aspects(r.json(), load(out).predict(text, image=str(photo)))


def test_images_are_perceived_in_worker_processes(checkpoint, astronaut_photo):
    """With perception workers, concurrent uploads are perceived in another process and the
    panel shows what the same perception in this process shows."""
    from mabsa.processing.images import load_image
    from mabsa.serve.evidence import EvidenceBuilder, EvidenceConfig, image_summary

    evidence = EvidenceConfig(align=False, workers=1)
    app = create_app(ServeConfig(checkpoints={"tiny": str(checkpoint)}, evidence=evidence))
    photos = [astronaut_photo.read_bytes(), png(40, 30)]
    before = multiprocessing.active_children()
    with TestClient(app) as c:
        wait_ready(c)
        answers: list = [None, None]

        def post(i):
            answers[i] = c.post("/v1/predict", data={"text": "a post"}, files={"image": ("p.png", photos[i])})

        threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert c.get("/v1/models").json()["evidence"]["workers"] == 1
        workers = [p for p in multiprocessing.active_children() if p not in before]
        assert len(workers) == 1 and workers[0].is_alive()
    assert not workers[0].is_alive()  # the service's stop ends its perception processes
    here = EvidenceBuilder(EvidenceConfig(align=False, workers=0))
    for r, data in zip(answers, photos):
        assert r.status_code == 200, r.text
        assert r.json()["evidence_error"] is None
        expected = image_summary(here.perceive(load_image(data, name="p.png")))
        assert r.json()["image"] == json.loads(json.dumps(expected))


def test_masc_model_classifies_the_aspects_it_is_given(checkpoint, tmp_path_factory):
    masc = tiny_checkpoint(tmp_path_factory, "text-cls", "masc")
    app = create_app(ServeConfig(checkpoints={"jmasa": str(checkpoint), "masc": str(masc)}, evidence=None))
    text = "Chuck Bass is everything # MCM"
    with TestClient(app) as c:
        wait_ready(c)
        info = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        assert info["masc"]["needs_aspects"] and not info["jmasa"]["needs_aspects"]
        r = c.post("/v1/predict", json={"text": text, "model": "masc"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_input"
        assert "give the aspect" in r.json()["error"]["message"]
        r = c.post("/v1/predict", data={"text": text, "model": "masc", "aspects": ["Chuck Bass", "# MCM"]})
        assert r.status_code == 200, r.text
        want = load(masc).predict(text, aspects=["Chuck Bass", "# MCM"])
        same_aspects(r.json(), want)
        assert [a["term"] for a in r.json()["aspects"]] == ["Chuck Bass", "# MCM"]
        r = c.post("/v1/predict", json={"text": text, "model": "masc", "aspects": ["Serena"]})
        assert r.status_code == 422 and "does not occur" in r.json()["error"]["message"]


def test_a_checkpoint_that_fails_to_load_keeps_readyz_at_503(checkpoint, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    app = create_app(ServeConfig(checkpoints={"broken": str(broken)}, evidence=None))
    with TestClient(app) as c:
        wait_load_failed(c, 30)
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        r = c.post("/v1/predict", json={"text": "hi"})
        assert r.status_code == 503 and "loading failed" in r.json()["error"]["message"]
        assert c.get("/healthz").status_code == 200


def test_a_perception_worker_that_cannot_start_says_why(checkpoint):
    from mabsa.perception import PerceptionConfig
    from mabsa.serve.evidence import EvidenceConfig

    evidence = EvidenceConfig(workers=1, perception=PerceptionConfig(segmenter="sam:/no/such/sam"))
    app = create_app(ServeConfig(checkpoints={"tiny": str(checkpoint)}, evidence=evidence))
    with TestClient(app) as c:
        wait_load_failed(c, 120)
        message = c.get("/readyz").json()["error"]["message"]
    assert "a perception worker could not start" in message and "sam:/no/such/sam" in message


def test_unknown_checkpoint_fails_before_serving(tmp_path, monkeypatch, capsys):
    from mabsa.cli.serve import main

    monkeypatch.setattr(sys, "argv", ["mabsa serve", "--checkpoint", str(tmp_path / "nope")])
    with pytest.raises(SystemExit) as exit_:
        main()  # what `python -m mabsa.serve` runs
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: checkpoint not found: {tmp_path / 'nope'}\n"


# -- micro-batching ---------------------------------------------------------------------------
def test_micro_batcher_groups_concurrent_requests_and_isolates_errors():
    from concurrent.futures import ThreadPoolExecutor

    calls: list[list[int]] = []
    gate = threading.Event()

    def fn(items):
        gate.wait(5)  # the first call blocks until the rest have queued
        calls.append(list(items))
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def scenario():
        batcher = MicroBatcher(fn, ThreadPoolExecutor(1), max_batch=4, max_wait_s=0.001, max_queue=6)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the first batch [0] is running and blocked
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 7)]
        await asyncio.sleep(0.01)
        with pytest.raises(ApiError) as overloaded:
            await batcher.submit(99)  # queue holds 6 = max_queue
        gate.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        await batcher.stop()
        return overloaded.value, results, batcher.batch_sizes

    overloaded, results, sizes = asyncio.run(scenario())
    assert overloaded.status == 503 and overloaded.code == "overloaded"
    assert calls == [[0], [1, 2, 3, 4], [5, 6]]
    assert dict(sizes) == {1: 1, 4: 1, 2: 1}
    for i, r in enumerate(results):
        if i % 2:
            assert isinstance(r, ValueError) and str(r) == f"odd {i}"
        else:
            assert r == i * 10


def test_field_path_names_list_items_with_brackets():
    from mabsa.serve.errors import field_path

    assert field_path(("items", 0, "aspects", 2, "start")) == "items[0].aspects[2].start"
    assert field_path(("text",)) == "text" and field_path(()) == ""


def test_every_openapi_reference_resolves(client):
    spec = client.get("/openapi.json").json()

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(spec))
    assert found  # the spec does use references
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"], f"dangling {ref}"
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"text"} and "image_base64" in body["properties"]
