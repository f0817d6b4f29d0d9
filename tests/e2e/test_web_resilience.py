"""The web app in Chromium when things go wrong: a server restart, a second tab, a lobby refusal.

- The server process stops mid-call: both pages say "Reconnecting…" (not
  LIVE) for as long as it is gone, the host's Stop live is disabled, and a
  page waiting for a backstage call to go live says so too; a new `podium serve`
  on the same port, database and secret brings them back by themselves: LIVE
  again, the speaker's microphone published again, the listener receiving
  audio again, the waiting page waiting again.
- The same user opens the call in a second tab: the first says media moved
  there and lets go of everything (no audio element, no running track), the
  second hears the speaker, and "Use this tab" takes the media back.
- A call type whose users may not create calls: joining a call of it that
  does not exist yet says so in the lobby; once it exists, joining works.

Screenshots go to `test-artifacts/web/`; no page may log a console error,
except Chromium's own network reports of what the test provokes: connections
refused while the server is down, and the lobby's refused requests.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import httpx
from playwright.async_api import Browser, Locator, expect

from tests.api.helpers import ALL_CAPS, put_call_type
from tests.e2e.browser import launch_chromium
from tests.e2e.test_web_app import (
    INBOUND_AUDIO,
    MIN_AUDIO_PACKETS,
    App,
    axe_violations,
    open_app,
    require_axe,
)
from tests.server import ServerProcess

LOOPBACK_MEDIA = {"PODIUM_MEDIA_LOOPBACK": "1"}
#: How long the server stays down while the pages must keep saying "Reconnecting…".
OUTAGE_S = 3
#: Bounds the page's recovery: podium.js retries at most every 10 s, then media reconnects.
RECOVERY_MS = 25_000
#: What Chromium itself logs for a connection refused while the server is down.
REFUSED = re.compile(
    r"^console\.error: (WebSocket connection to 'ws://127\.0\.0\.1:\d+/v1/ws\?[^']*' failed: "
    r"Error in connection establishment: |Failed to load resource: )net::ERR_CONNECTION_REFUSED"
)
MOVED = "This call is open in another tab; media moved there."

#: Every media element and track the page still holds, and what is left of its media session.
MEDIA_LEFT = """async () => ({
  audio: document.querySelectorAll("audio").length,
  playing: [...document.querySelectorAll("audio, video")].filter((el) => el.srcObject).length,
  remote: podiumApp.call.remoteTracks.size,
  published: Object.keys(podiumApp.call.published).length,
  session: (await podiumApp.call.getStats()) !== null,
  live: window.__held.filter((track) => track.readyState !== "ended").length,
})"""
#: The tracks a page sends and receives now, kept to check later that they were stopped.
HOLD_TRACKS = """() => {
  window.__held = [
    ...Object.values(podiumApp.call.published),
    ...[...podiumApp.call.remoteTracks.values()].map((entry) => entry.track),
  ];
  return window.__held.length;
}"""


def assert_no_errors_but(app: App, expected: re.Pattern[str]) -> None:
    """No console error other than Chromium's network reports matching `expected`."""
    errors = [error for error in app.browser_page.errors if not expected.search(error)]
    assert not errors, "browser errors:\n" + "\n".join(errors)


def badge(app: App) -> Locator:
    return app.page.locator(".phase-badge")


async def receives_audio(app: App, within_s: float = 10) -> None:
    """The page's own getStats counts inbound audio packets, and the count keeps going up."""
    await app.browser_page.until(
        f"async () => (await ({INBOUND_AUDIO})()) >= {MIN_AUDIO_PACKETS}", within_s
    )
    before = await app.inbound_audio_packets()
    await app.page.wait_for_timeout(500)
    assert await app.inbound_audio_packets() > before, f"{app.name} gets no audio"


async def join(app: App) -> None:
    """Join the linked call from the lobby and wait for the call screen."""
    await app.join_as()
    await expect(app.button("Leave")).to_be_visible()


async def join_with_microphone(app: App) -> None:
    """Join the linked `development` call (everyone may speak) and turn the microphone on."""
    await join(app)
    await app.button("Microphone").click()
    await app.browser_page.until("() => Boolean(window.podiumApp.call.published.microphone)")


async def test_reconnecting_while_the_server_is_down_then_recovering(
    tmp_path: Path, sqlite_url: str
) -> None:
    require_axe()
    server = ServerProcess(tmp_path, sqlite_url, dev=True, extra_env=LOOPBACK_MEDIA).start()
    servers = [server]
    apps: list[App] = []
    try:
        async with launch_chromium() as browser:
            link = f"/call/development/restart-{uuid.uuid4().hex[:8]}"
            alice = await open_app(browser, server, "Alice", link)
            bob = await open_app(browser, server, "Bob", link)
            apps += [alice, bob]
            await join_with_microphone(alice)
            await join(bob)
            await receives_audio(bob)
            for app in apps:
                await expect(badge(app)).to_have_text("Live")
            # A third page waits in a backstage call the organiser created ahead.
            waiting = f"audio_room/waiting-{uuid.uuid4().hex[:8]}"
            headers = {"Authorization": f"Bearer {server.server_token()}"}
            async with httpx.AsyncClient(headers=headers, trust_env=False) as operator:
                created = await operator.post(f"{server.url}/v1/calls/{waiting}", json={})
            assert created.status_code == 201, created.text
            cleo = await open_app(browser, server, "Cleo", f"/call/{waiting}")
            apps.append(cleo)
            await cleo.join_as()
            await expect(cleo.text("Waiting for the host to go live")).to_be_visible()

            # Down: every page says so, and keeps saying so, instead of LIVE.
            await asyncio.to_thread(server.stop)
            for app in (alice, bob):
                await expect(badge(app)).to_have_text("Reconnecting…")
            notice = alice.text(re.compile("^Lost the connection to the server. Reconnecting…"))
            await expect(notice).to_contain_text("Your microphone will turn back on by itself.")
            await expect(alice.button("Microphone")).to_be_disabled()
            await expect(alice.button("Stop live")).to_be_disabled()
            await expect(cleo.text(re.compile("^Lost the connection"))).to_be_visible()
            await alice.shot("20-reconnecting")
            assert await axe_violations(alice) == [], "axe on the reconnecting call screen"
            await alice.page.wait_for_timeout(OUTAGE_S * 1000)
            for app in (alice, bob):
                await expect(badge(app)).to_have_text("Reconnecting…")
            for app in apps:
                await expect(app.text(re.compile("^Lost the connection"))).to_be_visible()

            # Back on the same port, database and secret: the pages recover by themselves.
            restarted = ServerProcess(
                tmp_path, sqlite_url, port=server.port, dev=True, extra_env=LOOPBACK_MEDIA
            )
            servers.append(restarted)
            await asyncio.to_thread(restarted.start)
            for app in (alice, bob):
                await expect(badge(app)).to_have_text("Live", timeout=RECOVERY_MS)
            for app in apps:
                await expect(app.text(re.compile("^Lost the connection"))).to_be_hidden(
                    timeout=RECOVERY_MS
                )
            await expect(alice.button("Stop live")).to_be_enabled()
            await expect(cleo.text("Waiting for the host to go live")).to_be_visible()
            await alice.browser_page.until(
                "() => Boolean(window.podiumApp.call.published.microphone)", RECOVERY_MS / 1000
            )
            await expect(alice.text("Reconnected. Your microphone is on again.")).to_be_visible()
            await receives_audio(bob, RECOVERY_MS / 1000)
            await alice.shot("21-reconnected")

            for app in apps:
                assert_no_errors_but(app, REFUSED)
    finally:
        for app in apps:
            await app.browser_page.close()
        for process in servers:
            process.stop()


async def test_a_second_tab_takes_the_media_and_the_first_says_so(
    chromium: Browser, media_server: ServerProcess
) -> None:
    require_axe()
    link = f"/call/development/tabs-{uuid.uuid4().hex[:8]}"
    alice = await open_app(chromium, media_server, "Alice", link)
    apps = [alice]
    try:
        await join_with_microphone(alice)
        token = media_server.token("bob", name="Bob")
        first = await open_app(chromium, media_server, "Bob", f"{link}#token={token}")
        apps.append(first)
        await expect(first.button("Leave")).to_be_visible()
        await first.button("Microphone").click()
        await first.browser_page.until("() => Boolean(window.podiumApp.call.published.microphone)")
        await receives_audio(first)
        assert await first.page.evaluate(HOLD_TRACKS) >= 2  # our microphone, Alice's

        # The same user in a second tab: media moves there, the first tab lets go of it all.
        second = await open_app(chromium, media_server, "Bob2", f"{link}#token={token}")
        apps.append(second)
        await expect(second.button("Leave")).to_be_visible()
        await receives_audio(second)
        moved = first.text(MOVED)
        await expect(moved).to_be_visible()
        # Part of the call screen, not a message that times out.
        await expect(first.page.locator("#messages").get_by_text(MOVED)).to_have_count(0)
        await first.browser_page.until(f"async () => (await ({MEDIA_LEFT})()).session === false")
        assert await first.page.evaluate(MEDIA_LEFT) == {
            "audio": 0,
            "playing": 0,
            "remote": 0,
            "published": 0,
            "session": False,
            "live": 0,
        }
        await expect(first.button("Microphone")).to_be_disabled()
        await expect(second.text(MOVED)).to_be_hidden()
        await first.shot("22-moved-to-another-tab")
        assert await axe_violations(first) == [], "axe on the moved-to-another-tab notice"

        # "Use this tab" takes it back; now the second tab says so.
        await first.button("Use this tab").click()
        await receives_audio(first)
        await expect(moved).to_be_hidden()
        await expect(second.text(MOVED)).to_be_visible()
        await second.browser_page.until("() => document.querySelectorAll('audio').length === 0")

        for app in apps:
            app.browser_page.assert_no_errors()
    finally:
        for app in apps:
            await app.browser_page.close()


async def test_the_lobby_says_when_the_call_may_not_be_created(
    chromium: Browser, media_server: ServerProcess
) -> None:
    require_axe()
    call_type = f"organised{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {media_server.server_token()}"}
    async with httpx.AsyncClient(base_url=media_server.url, headers=headers) as admin:
        grants = {"user": ["read-call", "join-call"], "host": ALL_CAPS, "admin": ALL_CAPS}
        await put_call_type(admin, call_type, grants=grants)
        app = await open_app(chromium, media_server, "Alice", f"/call/{call_type}/not-yet")
        try:
            await app.join_as()
            refusal = app.page.get_by_role("alert")
            await expect(refusal).to_have_text(
                "This call has not been created yet, and you may not create calls of type "
                f"{call_type}. Ask the organiser to create it first."
            )
            await expect(app.button("Join")).to_be_enabled()
            await expect(app.button("Leave")).to_have_count(0)
            assert await axe_violations(app) == [], "axe on the lobby's refusal"
            await app.shot("23-may-not-create")

            # Once the organiser created it, the same lobby joins it.
            created = await admin.post(f"/v1/calls/{call_type}/not-yet", json={})
            assert created.status_code == 201, created.text
            await app.button("Join").click()
            await expect(app.button("Leave")).to_be_visible()
            # The refused create (403) and the read that found no call (404).
            refused = re.compile(
                r"^console\.error: Failed to load resource: the server responded with a status of "
                rf"(403 \(Forbidden\)|404 \(Not Found\)) .*'http://127\.0\.0\.1:\d+/v1/calls/{call_type}/not-yet'"
            )
            assert_no_errors_but(app, refused)
        finally:
            await app.browser_page.close()
