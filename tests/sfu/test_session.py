"""`podium.sfu.session`: the participant state machine as tables and properties (spec §4).

Tables read (state, input) → (new state, source states, actions). The
properties drive random input sequences through a fake adapter that carries
out the actions the way the real one must, and check the enforcement rules on
every step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    SourceResumed,
    StopSource,
    Subscribe,
    Track,
    Tracks,
    Unpublish,
)
from podium.sfu.session import (
    Action,
    AddCandidate,
    ApplyAnswer,
    Close,
    CloseGate,
    ForwardTracks,
    Negotiate,
    OpenGate,
    ParticipantSession,
    RequestKeyframe,
    Send,
    SessionState,
    SourceState,
)
from podium.sfu.sources import Source, TrackKind
from tests.sfu import PROPERTY_SETTINGS

ME = "me"
MIC, CAM, SCR = Source.MICROPHONE, Source.CAMERA, Source.SCREEN
AUDIO, VIDEO, SHARE = Capability.SEND_AUDIO, Capability.SEND_VIDEO, Capability.SCREENSHARE
JOIN = Capability.JOIN_CALL

LISTENER: Capabilities = frozenset({JOIN})
SPEAKER: Capabilities = LISTENER | {AUDIO}
EVERYTHING: Capabilities = LISTENER | {AUDIO, VIDEO, SHARE}

NEW, NEGOTIATING, CONNECTED, CLOSED = SessionState
IDLE, PUBLISHING, GATED, STOPPED = SourceState

CAND = Candidate("candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "0", 0)
ALICE_MIC = Track("alice", MIC, "a-mic")
BOB_CAM = Track("bob", CAM, "b-cam")
MY_MIC = Track(ME, MIC, "m-mic")


def stop(source: Source, reason: str) -> Send:
    return Send(StopSource(source, StopReason(reason)))


def error(code: SfuErrorCode, message: str) -> Send:
    return Send(Error(code, message))


# --- inputs as data, so tables and properties share them -------------------------------


@dataclass(frozen=True)
class Step:
    """One input: a call of the session method `name` with `args`."""

    name: str
    args: tuple[Any, ...] = ()

    def apply(self, session: ParticipantSession) -> None:
        getattr(session, self.name)(*self.args)


class _Steps:
    """`on.muted([MIC])` is `Step("muted", ([MIC],))`."""

    def __getattr__(self, name: str) -> Callable[..., Step]:
        return lambda *args: Step(name, args)


on = _Steps()


def run(session: ParticipantSession, *steps: Step) -> ParticipantSession:
    for step in steps:
        step.apply(session)
    return session


def prepared(session: ParticipantSession, *steps: Step) -> ParticipantSession:
    """`session` after `steps`, with their actions already carried out."""
    run(session, *steps).actions()
    return session


# --- reaching a state through public inputs only ---------------------------------------


def new(caps: Capabilities = EVERYTHING) -> ParticipantSession:
    return ParticipantSession(ME, caps)


def answering(caps: Capabilities = EVERYTHING) -> ParticipantSession:
    """The client has offered; the adapter is still producing the answer."""
    session = run(new(caps), on.receive(Offer("client-offer")))
    assert session.actions() == [Negotiate("client-offer")]
    return session


def negotiating(*gated: Source, caps: Capabilities = EVERYTHING) -> ParticipantSession:
    """Offer answered, transport not connected yet; `gated` sources were published."""
    publish = (on.receive(Publish(s)) for s in gated)
    session = prepared(answering(caps), on.local_description("server-answer"), *publish)
    assert session.state is NEGOTIATING
    assert all(session.sources[s] is GATED for s in gated)
    return session


def connected(*publishing: Source, caps: Capabilities = EVERYTHING) -> ParticipantSession:
    publish = (on.receive(Publish(s)) for s in publishing)
    session = prepared(negotiating(caps=caps), on.transport_connected(), *publish)
    assert session.state is CONNECTED
    assert all(session.sources[s] is PUBLISHING for s in publishing)
    return session


def awaiting_answer(*publishing: Source) -> ParticipantSession:
    """The server's offer (after its tracks changed) is with the client."""
    session = run(
        connected(*publishing), on.negotiation_needed(), on.local_description("server-offer")
    )
    assert session.actions() == [Negotiate(), Send(Offer("server-offer"))]
    return session


def revoked(source: Source, *others: Source) -> ParticipantSession:
    """`source` was publishing and its capability was revoked; `others` still publish."""
    session = prepared(
        connected(source, *others), on.capabilities_changed(EVERYTHING - {source.capability})
    )
    assert session.sources[source] is STOPPED
    return session


def muted(source: Source) -> ParticipantSession:
    return prepared(connected(source), on.muted([source]))


def closed() -> ParticipantSession:
    return prepared(connected(MIC), on.close())


# --- the tables: (state, inputs) -> (new state, actions, source states) ----------------


@dataclass(frozen=True)
class Case:
    name: str
    start: Callable[[], ParticipantSession]
    inputs: list[Step]
    state: SessionState
    actions: list[Action]
    #: Source states after the inputs; unnamed sources are IDLE.
    sources: Mapping[Source, SourceState] = field(default_factory=dict)


def check(case: Case) -> None:
    session = run(case.start(), *case.inputs)
    assert session.actions() == case.actions
    assert session.state is case.state
    assert dict(session.sources) == {s: case.sources.get(s, IDLE) for s in Source}


def table(*cases: Case) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", cases, ids=[c.name for c in cases])


@table(
    Case("new+offer: negotiate", new, [on.receive(Offer("o"))], NEGOTIATING, [Negotiate("o")]),
    *(
        Case(
            f"new+{message.TYPE}: offer required",
            new,
            [on.receive(message)],
            NEW,
            [error(SfuErrorCode.OFFER_REQUIRED, f"send sfu.offer before {message.TYPE}")],
        )
        for message in (Answer("a"), CAND, Publish(MIC), Unpublish(MIC), Subscribe(ALL))
    ),
    Case("new+leave: close", new, [on.receive(Leave())], CLOSED, [Close()]),
    Case(
        "answering+offer: in progress",
        answering,
        [on.receive(Offer("again"))],
        NEGOTIATING,
        [error(SfuErrorCode.NEGOTIATION_IN_PROGRESS, "your offer is being answered")],
    ),
    Case(
        "answering+local description: send the answer",
        answering,
        [on.local_description("sdp")],
        NEGOTIATING,
        [Send(Answer("sdp"))],
    ),
    Case("negotiating+offer", negotiating, [on.receive(Offer("o"))], NEGOTIATING, [Negotiate("o")]),
    Case(
        "negotiating+answer: unexpected",
        negotiating,
        [on.receive(Answer("a"))],
        NEGOTIATING,
        [error(SfuErrorCode.UNEXPECTED_ANSWER, "no server offer awaits an answer")],
    ),
    Case(
        "negotiating+candidate", negotiating, [on.receive(CAND)], NEGOTIATING, [AddCandidate(CAND)]
    ),
    Case("connected+candidate", connected, [on.receive(CAND)], CONNECTED, [AddCandidate(CAND)]),
    Case("connected+offer", connected, [on.receive(Offer("o3"))], CONNECTED, [Negotiate("o3")]),
    Case(
        "server offer out+offer: glare, the client yields",
        awaiting_answer,
        [on.receive(Offer("glare"))],
        CONNECTED,
        [error(SfuErrorCode.NEGOTIATION_IN_PROGRESS, "answer the server's offer first")],
    ),
    Case(
        "server offer out+answer: apply",
        awaiting_answer,
        [on.receive(Answer("a"))],
        CONNECTED,
        [ApplyAnswer("a")],
    ),
    Case(
        "negotiating+local candidate",
        negotiating,
        [on.local_candidate(CAND)],
        NEGOTIATING,
        [Send(CAND)],
    ),
    Case("new+local candidate: dropped", new, [on.local_candidate(CAND)], NEW, []),
    Case("new+transport connected: ignored", new, [on.transport_connected()], NEW, []),
    Case("negotiating+transport connected", negotiating, [on.transport_connected()], CONNECTED, []),
    Case("connected+transport connected", connected, [on.transport_connected()], CONNECTED, []),
    Case(
        "connected+leave: gates, stops, close",
        lambda: connected(MIC, CAM),
        [on.receive(Leave())],
        CLOSED,
        [CloseGate(MIC), CloseGate(CAM), stop(MIC, "left"), stop(CAM, "left"), Close()],
        {MIC: STOPPED, CAM: STOPPED},
    ),
    Case(
        "connected+transport closed",
        lambda: connected(MIC),
        [on.transport_closed()],
        CLOSED,
        [CloseGate(MIC), stop(MIC, "left"), Close()],
        {MIC: STOPPED},
    ),
    Case(
        "gated+close: no gate to close",
        lambda: negotiating(CAM),
        [on.close(StopReason.LEFT)],
        CLOSED,
        [stop(CAM, "left"), Close()],
        {CAM: STOPPED},
    ),
    Case(
        "connected+invalid wire: error",
        connected,
        [on.receive_wire({"type": "sfu.publish", "source": "mic"})],
        CONNECTED,
        [
            error(
                SfuErrorCode.INVALID_MESSAGE,
                "sfu.publish: field 'source' must be one of microphone, camera, screen, got 'mic'",
            )
        ],
    ),
    Case(
        "connected+valid wire: received",
        connected,
        [on.receive_wire({"type": "sfu.publish", "source": "microphone"})],
        CONNECTED,
        [OpenGate(MIC), Send(PublishOk(MIC))],
        {MIC: PUBLISHING},
    ),
)
def test_signalling(case: Case) -> None:
    check(case)


@table(
    Case(
        "audio held: open",
        connected,
        [on.receive(Publish(MIC))],
        CONNECTED,
        [OpenGate(MIC), Send(PublishOk(MIC))],
        {MIC: PUBLISHING},
    ),
    Case(
        "video held: open, keyframe",
        connected,
        [on.receive(Publish(CAM))],
        CONNECTED,
        [OpenGate(CAM), RequestKeyframe(CAM), Send(PublishOk(CAM))],
        {CAM: PUBLISHING},
    ),
    Case(
        "not held: denied",
        lambda: connected(caps=SPEAKER),
        [on.receive(Publish(SCR))],
        CONNECTED,
        [Send(PublishDenied(SCR, SHARE, DenyReason.NOT_GRANTED))],
    ),
    Case(
        "negotiating, not held: denied",
        lambda: negotiating(caps=LISTENER),
        [on.receive(Publish(MIC))],
        NEGOTIATING,
        [Send(PublishDenied(MIC, AUDIO, DenyReason.NOT_GRANTED))],
    ),
    Case(
        "negotiating, held: gated until the transport connects",
        negotiating,
        [on.receive(Publish(CAM))],
        NEGOTIATING,
        [Send(PublishOk(CAM))],
        {CAM: GATED},
    ),
    Case(
        "gated+transport connected: open",
        lambda: negotiating(MIC, CAM),
        [on.transport_connected()],
        CONNECTED,
        [OpenGate(MIC), OpenGate(CAM), RequestKeyframe(CAM)],
        {MIC: PUBLISHING, CAM: PUBLISHING},
    ),
    Case(
        "twice: ok again, gate untouched",
        lambda: connected(MIC),
        [on.receive(Publish(MIC))],
        CONNECTED,
        [Send(PublishOk(MIC))],
        {MIC: PUBLISHING},
    ),
    Case(
        "unpublish publishing: close gate",
        lambda: connected(MIC),
        [on.receive(Unpublish(MIC))],
        CONNECTED,
        [CloseGate(MIC)],
    ),
    Case(
        "unpublish gated",
        lambda: negotiating(MIC),
        [on.receive(Unpublish(MIC))],
        NEGOTIATING,
        [],
    ),
    Case("unpublish idle: no-op", connected, [on.receive(Unpublish(SCR))], CONNECTED, []),
    Case(
        "unpublish stopped: no-op (crossed a stop_source)",
        lambda: revoked(MIC),
        [on.receive(Unpublish(MIC))],
        CONNECTED,
        [],
        {MIC: STOPPED},
    ),
    Case(
        "after revoke: denied, revoked",
        lambda: revoked(MIC),
        [on.receive(Publish(MIC))],
        CONNECTED,
        [Send(PublishDenied(MIC, AUDIO, DenyReason.REVOKED))],
        {MIC: STOPPED},
    ),
    Case(
        "after role change: denied, role_changed",
        lambda: prepared(
            connected(MIC), on.capabilities_changed(LISTENER | {VIDEO}, "role_changed")
        ),
        [on.receive(Publish(MIC))],
        CONNECTED,
        [Send(PublishDenied(MIC, AUDIO, DenyReason.ROLE_CHANGED))],
        {MIC: STOPPED},
    ),
    Case(
        "after mute: open again with a keyframe",
        lambda: muted(CAM),
        [on.receive(Publish(CAM))],
        CONNECTED,
        [OpenGate(CAM), RequestKeyframe(CAM), Send(PublishOk(CAM))],
        {CAM: PUBLISHING},
    ),
)
def test_publish(case: Case) -> None:
    check(case)


@table(
    Case(
        "revoke audio: gate, then stop_source",
        lambda: connected(MIC, CAM),
        [on.capabilities_changed(EVERYTHING - {AUDIO}, "revoked")],
        CONNECTED,
        [CloseGate(MIC), stop(MIC, "revoked")],
        {MIC: STOPPED, CAM: PUBLISHING},
    ),
    Case(
        "revoke all: every gate before any message",
        lambda: connected(MIC, CAM, SCR),
        [on.capabilities_changed(LISTENER)],
        CONNECTED,
        [
            *(CloseGate(s) for s in (MIC, CAM, SCR)),
            *(stop(s, "revoked") for s in (MIC, CAM, SCR)),
        ],
        dict.fromkeys(Source, STOPPED),
    ),
    Case(
        "revoke gated: stop_source, no gate was open",
        lambda: negotiating(MIC),
        [on.capabilities_changed(LISTENER)],
        NEGOTIATING,
        [stop(MIC, "revoked")],
        {MIC: STOPPED},
    ),
    Case("revoke idle: nothing", connected, [on.capabilities_changed(LISTENER)], CONNECTED, []),
    Case("new+revoke: nothing", new, [on.capabilities_changed(LISTENER)], NEW, []),
    Case(
        "re-grant: source_resumed, the gate stays shut",
        lambda: revoked(MIC),
        [on.capabilities_changed(EVERYTHING)],
        CONNECTED,
        [Send(SourceResumed(MIC))],
    ),
    Case(
        "re-grant, then publish: open with a keyframe",
        lambda: prepared(revoked(CAM), on.capabilities_changed(EVERYTHING)),
        [on.receive(Publish(CAM))],
        CONNECTED,
        [OpenGate(CAM), RequestKeyframe(CAM), Send(PublishOk(CAM))],
        {CAM: PUBLISHING},
    ),
    Case(
        "role change: stops before resumes",
        lambda: revoked(MIC, CAM),
        [on.capabilities_changed(LISTENER | {AUDIO}, "role_changed")],
        CONNECTED,
        [CloseGate(CAM), stop(CAM, "role_changed"), Send(SourceResumed(MIC))],
        {CAM: STOPPED},
    ),
    Case("unchanged: nothing", connected, [on.capabilities_changed(EVERYTHING)], CONNECTED, []),
    Case(
        "first grant: nothing was stopped, nothing resumes",
        lambda: connected(caps=LISTENER),
        [on.capabilities_changed(SPEAKER)],
        CONNECTED,
        [],
    ),
    Case(
        "muted, revoked, re-granted: a mute is not undone",
        lambda: prepared(muted(MIC), on.capabilities_changed(LISTENER)),
        [on.capabilities_changed(EVERYTHING)],
        CONNECTED,
        [],
        {MIC: STOPPED},
    ),
    Case(
        "block: gates, stops, close",
        lambda: connected(MIC, CAM),
        [on.capabilities_changed(frozenset(), "blocked")],
        CLOSED,
        [CloseGate(MIC), CloseGate(CAM), stop(MIC, "blocked"), stop(CAM, "blocked"), Close()],
        {MIC: STOPPED, CAM: STOPPED},
    ),
    Case(
        "call end: gates, stops, close",
        lambda: connected(SCR),
        [on.capabilities_changed({Capability.READ_CALL}, "call_ended")],
        CLOSED,
        [CloseGate(SCR), stop(SCR, "call_ended"), Close()],
        {SCR: STOPPED},
    ),
    Case(
        "new+block: close",
        new,
        [on.capabilities_changed(frozenset(), "blocked")],
        CLOSED,
        [Close()],
    ),
    Case(
        "mute: gate, then stop_source",
        lambda: connected(MIC),
        [on.muted([MIC])],
        CONNECTED,
        [CloseGate(MIC), stop(MIC, "muted")],
        {MIC: STOPPED},
    ),
    Case(
        "mute all: only live sources stop",
        lambda: connected(CAM),
        [on.muted(Source)],
        CONNECTED,
        [CloseGate(CAM), stop(CAM, "muted")],
        {CAM: STOPPED},
    ),
    Case(
        "mute gated: stop_source",
        lambda: negotiating(MIC),
        [on.muted([MIC])],
        NEGOTIATING,
        [stop(MIC, "muted")],
        {MIC: STOPPED},
    ),
    Case("mute idle: nothing", connected, [on.muted([MIC])], CONNECTED, []),
    Case("new+mute: nothing", new, [on.muted(Source)], NEW, []),
)
def test_capabilities_and_mute(case: Case) -> None:
    check(case)


@table(
    Case(
        "subscribe all: everyone else's tracks",
        lambda: prepared(negotiating(), on.tracks_changed([ALICE_MIC, MY_MIC, BOB_CAM])),
        [on.receive(Subscribe(ALL)), on.track_mids({ALICE_MIC: "1", BOB_CAM: None})],
        NEGOTIATING,
        [ForwardTracks((ALICE_MIC, BOB_CAM)), Send(Tracks((ALICE_MIC, BOB_CAM), ("1", None)))],
    ),
    Case(
        "subscribe some: only theirs, never one's own",
        lambda: prepared(connected(), on.tracks_changed([ALICE_MIC, BOB_CAM, MY_MIC])),
        [on.receive(Subscribe(("bob", ME))), on.track_mids({BOB_CAM: "0"})],
        CONNECTED,
        [ForwardTracks((BOB_CAM,)), Send(Tracks((BOB_CAM,), ("0",)))],
    ),
    Case(
        "nothing published: an empty list",
        connected,
        [on.receive(Subscribe(ALL))],
        CONNECTED,
        [Send(Tracks((), ()))],
    ),
    Case(
        "same tracks again: the list, no forwarding change",
        lambda: prepared(
            connected(),
            on.tracks_changed([ALICE_MIC]),
            on.receive(Subscribe(ALL)),
            on.track_mids({ALICE_MIC: "3"}),
        ),
        [on.receive(Subscribe(("alice",)))],
        CONNECTED,
        [Send(Tracks((ALICE_MIC,), ("3",)))],
    ),
    Case(
        "unsubscribe: forward nothing",
        lambda: prepared(connected(), on.tracks_changed([ALICE_MIC]), on.receive(Subscribe(ALL))),
        [on.receive(Subscribe(())), on.track_mids({})],
        CONNECTED,
        [ForwardTracks(()), Send(Tracks((), ()))],
    ),
    Case(
        "tracks change: the subscribed ones are forwarded",
        lambda: prepared(connected(), on.receive(Subscribe(("alice",)))),
        [on.tracks_changed([ALICE_MIC, BOB_CAM]), on.track_mids({ALICE_MIC: None})],
        CONNECTED,
        [ForwardTracks((ALICE_MIC,)), Send(Tracks((ALICE_MIC,), (None,)))],
    ),
    Case(
        "forwarding changed: sfu.tracks waits for the mids",
        lambda: prepared(connected(), on.receive(Subscribe(("alice",)))),
        [on.tracks_changed([ALICE_MIC])],
        CONNECTED,
        [ForwardTracks((ALICE_MIC,))],
    ),
    Case(
        "a mid becomes known: sfu.tracks again",
        lambda: prepared(
            connected(),
            on.receive(Subscribe(ALL)),
            on.tracks_changed([ALICE_MIC, BOB_CAM]),
            on.track_mids({ALICE_MIC: "0", BOB_CAM: None}),
        ),
        [on.track_mids({ALICE_MIC: "0", BOB_CAM: "2"})],
        CONNECTED,
        [Send(Tracks((ALICE_MIC, BOB_CAM), ("0", "2")))],
    ),
    Case(
        "a slot reused for another track: its mid follows",
        lambda: prepared(
            connected(),
            on.receive(Subscribe(ALL)),
            on.tracks_changed([ALICE_MIC]),
            on.track_mids({ALICE_MIC: "0"}),
        ),
        [on.tracks_changed([BOB_CAM]), on.track_mids({BOB_CAM: "0"})],
        CONNECTED,
        [ForwardTracks((BOB_CAM,)), Send(Tracks((BOB_CAM,), ("0",)))],
    ),
    Case(
        "same mids again: nothing",
        lambda: prepared(
            connected(),
            on.receive(Subscribe(ALL)),
            on.tracks_changed([ALICE_MIC]),
            on.track_mids({ALICE_MIC: "0"}),
        ),
        [on.track_mids({ALICE_MIC: "0"})],
        CONNECTED,
        [],
    ),
    Case(
        "mids before any sfu.tracks: nothing",
        connected,
        [on.track_mids({})],
        CONNECTED,
        [],
    ),
    Case(
        "closed: mids are ignored",
        closed,
        [on.track_mids({ALICE_MIC: "0"})],
        CLOSED,
        [],
        {MIC: STOPPED},
    ),
    Case(
        "tracks change elsewhere: nothing",
        lambda: prepared(connected(), on.receive(Subscribe(("alice",)))),
        [on.tracks_changed([BOB_CAM, MY_MIC])],
        CONNECTED,
        [],
    ),
    Case(
        "new+tracks: nothing before joining",
        new,
        [on.tracks_changed([ALICE_MIC])],
        NEW,
        [],
    ),
    Case(
        "tracks known before the offer: forwarded once subscribed",
        lambda: prepared(new(), on.tracks_changed([ALICE_MIC]), on.receive(Offer("o"))),
        [on.receive(Subscribe(ALL)), on.track_mids({ALICE_MIC: "0"})],
        NEGOTIATING,
        [ForwardTracks((ALICE_MIC,)), Send(Tracks((ALICE_MIC,), ("0",)))],
    ),
)
def test_subscriptions(case: Case) -> None:
    check(case)


@table(
    Case("connected: offer", connected, [on.negotiation_needed()], CONNECTED, [Negotiate()]),
    Case(
        "server offer: sent to the client",
        connected,
        [on.negotiation_needed(), on.local_description("srv")],
        CONNECTED,
        [Negotiate(), Send(Offer("srv"))],
    ),
    Case("while answering: queued", answering, [on.negotiation_needed()], NEGOTIATING, []),
    Case(
        "while answering: offer after the answer",
        answering,
        [on.negotiation_needed(), on.local_description("ans")],
        NEGOTIATING,
        [Send(Answer("ans")), Negotiate()],
    ),
    Case(
        "while the server's offer is out: one offer after the answer",
        awaiting_answer,
        [on.negotiation_needed(), on.negotiation_needed(), on.receive(Answer("a"))],
        CONNECTED,
        [ApplyAnswer("a"), Negotiate()],
    ),
    Case(
        "before the first offer: after the first answer",
        new,
        [on.negotiation_needed(), on.receive(Offer("o")), on.local_description("ans")],
        NEGOTIATING,
        [Negotiate("o"), Send(Answer("ans")), Negotiate()],
    ),
)
def test_negotiation_needed(case: Case) -> None:
    check(case)


@pytest.mark.parametrize(
    "step",
    [
        *(
            on.receive(m)
            for m in (Offer("o"), Answer("a"), CAND, Publish(MIC), Subscribe(ALL), Leave())
        ),
        on.receive_wire({"type": "nonsense"}),
        on.capabilities_changed(EVERYTHING),
        on.capabilities_changed(frozenset(), "blocked"),
        on.muted(Source),
        on.tracks_changed([ALICE_MIC]),
        on.local_description("late"),
        on.local_candidate(CAND),
        on.negotiation_needed(),
        on.transport_connected(),
        on.transport_closed(),
        on.close(StopReason.CALL_ENDED),
    ],
    ids=repr,
)
def test_closed_ignores_everything(step: Step) -> None:
    session = run(closed(), step)
    assert session.actions() == []
    assert session.state is CLOSED
    assert session.forwarded == ()


def test_close_forgets_forwarded_tracks() -> None:
    session = run(connected(), on.tracks_changed([ALICE_MIC]), on.receive(Subscribe(ALL)))
    assert session.forwarded == (ALICE_MIC,)
    session.close()
    assert session.actions()[-1] == Close()
    assert not session.forwarded


def test_mute_leaves_capabilities_alone() -> None:
    session = run(connected(MIC), on.muted([MIC]))
    assert session.capabilities == EVERYTHING


@pytest.mark.parametrize("reason", ["muted", "left", "granted", ""])
def test_capability_change_reason_must_be_a_loss_or_removal(reason: str) -> None:
    session = connected(MIC)
    with pytest.raises(ValueError):
        session.capabilities_changed(LISTENER, reason)
    assert session.actions() == []
    assert session.sources[MIC] is PUBLISHING


@pytest.mark.parametrize("start", [new, negotiating, connected, awaiting_answer])
def test_local_description_without_negotiate_is_an_adapter_bug(
    start: Callable[[], ParticipantSession],
) -> None:
    with pytest.raises(RuntimeError, match="without a Negotiate"):
        start().local_description("sdp")


def test_actions_are_drained() -> None:
    session = connected()
    session.receive(Publish(MIC))
    assert session.actions() != []
    assert session.actions() == []


def test_state_views_are_read_only() -> None:
    session = connected(MIC)
    with pytest.raises(TypeError):
        session.sources[MIC] = IDLE  # type: ignore[index]


# --- properties over random input sequences --------------------------------------------


CONNECTING = on.transport_connected()
#: The fake adapter hands over the local description of a pending `Negotiate`, if any.
DESCRIBE = Step("describe")


@dataclass
class FakeAdapter:
    """Carries out actions as the real adapter must, and checks the rules as it goes."""

    caps: Capabilities
    gates: dict[Source, bool] = field(default_factory=lambda: dict.fromkeys(Source, False))
    negotiating: bool = False
    closed: bool = False

    def run(self, session: ParticipantSession, step: Step) -> None:
        state_before = session.state
        if step.name == "capabilities_changed" and state_before is not CLOSED:
            self.caps = frozenset(step.args[0])
        if step != DESCRIBE:
            step.apply(session)
        elif self.negotiating:
            self.negotiating = False
            session.local_description("local-sdp")
        actions = session.actions()
        if self.closed:
            assert actions == [], "no action after Close"
        for i, action in enumerate(actions):
            self.carry_out(session, action, actions[i - 1] if i else None)
            if isinstance(action, OpenGate):
                # Only the client's publish, or the transport it was waiting for, opens a gate.
                assert step in (on.receive(Publish(action.source)), CONNECTING)
            if isinstance(action, Send) and isinstance(action.message, Tracks):
                assert action.message.tracks == session.forwarded
        forwarded = [a.tracks for a in actions if isinstance(a, ForwardTracks)]
        if forwarded:
            # As the real adapter does: the slots' mids, once the tracks have slots.
            mids = {t: str(i) if i % 2 else None for i, t in enumerate(forwarded[-1])}
            self.run(session, on.track_mids(mids))
        message = step.args[0] if step.name == "receive" else None
        if state_before is NEW and not isinstance(message, Offer | Leave | None):
            assert actions == [
                error(SfuErrorCode.OFFER_REQUIRED, f"send sfu.offer before {message.TYPE}")
            ]
        if step.name == "muted" and state_before is not CLOSED:
            assert all(session.sources[s] not in (PUBLISHING, GATED) for s in step.args[0])
        if Close() in actions:
            assert actions[-1] == Close() and actions.count(Close()) == 1
            self.closed = True
        assert session.state >= state_before, "states only move forward"
        self.check_invariants(session)

    def carry_out(
        self, session: ParticipantSession, action: Action, previous: Action | None
    ) -> None:
        match action:
            case OpenGate(source):
                assert source.capability in self.caps, "OpenGate needs a held capability"
                assert not self.gates[source]
                self.gates[source] = True
            case CloseGate(source):
                assert self.gates[source]
                self.gates[source] = False
            case RequestKeyframe(source):
                assert source.kind is TrackKind.VIDEO and previous == OpenGate(source)
            case Send(StopSource(source)):
                assert not self.gates[source], "the gate closes before stop_source"
            case Send(PublishOk(source)):
                assert source.capability in self.caps
            case Send(PublishDenied(source)):
                assert source.capability not in self.caps
            case Negotiate():
                assert not self.negotiating, "one negotiation at a time"
                self.negotiating = True
            case ForwardTracks(tracks):
                assert session.state in (NEGOTIATING, CONNECTED), "no media before joining"
                assert all(t.user_id != ME for t in tracks)

    def check_invariants(self, session: ParticipantSession) -> None:
        for source, state in session.sources.items():
            assert self.gates[source] == (state is PUBLISHING)
            if state in (PUBLISHING, GATED):
                assert source.capability in self.caps, f"{source} live without its capability"
        assert session.capabilities == self.caps
        if session.state is CLOSED:
            assert not any(self.gates.values())
            assert session.forwarded == ()


sources = st.sampled_from(list(Source))
media_caps = st.sampled_from([EVERYTHING, SPEAKER]) | st.frozensets(
    st.sampled_from([AUDIO, VIDEO, SHARE])
).map(lambda c: c | LISTENER)
tracks = st.lists(
    st.builds(Track, st.sampled_from([ME, "alice", "bob"]), sources, st.sampled_from("xyz")),
    max_size=4,
)
client_messages: st.SearchStrategy[ClientMessage] = st.one_of(
    st.builds(Offer, st.just("offer")),
    st.builds(Answer, st.just("answer")),
    st.just(CAND),
    st.builds(Publish, sources),
    st.builds(Unpublish, sources),
    st.builds(Subscribe, st.just(ALL) | st.lists(st.sampled_from([ME, "alice", "bob"])).map(tuple)),
)
ongoing_steps = st.one_of(
    st.builds(on.receive, client_messages),
    st.builds(lambda s: on.receive(Publish(s)), sources),
    st.builds(
        on.capabilities_changed,
        media_caps,
        st.sampled_from(["revoked", "role_changed"]),
    ),
    st.builds(on.muted, st.frozensets(sources)),
    st.builds(on.tracks_changed, tracks),
    st.sampled_from(
        [
            DESCRIBE,
            on.local_candidate(CAND),
            on.negotiation_needed(),
            CONNECTING,
        ]
    ),
)
ending_steps = st.one_of(
    st.builds(
        on.capabilities_changed,
        st.just(frozenset()),
        st.sampled_from(["blocked", "call_ended"]),
    ),
    st.sampled_from(
        [
            on.receive(Leave()),
            on.transport_closed(),
            on.close(StopReason.LEFT),
        ]
    ),
)
JOINING = [on.receive(Offer("offer")), DESCRIBE]
JOINED = [*JOINING, CONNECTING]
publishing = st.lists(sources, unique=True, min_size=1).map(
    lambda s: [on.receive(Publish(x)) for x in s]
)
# Random walks from NEW rarely get far, so most start joined (or joining) and publishing.
live_sequences = st.tuples(
    st.sampled_from([[], JOINING, JOINED, JOINED]),
    publishing,
    st.lists(ongoing_steps, min_size=3, max_size=40),
).map(lambda parts: [step for part in parts for step in part])
# Some sessions end, and then go on receiving inputs.
sequences = st.tuples(
    live_sequences,
    st.lists(ending_steps, max_size=1),
    st.lists(ongoing_steps | ending_steps, max_size=8),
).map(lambda parts: [step for part in parts for step in part])


@given(media_caps, sequences)
@PROPERTY_SETTINGS
def test_enforcement_holds_for_any_input_sequence(caps: Capabilities, steps: list[Step]) -> None:
    session = ParticipantSession(ME, caps)
    adapter = FakeAdapter(caps)
    for step in steps:
        adapter.run(session, step)


@given(media_caps, live_sequences, sources)
@PROPERTY_SETTINGS
def test_a_source_without_its_capability_is_never_forwarded(
    caps: Capabilities, steps: list[Step], source: Source
) -> None:
    session = ParticipantSession(ME, caps)
    adapter = FakeAdapter(caps)
    for step in steps:
        adapter.run(session, step)
    adapter.run(session, on.capabilities_changed(caps - {source.capability}, "revoked"))
    assert session.sources[source] is not PUBLISHING
    assert not adapter.gates[source]


not_messages = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6).filter(lambda k: k != "type"), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(st.lists(not_messages, max_size=5))
@PROPERTY_SETTINGS
def test_garbage_from_the_client_is_answered_not_raised(garbage: list[object]) -> None:
    session = connected(MIC)
    for data in garbage:
        session.receive_wire(data)
    actions = session.actions()
    assert len(actions) == len(garbage)
    for action in actions:
        assert isinstance(action, Send) and isinstance(action.message, Error)
        assert action.message.code is SfuErrorCode.INVALID_MESSAGE
    assert session.sources[MIC] is PUBLISHING
