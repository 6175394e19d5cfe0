"""The web page, its example posts, and the API docs (all served offline)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from mabsa.serve.errors import ApiError
from mabsa.serve.examples import EXAMPLES, example_jpeg

STATIC_DIR = Path(str(resources.files("mabsa.serve") / "static"))


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

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _mount_docs(app)


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
