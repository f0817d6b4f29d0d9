"""One participant's signalling and enforcement state machine, with no I/O.

Modelled on websockets' protocol core: the adapter feeds inputs (client
messages, capability changes, transport events) and drains `actions()`; the
session never touches a socket or a peer connection. The decisions of spec §4
(which source may be forwarded, when a gate closes, what the client is told)
live here, so they are tested without any media.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Final, assert_never

from podium.core.capabilities import Capabilities, Capability
from podium.protocol.errors import SfuErrorCode
from podium.protocol.events import DenyReason, StopReason
from podium.sfu.messages import (
    ALL,
    Answer,
    Candidate,
    ClientMessage,
    Error,
    Leave,
    Offer,
    Publish,
    PublishDenied,
    PublishOk,
    Selection,
    ServerMessage,
    SourceResumed,
    StopSource,
    Subscribe,
    Track,
    Tracks,
    Unpublish,
    parse_client_message,
)
from podium.sfu.sources import Source, TrackKind


class SessionState(IntEnum):
    """Only ever moves forward: NEW → NEGOTIATING → CONNECTED → CLOSED (CLOSED from any)."""

    NEW = 0
    NEGOTIATING = 1
    CONNECTED = 2
    CLOSED = 3


class SourceState(IntEnum):
    """A source's gate is open exactly when it is PUBLISHING."""

    IDLE = 0
    PUBLISHING = 1
    #: Accepted, but the transport is not connected yet: the gate opens when it is.
    GATED = 2
    #: Stopped by the server; forwarding resumes only after the client publishes again.
    STOPPED = 3


class _Negotiation(IntEnum):
    STABLE = 0
    ANSWERING = 1  # the adapter is answering the client's offer
    OFFERING = 2  # the adapter is creating the server's offer
    AWAITING_ANSWER = 3  # the server's offer is with the client


@dataclass(frozen=True, slots=True)
class Send:
    message: ServerMessage


@dataclass(frozen=True, slots=True)
class OpenGate:
    """Start forwarding this participant's `source` to its subscribers."""

    source: Source


@dataclass(frozen=True, slots=True)
class CloseGate:
    """Stop forwarding this participant's `source` at once, before the client is told."""

    source: Source


@dataclass(frozen=True, slots=True)
class RequestKeyframe:
    """Ask the publisher for a keyframe (PLI): subscribers decode from the gate's opening."""

    source: Source


@dataclass(frozen=True, slots=True)
class Negotiate:
    """Run SDP, then pass the local description to `local_description()`.

    With `offer`: apply the client's offer and create an answer. Without: the
    server creates an offer (its tracks changed).
    """

    offer: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyAnswer:
    """Apply the client's answer to the server's last offer."""

    sdp: str


@dataclass(frozen=True, slots=True)
class AddCandidate:
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class ForwardTracks:
    """Forward exactly these remote tracks to this participant: add sinks, drop the rest.

    Then report which m-line carries each with `track_mids()`: the client is
    told its tracks (`sfu.tracks`) once it can also be told where they are.
    """

    tracks: tuple[Track, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """Tear down the peer connection; every gate and sink of this participant is gone."""


#: What the media plane must do: gates and keyframes of this publisher, sinks of this subscriber.
MediaAction = OpenGate | CloseGate | RequestKeyframe | ForwardTracks
#: What the signalling side must do: messages to the client and work on the peer connection.
SignalAction = Send | Negotiate | ApplyAnswer | AddCandidate | Close
Action = MediaAction | SignalAction

_LIVE: Final = frozenset({SourceState.PUBLISHING, SourceState.GATED})
#: Reasons that take capabilities away without removing the participant from the call.
_LOSS_REASONS: Final = frozenset({StopReason.REVOKED, StopReason.ROLE_CHANGED})
#: Reasons that remove the participant from the call: the session ends.
_REMOVAL_REASONS: Final = frozenset({StopReason.BLOCKED, StopReason.CALL_ENDED})


@dataclass(frozen=True)
class SignallingLimits:
    """Bounds on what one participant may make the SFU parse and negotiate."""

    sdp_bytes: int = 32 * 1024
    media_sections: int = 16
    candidates: int = 64

    def sdp_problem(self, sdp: str) -> str | None:
        if len(sdp.encode()) > self.sdp_bytes:
            return f"an SDP may hold at most {self.sdp_bytes} bytes"
        sections = sum(1 for line in sdp.splitlines() if line.startswith("m="))
        if sections > self.media_sections:
            return f"an SDP may hold at most {self.media_sections} m-lines, got {sections}"
        return None


DEFAULT_LIMITS: Final = SignallingLimits()


class ParticipantSession:
    """The SFU side of one participant's signalling, and the gatekeeper of its sources.

    Calling contract: after each input method, call `actions()` and carry out
    the returned actions in order (`CloseGate` comes before the `Send` of the
    matching `sfu.stop_source`, so media stops before the client is told).

    Inputs:

    - from the client: `receive(message)`, or `receive_wire(data)` for raw JSON;
    - from the permission core: `capabilities_changed(caps, reason)`,
      `muted(sources)`;
    - from the room: `tracks_changed(tracks)`, every track forwarded in the call;
    - from the peer connection: `local_description(sdp)` after a `Negotiate`,
      `track_mids(mids)` after a `ForwardTracks` and whenever a mid becomes
      known (a negotiation completed), `local_candidate(candidate)`,
      `negotiation_needed()`, `transport_connected()`, `transport_closed()`;
    - `close(reason)` when the participant leaves the call some other way.

    NEW accepts only `sfu.offer` (and `sfu.leave`), so nothing is published or
    received before the participant has joined. A source is accepted only while
    its capability is held; losing it stops the source, and getting it back
    only tells the client (`sfu.source_resumed`): it must publish again.

    Client mistakes become `sfu.error` messages, never exceptions; only an
    adapter breaking this contract raises. Once CLOSED, every input is ignored.
    """

    def __init__(
        self,
        user_id: str,
        capabilities: Capabilities,
        limits: SignallingLimits = DEFAULT_LIMITS,
    ) -> None:
        self.user_id = user_id
        self.limits = limits
        self._candidates = 0
        self.state = SessionState.NEW
        self._caps = frozenset(capabilities)
        self._sources = dict.fromkeys(Source, SourceState.IDLE)
        self._stopped_for: dict[Source, StopReason] = {}
        self._lost: dict[Capability, DenyReason] = {}
        self._negotiation = _Negotiation.STABLE
        self._renegotiate = False
        self._selection: Selection = ()
        self._available: tuple[Track, ...] = ()
        self._forwarded: tuple[Track, ...] = ()
        self._mids: dict[Track, str | None] = {}
        #: What the last `sfu.tracks` said, and whether one is owed after a `ForwardTracks`.
        self._told: Tracks | None = None
        self._tracks_owed = False
        self._actions: list[Action] = []

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def sources(self) -> Mapping[Source, SourceState]:
        return MappingProxyType(self._sources)

    @property
    def publishing(self) -> bool:
        """Whether any source is accepted (forwarding, or waiting for the transport)."""
        return any(state in _LIVE for state in self._sources.values())

    @property
    def forwarded(self) -> tuple[Track, ...]:
        """The remote tracks this participant currently receives."""
        return self._forwarded

    def actions(self) -> list[Action]:
        """Return and forget the actions produced since the last call."""
        actions, self._actions = self._actions, []
        return actions

    # Client input.

    def receive_wire(self, data: object) -> None:
        """Parse one decoded JSON message and receive it; bad input is answered with an error."""
        if self.state is SessionState.CLOSED:
            return
        try:
            message = parse_client_message(data)
        except ValueError as exc:
            self._send(Error(SfuErrorCode.INVALID_MESSAGE, str(exc)))
            return
        self.receive(message)

    def receive(self, message: ClientMessage) -> None:
        """One validated client message."""
        if self.state is SessionState.CLOSED:
            return
        if isinstance(message, Leave):
            self.close(StopReason.LEFT)
            return
        # Nothing but an offer before there is a session: no media either way.
        if self.state is SessionState.NEW and not isinstance(message, Offer):
            self._send(Error(SfuErrorCode.OFFER_REQUIRED, f"send sfu.offer before {message.TYPE}"))
            return
        match message:
            case Offer(sdp) | Answer(sdp) if problem := self.limits.sdp_problem(sdp):
                self._send(Error(SfuErrorCode.LIMIT_EXCEEDED, problem))
            case Offer(sdp):
                self._on_offer(sdp)
            case Answer(sdp):
                self._on_answer(sdp)
            case Candidate() if self._candidates >= self.limits.candidates:
                limit = self.limits.candidates
                self._send(Error(SfuErrorCode.LIMIT_EXCEEDED, f"at most {limit} ICE candidates"))
            case Candidate():
                self._candidates += bool(message.candidate)
                self._emit(AddCandidate(message))
            case Publish(source):
                self._on_publish(source)
            case Unpublish(source):
                self._on_unpublish(source)
            case Subscribe(user_ids):
                self._selection = user_ids
                # Always answered: at once, or after `track_mids()` if forwarding changed.
                if not self._update_forwarding():
                    self._send_tracks()
            case _:
                assert_never(message)

    # Permission input.

    def capabilities_changed(self, caps: Capabilities, reason: str = StopReason.REVOKED) -> None:
        """The participant's own capabilities are now `caps`.

        `reason` is cited for any source this change stops: `revoked` (the
        default, since `call.permissions_updated` carries none), `role_changed`,
        or `blocked` / `call_ended`, which also remove the participant from the
        call and so end the session.
        """
        cause = StopReason(reason)
        if cause not in _LOSS_REASONS | _REMOVAL_REASONS:
            raise ValueError(f"{reason!r} is not a reason for capabilities to change")
        if self.state is SessionState.CLOSED:
            return
        caps = frozenset(caps)
        # Remembered so a later publish_denied can say how the capability went.
        if cause in _LOSS_REASONS:
            self._lost.update(dict.fromkeys(self._caps - caps, DenyReason(cause.value)))
        for held in caps & self._lost.keys():
            del self._lost[held]
        self._caps = caps
        if cause in _REMOVAL_REASONS:
            self.close(cause)
            return
        self._stop([s for s in Source if s.capability not in caps], cause)
        # Back after a loss: the client is told, but the source restarts only when it publishes.
        for source in Source:
            if (
                self._sources[source] is SourceState.STOPPED
                and self._stopped_for[source] in _LOSS_REASONS
                and source.capability in caps
            ):
                self._sources[source] = SourceState.IDLE
                self._send(SourceResumed(source))

    def muted(self, sources: Iterable[Source]) -> None:
        """A moderator muted these sources: stop them, leaving capabilities alone."""
        if self.state is SessionState.CLOSED:
            return
        chosen = set(sources)
        self._stop([s for s in Source if s in chosen], StopReason.MUTED)

    # Room input.

    def tracks_changed(self, tracks: Iterable[Track]) -> None:
        """The call's forwarded tracks changed; this session picks the ones it may receive."""
        if self.state is SessionState.CLOSED:
            return
        self._available = tuple(tracks)
        self._update_forwarding()

    # Peer connection input.

    def local_description(self, sdp: str) -> None:
        """The adapter's SDP for the last `Negotiate`: an answer or an offer, as asked."""
        if self.state is SessionState.CLOSED:
            return
        if self._negotiation is _Negotiation.ANSWERING:
            self._negotiation = _Negotiation.STABLE
            self._send(Answer(sdp))
            self._start_pending_negotiation()
        elif self._negotiation is _Negotiation.OFFERING:
            self._negotiation = _Negotiation.AWAITING_ANSWER
            self._send(Offer(sdp))
        else:
            raise RuntimeError("local_description() without a Negotiate action to answer")

    def track_mids(self, mids: Mapping[Track, str | None]) -> None:
        """The mid of the m-line carrying each forwarded track (None: not negotiated yet).

        Sends `sfu.tracks` if one is owed after a `ForwardTracks`, or if a
        forwarded track's mid changed since the client was last told (never
        before the first `sfu.tracks`: that one answers `sfu.subscribe` or a
        change of tracks).
        """
        if self.state is SessionState.CLOSED:
            return
        self._mids = dict(mids)
        told = self._told
        if self._tracks_owed or (told is not None and self._tracks_message() != told):
            self._send_tracks()

    def local_candidate(self, candidate: Candidate) -> None:
        """Trickle a server candidate (aiortc puts them in the SDP; other stacks may not)."""
        if self.state in (SessionState.NEGOTIATING, SessionState.CONNECTED):
            self._send(candidate)

    def negotiation_needed(self) -> None:
        """The adapter changed transceivers: offer once the current exchange completes."""
        if self.state is SessionState.CLOSED:
            return
        self._renegotiate = True
        if self.state is not SessionState.NEW:
            self._start_pending_negotiation()

    def transport_connected(self) -> None:
        """Media can flow: accepted sources waiting for the transport are opened."""
        if self.state is not SessionState.NEGOTIATING:
            return
        self.state = SessionState.CONNECTED
        for source in Source:
            if self._sources[source] is SourceState.GATED:
                self._open(source)

    def transport_closed(self) -> None:
        """ICE or DTLS is gone: nothing can flow any more, so the session ends."""
        self.close(StopReason.LEFT)

    def close(self, reason: StopReason = StopReason.LEFT) -> None:
        """End the session: gates close, live sources are reported stopped, then `Close`."""
        if self.state is SessionState.CLOSED:
            return
        self._stop(list(Source), reason)
        self.state = SessionState.CLOSED
        self._forwarded = ()
        self._emit(Close())

    # Decisions.

    def _on_offer(self, sdp: str) -> None:
        if self._negotiation is _Negotiation.ANSWERING:
            self._send(Error(SfuErrorCode.NEGOTIATION_IN_PROGRESS, "your offer is being answered"))
            return
        if self._negotiation is not _Negotiation.STABLE:
            # The server never rolls back (aiortc cannot): the client is the polite peer.
            self._send(
                Error(SfuErrorCode.NEGOTIATION_IN_PROGRESS, "answer the server's offer first")
            )
            return
        if self.state is SessionState.NEW:
            self.state = SessionState.NEGOTIATING
        self._negotiation = _Negotiation.ANSWERING
        self._emit(Negotiate(sdp))

    def _on_answer(self, sdp: str) -> None:
        if self._negotiation is not _Negotiation.AWAITING_ANSWER:
            self._send(Error(SfuErrorCode.UNEXPECTED_ANSWER, "no server offer awaits an answer"))
            return
        self._negotiation = _Negotiation.STABLE
        self._emit(ApplyAnswer(sdp))
        self._start_pending_negotiation()

    def _on_publish(self, source: Source) -> None:
        capability = source.capability
        if capability not in self._caps:
            reason = self._lost.get(capability, DenyReason.NOT_GRANTED)
            self._send(PublishDenied(source, capability, reason))
            return
        if self._sources[source] not in _LIVE:
            if self.state is SessionState.CONNECTED:
                self._open(source)
            else:
                self._sources[source] = SourceState.GATED
        self._send(PublishOk(source))

    def _on_unpublish(self, source: Source) -> None:
        # Unpublishing a source that is not live is a no-op: it may cross a stop_source.
        if self._sources[source] is SourceState.PUBLISHING:
            self._emit(CloseGate(source))
        if self._sources[source] in _LIVE:
            self._sources[source] = SourceState.IDLE

    def _open(self, source: Source) -> None:
        self._sources[source] = SourceState.PUBLISHING
        self._emit(OpenGate(source))
        if source.kind is TrackKind.VIDEO:
            self._emit(RequestKeyframe(source))

    def _stop(self, sources: Iterable[Source], reason: StopReason) -> None:
        """Close every gate first, then tell the client: media stops before the message."""
        live = [s for s in sources if self._sources[s] in _LIVE]
        for source in live:
            if self._sources[source] is SourceState.PUBLISHING:
                self._emit(CloseGate(source))
        for source in live:
            self._sources[source] = SourceState.STOPPED
            # Read only while STOPPED, so it is never cleared.
            self._stopped_for[source] = reason
            self._send(StopSource(source, reason))

    def _start_pending_negotiation(self) -> None:
        if self._renegotiate and self._negotiation is _Negotiation.STABLE:
            self._renegotiate = False
            self._negotiation = _Negotiation.OFFERING
            self._emit(Negotiate())

    def _update_forwarding(self) -> bool:
        """Recompute the tracks this participant receives; True if they changed."""
        if self.state not in (SessionState.NEGOTIATING, SessionState.CONNECTED):
            return False
        wanted = tuple(
            t
            for t in self._available
            if t.user_id != self.user_id
            and (self._selection == ALL or t.user_id in self._selection)
        )
        if wanted == self._forwarded:
            return False
        self._forwarded = wanted
        self._tracks_owed = True
        self._emit(ForwardTracks(wanted))
        return True

    def _tracks_message(self) -> Tracks:
        return Tracks(self._forwarded, tuple(self._mids.get(t) for t in self._forwarded))

    def _send_tracks(self) -> None:
        self._tracks_owed = False
        self._told = self._tracks_message()
        self._send(self._told)

    def _send(self, message: ServerMessage) -> None:
        self._emit(Send(message))

    def _emit(self, action: Action) -> None:
        self._actions.append(action)
