"""Forwarding one publisher's source to its subscribers, with no I/O.

The receive path hands every decrypted RTP packet of a published source to its
`Forwarder`; the forwarder copies it once per subscriber, straight into that
subscriber's `Sink` buffer (the memory SRTP then protects in place), rewrites
the copy's header there for the subscriber's negotiated stream and has the
sink send it. The gate (spec §4) is a flag checked on every packet, so
closing it stops media at once. After a video gate reopens, each subscriber
resumes at a keyframe with no sequence gap, so its decoder never sees a hole.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from struct import Struct
from typing import Protocol

from podium.sfu.rtcp import DEFAULT_KEYFRAME_INTERVAL_S, KeyframeRequestLimiter
from podium.sfu.rtp import (
    DEFAULT_CACHE_SIZE,
    MAX_PACKET_SIZE,
    SEQUENCE_MODULO,
    TIMESTAMP_MODULO,
    ExtensionLayout,
    PacketCache,
    RtpHeaderView,
    SequenceRewriter,
)
from podium.sfu.sources import Source, TrackKind
from podium.sfu.vp8 import is_vp8_keyframe

_MAX_TIMESTAMP_INCREMENT = (1 << 31) - 1
#: Marker and payload type, sequence number, timestamp, SSRC: bytes 1-11 of the header.
_REWRITTEN_FIELDS = Struct("!BHII")


class Sink(Protocol):
    """A subscriber's outgoing stream for one source.

    The forwarder writes each packet for this subscriber into `buffer` (its
    own, at least `MAX_PACKET_SIZE` bytes, the same object for the sink's
    life), then calls `send` with the packet's length and payload size. `send`
    must not block: it runs inside the publisher's packet loop.
    """

    @property
    def buffer(self) -> memoryview: ...

    def send(self, length: int, payload_size: int) -> None: ...


@dataclass(frozen=True, slots=True)
class SinkParams:
    """What the subscriber's peer connection negotiated for this stream.

    `extension_ids` maps the publisher's header-extension ids to the
    subscriber's; extensions it does not list are blanked, as the subscriber
    never agreed to them. `clock_rate` turns wall time into RTP timestamp units.
    """

    ssrc: int
    payload_type: int
    extension_ids: Mapping[int, int]
    clock_rate: int

    def __post_init__(self) -> None:
        # Checked once here: the per-packet rewrite writes these without checking.
        if not 0 <= self.ssrc < TIMESTAMP_MODULO:
            raise ValueError(f"SSRC {self.ssrc} does not fit in 32 bits")
        if not 0 <= self.payload_type < 128:
            raise ValueError(f"payload type {self.payload_type} is outside 0..127")
        if self.clock_rate <= 0:
            raise ValueError(f"clock rate {self.clock_rate} is not positive")


def _write_rewritten(
    buf: bytearray | memoryview,
    packet: bytearray,
    params: SinkParams,
    sequence_number: int,
    timestamp: int,
    layout: ExtensionLayout,
) -> None:
    """Copy `packet` to the start of `buf` as sent to one subscriber (`layout` is the packet's)."""
    buf[: len(packet)] = packet
    _REWRITTEN_FIELDS.pack_into(
        buf, 1, (packet[1] & 0x80) | params.payload_type, sequence_number, timestamp, params.ssrc
    )
    if layout.elements:
        layout.rewrite_ids(buf, params.extension_ids)


class _SinkState:
    """One subscriber's rewriting state: numbering, cache, and whether it must resume.

    The cache holds (publisher's packet, output timestamp) by output sequence
    number: a NACK answer is rewritten again from those, so forwarding itself
    makes no copy but the one into the sink's buffer.
    """

    __slots__ = (
        "buffer",
        "cache",
        "last_sent_at",
        "params",
        "payload_type",
        "resume",
        "rewriter",
        "sink",
        "ssrc",
    )

    def __init__(
        self, sink: Sink, params: SinkParams, rewriter: SequenceRewriter, size: int
    ) -> None:
        self.sink = sink
        self.buffer = sink.buffer
        if len(self.buffer) < MAX_PACKET_SIZE:
            raise ValueError(f"a sink's buffer must hold {MAX_PACKET_SIZE} bytes")
        self.params = params
        # Copied out of `params`: read for every packet.
        self.payload_type = params.payload_type
        self.ssrc = params.ssrc
        self.rewriter = rewriter
        self.cache: PacketCache[tuple[bytearray, int]] = PacketCache(size)
        #: The next forwarded packet starts a new run; for video it must be a keyframe.
        self.resume = True
        self.last_sent_at: float | None = None


class Forwarder:
    """One published source (microphone, camera or screen) of one publisher.

    The gate starts closed. Counters are plain ints for `/metrics`.
    """

    def __init__(
        self,
        source: Source,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        keyframe_interval_s: float = DEFAULT_KEYFRAME_INTERVAL_S,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.is_video = source.kind is TrackKind.VIDEO
        self.gate_open = False
        self.packets_forwarded = 0
        self.bytes_forwarded = 0
        self.dropped_at_gate = 0
        self.dropped_malformed = 0
        self.keyframe_requests_sent = 0
        self.nacks_answered = 0
        self._cache_size = cache_size
        self._limiter: KeyframeRequestLimiter[Source] = KeyframeRequestLimiter(keyframe_interval_s)
        # RFC 3550 §5.1: random initial sequence numbers and timestamps per stream.
        self._rng = rng or random.Random()
        self._sinks: dict[str, _SinkState] = {}
        # Snapshots, so a sink removed from inside `send` does not break the loop.
        self._sink_list: tuple[_SinkState, ...] = ()
        #: The sinks grouped by their header-extension mapping, which is applied once per group.
        self._groups: tuple[tuple[Mapping[int, int], tuple[_SinkState, ...]], ...] = ()

    # Subscribers.

    def add_sink(
        self, key: str, sink: Sink, params: SinkParams, *, start: tuple[int, int] | None = None
    ) -> None:
        """Start forwarding to `key` (replacing any sink it had); video waits for a keyframe.

        `start` is the (sequence number, timestamp) of the first packet: a sink
        that already carried another stream to the subscriber continues its
        numbering (receivers drop packets that seem older than ones they had).
        Without it, both start at random.
        """
        if start is None:
            start = self._rng.randrange(SEQUENCE_MODULO), self._rng.randrange(TIMESTAMP_MODULO)
        rewriter = SequenceRewriter(*start)
        self._sinks[key] = _SinkState(sink, params, rewriter, self._cache_size)
        self._regroup()

    def remove_sink(self, key: str) -> None:
        if self._sinks.pop(key, None) is not None:
            self._regroup()

    def _regroup(self) -> None:
        self._sink_list = tuple(self._sinks.values())
        groups: dict[tuple[tuple[int, int], ...], list[_SinkState]] = {}
        for state in self._sink_list:
            groups.setdefault(tuple(sorted(state.params.extension_ids.items())), []).append(state)
        self._groups = tuple((dict(key), tuple(states)) for key, states in groups.items())

    @property
    def sink_keys(self) -> frozenset[str]:
        return frozenset(self._sinks)

    def sink(self, key: str) -> Sink | None:
        """The sink `key` is fed through, if any."""
        state = self._sinks.get(key)
        return None if state is None else state.sink

    # Gate.

    def open_gate(self) -> None:
        """Resume forwarding; every sink starts a new run, at a keyframe for video."""
        if self.gate_open:
            return
        self.gate_open = True
        for state in self._sink_list:
            state.resume = True

    def close_gate(self) -> None:
        """Stop forwarding from the very next packet."""
        self.gate_open = False

    def keyframe_needed(self) -> bool:
        """True while a video sink waits for a keyframe behind an open gate: request one."""
        return self.is_video and self.gate_open and any(s.resume for s in self._sink_list)

    # Media.

    def on_rtp(self, packet: bytearray, now: float) -> None:
        """Forward one packet from the publisher.

        `packet` itself is left unchanged, and must stay so: the NACK caches
        keep it to rewrite it again for a retransmission.
        """
        if not self.gate_open:
            self.dropped_at_gate += 1
            return
        size = len(packet)
        try:
            if size > MAX_PACKET_SIZE:
                raise ValueError(f"RTP packet of {size} bytes is over {MAX_PACKET_SIZE}")
            view = RtpHeaderView(packet)
            # Checked once here, so no sink's rewrite can fail halfway through the sinks.
            layout = view.extension_layout()
            keyframe = self.is_video and is_vp8_keyframe(
                packet, view.payload_offset, view.payload_end
            )
        except ValueError:
            self.dropped_malformed += 1
            return
        if keyframe:
            self._limiter.keyframe_received(self.source)
        sequence_number = view.sequence_number
        timestamp = view.timestamp
        payload_size = view.payload_end - view.payload_offset
        marker = packet[1] & 0x80
        sent = 0
        for extension_ids, states in self._groups:
            source = packet
            if layout.elements:
                source = bytearray(packet)
                layout.rewrite_ids(source, extension_ids)
            for state in states:
                if state.resume:
                    if self.is_video and not keyframe:
                        continue
                    state.rewriter.start_new_run(self._elapsed_ticks(state, now))
                    state.resume = False
                mapped = state.rewriter.rewrite(sequence_number, timestamp)
                if mapped is None:
                    continue
                out_seq, out_timestamp = mapped
                # `_write_rewritten`, with the extensions already renumbered for the group.
                buf = state.buffer
                buf[:size] = source
                _REWRITTEN_FIELDS.pack_into(
                    buf, 1, marker | state.payload_type, out_seq, out_timestamp, state.ssrc
                )
                state.cache.put(out_seq, (packet, out_timestamp))
                state.last_sent_at = now
                sent += 1
                state.sink.send(size, payload_size)
        self.packets_forwarded += sent
        self.bytes_forwarded += sent * size

    @staticmethod
    def _elapsed_ticks(state: _SinkState, now: float) -> int:
        """Wall time since the sink's last packet in RTP ticks, so its clock does not jump."""
        if state.last_sent_at is None:
            return 1
        ticks = round((now - state.last_sent_at) * state.params.clock_rate)
        return min(max(ticks, 1), _MAX_TIMESTAMP_INCREMENT)

    # Feedback.

    def request_keyframe(self, now: float) -> bool:
        """A subscriber sent PLI or FIR (or a gate opened): True means send one PLI upstream now."""
        if not self.is_video or not self._limiter.request(self.source, now):
            return False
        self.keyframe_requests_sent += 1
        return True

    def pending_keyframe_requests(self, now: float) -> bool:
        """True if a request held back by the rate limit is now due: send one PLI upstream."""
        if not self._limiter.due(now):
            return False
        self.keyframe_requests_sent += 1
        return True

    def next_keyframe_request_at(self) -> float | None:
        """When to call `pending_keyframe_requests` next, if a request is held back."""
        return self._limiter.next_due()

    def on_nack(
        self, key: str, lost_seqs: Iterable[int], missing: list[int] | None = None
    ) -> list[bytes]:
        """The packets to resend to `key`, exactly as first sent, for its NACKed seqs.

        Sequence numbers the cache no longer holds are appended to `missing` as
        the publisher's numbers (when they belong to the current run), so the
        caller may NACK the publisher for them.
        """
        state = self._sinks.get(key)
        if state is None:
            return []
        resend: list[bytes] = []
        for sequence_number in lost_seqs:
            cached = state.cache.get(sequence_number)
            if cached is not None:
                packet, timestamp = cached
                out = bytearray(len(packet))
                layout = RtpHeaderView(packet).extension_layout()  # it was valid when forwarded
                _write_rewritten(out, packet, state.params, sequence_number, timestamp, layout)
                resend.append(bytes(out))
            elif missing is not None:
                original = state.rewriter.original_sequence(sequence_number)
                if original is not None:
                    missing.append(original)
        self.nacks_answered += len(resend)
        return resend


class Router:
    """The forwarders of one call, keyed by (publisher user id, source).

    Sinks are keyed by the subscriber's user id, which is how the rule that a
    participant never receives its own media is enforced here as well as in
    the session.
    """

    def __init__(
        self,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        keyframe_interval_s: float = DEFAULT_KEYFRAME_INTERVAL_S,
        rng: random.Random | None = None,
    ) -> None:
        self._cache_size = cache_size
        self._keyframe_interval_s = keyframe_interval_s
        self._rng = rng or random.Random()
        self._forwarders: dict[tuple[str, Source], Forwarder] = {}

    def publish(self, user_id: str, source: Source) -> Forwarder:
        """The forwarder for this source, created (gate closed) if it is new."""
        forwarder = self._forwarders.get((user_id, source))
        if forwarder is None:
            forwarder = Forwarder(
                source,
                cache_size=self._cache_size,
                keyframe_interval_s=self._keyframe_interval_s,
                rng=self._rng,
            )
            self._forwarders[user_id, source] = forwarder
        return forwarder

    def unpublish(self, user_id: str, source: Source) -> None:
        """Drop the source's forwarder and with it every sink it fed."""
        self._forwarders.pop((user_id, source), None)

    def forwarder(self, user_id: str, source: Source) -> Forwarder | None:
        return self._forwarders.get((user_id, source))

    def forwarders_of(self, user_id: str) -> dict[Source, Forwarder]:
        """A publisher's forwarders, so enforcement can close every gate of that user."""
        return {s: f for (uid, s), f in self._forwarders.items() if uid == user_id}

    def subscribe(
        self,
        subscriber_id: str,
        publisher_id: str,
        source: Source,
        sink: Sink,
        params: SinkParams,
        *,
        start: tuple[int, int] | None = None,
    ) -> bool:
        """Feed `sink` from the publisher's source; False if that source is not published.

        `start` as for `Forwarder.add_sink`. Raises `ValueError` for a
        participant's own media: that is a caller bug.
        """
        if subscriber_id == publisher_id:
            raise ValueError(f"{subscriber_id!r} cannot subscribe to its own {source}")
        forwarder = self._forwarders.get((publisher_id, source))
        if forwarder is None:
            return False
        forwarder.add_sink(subscriber_id, sink, params, start=start)
        return True

    def unsubscribe(self, subscriber_id: str, publisher_id: str, source: Source) -> None:
        forwarder = self._forwarders.get((publisher_id, source))
        if forwarder is not None:
            forwarder.remove_sink(subscriber_id)

    def remove_participant(self, user_id: str) -> None:
        """The participant left: its sources and all its sinks go."""
        for key in [k for k in self._forwarders if k[0] == user_id]:
            del self._forwarders[key]
        for forwarder in self._forwarders.values():
            forwarder.remove_sink(user_id)
