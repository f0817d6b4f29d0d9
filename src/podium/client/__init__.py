"""Podium's Python SDK (spec §5): calls, permission requests and live call state.

A standalone client: it talks to a Podium server over HTTP and one WebSocket
and imports nothing from the server's packages.

    from podium.client import Client

    async with Client("http://127.0.0.1:8000", token) as client:
        call = client.call("audio_room", "town-hall")
        await call.join()
        mic = call.permission("send-audio")
        if mic.can_request_permission:
            await mic.request()
        # once allowed: any aiortc audio track (see podium.client.media)
        await call.publish("microphone", track)
"""

from podium.client.call import Call, Event, Handler, Members, RequestRef, Unsubscribe
from podium.client.client import Client, token_claims
from podium.client.errors import PodiumAPIError, PodiumConnectionError, PodiumError
from podium.client.events import EventStream, ws_url
from podium.client.http import HttpTransport
from podium.client.media import SOURCES, MediaError, MediaSession, PublishDeniedError
from podium.client.permission import PermissionHandle
from podium.client.state import (
    CAPABILITIES,
    CallState,
    apply_event,
    apply_snapshot,
    check_capabilities,
    check_capability,
)

__all__ = [
    "CAPABILITIES",
    "SOURCES",
    "Call",
    "CallState",
    "Client",
    "Event",
    "EventStream",
    "Handler",
    "HttpTransport",
    "MediaError",
    "MediaSession",
    "Members",
    "PermissionHandle",
    "PodiumAPIError",
    "PodiumConnectionError",
    "PodiumError",
    "PublishDeniedError",
    "RequestRef",
    "Unsubscribe",
    "apply_event",
    "apply_snapshot",
    "check_capabilities",
    "check_capability",
    "token_claims",
    "ws_url",
]
