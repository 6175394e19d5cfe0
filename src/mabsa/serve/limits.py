"""Request limits and the ASGI middleware that enforces the body-size limit while reading."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass

from mabsa.serve.errors import ApiError


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024  # whole request, image included
    max_image_pixels: int = 24_000_000  # width * height, checked from the header before decoding
    max_text_chars: int = 2_000
    max_batch_items: int = 32  # items in one /v1/predict/batch request
    request_timeout_s: float = 30.0  # perception + queue + inference of one request
    max_queue: int = 512  # posts waiting for the model; above it requests get 503

    def to_dict(self) -> dict:
        return asdict(self)


def body_too_large(limit: int) -> ApiError:
    return ApiError(
        413, "body_too_large", f"request body exceeds the limit of {limit} bytes ({limit / 1048576:.1f} MiB)"
    )


class BodySizeLimit:
    """Refuse bodies above ``max_bytes``: from ``Content-Length`` before the app runs, else while
    streaming (chunked uploads), by raising :class:`ApiError` from ``receive`` (the app's handler
    turns it into a 413 answer).

    Before answering, the rest of the body is read and dropped (up to ``drain_bytes`` / ``drain_s``):
    a client still writing when the server closes gets a connection reset instead of the 413."""

    def __init__(self, app, max_bytes: int, drain_bytes: int = 64 * 1024 * 1024, drain_s: float = 10.0):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.drain_bytes = int(drain_bytes)
        self.drain_s = float(drain_s)

    async def _drain(self, receive, more_body: bool) -> None:
        drained = 0

        async def loop():
            nonlocal drained, more_body
            while more_body and drained <= self.drain_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                more_body = message.get("more_body", False)

        try:
            await asyncio.wait_for(loop(), self.drain_s)
        except TimeoutError:
            pass

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._drain(receive, True)
                    await _send_json(send, 413, body_too_large(self.max_bytes).body())
                    return
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    await self._drain(receive, message.get("more_body", False))
                    raise body_too_large(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
