"""Headless Chromium for end-to-end tests: the Debian browser driven by Playwright, loopback only.

The browser is the system's `/usr/bin/chromium` (`make test` installs it);
Playwright never downloads one. When it is missing the test is skipped
locally and fails when `CI=true`, as for the other backing services.

Pages under `tests/e2e/pages/` are served by request interception at
`<origin>/__test__/<file>`, so a page runs on the server's own origin (its
WebSocket and HTTP calls are same-origin, and `127.0.0.1` is a secure context
for `getUserMedia`) without the server knowing about test files. Any request
to a host other than 127.0.0.1 is aborted and recorded as an error.

Use the `chromium` fixture (registered in tests/conftest.py) or
`async with launch_chromium() as browser`; open pages with `open_page`.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    # One UDP socket bound to the any-address instead of one per interface: towards the SFU's
    # 127.0.0.1 candidates the kernel then sends from 127.0.0.1, never from eth0's address.
    "--webrtc-ip-handling-policy=default_public_interface_only",
    "--autoplay-policy=no-user-gesture-required",
)
PAGES = Path(__file__).parent / "pages"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TEST_PREFIX = "/__test__/"
LAUNCH_TIMEOUT_MS = 20_000
#: The default bound of every page action and of `BrowserPage.until`.
ACTION_TIMEOUT_MS = 10_000


def require_chromium() -> None:
    """Skip when the browser is missing; fail instead when `CI=true`."""
    if os.access(CHROMIUM, os.X_OK):
        return
    message = f"Chromium is not installed at {CHROMIUM} (scripts/ensure-debian-packages)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """A headless Chromium with fake camera/microphone and loopback WebRTC allowed."""
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(name="chromium")
async def chromium_fixture() -> AsyncIterator[Browser]:
    """The `chromium` fixture: a browser per test (about a second), nothing shared."""
    async with launch_chromium() as browser:
        yield browser


class BrowserPage:
    """A page in its own context; records console errors, uncaught exceptions, stray requests."""

    def __init__(self, context: BrowserContext, page: Page, origin: str) -> None:
        self.context = context
        self.page = page
        self.origin = origin.rstrip("/")
        self.errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text} ({message.location})")

    async def _serve(self, route: Route) -> None:
        """Answer `<origin>/__test__/<file>` from `tests/e2e/pages/`; nothing else is served."""
        name = urlsplit(route.request.url).path.removeprefix(TEST_PREFIX)
        path = (PAGES / name).resolve()
        if not path.is_file() or not path.is_relative_to(PAGES.resolve()):
            await route.fulfill(status=404, body=f"no test page {name!r}")
            return
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        await route.fulfill(path=path, content_type=content_type)

    async def _guard(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.fallback()
            return
        self.errors.append(f"blocked request to {route.request.url}")
        await route.abort("blockedbyclient")

    async def goto(self, name: str, query: str = "") -> None:
        """Load a test page from `tests/e2e/pages/` at this page's origin."""
        url = f"{self.origin}{TEST_PREFIX}{name}"
        await self.page.goto(f"{url}?{query}" if query else url)

    async def until(self, expression: str, within_s: float = ACTION_TIMEOUT_MS / 1000) -> Any:
        """Evaluate `expression` (it may return a promise) every 50 ms until truthy; return it.

        Unlike Playwright's `wait_for_function`, a promise is awaited, not taken as truthy.
        """
        deadline = time.monotonic() + within_s
        while not (value := await self.page.evaluate(expression)):
            assert time.monotonic() < deadline, f"not true within {within_s} s: {expression}"
            await asyncio.sleep(0.05)
        return value

    async def screenshot(self, name: str) -> Path:
        """Save a PNG under `test-artifacts/` (gitignored) and return its path."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=path, timeout=ACTION_TIMEOUT_MS)
        return path

    def assert_no_errors(self) -> None:
        assert not self.errors, "browser errors:\n" + "\n".join(self.errors)

    async def close(self) -> None:
        with contextlib.suppress(PlaywrightError):  # the browser may be gone already
            await self.context.close()


async def open_page(browser: Browser, origin: str) -> BrowserPage:
    """A fresh context and page that may load test pages at `origin` (e.g. the server's URL)."""
    # Pages fulfilled by interception have no server address, so Chromium's Local Network
    # Access checks treat them as public and block their WebSocket to 127.0.0.1 unless granted.
    context = await browser.new_context(
        viewport={"width": 800, "height": 600},
        permissions=["local-network-access", "camera", "microphone"],
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = await context.new_page()
    wrapped = BrowserPage(context, page, origin)
    # Routes registered later are tried first: test pages, then the loopback guard.
    await context.route("**/*", wrapped._guard)
    await context.route(f"{wrapped.origin}{TEST_PREFIX}**", wrapped._serve)
    return wrapped
