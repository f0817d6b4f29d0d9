"""The shared peer connection: explicit configuration, loopback per connection, no patches."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection

from podium.rtc import LOOPBACK_ADDRESS, peer_connection
from tests.client.test_package import aiortc_attributes, patched

WAIT_S = 5.0


async def _offered_hosts(pc: RTCPeerConnection) -> set[str]:
    """The hosts of the candidates in `pc`'s offer, once it gathered."""
    await asyncio.wait_for(pc.setLocalDescription(await pc.createOffer()), WAIT_S)
    lines = pc.localDescription.sdp.splitlines()
    return {line.split()[4] for line in lines if line.startswith("a=candidate:")}


async def test_loopback_only_is_one_connections_and_patches_nothing() -> None:
    """Gathering at the same time, only the loopback connection offers 127.0.0.1."""
    before = aiortc_attributes()
    loopback, usual = peer_connection(loopback_only=True), peer_connection()
    try:
        for pc in (loopback, usual):
            pc.addTransceiver("audio")
            pc.addTransceiver("video")
        hosts = await asyncio.gather(_offered_hosts(loopback), _offered_hosts(usual))
        assert hosts[0] == {LOOPBACK_ADDRESS}
        assert LOOPBACK_ADDRESS not in hosts[1]
        assert patched(before, aiortc_attributes()) == []
    finally:
        await loopback.close()
        await usual.close()


async def test_no_ice_servers_unless_given_and_one_transport() -> None:
    pc = peer_connection()
    try:
        audio, video = pc.addTransceiver("audio"), pc.addTransceiver("video")
        transport = audio.receiver.transport
        assert video.receiver.transport is transport  # max-bundle
        connection = transport.transport.iceGatherer._connection
        assert connection.stun_server is None and connection.turn_server is None
    finally:
        await pc.close()
