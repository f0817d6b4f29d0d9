"""`podium.sfu.rtcp`: feedback parsing and building, retargeting, keyframe request limiting."""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import pairwise

import pytest
from aiortc.rtp import (
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from hypothesis import given
from hypothesis import strategies as st

from podium.sfu.rtcp import (
    Fir,
    FirEntry,
    KeyframeRequestLimiter,
    Nack,
    OtherRtcp,
    Pli,
    Remb,
    parse_rtcp,
    retarget,
)
from tests.sfu import PROPERTY_SETTINGS

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

# From libwebrtc's REMB unit test: 3 SSRCs, 0x3fb93 * 2 bit/s.
REMB_VECTOR = bytes.fromhex("8fce0007 12345678 00000000 52454d42 0307fb93") + bytes.fromhex(
    "23456789 2345678a 2345678b"
)

BUILT = [
    (Pli(0x11223344, 0x55667788), "81ce0002 11223344 55667788"),
    (Fir(1, (FirEntry(0xAABBCCDD, 7),)), "84ce0004 00000001 00000000 aabbccdd 07000000"),
    (
        Fir(1, (FirEntry(2, 255), FirEntry(3, 0))),
        "84ce0006 00000001 00000000 00000002 ff000000 00000003 00000000",
    ),
    (Nack(1, 2, (100,)), "81cd0003 00000001 00000002 00640000"),
    (Nack(1, 2, (100, 101, 116, 117)), "81cd0004 00000001 00000002 00648001 00750000"),
    (Nack(1, 2, (0xFFFF, 0, 1)), "81cd0003 00000001 00000002 ffff0003"),
    (Remb(0x12345678, 0x3FB93 * 2, (0x23456789, 0x2345678A, 0x2345678B)), REMB_VECTOR.hex()),
    (Remb(5, 0, ()), "8fce0004 00000005 00000000 52454d42 00000000"),
    (Remb(5, 0x3FFFF, (9,)), "8fce0005 00000005 00000000 52454d42 0103ffff 00000009"),
]


@pytest.mark.parametrize(("packet", "wire"), BUILT)
def test_builds_and_parses_known_bytes(packet: Pli | Fir | Nack | Remb, wire: str) -> None:
    data = bytes.fromhex(wire.replace(" ", ""))
    assert bytes(packet) == data
    assert parse_rtcp(data) == [packet]


def test_nack_parsing_expands_the_bitmask_across_the_wrap() -> None:
    data = bytes.fromhex("81cd0004 00000001 00000002 fffe8001 00070000".replace(" ", ""))
    assert parse_rtcp(data) == [Nack(1, 2, (0xFFFE, 0xFFFF, 14, 7))]


def test_compound_packets_keep_other_parts_whole() -> None:
    sr = bytes(RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(1, 2, 3, 4)))
    sdes = bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=1, items=[(1, b"cname")])]))
    transport_cc = bytes.fromhex("8fcd0003 00000001 00000002 00010002".replace(" ", ""))
    afb = bytes.fromhex("8fce0003 00000001 00000000 41424344".replace(" ", ""))
    parts = [
        sr,
        bytes(Pli(1, 2)),
        sdes,
        bytes(Nack(1, 2, (5,))),
        transport_cc,
        afb,
        bytes(Remb(1, 1000, (2,))),
    ]
    assert parse_rtcp(b"".join(parts)) == [
        OtherRtcp(200, sr),
        Pli(1, 2),
        OtherRtcp(202, sdes),
        Nack(1, 2, (5,)),
        OtherRtcp(205, transport_cc),
        OtherRtcp(206, afb),
        Remb(1, 1000, (2,)),
    ]
    assert parse_rtcp(b"") == []


def test_padding_is_skipped() -> None:
    data = bytes.fromhex("a1ce0003 00000001 00000002 00000004".replace(" ", ""))
    assert parse_rtcp(bytearray(data)) == [Pli(1, 2)]
    nack = bytes.fromhex("a1cd0004 00000001 00000002 00050000 00000004".replace(" ", ""))
    assert parse_rtcp(nack) == [Nack(1, 2, (5,))]


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("81ce00", "header is truncated"),
        (bytes(Pli(1, 2)).hex() + "81", "header is truncated"),
        ("41ce0002 00000001 00000002", "version is 1"),
        ("81ce0003 00000001 00000002", "overruns"),
        ("a1ce0002 00000001 00000000", "padding of 0 bytes"),
        ("a1ce0002 00000001 00000009", "padding of 9 bytes"),
        ("a0c90000", "padding of 0 bytes"),
        ("81ce0001 00000001", "shorter than its two SSRCs"),
        ("81cd0002 00000001 00000002", "NACK items"),
        ("a1cd0003 00000001 00000002 00000004", "NACK items"),
        ("84ce0002 00000001 00000000", "FIR entries"),
        ("84ce0003 00000001 00000000 00000002", "FIR entries"),
        ("8fce0003 00000001 00000000 52454d42", "shorter than its 8-byte header"),
        ("8fce0005 00000001 00000000 52454d42 02000001 00000009", "lists 2 SSRCs"),
    ],
)
def test_malformed_compounds_raise(wire: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rtcp(bytes.fromhex(wire.replace(" ", "")))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Pli(-1, 0), "sender SSRC"),
        (lambda: Pli(0, 1 << 32), "media SSRC"),
        (lambda: Fir(0, ()), "at least one entry"),
        (lambda: FirEntry(0, 256), "FIR sequence number"),
        (lambda: Nack(0, 0, ()), "at least one lost"),
        (lambda: Nack(0, 0, (1, 0x10000)), "lost sequence number"),
        (lambda: Remb(0, -1, ()), "bitrate"),
        (lambda: Remb(0, 1 << 81, ()), "bitrate"),
        (lambda: Remb(0, 1, tuple(range(256))), "SSRC count"),
        (lambda: Remb(0, 1, (1 << 32,)), "REMB SSRC"),
    ],
)
def test_fields_are_validated(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# --- properties ----------------------------------------------------------------------


@st.composite
def ordered_losses(draw: st.DrawFn) -> tuple[int, ...]:
    """Lost sequence numbers in sequence order, possibly across the 16-bit wrap."""
    start = draw(u16)
    offsets = draw(st.sets(st.integers(0, 0x7FFF), min_size=1, max_size=60))
    return tuple((start + offset) & 0xFFFF for offset in sorted(offsets))


@PROPERTY_SETTINGS
@given(u32, u32, ordered_losses())
def test_nack_round_trips_losses_in_sequence_order(
    sender: int, media: int, lost: tuple[int, ...]
) -> None:
    nack = Nack(sender, media, lost)
    assert parse_rtcp(bytes(nack)) == [nack]


@PROPERTY_SETTINGS
@given(st.lists(u16, min_size=1, max_size=60))
def test_nack_keeps_every_loss_in_any_order(lost: list[int]) -> None:
    (parsed,) = parse_rtcp(bytes(Nack(1, 2, tuple(lost))))
    assert isinstance(parsed, Nack)
    assert sorted(parsed.lost) == sorted(set(lost))


@PROPERTY_SETTINGS
@given(u32, st.integers(0, (1 << 81) - 1), st.lists(u32, max_size=255))
def test_remb_keeps_18_significant_bits(sender: int, bitrate: int, ssrcs: list[int]) -> None:
    remb = Remb(sender, bitrate, tuple(ssrcs))
    (parsed,) = parse_rtcp(bytes(remb))
    assert isinstance(parsed, Remb)
    dropped_bits = max(0, bitrate.bit_length() - 18)
    assert parsed.bitrate == bitrate >> dropped_bits << dropped_bits
    assert (parsed.sender_ssrc, parsed.ssrcs) == (sender, remb.ssrcs)
    assert bytes(parsed) == bytes(remb)


@PROPERTY_SETTINGS
@given(u32, st.lists(st.tuples(u32, st.integers(0, 255)), min_size=1, max_size=10))
def test_fir_round_trips(sender: int, entries: list[tuple[int, int]]) -> None:
    fir = Fir(sender, tuple(FirEntry(*entry) for entry in entries))
    assert parse_rtcp(bytes(fir)) == [fir]


# --- against aiortc ------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(u32, u32)
def test_pli_matches_aiortc(sender: int, media: int) -> None:
    assert bytes(Pli(sender, media)) == bytes(RtcpPsfbPacket(fmt=1, ssrc=sender, media_ssrc=media))


@PROPERTY_SETTINGS
@given(u32, u32, st.sets(u16, min_size=1, max_size=60))
def test_nack_matches_aiortc_without_wrap(sender: int, media: int, lost: set[int]) -> None:
    ordered = sorted(lost)
    theirs = bytes(RtcpRtpfbPacket(fmt=1, ssrc=sender, media_ssrc=media, lost=ordered))
    assert bytes(Nack(sender, media, tuple(ordered))) == theirs
    assert parse_rtcp(theirs) == [Nack(sender, media, tuple(ordered))]
    (parsed,) = RtcpPacket.parse(bytes(Nack(sender, media, tuple(ordered))))
    assert isinstance(parsed, RtcpRtpfbPacket)
    assert parsed.lost == ordered


@PROPERTY_SETTINGS
@given(u32, st.integers(0, 1 << 40), st.lists(u32, max_size=20))
def test_remb_matches_aiortc(sender: int, bitrate: int, ssrcs: list[int]) -> None:
    theirs = bytes(
        RtcpPsfbPacket(fmt=15, ssrc=sender, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs))
    )
    assert bytes(Remb(sender, bitrate, tuple(ssrcs))) == theirs
    (parsed,) = parse_rtcp(theirs)
    assert isinstance(parsed, Remb)
    (psfb,) = RtcpPacket.parse(theirs)
    assert isinstance(psfb, RtcpPsfbPacket)
    assert (parsed.bitrate, list(parsed.ssrcs)) == unpack_remb_fci(psfb.fci)


def test_fir_reads_as_aiortc_psfb() -> None:
    (psfb,) = RtcpPacket.parse(bytes(Fir(1, (FirEntry(2, 3),))))
    assert psfb == RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=0, fci=struct.pack("!IB3x", 2, 3))


def test_aiortc_differs_on_nacks_across_the_wrap() -> None:
    """aiortc 1.16.0 expands past 65535 and cannot build a NACK across the wrap."""
    data = bytes(Nack(1, 2, (0xFFFF, 0)))
    (theirs,) = RtcpPacket.parse(data)
    assert isinstance(theirs, RtcpRtpfbPacket)
    assert theirs.lost == [0xFFFF, 0x10000]
    assert parse_rtcp(data) == [Nack(1, 2, (0xFFFF, 0))]
    with pytest.raises(ValueError, match="negative shift count"):
        bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[0xFFFF, 0]))


# --- retarget ------------------------------------------------------------------------


def test_retarget_rewrites_both_ssrcs_and_keeps_the_rest() -> None:
    assert retarget(Pli(1, 2), sender_ssrc=10, media_ssrc=20) == Pli(10, 20)
    nack = retarget(Nack(1, 2, (5, 6)), sender_ssrc=10, media_ssrc=20)
    assert nack == Nack(10, 20, (5, 6))
    assert bytes(nack) == bytes.fromhex("81cd0003 0000000a 00000014 00050001".replace(" ", ""))


def test_retarget_validates_the_new_ssrcs() -> None:
    with pytest.raises(ValueError, match="media SSRC"):
        retarget(Pli(1, 2), sender_ssrc=1, media_ssrc=1 << 32)


# --- KeyframeRequestLimiter ----------------------------------------------------------


def test_requests_inside_the_interval_wait_for_it() -> None:
    limiter: KeyframeRequestLimiter[str] = KeyframeRequestLimiter()
    assert limiter.next_due() is None
    assert limiter.request("cam", 10.0) is True
    assert limiter.request("cam", 10.1) is False
    assert limiter.request("cam", 10.2) is False
    assert limiter.request("screen", 10.2) is True
    assert limiter.next_due() == 10.5
    assert limiter.due(10.4) == []
    assert limiter.due(10.5) == ["cam"]
    assert limiter.next_due() is None
    assert limiter.due(20.0) == []
    assert limiter.request("cam", 10.9) is False
    assert limiter.request("cam", 11.0) is True
    assert limiter.next_due() is None


def test_a_keyframe_answers_a_waiting_request() -> None:
    limiter: KeyframeRequestLimiter[str] = KeyframeRequestLimiter()
    limiter.request("cam", 0.0)
    limiter.request("cam", 0.2)
    limiter.keyframe_received("cam")
    limiter.keyframe_received("unknown")
    assert limiter.next_due() is None
    assert limiter.due(5.0) == []


def test_interval_is_configurable() -> None:
    limiter: KeyframeRequestLimiter[int] = KeyframeRequestLimiter(interval_s=2.0)
    assert [limiter.request(1, t) for t in (0.0, 1.9, 2.0, 2.1)] == [True, False, True, False]
    unlimited: KeyframeRequestLimiter[int] = KeyframeRequestLimiter(interval_s=0.0)
    assert [unlimited.request(1, 0.0) for _ in range(3)] == [True, True, True]
    with pytest.raises(ValueError, match="negative"):
        KeyframeRequestLimiter(interval_s=-1.0)


def test_forget_drops_a_source() -> None:
    limiter: KeyframeRequestLimiter[str] = KeyframeRequestLimiter()
    limiter.request("cam", 0.0)
    limiter.request("cam", 0.1)
    limiter.forget("cam")
    limiter.forget("cam")
    assert limiter.next_due() is None
    assert limiter.request("cam", 0.2) is True


@PROPERTY_SETTINGS
@given(
    st.floats(0.01, 2.0),
    st.lists(st.tuples(st.floats(0, 10), st.sampled_from("abc")), max_size=40),
)
def test_every_request_is_served_within_one_interval_and_never_faster(
    interval: float, requests: list[tuple[float, str]]
) -> None:
    limiter: KeyframeRequestLimiter[str] = KeyframeRequestLimiter(interval)
    sent: dict[str, list[float]] = {"a": [], "b": [], "c": []}

    def run_due_until(now: float) -> None:
        while (due_at := limiter.next_due()) is not None and due_at <= now:
            for source in limiter.due(due_at):
                sent[source].append(due_at)

    for now, source in sorted(requests):
        run_due_until(now)
        if limiter.request(source, now):
            sent[source].append(now)
    run_due_until(float("inf"))
    for source, times in sent.items():
        assert all(later >= earlier + interval for earlier, later in pairwise(times))
        for now in (t for t, requested in requests if requested == source):
            assert any(now <= t <= now + interval for t in times)
