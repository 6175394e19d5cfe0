"""The HTTP service: FastAPI app, model slots, request parsing and the answer's shape.

``create_app(ServeConfig(...))`` loads every checkpoint once (in the background: ``/healthz``
answers at once, ``/readyz`` once the models and perception are warm), runs inference in one
worker thread through a :class:`~mabsa.serve.batching.MicroBatcher` per model, and image
evidence in another thread, so the event loop only parses and answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from mabsa import __version__
from mabsa.data import tokenize
from mabsa.errors import MabsaError
from mabsa.processing.errors import ImageLoadError
from mabsa.processing.images import load_image
from mabsa.serve.batching import MicroBatcher
from mabsa.serve.errors import ApiError, install_error_handlers, validation_error
from mabsa.serve.evidence import EvidenceBuilder, EvidenceConfig, image_summary
from mabsa.serve.examples import EXAMPLES, example_jpeg
from mabsa.serve.limits import BodySizeLimit, Limits
from mabsa.serve.predictor import (
    EnginePredictor,
    PredictItem,
    ServePredictor,
    token_offsets,
)
from mabsa.serve.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    PredictRequest,
    PredictResponse,
)

log = logging.getLogger("mabsa.serve")

STATIC_DIR = Path(str(resources.files("mabsa.serve") / "static"))


@dataclass
class ServeConfig:
    checkpoints: dict[str, str] = field(default_factory=dict)  # served name -> checkpoint dir
    limits: Limits = field(default_factory=Limits)
    evidence: EvidenceConfig | None = field(default_factory=EvidenceConfig)  # None: no evidence
    max_batch: int = 16  # posts per model call
    max_wait_ms: float = 5.0  # how long the first post of a batch waits for company
    model_batch_size: int = 32
    warm_up: bool = True


class ModelSlot:
    def __init__(self, name: str, predictor: ServePredictor, batcher: MicroBatcher):
        self.name = name
        self.predictor = predictor
        self.batcher = batcher


class Service:
    """Everything a request needs; one per app, built in the lifespan."""

    def __init__(self, config: ServeConfig, predictors: dict[str, ServePredictor] | None):
        self.config = config
        self.limits = config.limits
        self.given = predictors
        self.names = list(predictors or config.checkpoints)
        self.slots: dict[str, ModelSlot] = {}
        self.evidence = EvidenceBuilder(config.evidence) if config.evidence and config.evidence.enabled else None
        self.model_pool = ThreadPoolExecutor(1, thread_name_prefix="mabsa-model")
        self.evidence_pool = ThreadPoolExecutor(1, thread_name_prefix="mabsa-evidence")
        self.decode_pool = ThreadPoolExecutor(2, thread_name_prefix="mabsa-decode")
        self.ready = False
        self.load_error: str | None = None
        self.started = time.time()
        self.requests = 0
        self._loader: asyncio.Task | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._loader = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for name in self.names:
                if self.given is not None:
                    predictor = self.given[name]
                else:
                    directory = self.config.checkpoints[name]
                    predictor = await loop.run_in_executor(
                        self.model_pool, EnginePredictor.load, directory, self.config.model_batch_size
                    )
                batcher = MicroBatcher(
                    predictor.predict_batch,
                    self.model_pool,
                    self.config.max_batch,
                    self.config.max_wait_ms / 1000,
                    self.limits.max_queue,
                )
                batcher.start()
                self.slots[name] = ModelSlot(name, predictor, batcher)
                if self.config.warm_up and predictor.task != "masc":
                    await batcher.submit(PredictItem("warm up the model"))
            if self.evidence is not None and self.config.warm_up:
                await loop.run_in_executor(self.evidence_pool, self.evidence.warm_up)
            self.ready = True
            log.info("ready: %s", ", ".join(self.names))
        except Exception as e:  # shown by /readyz and every predict answer
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("loading failed")

    async def stop(self) -> None:
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        for slot in self.slots.values():
            await slot.batcher.stop()
        for pool in (self.model_pool, self.evidence_pool, self.decode_pool):
            pool.shutdown(wait=False, cancel_futures=True)

    # -- requests --------------------------------------------------------------------------
    def slot(self, name: str | None) -> ModelSlot:
        name = name or (self.names[0] if self.names else None)
        if name not in self.names:
            raise ApiError(
                404, "unknown_model", f"no model named {name!r} is served; served: {', '.join(self.names)}", "model"
            )
        if not self.ready or name not in self.slots:
            detail = f"loading failed: {self.load_error}" if self.load_error else "models are still loading"
            raise ApiError(503, "not_ready", f"the service is not ready ({detail})", headers={"Retry-After": "2"})
        return self.slots[name]

    def check_text(self, text: Any, where: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, "text_missing", f"{where} is missing or empty: give the post text", where)
        if len(text) > self.limits.max_text_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"{where} has {len(text)} characters; the limit is {self.limits.max_text_chars}",
                where,
            )
        if not tokenize(text):
            raise ApiError(422, "text_missing", f"{where} has no words", where)
        return text

    async def decode_image(self, data: bytes, name: str, where: str):
        return await asyncio.get_running_loop().run_in_executor(
            self.decode_pool, decode_image, data, name, where, self.limits.max_image_pixels
        )

    async def analyse(
        self, slot: ModelSlot, text: str, image, aspects: Sequence[str] | None, evidence: bool, where: str = "text"
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        timing: dict[str, float] = {}
        builder = self.evidence if evidence and image is not None else None
        reads_image = image is not None and bool(getattr(slot.predictor, "reads_image", False))
        evidence_error = None

        async def perceive():
            t = time.perf_counter()
            try:
                return await loop.run_in_executor(self.evidence_pool, builder.perceive, image)
            finally:
                timing["perception"] = _ms(t)

        # A model that reads per-image texts (caption, faces) takes them from the panel's
        # perception instead of perceiving the same image a second time; it still gets the file
        # (pixels, or a face-to-aspect similarity backend, may read it).
        share = builder is not None and reads_image and getattr(slot.predictor, "reads_image_texts", False)

        async def infer(seen=None):
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="mabsa-serve-") as tmp:
                path = None
                if reads_image:  # the engine reads images from files (its perception or pixels)
                    path = str(Path(tmp) / "image.png")
                    await loop.run_in_executor(self.decode_pool, image.rgb.save, path)
                item = PredictItem(
                    text,
                    path,
                    tuple(aspects) if aspects else None,
                    caption=seen.caption.text if seen is not None and seen.caption else None,
                    faces=seen.faces if seen is not None else None,
                )
                try:
                    return await slot.batcher.submit(item)
                except MabsaError as e:
                    raise ApiError(422, "bad_input", str(e), where) from None
                finally:
                    timing["model"] = _ms(t)

        perception = None
        if share:  # perception first, then the model reads what it found
            try:
                perception = await perceive()
            except Exception as e:
                evidence_error = f"perception failed: {e}"
            prediction = await infer(perception)
        elif builder is not None:  # evidence and model at the same time, in their own threads
            perceived, prediction = await asyncio.gather(perceive(), infer(), return_exceptions=True)
            if isinstance(prediction, BaseException):
                raise prediction
            if isinstance(perceived, BaseException):
                evidence_error = f"perception failed: {perceived}"
            else:
                perception = perceived
        else:
            prediction = await infer()

        terms = [a.term for a in prediction.aspects]
        aligned: list[Any] = [None] * len(terms)
        rationales: list[Any] = [None] * len(terms)
        if perception is not None and terms:
            t = time.perf_counter()
            try:
                if builder.config.align:
                    aligned = await loop.run_in_executor(self.evidence_pool, builder.align, perception, terms)
                if builder.config.rationales:
                    rationales = [
                        await loop.run_in_executor(self.evidence_pool, builder.rationale, image, text, term)
                        for term in terms
                    ]
            except Exception as e:
                evidence_error = f"aspect evidence failed: {e}"
            timing["evidence"] = _ms(t)
        timing["total"] = _ms(t0)
        self.requests += 1
        return answer(slot, prediction, perception, aligned, rationales, reads_image, evidence_error, timing)


def answer(
    slot: ModelSlot, prediction, perception, aligned, rationales, reads_image, evidence_error, timing
) -> dict[str, Any]:
    offsets = token_offsets(prediction.text, prediction.tokens)
    aspects = []
    for a, al, ra in zip(prediction.aspects, aligned, rationales):
        first, last = offsets[a.start], offsets[a.end - 1]
        aspects.append(
            {
                "start": a.start,
                "end": a.end,
                "term": a.term,
                "polarity": a.polarity.value if a.polarity else None,
                "score": None if a.score is None else round(float(a.score), 4),
                "char_start": first[0] if first and last else None,
                "char_end": last[1] if first and last else None,
                "aligned": al,
                "rationale": ra,
            }
        )
    return {
        "model": slot.name,
        "task": slot.predictor.task,
        "text": prediction.text,
        "tokens": list(prediction.tokens),
        "aspects": aspects,
        "truncated": bool(prediction.truncated),
        "image": image_summary(perception) if perception is not None else None,
        "model_read_image": reads_image,
        "evidence_error": evidence_error,
        "timing_ms": timing,
    }


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def decode_image(data: bytes, name: str, where: str, max_pixels: int):
    """Bytes -> :class:`LoadedImage`; 413 above the pixel limit (read from the header, before
    decoding), 422 for anything that is not a usable image."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ApiError(422, "bad_image", f"{where} is empty (0 bytes)", where)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError(
            422,
            "bad_image",
            f"{where} is not a recognised image (JPEG, PNG, WebP, GIF, BMP, TIFF): corrupt or not an image",
            where,
        ) from None
    if width * height > max_pixels:
        raise ApiError(
            413,
            "image_too_large",
            f"{where} is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
            where,
        )
    try:
        return load_image(data, max_pixels, name)
    except ImageLoadError as e:
        raise ApiError(422, "bad_image", f"{where}: {e.reason}", where) from None


def decode_base64(value: str, where: str) -> bytes:
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "bad_image", f"{where} is not valid base64", where) from None


_ERRORS = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed JSON or multipart body (bad_json, bad_request).",
        404: "Unknown model name (unknown_model).",
        413: "Body or image too large (body_too_large, image_too_large).",
        415: "Body is neither JSON nor a form (unsupported_media_type).",
        422: "text_missing, text_too_long, bad_image, batch_too_large, bad_input, invalid_request.",
        503: "Models still loading or the queue is full (not_ready, overloaded).",
        504: "The request took longer than the request timeout (timeout).",
    }.items()
}

_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string"},
                        "image": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "aspects": {"type": "array", "items": {"type": "string"}},
                        "evidence": {"type": "boolean", "default": True},
                    },
                }
            },
        },
    }
}


def create_app(config: ServeConfig | None = None, predictors: dict[str, ServePredictor] | None = None) -> FastAPI:
    """``predictors`` (name -> predictor) replaces loading ``config.checkpoints``."""
    config = config or ServeConfig()
    if not (predictors or config.checkpoints):
        raise MabsaError("nothing to serve: give at least one checkpoint")
    service = Service(config, predictors)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="mabsa",
        summary="Multimodal aspect-based sentiment analysis",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=config.limits.max_body_bytes)
    limits = config.limits

    async def timed(coro):
        try:
            return await asyncio.wait_for(coro, limits.request_timeout_s)
        except TimeoutError:
            raise ApiError(504, "timeout", f"the request took longer than {limits.request_timeout_s:g} s") from None

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_PREDICT_BODY,
        summary="Aspects and their sentiment for one post (text + optional image)",
    )
    async def predict(request: Request):
        ctype = request.headers.get("content-type", "").lower()
        image_data, image_name = None, "upload"
        if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            async with request.form(max_files=1, max_fields=64) as form:  # closes spooled files
                upload = form.get("image")
                if upload is not None and not isinstance(upload, str):
                    image_data = await upload.read()
                    image_name = upload.filename or image_name
                    if not image_data and not upload.filename:
                        image_data = None  # an empty file input of a browser form: no image
                req = PredictRequest.model_construct(
                    text=form.get("text"),
                    model=form.get("model") or None,
                    aspects=[a for a in form.getlist("aspects") if isinstance(a, str) and a.strip()] or None,
                    evidence=str(form.get("evidence", "true")).lower() not in ("0", "false", "no", "off"),
                )
            where_image = "image"
        elif ctype.startswith("application/json"):
            try:
                req = PredictRequest.model_validate(_validated(await _json(request)))
            except ValidationError as e:
                raise validation_error(e.errors()) from None
            where_image = "image_base64"
            if req.image_base64:
                image_data = decode_base64(req.image_base64, where_image)
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send application/json or a form (multipart/form-data) (got "
                f"{ctype.split(';')[0] or 'no content type'})",
            )
        slot = service.slot(req.model)
        text = service.check_text(req.text, "text")
        image = await service.decode_image(image_data, image_name, where_image) if image_data is not None else None
        return await timed(service.analyse(slot, text, image, req.aspects, req.evidence))

    @app.post(
        "/v1/predict/batch",
        response_model=BatchResponse,
        responses=_ERRORS,
        summary="Several posts in one request (JSON; images as base64)",
    )
    async def predict_batch(body: BatchRequest):
        if not body.items:
            raise ApiError(422, "batch_empty", "items is empty: give at least one post", "items")
        if len(body.items) > limits.max_batch_items:
            raise ApiError(
                422,
                "batch_too_large",
                f"items has {len(body.items)} posts; the limit is {limits.max_batch_items}",
                "items",
            )
        slot = service.slot(body.model)
        texts, images = [], []
        for i, item in enumerate(body.items):
            texts.append(service.check_text(item.text, f"items[{i}].text"))
            where = f"items[{i}].image_base64"
            images.append(
                await service.decode_image(decode_base64(item.image_base64, where), f"item-{i}", where)
                if item.image_base64
                else None
            )
        jobs = [
            service.analyse(slot, t, im, item.aspects, body.evidence, f"items[{i}]")
            for i, (t, im, item) in enumerate(zip(texts, images, body.items))
        ]
        return {"results": await timed(asyncio.gather(*jobs))}

    @app.get("/healthz", summary="The process is up")
    async def healthz():
        return {"status": "ok", "uptime_s": round(time.time() - service.started, 1)}

    @app.get("/readyz", summary="Models loaded and warm (503 until then)", responses={503: {"model": ErrorResponse}})
    async def readyz():
        if service.ready:
            return {"status": "ready", "models": service.names}
        detail = f"loading failed: {service.load_error}" if service.load_error else "models are still loading"
        raise ApiError(503, "not_ready", f"the service is not ready ({detail})", headers={"Retry-After": "2"})

    @app.get("/v1/models", summary="Served models, limits and evidence settings")
    async def models():
        ev = config.evidence if service.evidence is not None else None
        return {
            "default": service.names[0],
            "models": [
                {
                    "name": n,
                    "ready": n in service.slots,
                    **(service.slots[n].predictor.info if n in service.slots else {}),
                }
                for n in service.names
            ],
            "limits": limits.to_dict(),
            "evidence": None
            if ev is None
            else {
                "faces": ev.perception.face_detector,
                "captioner": ev.perception.captioner,
                "segmenter": ev.perception.segmenter,
                "align": ev.align,
                "rationales": ev.rationales,
            },
        }

    @app.get("/v1/stats", summary="Requests served and micro-batch sizes")
    async def stats():
        return {
            "requests": service.requests,
            "ready": service.ready,
            "models": {
                n: {"queued": s.batcher.queued, "batch_sizes": dict(sorted(s.batcher.batch_sizes.items()))}
                for n, s in service.slots.items()
            },
        }

    @app.get("/v1/examples", summary="Example posts with images for the page")
    async def examples():
        return {
            "examples": [{"name": e.name, "text": e.text, "image_url": f"/v1/examples/{e.name}.jpg"} for e in EXAMPLES]
        }

    @app.get("/v1/examples/{name}.jpg", include_in_schema=False)
    async def example_image(name: str):
        data = example_jpeg(name)
        if data is None:
            raise ApiError(404, "not_found", f"no example image named {name!r}")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _mount_docs(app)
    return app


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-bundle package (no CDN); a plain page without it."""
    try:
        import swagger_ui_bundle
    except ImportError:
        swagger_ui_bundle = None
    if swagger_ui_bundle is not None:
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        async def docs():
            return get_swagger_ui_html(
                openapi_url="/openapi.json",
                title="mabsa API",
                swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                swagger_css_url="/docs-assets/swagger-ui.css",
                swagger_favicon_url="/docs-assets/favicon-32x32.png",
            )
    else:

        @app.get("/docs", include_in_schema=False)
        async def docs_plain():
            return HTMLResponse(
                "<p>Install <code>swagger-ui-bundle</code> for interactive docs; the "
                'API description is at <a href="/openapi.json">/openapi.json</a>.</p>'
            )


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, "bad_json", f"request body is not valid JSON ({e})") from None


def _validated(data: Any) -> Any:
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", "request body must be a JSON object")
    return data


def _version() -> str:
    return __version__
