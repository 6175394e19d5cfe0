"""The HTTP service: FastAPI app, model slots, request parsing and the answer's shape.

``create_app(ServeConfig(...))`` loads every checkpoint once (in the background: ``/healthz``
answers at once, ``/readyz`` once the models and perception are warm), runs inference in one
worker thread through a :class:`~mabsa.serve.batching.MicroBatcher` per model, and image
evidence in another thread, so the event loop only parses and answers.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from mabsa import __version__
from mabsa.errors import MabsaError
from mabsa.serve import routes_page, routes_predict, routes_status
from mabsa.serve.errors import install_error_handlers
from mabsa.serve.limits import BodySizeLimit
from mabsa.serve.predictor import ServePredictor
from mabsa.serve.service import ServeConfig, Service

__all__ = ["ServeConfig", "create_app"]


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
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=config.limits.max_body_bytes)
    app.include_router(routes_predict.router(service))
    app.include_router(routes_status.router(service))
    routes_page.mount_pages(app)
    return app
