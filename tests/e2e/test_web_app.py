"""The web app in real Chromium: a moderated audio room, a host and two listeners.

A real `podium serve --dev` (its SFU offering 127.0.0.1 candidates only) and
Debian's Chromium with fake capture devices, one browser context per person,
each page the app exactly as served at `/`. The test walks the issue's story:
the host goes live from backstage, listener A asks to speak and only the
host is told, the host accepts and A's microphone reaches the host and
listener B (their own `getStats` count inbound audio packets), the host
revokes and A's track stops, A asks for video and is turned down, and with
two moderator tabs open, the one that did not answer sees the request go.
A host mutes B. Every step leaves a screenshot under `test-artifacts/web/`; axe-core checks
both views; no page may log a console error. Then: without `--dev` the
lobby takes a token, a `#token=` link opens its call directly, an unanswered
request expires, and podium.js's camera and screen (the second video
m-line) reach another page as two tracks.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Locator, expect

from tests.api.helpers import put_call_type
from tests.e2e.browser import (
    ACTION_TIMEOUT_MS,
    ARTIFACTS,
    BrowserPage,
    launch_chromium,
    open_page,
)
from tests.server import ServerProcess

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
HOST, ALICE, BOB = "Hana", "Alice", "Bob"
#: Packets of inbound audio a listener must count within a few seconds of the speaker starting.
MIN_AUDIO_PACKETS = 25

INBOUND_AUDIO = """async () => {
  const report = await window.podiumApp.call.getStats();
  let packets = 0;
  if (report) report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") packets += s.packetsReceived;
  });
  return packets;
}"""


class App:
    """One person's tab of the web app."""

    def __init__(self, page: BrowserPage, name: str) -> None:
        self.browser_page = page
        self.page = page.page
        self.name = name
        self.shots = 0

    async def open(self, path: str) -> None:
        await self.page.goto(self.browser_page.origin + path)

    async def join_as(self, call_id: str | None = None) -> None:
        """Fill the lobby (a new call when `call_id` is given, else the linked one) and join."""
        await self.page.get_by_label("Display name").fill(self.name)
        if call_id is not None:
            await self.page.get_by_label("Call type").select_option("audio_room")
            await self.page.get_by_label("Call ID").fill(call_id)
        await self.page.get_by_role("button", name="Join", exact=True).click()

    def button(self, name: str) -> Locator:
        return self.page.get_by_role("button", name=name, exact=True)

    def text(self, text: str | re.Pattern[str]) -> Locator:
        return self.page.get_by_text(text)

    def notification(self, text: str) -> Locator:
        """The notification reading `text` (the nearest element around it holding buttons)."""
        return self.page.get_by_text(text, exact=True).locator("xpath=ancestor::*[.//button][1]")

    async def shot(self, step: str) -> None:
        folder = ARTIFACTS / "web"
        folder.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(
            path=folder / f"{step}-{self.name.lower()}.png", animations="disabled"
        )

    async def until(self, expression: str) -> Any:
        return await self.browser_page.until(expression)

    async def inbound_audio_packets(self) -> int:
        return int(await self.page.evaluate(INBOUND_AUDIO))


async def open_app(browser: Browser, server: ServerProcess, name: str, path: str = "/") -> App:
    app = App(await open_page(browser, server.url), name)
    await app.open(path)
    return app


async def axe_violations(app: App) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now."""
    # Evaluated over the DevTools protocol: the page's CSP refuses an injected <script>.
    await app.page.evaluate(AXE.read_text())
    results = await app.page.evaluate("() => axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} - {[n['target'] for n in v['nodes']]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def require_axe() -> None:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: `make test` installs it (npm ci)")


async def test_moderated_stage_in_chromium(chromium: Browser, media_server: ServerProcess) -> None:
    require_axe()
    call_id = f"stage-{uuid.uuid4().hex[:8]}"
    link = f"/call/audio_room/{call_id}"
    host = await open_app(chromium, media_server, HOST)
    alice = await open_app(chromium, media_server, ALICE, link)
    bob = await open_app(chromium, media_server, BOB, link)
    tabs = [host, alice, bob]
    try:
        # The host creates the call, which starts in backstage; listeners wait.
        await host.join_as(call_id)
        await expect(host.button("Go live")).to_be_visible()
        await host.shot("01-backstage")
        await alice.join_as()
        await bob.join_as()
        waiting = re.compile("waiting for the host to go live", re.I)
        for listener in (alice, bob):
            await expect(listener.text(waiting)).to_be_visible()
        await alice.shot("02-waiting")

        # Going live turns the waiting screen into the call.
        await host.button("Go live").click()
        await expect(host.button("Stop live")).to_be_visible()
        for listener in (alice, bob):
            await expect(listener.text("Not allowed to send audio")).to_be_visible()
            await expect(listener.button("Leave")).to_be_visible()
        await alice.shot("03-live")

        # Alice asks to speak: the host is told, Bob is not.
        await alice.button("Request audio permission").click()
        await expect(alice.button("Request audio permission")).to_be_disabled()
        await expect(alice.text(re.compile("awaiting approval", re.I))).to_be_visible()
        request_text = f"New request from {ALICE} to publish audio"
        await expect(host.notification(request_text)).to_be_visible()
        await host.shot("04-request")
        await alice.shot("04-awaiting")
        await bob.page.wait_for_timeout(500)
        await expect(bob.text(request_text)).to_have_count(0)

        # Accepted: Alice's microphone publishes, the host and Bob receive it.
        await host.notification(request_text).get_by_role("button", name="Accept").click()
        await expect(host.text(request_text)).to_have_count(0)
        await expect(alice.text("Allowed to send audio")).to_be_visible()
        await alice.until("() => Boolean(window.podiumApp.call.published.microphone)")
        for listener in (host, bob):
            await listener.until(f"async () => (await ({INBOUND_AUDIO})()) >= {MIN_AUDIO_PACKETS}")
            before = await listener.inbound_audio_packets()
            await listener.page.wait_for_timeout(500)
            assert await listener.inbound_audio_packets() > before, f"{listener.name} gets no audio"
        await host.shot("05-speaking")
        await alice.shot("05-speaking")
        await bob.shot("05-speaking")

        # The host revokes: Alice's microphone track stops and her controls say so.
        await alice.page.evaluate("() => { window.__mic = podiumApp.call.published.microphone; }")
        await host.button(f"Revoke audio from {ALICE}").click()
        await alice.until("() => window.__mic.readyState === 'ended'")
        await expect(alice.text("Not allowed to send audio")).to_be_visible()
        assert await alice.page.evaluate("() => !window.podiumApp.call.published.microphone")
        await alice.shot("06-revoked")

        # Alice asks for video; the host rejects and Alice is told.
        await alice.button("Request video permission").click()
        video_text = f"New request from {ALICE} to publish video"
        await host.notification(video_text).get_by_role("button", name="Reject").click()
        await expect(host.text(video_text)).to_have_count(0)
        await expect(alice.text(re.compile("rejected", re.I)).first).to_be_visible()
        await expect(alice.text("Not allowed to send video")).to_be_visible()
        await alice.shot("07-rejected")

        # A second moderator tab (the host's token, opened by link): one answers, both see it go.
        token = await host.page.evaluate("() => window.podiumApp.client.token")
        second = await open_app(chromium, media_server, f"{HOST}2", f"{link}#token={token}")
        tabs.append(second)
        await expect(second.button("Stop live")).to_be_visible()
        assert "#token" not in second.page.url
        await bob.button("Request audio permission").click()
        bob_text = f"New request from {BOB} to publish audio"
        await expect(host.notification(bob_text)).to_be_visible()
        await expect(second.notification(bob_text)).to_be_visible()
        await second.shot("08-two-moderators")
        await host.notification(bob_text).get_by_role("button", name="Accept").click()
        await expect(second.text(bob_text)).to_have_count(0)
        await expect(second.text(re.compile(f"accepted by {HOST}", re.I)).first).to_be_visible()
        await expect(bob.text("Allowed to send audio")).to_be_visible()
        await second.shot("08-answered-elsewhere")

        # Mute: Bob keeps send-audio, but his microphone track is stopped.
        await bob.until("() => Boolean(window.podiumApp.call.published.microphone)")
        await bob.page.evaluate("() => { window.__mic = podiumApp.call.published.microphone; }")
        await host.button(f"Mute {BOB}").click()
        await bob.until("() => window.__mic.readyState === 'ended'")
        await expect(bob.text(re.compile("microphone was stopped: muted", re.I))).to_be_visible()
        await expect(bob.text("Allowed to send audio")).to_be_visible()

        # Accessibility of both views, and the listener's view at 375 px wide.
        for app in (host, alice):
            assert await axe_violations(app) == [], f"axe on {app.name}'s view"
        await alice.page.set_viewport_size({"width": 375, "height": 800})
        await alice.page.wait_for_timeout(300)
        width = await alice.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"the page is {width} px wide at 375 px"
        await alice.shot("09-narrow")

        for app in tabs:
            app.browser_page.assert_no_errors()
    finally:
        for app in tabs:
            await app.browser_page.close()


async def test_without_dev_the_lobby_takes_a_token(tmp_path: Path, sqlite_url: str) -> None:
    """No `--dev`: the lobby asks for a token; a bad one is refused there, a good one joins."""
    server = ServerProcess(tmp_path, sqlite_url, extra_env={"PODIUM_MEDIA_LOOPBACK": "1"}).start()
    app: App | None = None
    try:
        async with launch_chromium() as browser:
            call_id = f"token-{uuid.uuid4().hex[:8]}"
            app = await open_app(browser, server, "Tess", f"/call/development/{call_id}")
            await expect(app.page.get_by_label("Display name")).to_have_count(0)
            field = app.page.get_by_label("Access token")
            await field.fill("not-a-token")
            await app.button("Join").focus()
            await app.page.keyboard.press("Enter")
            await expect(app.text(re.compile("token is not valid", re.I))).to_be_visible()
            await expect(field).to_have_attribute("aria-invalid", "true")
            await expect(app.button("Leave")).to_have_count(0)
            await field.fill(server.token("tess", name="Tess"))
            await app.button("Join").focus()
            await app.page.keyboard.press("Enter")
            await expect(app.button("Leave")).to_be_visible()
            await expect(app.text("Allowed to send audio")).to_be_visible()
            await app.shot("10-token-lobby")
            app.browser_page.assert_no_errors()
            await app.browser_page.close()
    finally:
        server.stop()


async def test_token_from_the_link_opens_the_call(
    chromium: Browser, media_server: ServerProcess
) -> None:
    """`/call/{type}/{id}#token=...` joins straight away as that token's user."""
    call_id = f"link-{uuid.uuid4().hex[:8]}"
    token = media_server.token("tara", name="Tara")
    link = f"/call/development/{call_id}#token={token}"
    app = await open_app(chromium, media_server, "Tara", link)
    try:
        await expect(app.button("Leave")).to_be_visible(timeout=ACTION_TIMEOUT_MS)
        await expect(app.text("Allowed to send audio")).to_be_visible()
        assert app.page.url.endswith(f"/call/development/{call_id}")
        app.browser_page.assert_no_errors()
    finally:
        await app.browser_page.close()


PODIUM_JS_JOIN = """async ([user, callId]) => {
  const podium = await import("/web/podium.js");
  const info = await podium.Client.serverInfo();
  const token = await podium.Client.devToken({ userId: user, name: user });
  const client = new podium.Client({ token, loopbackOnly: info.media_loopback });
  await client.connect();
  const call = client.call("development", callId);
  await call.getOrCreate();
  await call.join();
  await call.connectMedia();
  window.podiumApp = { client, call };
}"""
#: Per mid, (packets received, decoded frame size) of the inbound video.
INBOUND_VIDEO = """async () => {
  const report = await window.podiumApp.call.getStats();
  const byMid = {};
  report.forEach((s) => {
    if (s.type !== "inbound-rtp" || s.kind !== "video") return;
    byMid[s.mid] = [s.packetsReceived, s.frameWidth];
  });
  return byMid;
}"""


async def test_camera_and_screen_arrive_as_two_tracks(
    chromium: Browser, media_server: ServerProcess
) -> None:
    """podium.js publishes camera and screen (second video m-line); both reach another page."""
    call_id = f"screen-{uuid.uuid4().hex[:8]}"
    pages = [await open_page(chromium, media_server.url) for _ in range(2)]
    try:
        for page, user in zip(pages, ("ann", "ben"), strict=True):
            await page.page.goto(media_server.url + "/v1/server")
            await page.page.evaluate(PODIUM_JS_JOIN, [user, call_id])
        publisher, viewer = pages
        # Two fake cameras of different sizes stand in for camera and screen.
        await publisher.page.evaluate("""async () => {
          const capture = async (width, height) => (await navigator.mediaDevices.getUserMedia(
            { video: { width, height } })).getVideoTracks()[0];
          await podiumApp.call.publish("camera", await capture(640, 480));
          await podiumApp.call.publish("screen", await capture(320, 240));
        }""")
        await viewer.until("() => podiumApp.call.remoteTracks.size === 2")
        mids = await viewer.page.evaluate(
            "() => Object.fromEntries([...podiumApp.call.remoteTracks.values()]"
            ".map((t) => [t.source, t.mid]))"
        )
        assert set(mids) == {"camera", "screen"} and mids["camera"] != mids["screen"]
        await viewer.until(
            f"async () => Object.values(await ({INBOUND_VIDEO})())"
            ".filter(([packets, width]) => packets > 20 && width).length === 2"
        )
        video = await viewer.page.evaluate(INBOUND_VIDEO)
        assert video[mids["screen"]][1] == 320, video
        assert video[mids["camera"]][1] > 320, video
        for page in pages:
            page.assert_no_errors()
    finally:
        for page in pages:
            await page.close()


async def test_an_unanswered_request_expires(
    chromium: Browser, media_server: ServerProcess
) -> None:
    """The requester is told when no one answered in time, and may ask again."""
    call_type = f"quick{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {media_server.server_token()}"}
    async with httpx.AsyncClient(base_url=media_server.url, headers=headers) as admin:
        await put_call_type(admin, call_type, request_ttl_s=2)
        created = await admin.post(f"/v1/calls/{call_type}/expiry", json={})
        assert created.status_code in (200, 201), created.text
    app = await open_app(chromium, media_server, ALICE, f"/call/{call_type}/expiry")
    try:
        await app.join_as()
        await app.button("Request audio permission").click()
        await expect(app.button("Request audio permission")).to_be_disabled()
        await expect(app.text(re.compile("expired", re.I)).first).to_be_visible()
        await expect(app.button("Request audio permission")).to_be_enabled()
        await app.shot("11-expired")
        app.browser_page.assert_no_errors()
    finally:
        await app.browser_page.close()
