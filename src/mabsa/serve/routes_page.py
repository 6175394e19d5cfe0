"""The web page, its example posts, and the API docs (all served offline)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from mabsa.serve.errors import ApiError
from mabsa.serve.examples import EXAMPLES, example_jpeg

STATIC_DIR = Path(str(resources.files("mabsa.serve") / "static"))
FAVICON_URL = "/static/favicon.svg"


def mount_pages(app: FastAPI) -> None:
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

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():  # browsers ask for it whatever the page's <link rel="icon"> says
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _mount_docs(app)


#: Swagger UI 5 and ReDoc, shipped by the fastapi-offline package (MIT; the bundles keep their own
#: licence headers). Swagger UI 5 renders the OpenAPI 3.1 that FastAPI writes; swagger-ui-bundle's
#: Swagger UI 4 could not ("Unable to render this definition").
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def _mount_docs(app: FastAPI) -> None:
    """Interactive API docs at /docs (Swagger UI) and /redoc (ReDoc), from local files (no CDN)."""
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="mabsa API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url=FAVICON_URL,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        page = get_redoc_html(
            openapi_url="/openapi.json",
            title="mabsa API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url=FAVICON_URL,
            with_google_fonts=False,
        )
        # ReDoc's sidebar shows a branding logo from cdn.redoc.ly (and hides it when it fails):
        # the browser is told not to fetch images from anywhere but here
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page
