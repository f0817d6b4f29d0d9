"""Typed signalling messages between a participant and the SFU, and their JSON wire form.

Every message is `{"type": "sfu.<name>", ...fields}` on the participant's
WebSocket. Client messages are parsed strictly: an unknown type or field is an
error, so a browser's `sdpMid` spelling fails loudly instead of being dropped.
`sfu.offer`, `sfu.answer` and `sfu.candidate` travel both ways with one shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar, Final, Literal

from podium.core.capabilities import Capability
from podium.protocol.errors import SfuErrorCode
from podium.protocol.events import DenyReason, StopReason
from podium.protocol.ids import ID_PATTERN
from podium.sfu.sources import Source

ALL: Final = "all"
#: Whose tracks a participant wants: some user ids, or everyone else in the call.
Selection = tuple[str, ...] | Literal["all"]


def _wire(value: object) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_wire(v) for v in value]
    if isinstance(value, Track):
        return value.to_wire()
    return value


class _Message:
    """Every field goes on the wire under its own name, next to `type`."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]
    TYPE: ClassVar[str]

    def to_wire(self) -> dict[str, Any]:
        data = {f.name: _wire(getattr(self, f.name)) for f in fields(self)}
        return {"type": self.TYPE, **data}


@dataclass(frozen=True, slots=True)
class Track:
    """A remote track forwarded to a subscriber; `track_id` is its id in the SDP (msid)."""

    user_id: str
    source: Source
    track_id: str

    def to_wire(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "source": self.source.value, "track_id": self.track_id}


@dataclass(frozen=True, slots=True)
class Offer(_Message):
    TYPE: ClassVar[str] = "sfu.offer"
    sdp: str


@dataclass(frozen=True, slots=True)
class Answer(_Message):
    TYPE: ClassVar[str] = "sfu.answer"
    sdp: str


@dataclass(frozen=True, slots=True)
class Candidate(_Message):
    """A trickled ICE candidate; an empty `candidate` means end of candidates."""

    TYPE: ClassVar[str] = "sfu.candidate"
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


@dataclass(frozen=True, slots=True)
class Publish(_Message):
    TYPE: ClassVar[str] = "sfu.publish"
    source: Source


@dataclass(frozen=True, slots=True)
class Unpublish(_Message):
    TYPE: ClassVar[str] = "sfu.unpublish"
    source: Source


@dataclass(frozen=True, slots=True)
class Subscribe(_Message):
    TYPE: ClassVar[str] = "sfu.subscribe"
    user_ids: Selection


@dataclass(frozen=True, slots=True)
class Leave(_Message):
    TYPE: ClassVar[str] = "sfu.leave"


@dataclass(frozen=True, slots=True)
class PublishOk(_Message):
    TYPE: ClassVar[str] = "sfu.publish_ok"
    source: Source


@dataclass(frozen=True, slots=True)
class PublishDenied(_Message):
    TYPE: ClassVar[str] = "sfu.publish_denied"
    source: Source
    capability: Capability
    reason: DenyReason


@dataclass(frozen=True, slots=True)
class StopSource(_Message):
    """Forwarding of `source` has already stopped; the client must stop sending it."""

    TYPE: ClassVar[str] = "sfu.stop_source"
    source: Source
    reason: StopReason


@dataclass(frozen=True, slots=True)
class SourceResumed(_Message):
    """The capability is back; the source stays stopped until the client publishes it again."""

    TYPE: ClassVar[str] = "sfu.source_resumed"
    source: Source


@dataclass(frozen=True, slots=True)
class Tracks(_Message):
    """The complete list of tracks forwarded to this participant (not a delta).

    `mids[i]` is the mid of the m-line carrying `tracks[i]` to this participant,
    or None while that m-line is not negotiated yet; on the wire each track
    entry gets it as `"mid"`.
    """

    TYPE: ClassVar[str] = "sfu.tracks"
    tracks: tuple[Track, ...]
    mids: tuple[str | None, ...]

    def __post_init__(self) -> None:
        if len(self.mids) != len(self.tracks):
            raise ValueError(f"{len(self.tracks)} tracks but {len(self.mids)} mids")

    def to_wire(self) -> dict[str, Any]:
        tracks = [
            {**t.to_wire(), "mid": mid} for t, mid in zip(self.tracks, self.mids, strict=True)
        ]
        return {"type": self.TYPE, "tracks": tracks}


@dataclass(frozen=True, slots=True)
class Error(_Message):
    TYPE: ClassVar[str] = "sfu.error"
    code: SfuErrorCode
    message: str


ClientMessage = Offer | Answer | Candidate | Publish | Unpublish | Subscribe | Leave
ServerMessage = (
    Offer
    | Answer
    | Candidate
    | PublishOk
    | PublishDenied
    | StopSource
    | SourceResumed
    | Tracks
    | Error
)


_SOURCE_NAMES: Final = frozenset(s.value for s in Source)
_CLIENT_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    cls.TYPE: frozenset(f.name for f in fields(cls))
    for cls in (Offer, Answer, Candidate, Publish, Unpublish, Subscribe, Leave)
}


class _Fields:
    """Reads a message's fields, naming the message and field in every error."""

    def __init__(self, kind: str, data: Mapping[Any, Any]) -> None:
        self.kind = kind
        self.data = data

    def fail(self, problem: str) -> ValueError:
        return ValueError(f"{self.kind}: {problem}")

    def get(self, name: str, *, required: bool = True) -> object:
        if name not in self.data and required:
            raise self.fail(f"missing field {name!r}")
        return self.data.get(name)

    def text(self, name: str, *, allow_empty: bool = False) -> str:
        value = self.get(name)
        if not isinstance(value, str) or not (value or allow_empty):
            raise self.fail(f"field {name!r} must be a {'' if allow_empty else 'non-empty '}string")
        return value

    def source(self) -> Source:
        value = self.get("source")
        if not isinstance(value, str) or value not in _SOURCE_NAMES:
            raise self.fail(f"field 'source' must be one of {', '.join(Source)}, got {value!r}")
        return Source(value)

    def selection(self) -> Selection:
        value = self.get("user_ids")
        if value == ALL:
            return ALL
        if not isinstance(value, list):
            raise self.fail("field 'user_ids' must be \"all\" or a list of user ids")
        for user_id in value:
            if not isinstance(user_id, str) or not ID_PATTERN.fullmatch(user_id):
                raise self.fail(f"invalid user id {user_id!r}: 1-64 chars of [A-Za-z0-9_-]")
        return tuple(dict.fromkeys(value))

    def candidate(self) -> Candidate:
        candidate = self.text("candidate", allow_empty=True)
        mid = self.get("sdp_mid", required=False)
        index = self.get("sdp_mline_index", required=False)
        if mid is not None and not isinstance(mid, str):
            raise self.fail("field 'sdp_mid' must be a string or null")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise self.fail("field 'sdp_mline_index' must be an integer or null")
        if index is not None and index < 0:
            raise self.fail("field 'sdp_mline_index' must not be negative")
        # WebRTC rejects a candidate that names neither its m-line nor its mid.
        if candidate and mid is None and index is None:
            raise self.fail("a candidate needs 'sdp_mid' or 'sdp_mline_index'")
        if candidate and not _is_candidate_line(candidate):
            raise self.fail(
                "field 'candidate' is not an ICE candidate line (RFC 8839: "
                "foundation component transport priority address port typ type ...)"
            )
        return Candidate(candidate, mid, index)


_CANDIDATE_NUMBERS: Final = frozenset({"rport", "generation", "network-id", "network-cost"})
#: RFC 8839: foundation = 1*32ice-char, ice-char = ALPHA / DIGIT / "+" / "/".
_FOUNDATION: Final = re.compile(r"[A-Za-z0-9+/]{1,32}")


def _is_candidate_line(line: str) -> bool:
    """Whether `line` has the shape of an ICE candidate attribute (numbers where numbers go)."""
    bits = line.removeprefix("candidate:").split()
    if len(bits) < 8 or bits[6] != "typ" or len(bits) % 2:
        return False
    if not _FOUNDATION.fullmatch(bits[0]):
        return False
    component, priority, port = bits[1], bits[3], bits[5]
    if not (component.isdigit() and priority.isdigit() and port.isdigit()):
        return False
    if int(component) > 256 or int(port) > 65535 or int(priority) >= 2**32:
        return False
    extras = dict(zip(bits[8::2], bits[9::2], strict=True))
    return all(extras[k].isdigit() for k in extras.keys() & _CANDIDATE_NUMBERS)


_PARSERS: Final[Mapping[str, Callable[[_Fields], ClientMessage]]] = {
    Offer.TYPE: lambda f: Offer(f.text("sdp")),
    Answer.TYPE: lambda f: Answer(f.text("sdp")),
    Candidate.TYPE: _Fields.candidate,
    Publish.TYPE: lambda f: Publish(f.source()),
    Unpublish.TYPE: lambda f: Unpublish(f.source()),
    Subscribe.TYPE: lambda f: Subscribe(f.selection()),
    Leave.TYPE: lambda f: Leave(),
}


def parse_client_message(data: object) -> ClientMessage:
    """Validate one decoded JSON message from a client; bad input raises `ValueError`."""
    if not isinstance(data, Mapping):
        raise ValueError(f"an sfu message must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _PARSERS:
        raise ValueError(f"unknown message type {kind!r}; expected one of {', '.join(_PARSERS)}")
    unknown = sorted(repr(k) for k in data if k != "type" and k not in _CLIENT_FIELDS[kind])
    if unknown:
        raise ValueError(f"{kind}: unknown field(s) {', '.join(unknown)}")
    return _PARSERS[kind](_Fields(kind, data))
