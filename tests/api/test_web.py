"""The web app's files as `podium serve` sends them: the page, its modules, `/v1/server`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from podium.api.web import CONTENT_SECURITY_POLICY, WEB_DIR
from tests.server import ServerProcess


@pytest.fixture
async def anonymous(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=15.0) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/call/audio_room/town-hall", "/call/default/x_1"])
async def test_page_at_home_and_call_links(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.text == (WEB_DIR / "index.html").read_text()


async def test_every_web_file_is_served_with_its_type(anonymous: httpx.AsyncClient) -> None:
    types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
    files = [p for p in WEB_DIR.rglob("*") if p.is_file()]
    assert WEB_DIR / "podium.js" in files
    for path in files:
        response = await anonymous.get("/web/" + path.relative_to(WEB_DIR).as_posix())
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(types[path.suffix]), path
        assert response.headers["cache-control"] == "no-cache"
        assert response.content == path.read_bytes()


def test_packaged_file_list_covers_every_web_file() -> None:
    """pyproject's package-data globs must ship every file the page loads."""
    globs = ["*.html", "*.js", "*.css", "ui/*.js", "podium/*.js"]
    shipped = {p for pattern in globs for p in WEB_DIR.glob(pattern)}
    assert shipped == {p for p in WEB_DIR.rglob("*") if p.is_file()}
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    for pattern in globs:
        assert f'"web/{pattern}"' in pyproject


async def test_outside_the_web_folder_is_not_served(anonymous: httpx.AsyncClient) -> None:
    for path in ("/web/../api/web.py", "/web/%2e%2e/api/web.py", "/web/nope.js"):
        response = await anonymous.get(path)
        assert response.status_code == 404, path


async def test_server_info_tells_the_page_about_dev_and_loopback(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/v1/server")
    assert response.status_code == 200
    info = response.json()
    assert info["dev"] is True
    assert info["media_loopback"] is False
    assert isinstance(info["version"], str) and info["version"]
