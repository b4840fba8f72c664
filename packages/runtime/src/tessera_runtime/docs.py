"""``/docs`` (Swagger UI) and ``/redoc`` served from assets bundled with fastapi-offline.

Clusters and laptops without internet access still get working API docs, and
no page of ours makes the browser fetch code from a CDN.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["DOCS_STATIC_PATH", "install_docs"]

DOCS_STATIC_PATH = "/static/docs"
"""Where swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png are served."""

_STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI and ReDoc for ``app`` without any CDN.

    Args:
        app: an app created with ``docs_url=None, redoc_url=None``.
        docs_url: path of the Swagger UI page.
        redoc_url: path of the ReDoc page.
    """
    # check_dir: fail at startup, not on the first page view, if the assets are missing.
    app.mount(
        DOCS_STATIC_PATH, StaticFiles(directory=_STATIC_DIR, check_dir=True), name="docs-static"
    )
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"

    def urls(request: Request) -> tuple[str, str]:
        # Behind a path-prefix proxy (root_path), the browser needs the prefix.
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}{DOCS_STATIC_PATH}"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, static = urls(request)
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect_url,
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon.png",
            # validatorUrl null: no badge image fetched from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, static = urls(request)
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{static}/redoc.standalone.js",
            redoc_favicon_url=f"{static}/favicon.png",
            # Google Fonts is a CDN too; ReDoc falls back to system fonts.
            with_google_fonts=False,
        )
