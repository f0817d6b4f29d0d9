"""`CallState`: what the SDK knows about one call, kept current from snapshots and events.

Pure data and pure updates, no I/O: `CallState.from_snapshot` builds it from the
call state object every call endpoint returns (spec §2); `apply_snapshot`
replaces it with a newer one; `apply_event` folds in one call event (spec §3).

Ordering: every snapshot and every event carries the call's `seq`. A snapshot
older than what the state already reflects is ignored, and an event at or below
`state.seq` is already part of the state (it came before the snapshot), so
`apply_event` skips it and returns False.

Stage and audience: `participants` holds the stage (participants who may publish
or moderate) plus this client's own record, never the whole audience, which can
be thousands of listeners; `audience_count` says how many there are. A moderator
who watches with `audience=True` still sees audience joins and leaves in its
handlers, but they do not grow `participants` (page through them with
`Call.participants_page(tier="audience")`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podium.protocol.capabilities import CAPABILITY_NAMES
from podium.protocol.events import EventType
from podium.protocol.ids import parse_call_cid

JSON = dict[str, Any]

CAPABILITIES: frozenset[str] = frozenset(CAPABILITY_NAMES)
"""The 14 capability names, exactly as they travel on the wire."""


def check_capability(capability: str) -> str:
    """`capability` if it is one of the 14 known names, else a ValueError naming them."""
    if capability not in CAPABILITIES:
        known = ", ".join(sorted(CAPABILITIES))
        raise ValueError(f"unknown capability {capability!r}; known capabilities: {known}")
    return capability


def check_capabilities(capabilities: Iterable[str]) -> list[str]:
    """Validate every name (a lone string is refused: it would be read letter by letter)."""
    if isinstance(capabilities, str):
        raise TypeError("pass a list of capability names, not a single string")
    checked = [check_capability(c) for c in capabilities]
    if not checked:
        raise ValueError("name at least one capability")
    return list(dict.fromkeys(checked))


@dataclass
class CallState:
    """One call as this client sees it.

    `members` and `participants` are keyed by user id, `pending_requests` by
    request id (the server sends all pending requests to moderators and only
    your own to everyone else). `participants` is the stage plus your own
    record; `audience_count` is how many joined participants are in the
    audience. `seq` is the last call event reflected here.
    """

    cid: str
    call: JSON = field(default_factory=dict)
    settings: JSON = field(default_factory=dict)
    members: dict[str, JSON] = field(default_factory=dict)
    participants: dict[str, JSON] = field(default_factory=dict)
    blocked_user_ids: set[str] = field(default_factory=set)
    own_capabilities: set[str] = field(default_factory=set)
    pending_requests: dict[str, JSON] = field(default_factory=dict)
    audience_count: int = 0
    seq: int = -1
    loaded: bool = False
    """False until a snapshot (get, get_or_create, join, ...) has been applied."""

    @property
    def type(self) -> str:
        return parse_call_cid(self.cid)[0]

    @property
    def id(self) -> str:
        return parse_call_cid(self.cid)[1]

    @property
    def phase(self) -> str | None:
        """`backstage`, `live` or `ended` (None before the first snapshot)."""
        phase = self.call.get("phase")
        return phase if isinstance(phase, str) else None

    @property
    def live(self) -> bool:
        return bool(self.call.get("live", False))

    @property
    def backstage(self) -> bool:
        return bool(self.call.get("backstage", False))

    @property
    def ended(self) -> bool:
        return bool(self.call.get("ended", False))

    @property
    def custom(self) -> JSON:
        custom = self.call.get("custom")
        return custom if isinstance(custom, dict) else {}

    @property
    def requestable(self) -> frozenset[str]:
        """Capabilities the call type lets users request."""
        return frozenset(self.settings.get("requestable") or ())

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> CallState:
        call = snapshot.get("call") or {}
        state = cls(cid=str(call.get("cid", "")))
        apply_snapshot(state, snapshot)
        return state

    def pending_of(self, user_id: str, now: datetime | None = None) -> list[JSON]:
        """Pending requests of `user_id` known here that have not yet expired."""
        now = now or datetime.now(UTC)
        return [
            r
            for r in self.pending_requests.values()
            if r.get("user_id") == user_id and not is_expired(r, now)
        ]

    def is_member_or_participant(self, user_id: str) -> bool:
        return user_id in self.members or user_id in self.participants


def apply_snapshot(state: CallState, snapshot: Mapping[str, Any]) -> bool:
    """Replace `state` with a call state object; False (nothing changed) if it is older."""
    seq = snapshot.get("seq")
    seq = seq if isinstance(seq, int) else -1
    if state.loaded and seq < state.seq:
        return False
    call = snapshot.get("call") or {}
    if isinstance(call.get("cid"), str):
        state.cid = call["cid"]
    state.call = dict(call)
    state.settings = dict(snapshot.get("settings") or {})
    state.members = _by(snapshot.get("members"), "user_id")
    state.participants = _by(snapshot.get("participants"), "user_id")
    state.blocked_user_ids = set(snapshot.get("blocked_user_ids") or ())
    state.own_capabilities = set(snapshot.get("own_capabilities") or ())
    state.pending_requests = {
        r["id"]: r
        for r in _dicts(snapshot.get("pending_requests"))
        if r.get("state", "pending") == "pending" and isinstance(r.get("id"), str)
    }
    count = snapshot.get("audience_count")
    state.audience_count = count if isinstance(count, int) else 0
    state.seq = seq
    state.loaded = True
    return True


def apply_event(state: CallState, event: Mapping[str, Any], user_id: str | None) -> bool:
    """Fold one call event into `state`; False when the state already reflects it.

    `user_id` is this client's user: `call.permissions_updated` only changes
    `own_capabilities` when it is about them.
    """
    seq = event.get("seq")
    if isinstance(seq, int):
        if state.loaded and seq <= state.seq:
            return False
        state.seq = seq
    kind = event.get("type")
    if kind in (
        EventType.CREATED,
        EventType.UPDATED,
        EventType.LIVE_STARTED,
        EventType.LIVE_STOPPED,
    ):
        _set_call(state, event)
    elif kind == EventType.ENDED:
        _set_call(state, event)
        # The server removes every participant and cancels every pending request
        # when a call ends (the cancellations also arrive as resolved events).
        state.participants.clear()
        state.pending_requests.clear()
    elif kind == EventType.PARTICIPANT_JOINED:
        participant = _participant(event)
        if participant is not None and _kept(participant, user_id):
            state.participants[participant["user_id"]] = participant
    elif kind == EventType.PARTICIPANT_LEFT:
        # Whatever the tier, nobody who left stays (an audience leave is a no-op).
        participant = _participant(event)
        if participant is not None:
            state.participants.pop(participant["user_id"], None)
    elif kind == EventType.PARTICIPANT_MOVED:
        participant = _participant(event)
        if participant is not None and _kept(participant, user_id):
            state.participants[participant["user_id"]] = participant
        elif participant is not None:
            state.participants.pop(participant["user_id"], None)
    elif kind == EventType.AUDIENCE_UPDATED:
        count = event.get("audience_count")
        if isinstance(count, int):
            state.audience_count = count
    elif kind in (EventType.MEMBER_ADDED, EventType.MEMBER_UPDATED):
        state.members.update(_by(event.get("members"), "user_id"))
    elif kind == EventType.MEMBER_REMOVED:
        for removed in event.get("user_ids") or ():
            state.members.pop(str(removed), None)
    elif kind == EventType.PERMISSION_REQUEST:
        request = event.get("request")
        if (
            isinstance(request, dict)
            and isinstance(request.get("id"), str)
            and request.get("state", "pending") == "pending"
        ):
            state.pending_requests[request["id"]] = dict(request)
    elif kind == EventType.PERMISSION_REQUEST_RESOLVED:
        request = event.get("request")
        if isinstance(request, dict):
            state.pending_requests.pop(str(request.get("id")), None)
    elif kind == EventType.PERMISSIONS_UPDATED:
        if user_id is not None and event.get("user_id") == user_id:
            state.own_capabilities = set(event.get("own_capabilities") or ())
            # The server accepts a pending request as soon as all it asks for is held; its
            # resolved event follows this one, but the request is answered already.
            for request_id, request in list(state.pending_requests.items()):
                asked = set(request.get("permissions") or ())
                if request.get("user_id") == user_id and asked <= state.own_capabilities:
                    del state.pending_requests[request_id]
    elif kind == EventType.BLOCKED_USER:
        blocked = str(event.get("user_id"))
        state.blocked_user_ids.add(blocked)
        state.participants.pop(blocked, None)
    elif kind == EventType.UNBLOCKED_USER:
        state.blocked_user_ids.discard(str(event.get("user_id")))
    return True


def is_expired(request: Mapping[str, Any], now: datetime) -> bool:
    """The request's `expires_at` has passed (the server treats it as no longer pending)."""
    expires_at = request.get("expires_at")
    if not isinstance(expires_at, str):
        return False
    try:
        when = datetime.fromisoformat(expires_at)
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return now >= when


def add_pending(state: CallState, request: Mapping[str, Any]) -> None:
    """Record a request this client just made (if it is still pending)."""
    if request.get("state") == "pending" and isinstance(request.get("id"), str):
        state.pending_requests[request["id"]] = dict(request)


def drop_pending(state: CallState, request: Mapping[str, Any]) -> None:
    """Forget a request this client just resolved (accept, reject, cancel)."""
    if request.get("state") != "pending":
        state.pending_requests.pop(str(request.get("id")), None)


def _participant(event: Mapping[str, Any]) -> JSON | None:
    """A copy of the event's participant, None unless it names a user."""
    participant = event.get("participant")
    if isinstance(participant, dict) and isinstance(participant.get("user_id"), str):
        return dict(participant)
    return None


def _kept(participant: Mapping[str, Any], user_id: str | None) -> bool:
    """`participants` holds this record: on the stage, or this client's own.

    A record without a tier counts as the stage: servers before the audience
    split sent every participant to everyone.
    """
    return participant.get("tier", "stage") == "stage" or participant.get("user_id") == user_id


def _set_call(state: CallState, event: Mapping[str, Any]) -> None:
    call = event.get("call")
    if isinstance(call, dict):
        state.call = dict(call)


def _dicts(items: object) -> list[JSON]:
    if not isinstance(items, list):
        return []
    return [dict(item) for item in items if isinstance(item, dict)]


def _by(items: object, key: str) -> dict[str, JSON]:
    return {item[key]: item for item in _dicts(items) if isinstance(item.get(key), str)}
