"""Health, readiness, the served models and their statistics."""

from __future__ import annotations

import time

from fastapi import APIRouter

from mabsa.serve.errors import ApiError
from mabsa.serve.schemas import ErrorResponse
from mabsa.serve.service import Service


def router(service: Service) -> APIRouter:
    config, limits = service.config, service.limits
    api = APIRouter()

    @api.get("/healthz", summary="The process is up")
    async def healthz():
        return {"status": "ok", "uptime_s": round(time.time() - service.started, 1)}

    @api.get("/readyz", summary="Models loaded and warm (503 until then)", responses={503: {"model": ErrorResponse}})
    async def readyz():
        if service.ready:
            return {"status": "ready", "models": service.names}
        detail = f"loading failed: {service.load_error}" if service.load_error else "models are still loading"
        raise ApiError(503, "not_ready", f"the service is not ready ({detail})", headers={"Retry-After": "2"})

    @api.get("/v1/models", summary="Served models, limits and evidence settings")
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
                "workers": ev.workers,
                "align": ev.align,
                "rationales": ev.rationales,
            },
        }

    @api.get("/v1/stats", summary="Requests served and micro-batch sizes")
    async def stats():
        return {
            "requests": service.requests,
            "ready": service.ready,
            "models": {n: s.batcher.stats() for n, s in service.slots.items()},
            "perception": None if service.perception is None else service.perception.stats(),
        }

    return api
