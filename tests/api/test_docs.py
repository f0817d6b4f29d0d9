"""`/docs` and `/redoc` work offline: every file they need comes from the server itself.

Against a real `podium serve`: the pages and each script and stylesheet they
reference answer from the same origin, and in Debian's Chromium (any request
to a host other than 127.0.0.1 is aborted and fails the test) Swagger UI and
ReDoc render Podium's operations without a console error.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from playwright.async_api import Browser, Locator, expect

from tests.e2e.browser import ACTION_TIMEOUT_MS, BrowserPage, open_page
from tests.server import ServerProcess

PAGES = ("/docs", "/redoc")
CONTENT_TYPES = {"script": "text/javascript", "stylesheet": "text/css"}
PERMISSION_REQUESTS = "/v1/calls/{type}/{id}/permission-requests"


class _References(HTMLParser):
    """The URLs a page loads: scripts, stylesheets and icons, with what each is."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.found.append(("script", str(values["src"])))
        elif tag == "link" and values.get("href"):
            self.found.append((str(values.get("rel")), str(values["href"])))


def references(html: str) -> list[tuple[str, str]]:
    parser = _References()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_only_files_of_its_own_server(server: ServerProcess, path: str) -> None:
    with httpx.Client(base_url=server.url, timeout=15.0) as http:
        page = http.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "://" not in page.text, "the page names another origin"
        found = references(page.text)
        kinds = {kind for kind, _ in found}
        assert "script" in kinds, found
        for kind, url in found:
            if kind == "shortcut icon":
                assert url == "data:,"
                continue
            assert url.startswith("/docs-assets/"), (kind, url)
            asset = http.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(CONTENT_TYPES[kind]), url
            assert len(asset.content) > 100_000, url  # the real bundle, not a stub


def test_swagger_ui_skips_the_online_validator(server: ServerProcess) -> None:
    """Its badge is an image from validator.swagger.io, shown when the host is not local."""
    page = httpx.get(f"{server.url}/docs", timeout=15.0)
    assert '"validatorUrl": null' in page.text


def test_redoc_bundle_loads_no_logo_from_redocly(server: ServerProcess) -> None:
    """The bundle's one outside file, Redocly's logo, is emptied; browsers may keep the bundle."""
    with httpx.Client(base_url=server.url, timeout=15.0) as http:
        bundle = http.get("/docs-assets/redoc.standalone.js")
        assert bundle.status_code == 200
        assert b"cdn.redoc.ly" not in bundle.content
        again = http.get(
            "/docs-assets/redoc.standalone.js",
            headers={"If-None-Match": bundle.headers["etag"]},
        )
        assert again.status_code == 304


async def open_docs(chromium: Browser, server: ServerProcess, path: str) -> BrowserPage:
    page = await open_page(chromium, server.url)
    await page.page.goto(f"{server.url}{path}")
    return page


async def assert_rendered_offline(page: BrowserPage, rendered: Locator) -> None:
    await expect(rendered).to_be_visible(timeout=ACTION_TIMEOUT_MS)
    await page.page.wait_for_load_state("networkidle", timeout=ACTION_TIMEOUT_MS)
    page.assert_no_errors()


async def test_swagger_ui_renders_offline(chromium: Browser, server: ServerProcess) -> None:
    page = await open_docs(chromium, server, "/docs")
    try:
        operation = page.page.locator(
            f".opblock-post:has(.opblock-summary-path[data-path='{PERMISSION_REQUESTS}'])"
        )
        await assert_rendered_offline(page, operation.get_by_text("Request Permissions"))
    finally:
        await page.close()


async def test_redoc_renders_offline(chromium: Browser, server: ServerProcess) -> None:
    page = await open_docs(chromium, server, "/redoc")
    try:
        # A ReDoc heading's accessible name starts with its anchor ("tag/.../operation/...").
        heading = page.page.get_by_role("heading", name=re.compile(r" Request Permissions$"))
        await assert_rendered_offline(page, heading)
        await expect(page.page.get_by_text(PERMISSION_REQUESTS).first).to_be_attached()
    finally:
        await page.close()
