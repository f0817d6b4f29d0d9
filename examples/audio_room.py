"""An audio room with a moderated stage, end to end with the Python SDK.

A host creates an `audio_room` and goes live; a listener joins and asks for
`send-audio`; the host is notified and accepts; the listener's capability flips.

Run a development server, then this script:

    podium serve --dev
    python examples/audio_room.py [http://127.0.0.1:8000]

It uses `Client.dev_token`, so it needs a server started with `--dev`.
Every wait is bounded; it exits 0 on success and 1 if a step does not happen.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from podium.client import Client

WAIT_S = 10.0


def step(text: str) -> None:
    print(f"- {text}", flush=True)


async def main(base_url: str) -> int:
    room = f"town-hall-{uuid.uuid4().hex[:8]}"
    host_token = await Client.dev_token(base_url, "host-alice", name="Alice")
    listener_token = await Client.dev_token(base_url, "listener-bob", name="Bob")

    async with (
        Client(base_url, host_token) as host,
        Client(base_url, listener_token) as listener,
    ):
        stage = host.call("audio_room", room)
        await stage.get_or_create(custom={"title": "Town hall"})
        await stage.join()
        await stage.go_live()
        step(f"host created audio_room:{room}, joined backstage and went live")

        # The host hears about every permission request as it is made.
        requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        stage.on("call.permission_request", requests.put_nowait)

        seat = listener.call("audio_room", room)
        await seat.join()
        mic = seat.permission("send-audio")
        step(
            f"listener joined: has send-audio={mic.has_permission}, "
            f"can request={mic.can_request_permission}"
        )

        granted = asyncio.Event()
        seat.on(
            "call.permissions_updated",
            lambda event: granted.set() if "send-audio" in event["own_capabilities"] else None,
        )

        request = await mic.request()
        step(f"listener asked for send-audio (request {request['id']}, {request['state']})")
        step(f"listener is awaiting an answer: {mic.is_awaiting_permission}")

        event = await asyncio.wait_for(requests.get(), WAIT_S)
        who = event["user"]["name"] or event["user"]["id"]
        step(f"host was notified: {who} asks for {', '.join(event['request']['permissions'])}")

        answer = await stage.accept(event["request"])
        step(f"host accepted (request {answer['state']})")

        await asyncio.wait_for(granted.wait(), WAIT_S)
        step(
            f"listener's capability flipped: has send-audio={mic.has_permission}, "
            f"awaiting={mic.is_awaiting_permission}"
        )
        if not mic.has_permission or mic.is_awaiting_permission:
            return 1

        await seat.leave()
        await stage.end()
        step("listener left; host ended the call")
    return 0


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    try:
        sys.exit(asyncio.run(main(url)))
    except TimeoutError:
        print("a step did not happen in time", file=sys.stderr)
        sys.exit(1)
