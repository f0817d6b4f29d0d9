"""The peer connection the SDK and the SFU both make: aiortc, configured explicitly.

It lives outside `podium.sfu` so that `import podium.client` loads nothing of
the server, and it patches nothing process-wide: an SDK process keeps aiortc
and aioice exactly as installed. (The SFU's own process-wide aioice patch is
`podium.sfu.receive.install_media_demux`, applied by `SfuCall`.)

Loopback: aioice never offers 127.0.0.1 (its `get_host_addresses` leaves it
out). With `loopback_only`, the connection's `setLocalDescription` (where
aiortc gathers) first gives each of this connection's ICE gatherers' aioice
`Connection` instances its own `get_component_candidates`, which binds host
candidates on 127.0.0.1 instead of the interface addresses aioice found. Only
those instances change, so every other connection in the process gathers as
usual. (Before, a context variable read by a process-wide wrapper around
`aioice.ice.get_host_addresses` did the same.)
"""

from __future__ import annotations

from typing import Any, Final

from aioice import Candidate, Connection
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection

LOOPBACK_ADDRESS: Final = "127.0.0.1"
#: Set on an aioice `Connection` whose host candidates are bound on loopback only.
_LOOPBACK_ATTR: Final = "_podium_loopback_only"


def peer_connection(
    ice_servers: list[RTCIceServer] | None = None, *, loopback_only: bool = False
) -> RTCPeerConnection:
    """An `RTCPeerConnection` with an explicit configuration: no ICE servers by default.

    aiortc's own default contacts a public STUN server; this never does unless
    `ice_servers` says so. With `loopback_only` (off by default: tests,
    benchmarks, same-host setups) this connection's host candidates are
    127.0.0.1 and nothing else.

    Every m-line shares one transport (`max-bundle`). With aiortc's default
    (`balanced`), a third m-line of a kind already present (the second video:
    screen share) keeps a transport of its own when the BUNDLE group is
    applied, which is never connected, so its media is never received.
    """
    configuration = RTCConfiguration(
        iceServers=list(ice_servers or []), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
    )
    pc = RTCPeerConnection(configuration)
    if loopback_only:
        original = pc.setLocalDescription

        async def set_local_description(*args: Any, **kwargs: Any) -> None:
            for connection in _ice_connections(pc):
                _gather_on_loopback(connection)
            await original(*args, **kwargs)

        setattr(pc, "setLocalDescription", set_local_description)  # noqa: B010
    return pc


def _ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The aioice connections of `pc`'s ICE gatherers: its transceivers' and its SCTP's."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    return [t.transport.iceGatherer._connection for t in transports]


def _gather_on_loopback(connection: Connection) -> None:
    """Make this one `connection` bind its host candidates on 127.0.0.1 only (once)."""
    if getattr(connection, _LOOPBACK_ATTR, False):
        return
    original = connection.get_component_candidates

    async def get_component_candidates(
        component: int, addresses: list[str], **kwargs: Any
    ) -> list[Candidate]:
        return await original(component=component, addresses=[LOOPBACK_ADDRESS], **kwargs)

    setattr(connection, "get_component_candidates", get_component_candidates)  # noqa: B010
    setattr(connection, _LOOPBACK_ATTR, True)
