"""The web app with an audience of hundreds, in Chromium: a stage of tiles, the audience a count.

A real `podium serve --dev` and Debian's Chromium. The host creates an audio
room in the browser and goes live; one more listener joins in the browser and
300 join over HTTP from the test process, each watching the call on its own
WebSocket (as a real listener does). The host's page shows "301 listening"
within moments of the last join (the count is coalesced, at most once a
second), renders one tile (the host's) and at most one page of audience rows,
never a node per listener. The host pages through the whole audience, finds
a listener by name, sees her ask to speak, accepts, and she appears on the
stage as a tile. The listener in the browser sees the count and no one else's
tile. axe-core finds nothing serious on either page, and at 375 px neither
page scrolls sideways. Screenshots go to `test-artifacts/web/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from playwright.async_api import Browser, Locator, expect

from tests.e2e.clients import Watcher
from tests.e2e.test_web_app import App, axe_violations, open_app, require_axe
from tests.server import ServerProcess

#: Listeners joined over HTTP from the test process (one more joins in Chromium).
LISTENERS = 300
#: Rows of one audience page in the web app (ui/audience.js AUDIENCE_PAGE_SIZE).
PAGE_SIZE = 20
#: HTTP joins and WebSocket opens in flight at once.
PARALLEL = 16
#: Bound of the whole ramp of listeners.
RAMP_S = 90.0
#: From the last join to the count on the host's page: the 1 s coalescing window and a render.
COUNT_S = 3.0
#: Elements the host's page may hold at most, whatever the audience (it has ~400 with 20 rows).
MAX_ELEMENTS = 900
HOST, GUEST, ZORA = "Hana", "Ada", "Zora Quill"

COUNTS = """() => ({
  tiles: document.querySelectorAll(".tiles > .tile").length,
  rows: document.querySelectorAll(".audience-row").length,
  elements: document.getElementsByTagName("*").length,
})"""
ROWS = """() => [...document.querySelectorAll(".audience-row")].map((row) => row.dataset.userId)"""
WIDTH = "() => document.documentElement.scrollWidth"


def exactly(app: App, text: str) -> Locator:
    return app.page.get_by_text(text, exact=True)


def listener_name(index: int) -> str:
    return ZORA if index == 0 else f"Listener {index:03d}"


async def bounded_map(
    items: list[int], worker: Callable[[int], Awaitable[None]], parallel: int
) -> None:
    """Run `worker` on every item, at most `parallel` at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(item: int) -> None:
        async with gate:
            await worker(item)

    await asyncio.gather(*(one(item) for item in items))


@contextlib.asynccontextmanager
async def audience(
    server: ServerProcess, path: str, cid: str, user_ids: list[str]
) -> AsyncIterator[httpx.AsyncClient]:
    """`user_ids` joined over HTTP, each watching the call on a WebSocket; all closed at the end."""
    watchers: list[Watcher] = []
    http = httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(20.0), trust_env=False)

    async def join(index: int) -> None:
        user_id = user_ids[index]
        watcher = Watcher(server, user_id)
        watchers.append(watcher)
        await watcher.open()
        ok = await watcher.watch(cid)
        assert ok["type"] == "watch.ok", ok
        token = server.token(user_id, name=listener_name(index))
        response = await http.post(f"/v1{path}/join", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text

    try:
        async with asyncio.timeout(RAMP_S):
            await bounded_map(list(range(len(user_ids))), join, PARALLEL)
        yield http
    finally:
        await asyncio.gather(*(w.close() for w in watchers), return_exceptions=True)
        await http.aclose()


async def page_rows(app: App, number: int) -> list[str]:
    """The user ids of the audience page shown, once page `number` is shown and read."""
    await expect(exactly(app, f"Page {number}")).to_be_visible()
    await expect(app.page.locator(".audience-list[aria-busy]")).to_have_count(0)
    rows: list[str] = await app.page.evaluate(ROWS)
    return rows


async def narrow(app: App, step: str) -> None:
    await app.page.set_viewport_size({"width": 375, "height": 800})
    await app.page.wait_for_timeout(300)
    width = await app.page.evaluate(WIDTH)
    assert width <= 375, f"{app.name}'s page is {width} px wide at 375 px"
    await app.shot(step)


async def test_an_audience_of_hundreds_is_a_count_and_a_paged_list(
    chromium: Browser, media_server: ServerProcess
) -> None:
    require_axe()
    call_id = f"audience-{uuid.uuid4().hex[:8]}"
    path = f"/calls/audio_room/{call_id}"
    cid = f"audio_room:{call_id}"
    prefix = uuid.uuid4().hex[:6]
    user_ids = [f"{prefix}-{index:03d}" for index in range(LISTENERS)]
    zora = user_ids[0]
    host = await open_app(chromium, media_server, HOST)
    guest = await open_app(chromium, media_server, GUEST, f"/call/audio_room/{call_id}")
    tabs = [host, guest]
    try:
        await host.join_as(call_id)
        await host.button("Go live").click()
        await expect(host.button("Stop live")).to_be_visible()
        await guest.join_as()
        await expect(guest.text("You are in the audience.")).to_be_visible()
        await expect(exactly(host, "1 listening")).to_be_visible()

        async with audience(media_server, path, cid, user_ids) as http:
            joined = time.monotonic()
            total = LISTENERS + 1
            await expect(exactly(host, f"{total} listening")).to_be_visible(timeout=COUNT_S * 1000)
            shown_after = time.monotonic() - joined
            assert shown_after <= COUNT_S, f"the count took {shown_after:.1f} s"
            await expect(exactly(guest, f"{total} listening")).to_be_visible()

            # One tile (the host) and one page of rows, not a node per listener.
            # The page was read when the call had one listener; it is read again at most
            # every 3 s while the count changes (ui/audience.js REFRESH_EVERY_MS).
            await expect(host.page.locator(".audience-row")).to_have_count(
                PAGE_SIZE, timeout=2 * COUNT_S * 1000
            )
            first = await page_rows(host, 1)
            assert len(first) == PAGE_SIZE, first
            counts: dict[str, int] = await host.page.evaluate(COUNTS)
            assert counts["tiles"] == 1, counts
            assert counts["rows"] <= PAGE_SIZE, counts
            assert counts["elements"] <= MAX_ELEMENTS, counts
            guest_counts: dict[str, int] = await guest.page.evaluate(COUNTS)
            assert guest_counts["tiles"] == 1 and guest_counts["rows"] == 0, guest_counts
            await expect(guest.page.get_by_label("Search listeners by name")).to_be_hidden()
            await host.shot("20-audience")
            await guest.shot("20-audience")

            # Paging: every listener exactly once, one page at a time.
            seen = list(first)
            number = 1
            while await host.button("Next page").is_enabled():
                await host.button("Next page").click()
                number += 1
                rows = await page_rows(host, number)
                assert 0 < len(rows) <= PAGE_SIZE, rows
                seen.extend(rows)
                assert number <= total, "the pages never end"
            assert len(seen) == len(set(seen)) == total, (len(seen), len(set(seen)))
            assert set(user_ids) <= set(seen)
            assert (await host.page.evaluate(COUNTS))["rows"] <= PAGE_SIZE
            await host.button("Previous page").click()
            await page_rows(host, number - 1)

            # Search by name prefix (typed, debounced): the page starts again at 1.
            search = host.page.get_by_label("Search listeners by name")
            await search.fill("listener 12")
            await expect(host.page.locator(".audience-row")).to_have_count(10)
            assert await page_rows(host, 1) == [f"{prefix}-{n:03d}" for n in range(120, 130)]
            await search.fill("zor")
            await expect(host.page.locator(".audience-row")).to_have_count(1)
            row = host.page.locator(f'.audience-row[data-user-id="{zora}"]')
            await expect(row).to_contain_text(ZORA)
            await host.shot("21-search")

            # Zora asks to speak: the host is told, her row says so; accepted, she is on stage.
            token = media_server.token(zora, name=ZORA)
            asked = await http.post(
                f"/v1{path}/permission-requests",
                json={"permissions": ["send-audio"]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert asked.status_code == 201, asked.text
            request_text = f"New request from {ZORA} to publish audio"
            await expect(host.notification(request_text)).to_be_visible()
            await expect(row.get_by_text("Asked to speak")).to_be_visible()
            await host.notification(request_text).get_by_role("button", name="Accept").click()
            tile = host.page.locator(f'.tiles > .tile[data-user-id="{zora}"]')
            await expect(tile).to_contain_text(ZORA)
            await expect(host.button(f"Revoke audio from {ZORA}")).to_be_visible()
            await expect(
                guest.page.locator(f'.tiles > .tile[data-user-id="{zora}"]')
            ).to_be_visible()
            await expect(exactly(host, f"{total - 1} listening")).to_be_visible()
            await expect(row).to_have_count(0)
            await expect(host.text(re.compile("No listener matches"))).to_be_visible()
            await search.fill("")
            await expect(host.page.locator(".audience-row")).to_have_count(PAGE_SIZE)
            await host.shot("22-promoted")

            for app in tabs:
                assert await axe_violations(app) == [], f"axe on {app.name}'s view"
            for app in tabs:
                await narrow(app, "23-audience-narrow")
            for app in tabs:
                app.browser_page.assert_no_errors()
    finally:
        for app in tabs:
            await app.browser_page.close()
