"""`podium.sfu.forwarder`: gates, per-sink rewriting, keyframe resumption, NACKs, routing."""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.sfu.forwarder import Forwarder, Router, SinkParams
from podium.sfu.rtp import MAX_PACKET_SIZE
from podium.sfu.sources import Source
from tests.sfu import PROPERTY_SETTINGS

# VP8 payloads (RFC 7741): descriptor S=1 PID=0, then the payload header's P bit.
KEYFRAME = b"\x10\x00\x9d\x01\x2a" + bytes(range(40))
DELTA = b"\x10\x01\x02\x03" + bytes(range(40))
CONTINUATION = b"\x00\x77\x88" + bytes(range(40))
OPUS = b"\xfc\xff\xfe" + bytes(range(60))

# Publisher extensions, one-byte profile: id 1 = 0xAA, id 3 = 0xBB, id 5 = 0xCC, 2 padding.
PUBLISHER_EXTENSIONS = b"\x10\xaa\x30\xbb\x50\xcc\x00\x00"

A = SinkParams(ssrc=0xAAAA0001, payload_type=97, extension_ids={1: 4, 3: 9}, clock_rate=90000)
B = SinkParams(ssrc=0xBBBB0002, payload_type=96, extension_ids={1: 2}, clock_rate=90000)


def rtp(seq: int, ts: int, payload: bytes, *, pt: int = 100, ssrc: int = 0x12345678) -> bytearray:
    """A publisher packet laid out by RFC 3550, with the one-byte extension block above."""
    header = struct.pack("!BBHIIHH", 0x90, pt, seq, ts, ssrc, 0xBEDE, 2)
    return bytearray(header + PUBLISHER_EXTENSIONS + payload)


def header(data: bytes) -> tuple[int, int, int, int]:
    """(payload type, sequence number, timestamp, SSRC) read with struct."""
    _, second, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    return second & 0x7F, seq, ts, ssrc


def extensions(data: bytes) -> bytes:
    return bytes(data[16:24])


def payload(data: bytes) -> bytes:
    return bytes(data[24:])


class FakeSink:
    """Keeps what the forwarder wrote into its buffer, as each `send` found it."""

    def __init__(self, size: int = MAX_PACKET_SIZE) -> None:
        self.buffer = memoryview(bytearray(size))
        self.sent: list[bytes] = []
        self.payload_sizes: list[int] = []

    def send(self, length: int, payload_size: int) -> None:
        self.sent.append(bytes(self.buffer[:length]))
        self.payload_sizes.append(payload_size)

    @property
    def seqs(self) -> list[int]:
        return [header(d)[1] for d in self.sent]


class FixedStart(random.Random):
    """Starts every output stream just below the 16- and 32-bit wrap."""

    def randrange(self, *args: object, **kwargs: object) -> int:
        stop = args[0]
        assert isinstance(stop, int)
        return stop - 3


def consecutive(seqs: list[int]) -> bool:
    return all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))


def video(*keys: str) -> tuple[Forwarder, dict[str, FakeSink]]:
    forwarder = Forwarder(Source.CAMERA, rng=random.Random(7))
    sinks = {key: FakeSink() for key in keys}
    for key, sink in sinks.items():
        forwarder.add_sink(key, sink, A if key == "a" else B)
    return forwarder, sinks


def test_a_closed_gate_forwards_nothing_and_counts() -> None:
    forwarder, sinks = video("a", "b")
    for seq in range(5):
        forwarder.on_rtp(rtp(seq, seq * 3000, KEYFRAME), now=seq / 30)
    assert all(not sink.sent for sink in sinks.values())
    assert forwarder.dropped_at_gate == 5
    assert forwarder.packets_forwarded == forwarder.bytes_forwarded == 0


def test_each_sink_gets_its_own_header_and_the_same_payload() -> None:
    forwarder, sinks = video("a", "b")
    forwarder.open_gate()
    packets = [rtp(1000, 50, KEYFRAME), rtp(1001, 50, CONTINUATION), rtp(1002, 3050, DELTA)]
    originals = [bytes(p) for p in packets]
    for i, packet in enumerate(packets):
        forwarder.on_rtp(packet, now=i / 30)
    assert [bytes(p) for p in packets] == originals  # the input is never written
    for key, params, ext in (
        ("a", A, b"\x40\xaa\x90\xbb\x00\x00\x00\x00"),
        ("b", B, b"\x20\xaa\x00\x00\x00\x00\x00\x00"),
    ):
        sent = sinks[key].sent
        assert len(sent) == 3
        assert {header(d)[0] for d in sent} == {params.payload_type}
        assert {header(d)[3] for d in sent} == {params.ssrc}
        assert {extensions(d) for d in sent} == {ext}
        assert [payload(d) for d in sent] == [KEYFRAME, CONTINUATION, DELTA]
        assert consecutive(sinks[key].seqs)
        ts = [header(d)[2] for d in sent]
        assert ts[0] == ts[1] and (ts[2] - ts[0]) % 2**32 == 3000
    assert forwarder.packets_forwarded == 6
    assert forwarder.bytes_forwarded == sum(len(d) for s in sinks.values() for d in s.sent)


def test_closing_stops_the_very_next_packet() -> None:
    forwarder, sinks = video("a")
    forwarder.open_gate()
    forwarder.on_rtp(rtp(1, 0, KEYFRAME), now=0)
    forwarder.close_gate()
    forwarder.on_rtp(rtp(2, 0, CONTINUATION), now=0)
    assert len(sinks["a"].sent) == 1
    assert forwarder.dropped_at_gate == 1


def test_a_reopened_video_gate_resumes_at_a_keyframe_without_a_gap() -> None:
    forwarder, sinks = video("a", "b")
    forwarder.open_gate()
    forwarder.on_rtp(rtp(10, 9000, KEYFRAME), now=1.0)
    forwarder.on_rtp(rtp(11, 12000, DELTA), now=1.1)
    forwarder.close_gate()
    for seq in range(12, 20):
        forwarder.on_rtp(rtp(seq, seq * 3000, DELTA), now=1.2)
    assert not forwarder.keyframe_needed()
    forwarder.open_gate()
    assert forwarder.keyframe_needed()
    forwarder.on_rtp(rtp(20, 60000, DELTA), now=2.0)
    forwarder.on_rtp(rtp(21, 60000, CONTINUATION), now=2.0)
    assert all(len(sink.sent) == 2 for sink in sinks.values())
    forwarder.on_rtp(rtp(22, 63000, KEYFRAME), now=2.1)
    forwarder.on_rtp(rtp(23, 63000, CONTINUATION), now=2.1)
    assert not forwarder.keyframe_needed()
    for sink in sinks.values():
        assert consecutive(sink.seqs) and len(sink.seqs) == 4
        assert payload(sink.sent[2]) == KEYFRAME
        # The clock moves by the wall time since the last packet sent: 1.0 s at 90 kHz.
        assert (header(sink.sent[2])[2] - header(sink.sent[1])[2]) % 2**32 == 90000


def test_a_reopened_audio_gate_forwards_at_once_without_a_gap() -> None:
    forwarder = Forwarder(Source.MICROPHONE)
    sink = FakeSink()
    forwarder.add_sink("a", sink, SinkParams(1, 111, {}, 48000))
    forwarder.open_gate()
    forwarder.on_rtp(rtp(1, 960, OPUS), now=0.02)
    forwarder.close_gate()
    forwarder.on_rtp(rtp(2, 1920, OPUS), now=0.04)
    forwarder.open_gate()
    assert not forwarder.keyframe_needed()
    forwarder.on_rtp(rtp(3, 2880, OPUS), now=0.06)
    assert consecutive(sink.seqs) and len(sink.seqs) == 2
    assert (header(sink.sent[1])[2] - header(sink.sent[0])[2]) % 2**32 == 1920


def test_a_sink_added_mid_stream_starts_at_a_keyframe() -> None:
    forwarder, sinks = video("a")
    forwarder.open_gate()
    forwarder.on_rtp(rtp(1, 0, KEYFRAME), now=0)
    late = FakeSink()
    forwarder.add_sink("b", late, B)
    assert forwarder.keyframe_needed()
    forwarder.on_rtp(rtp(2, 3000, DELTA), now=0.1)
    forwarder.on_rtp(rtp(3, 6000, KEYFRAME), now=0.2)
    forwarder.on_rtp(rtp(4, 6000, CONTINUATION), now=0.2)
    assert [payload(d) for d in late.sent] == [KEYFRAME, CONTINUATION]
    assert consecutive(late.seqs)
    assert len(sinks["a"].sent) == 4 and consecutive(sinks["a"].seqs)


def test_a_sink_may_continue_the_numbering_of_a_stream_it_carried_before() -> None:
    forwarder, _ = video()
    forwarder.open_gate()
    reused = FakeSink()
    forwarder.add_sink("a", reused, A, start=(65535, 2**32 - 10))
    forwarder.on_rtp(rtp(500, 77, KEYFRAME), now=0)
    forwarder.on_rtp(rtp(501, 3077, DELTA), now=0.03)
    assert [header(d)[1:3] for d in reused.sent] == [(65535, 2**32 - 10), (0, 2990)]


def test_nacks_are_answered_with_the_bytes_first_sent() -> None:
    forwarder, sinks = video("a", "b")
    forwarder.open_gate()
    for seq in range(100, 110):
        forwarder.on_rtp(rtp(seq, 0, KEYFRAME if seq == 100 else CONTINUATION), now=0)
    sent = sinks["a"].sent
    first = header(sent[0])[1]
    missing: list[int] = []
    lost = [(first + 3) % 65536, (first + 7) % 65536, (first + 20) % 65536, (first - 1) % 65536]
    assert forwarder.on_nack("a", lost, missing) == [sent[3], sent[7]]
    assert forwarder.nacks_answered == 2
    assert missing == []  # neither beyond the run nor before it has a publisher packet
    assert forwarder.on_nack("nobody", lost) == []


def test_nacks_the_cache_cannot_answer_name_the_publisher_packet() -> None:
    forwarder = Forwarder(Source.CAMERA, cache_size=4)
    sink = FakeSink()
    forwarder.add_sink("a", sink, A)
    forwarder.open_gate()
    for seq in range(500, 510):
        forwarder.on_rtp(rtp(seq, 0, KEYFRAME if seq == 500 else CONTINUATION), now=0)
    missing: list[int] = []
    assert forwarder.on_nack("a", [sink.seqs[1], sink.seqs[9]], missing) == [sink.sent[9]]
    assert missing == [501]


def test_many_plis_become_one_request_per_interval() -> None:
    forwarder, _ = video(*"abcdefgh")
    answers = [forwarder.request_keyframe(now=10.0 + i * 0.01) for i in range(8)]
    assert answers == [True] + [False] * 7
    assert forwarder.next_keyframe_request_at() == pytest.approx(10.5)
    assert not forwarder.pending_keyframe_requests(now=10.4)
    assert forwarder.pending_keyframe_requests(now=10.5)
    assert not forwarder.pending_keyframe_requests(now=11.5)
    assert forwarder.keyframe_requests_sent == 2


def test_a_keyframe_answers_a_held_back_request() -> None:
    forwarder, _ = video("a")
    forwarder.open_gate()
    assert forwarder.request_keyframe(now=0)
    assert not forwarder.request_keyframe(now=0.1)
    forwarder.on_rtp(rtp(1, 0, KEYFRAME), now=0.2)
    assert not forwarder.pending_keyframe_requests(now=1.0)
    assert forwarder.keyframe_requests_sent == 1


def test_audio_never_asks_for_keyframes() -> None:
    assert not Forwarder(Source.MICROPHONE).request_keyframe(now=0)


def test_sequence_numbers_and_timestamps_wrap() -> None:
    forwarder = Forwarder(Source.CAMERA, rng=FixedStart())
    sink = FakeSink()
    forwarder.add_sink("a", sink, A)
    forwarder.open_gate()
    for i, seq in enumerate([65534, 65535, 0, 1, 2, 3]):
        forwarder.on_rtp(rtp(seq, (2**32 - 2 + i) % 2**32, KEYFRAME if i == 0 else DELTA), now=i)
    assert sink.seqs == [65533, 65534, 65535, 0, 1, 2]
    assert [header(d)[2] for d in sink.sent] == [2**32 - 3, 2**32 - 2, 2**32 - 1, 0, 1, 2]


def test_malformed_packets_are_dropped_and_counted() -> None:
    forwarder, sinks = video("a")
    forwarder.open_gate()
    forwarder.on_rtp(bytearray(b"\x80\x60\x00"), now=0)
    forwarder.on_rtp(rtp(1, 0, b""), now=0)  # a VP8 packet without a descriptor
    overrun = rtp(2, 0, KEYFRAME)
    overrun[22] = 0x5F  # extension id 5 claims 16 bytes inside an 8-byte block
    forwarder.on_rtp(overrun, now=0)
    forwarder.on_rtp(rtp(3, 0, KEYFRAME + bytes(MAX_PACKET_SIZE)), now=0)  # over any MTU
    assert forwarder.dropped_malformed == 4 and not sinks["a"].sent


def test_the_largest_packet_fits_and_its_payload_size_is_reported() -> None:
    forwarder, sinks = video("a")
    forwarder.open_gate()
    packet = rtp(1, 0, KEYFRAME)
    packet += bytes(MAX_PACKET_SIZE - len(packet))
    forwarder.on_rtp(packet, now=0)
    assert [len(d) for d in sinks["a"].sent] == [MAX_PACKET_SIZE]
    assert sinks["a"].payload_sizes == [MAX_PACKET_SIZE - 24]


def test_a_sink_whose_buffer_cannot_hold_a_packet_is_refused() -> None:
    with pytest.raises(ValueError, match="buffer"):
        Forwarder(Source.CAMERA).add_sink("a", FakeSink(MAX_PACKET_SIZE - 1), A)


def test_a_participant_never_receives_its_own_media() -> None:
    router = Router()
    router.publish("alice", Source.CAMERA)
    with pytest.raises(ValueError, match="own"):
        router.subscribe("alice", "alice", Source.CAMERA, FakeSink(), A)
    assert router.forwarder("alice", Source.CAMERA).sink_keys == frozenset()  # type: ignore[union-attr]


def test_the_router_feeds_subscribers_and_closes_a_users_gates() -> None:
    router = Router()
    camera = router.publish("alice", Source.CAMERA)
    mic = router.publish("alice", Source.MICROPHONE)
    assert router.publish("alice", Source.CAMERA) is camera
    bob, carol = FakeSink(), FakeSink()
    assert router.subscribe("bob", "alice", Source.MICROPHONE, bob, A)
    assert router.subscribe("carol", "alice", Source.MICROPHONE, carol, B)
    assert not router.subscribe("bob", "alice", Source.SCREEN, FakeSink(), A)
    assert router.forwarders_of("alice") == {Source.CAMERA: camera, Source.MICROPHONE: mic}
    assert router.forwarders_of("bob") == {}
    for forwarder in router.forwarders_of("alice").values():
        forwarder.open_gate()
    mic.on_rtp(rtp(1, 0, OPUS), now=0)
    router.unsubscribe("carol", "alice", Source.MICROPHONE)
    mic.on_rtp(rtp(2, 960, OPUS), now=0.02)
    for forwarder in router.forwarders_of("alice").values():
        forwarder.close_gate()
    mic.on_rtp(rtp(3, 1920, OPUS), now=0.04)
    assert (len(bob.sent), len(carol.sent)) == (2, 1)
    router.publish("bob", Source.CAMERA)
    router.subscribe("alice", "bob", Source.CAMERA, FakeSink(), A)
    router.remove_participant("alice")
    assert router.forwarders_of("alice") == {}
    assert router.forwarder("bob", Source.CAMERA).sink_keys == frozenset()  # type: ignore[union-attr]
    router.unpublish("bob", Source.CAMERA)
    assert router.forwarder("bob", Source.CAMERA) is None


Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["open", "close", "add", "remove"]), st.just(0)),
        # A packet: 0 continuation, 1 delta frame start, 2 keyframe start.
        st.tuples(st.just("packet"), st.integers(0, 2)),
    ),
    max_size=60,
)


@PROPERTY_SETTINGS
@given(
    source=st.sampled_from(list(Source)),
    start=st.integers(0, 65535),
    script=ops,
    seed=st.integers(0, 2**16),
)
def test_every_sink_sees_consecutive_numbers_and_nothing_behind_a_closed_gate(
    source: Source, start: int, script: list[Op], seed: int
) -> None:
    forwarder = Forwarder(source, rng=random.Random(seed))
    is_video = source is not Source.MICROPHONE
    sinks: dict[str, FakeSink] = {}
    outputs: dict[str, list[bytes]] = {}
    resuming: set[str] = set()  # sinks whose next packet starts a run (a keyframe for video)
    seq = start
    for op, kind in script:
        if op == "open":
            if not forwarder.gate_open:
                resuming |= sinks.keys()
            forwarder.open_gate()
        elif op == "close":
            forwarder.close_gate()
        elif op == "add":
            key = f"s{len(outputs)}"
            sinks[key] = FakeSink()
            outputs[key] = sinks[key].sent
            resuming.add(key)
            forwarder.add_sink(key, sinks[key], A)
        elif op == "remove" and sinks:
            key = next(iter(sinks))
            forwarder.remove_sink(key)
            del sinks[key]
        elif op == "packet":
            before = {key: len(sink.sent) for key, sink in sinks.items()}
            body = (CONTINUATION, DELTA, KEYFRAME)[kind]
            forwarder.on_rtp(rtp(seq, seq * 3000 % 2**32, body), now=seq / 30)
            seq = (seq + 1) % 65536
            for key, sink in sinks.items():
                received = sink.sent[before[key] :]
                waits = is_video and key in resuming and body != KEYFRAME
                expected = 1 if forwarder.gate_open and not waits else 0
                assert len(received) == expected
                assert received == [] or payload(received[0]) == body
                if received:
                    resuming.discard(key)
    for sent in outputs.values():
        assert consecutive([header(d)[1] for d in sent])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ssrc": 1 << 32}, "SSRC"),
        ({"payload_type": 128}, "payload type"),
        ({"clock_rate": 0}, "clock"),
    ],
)
def test_sink_params_are_checked_once_up_front(changes: dict[str, int], message: str) -> None:
    fields = {"ssrc": 1, "payload_type": 96, "extension_ids": {}, "clock_rate": 90000}
    with pytest.raises(ValueError, match=message):
        SinkParams(**{**fields, **changes})  # type: ignore[arg-type]
