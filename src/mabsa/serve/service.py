"""The service behind the HTTP routes: the served models (loaded in the background, each
behind a micro-batcher), the evidence panel, the worker pools, and one request's analysis."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mabsa.data import tokenize
from mabsa.errors import MabsaError
from mabsa.processing.errors import ImageLoadError
from mabsa.processing.images import load_image
from mabsa.serve.batching import MicroBatcher
from mabsa.serve.errors import ApiError
from mabsa.serve.evidence import (
    EvidenceBuilder,
    EvidenceConfig,
    image_summary,
    perceive_in_worker,
    start_worker,
    warm_up_image,
    worker_ready,
)
from mabsa.serve.limits import Limits
from mabsa.serve.predictor import (
    EnginePredictor,
    PredictItem,
    ServePredictor,
    token_offsets,
)

log = logging.getLogger("mabsa.serve")


@dataclass
class ServeConfig:
    checkpoints: dict[str, str] = field(default_factory=dict)  # served name -> checkpoint dir
    limits: Limits = field(default_factory=Limits)
    evidence: EvidenceConfig | None = field(default_factory=EvidenceConfig)  # None: no evidence
    max_batch: int = 16  # posts per model call
    max_wait_ms: float = 5.0  # how long the first post of a batch waits for company
    model_batch_size: int = 32
    warm_up: bool = True
    url: str | None = None  # where users reach the service: the "ready" log line shows it


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
        self.perception: MicroBatcher | None = None  # uploaded images -> Perception, batched
        self.perception_pool: Executor | None = None
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
                batcher: MicroBatcher[Any, Any] = MicroBatcher(
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
            if self.evidence is not None:
                await self._start_perception()
            self.ready = True
            where = f" at {self.config.url}" if self.config.url else ""
            log.info("ready%s (models: %s)", where, ", ".join(self.names))
        except Exception as e:  # shown by /readyz and every predict answer
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("loading failed")

    async def _start_perception(self) -> None:
        """Images are perceived in ``workers`` processes (each builds its models once, in the
        background while the models load), batches of concurrent requests' images going to
        whichever is free; with 0 workers, in the evidence thread of this process."""
        assert self.evidence is not None
        loop = asyncio.get_running_loop()
        workers = self.evidence.config.workers
        if workers > 0:
            self.perception_pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),  # fork and torch's threads do not mix
                initializer=start_worker,
                initargs=(self.evidence.config,),
            )
            # one task per worker starts them all; each warms up in its initializer
            await asyncio.gather(*(loop.run_in_executor(self.perception_pool, worker_ready) for _ in range(workers)))
            batch_fn = perceive_in_worker
        else:
            batch_fn = self.evidence.perceive_batch
        self.perception = MicroBatcher(
            batch_fn,
            self.perception_pool or self.evidence_pool,
            self.config.max_batch,
            self.config.max_wait_ms / 1000,
            self.limits.max_queue,
            consumers=max(1, workers),
        )
        self.perception.start()
        if self.config.warm_up:  # every component, so that the first request is not the slow one
            seen = await self.perception.submit(load_image(warm_up_image(), name="warm-up"))
            if self.evidence.config.align:
                await loop.run_in_executor(self.evidence_pool, self.evidence.align, seen, ["astronaut"])

    async def stop(self) -> None:
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        for batcher in [*(slot.batcher for slot in self.slots.values()), self.perception]:
            if batcher is not None:
                await batcher.stop()
        if self.perception_pool is not None:  # its processes must end with the service: wait for them
            pool = self.perception_pool
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: pool.shutdown(wait=True, cancel_futures=True)
            )
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
            assert builder is not None and self.perception is not None
            t = time.perf_counter()
            try:
                seen = builder.recall(image)
                if seen is None:
                    seen = builder.remember(image, await self.perception.submit(image))
                return seen
            finally:
                timing["perception"] = _ms(t)

        # A model that reads per-image texts (caption, faces) takes them from the panel's
        # perception instead of perceiving the same image a second time; it still gets the file
        # (pixels, or a face-to-aspect similarity backend, may read it).
        share = builder is not None and reads_image and getattr(slot.predictor, "reads_image_texts", False)

        async def infer(seen=None):
            t = time.perf_counter()
            item = PredictItem(
                text,
                image if reads_image else None,  # the decoded upload itself: no file, no second decoding
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
            gathered: tuple[Any, Any] = await asyncio.gather(perceive(), infer(), return_exceptions=True)
            perceived, prediction = gathered
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
            assert builder is not None  # perception happens only with an evidence builder
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
        "image_used": reads_image,
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
