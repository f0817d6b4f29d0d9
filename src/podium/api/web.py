"""The web app: `podium serve` itself serves the page, its ES modules and `podium.js`.

No build step and no separate dev server: the files under `podium/web/` are
sent as they are. `/` and every shareable call link `/call/{type}/{id}` get
the same page, which routes on the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from podium import __version__
from podium.config import Settings

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
#: Revalidate on every load, so an upgraded server never runs with stale modules.
NO_CACHE = {"Cache-Control": "no-cache"}
#: The page runs only its own files: no inline script or style, no other origin, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    **NO_CACHE,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _Revalidated(StaticFiles):
    """Static files that browsers keep but revalidate (ETag) before each use."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(NO_CACHE)
        return response


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the page at `/` and `/call/{type}/{id}`, its files under `/web/`, and `/v1/server`."""
    index = WEB_DIR / "index.html"

    @app.get("/", include_in_schema=False)
    async def home() -> FileResponse:
        return FileResponse(index, headers=PAGE_HEADERS)

    @app.get("/call/{call_type}/{call_id}", include_in_schema=False)
    async def call_page(call_type: str, call_id: str) -> FileResponse:
        # Ids are checked by the page and by the API it calls; any path gets the page.
        return FileResponse(index, headers=PAGE_HEADERS)

    @app.get("/v1/server", tags=["server"])
    async def server_info() -> dict[str, Any]:
        """What the web app needs before it has a token.

        `dev`: tokens can be minted at `/v1/dev/token`; `media_loopback`: the
        SFU offers only 127.0.0.1 candidates, so pages offer only theirs too.
        """
        return {
            "version": __version__,
            "dev": settings.dev,
            "media_loopback": settings.media_loopback_only,
        }

    app.mount("/web", _Revalidated(directory=WEB_DIR), name="web")
