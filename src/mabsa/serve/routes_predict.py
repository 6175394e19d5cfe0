"""``POST /v1/predict`` (JSON or a form, one post) and ``POST /v1/predict/batch`` (JSON)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from mabsa.serve.errors import ApiError, validation_error
from mabsa.serve.schemas import BatchRequest, BatchResponse, ErrorResponse, PredictRequest, PredictResponse
from mabsa.serve.service import Service, decode_base64

_ERRORS: dict[int | str, dict[str, Any]] = {
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
            # inline: the route reads its body itself, so FastAPI puts no PredictRequest into the
            # components, and a $ref to it would dangle (ReDoc refuses to render the whole API)
            "application/json": {"schema": PredictRequest.model_json_schema()},
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


def router(service: Service) -> APIRouter:
    limits = service.limits
    api = APIRouter()

    async def timed(coro):
        try:
            return await asyncio.wait_for(coro, limits.request_timeout_s)
        except TimeoutError:
            raise ApiError(504, "timeout", f"the request took longer than {limits.request_timeout_s:g} s") from None

    @api.post(
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

    @api.post(
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

    return api


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
