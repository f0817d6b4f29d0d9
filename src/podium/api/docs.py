"""Interactive API docs (`/docs`, `/redoc`) that work with no internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank
on a machine without internet access. These pages are the same ones, built
with FastAPI's `get_swagger_ui_html` / `get_redoc_html`, but their scripts and
stylesheet come from the `fastapi-offline` package, served under
`/docs-assets/`. ReDoc's menu shows Redocly's logo from Redocly's CDN: its
bundle is served with that image emptied, so ReDoc leaves it out. The pages
also carry a Content-Security-Policy that lets the browser load nothing from
any other origin.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

ASSETS_PACKAGE: Final = "fastapi_offline"
ASSETS_URL: Final = "/docs-assets"
REDOC_JS: Final = "redoc.standalone.js"
#: The one file ReDoc's bundle loads from elsewhere (an `<img>` in its menu).
REDOCLY_LOGO: Final = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
#: No icon, and no request for one (as the web app's page).
FAVICON_URL: Final = "data:,"
#: Both pages run inline bootstrap code and styles; everything else must be this server's.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install(app: FastAPI) -> None:
    """Serve `/docs` (Swagger UI), `/redoc` (ReDoc) and their files under `/docs-assets/`.

    Create the app with `docs_url=None, redoc_url=None` so FastAPI's CDN pages are not served.
    """
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the API docs need the app's OpenAPI document (openapi_url)")
    # Swagger UI would otherwise show a badge from validator.swagger.io for non-local hosts.
    swagger_parameters = {**(app.swagger_ui_parameters or {}), "validatorUrl": None}
    bundle = redoc_bundle()
    etag = f'"{hashlib.sha256(bundle).hexdigest()[:32]}"'

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=FAVICON_URL,
            # The API authenticates with a bearer token only: no OAuth2 redirect page.
            oauth2_redirect_url=None,
            swagger_ui_parameters=swagger_parameters,
        )
        page.headers.update(PAGE_HEADERS)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/{REDOC_JS}",
            redoc_favicon_url=FAVICON_URL,
            with_google_fonts=False,
        )
        page.headers.update(PAGE_HEADERS)
        return page

    # Registered before the mount below, so it answers instead of the package's own file.
    @app.get(f"{ASSETS_URL}/{REDOC_JS}", include_in_schema=False)
    async def redoc_js(request: Request) -> Response:
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(bundle, media_type="text/javascript", headers=headers)

    app.mount(ASSETS_URL, StaticFiles(packages=[(ASSETS_PACKAGE, "static")]), name="docs-assets")


def redoc_bundle() -> bytes:
    """ReDoc's standalone bundle with Redocly's logo URL emptied.

    The empty image fails without a request, and ReDoc then drops it from
    its "API docs by Redocly" link.
    """
    static = resources.files(ASSETS_PACKAGE).joinpath("static")
    return static.joinpath(REDOC_JS).read_bytes().replace(REDOCLY_LOGO, b"data:,")


def _root_path(request: Request) -> str:
    """The prefix a proxy mounts the app under, as FastAPI's own docs pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")
