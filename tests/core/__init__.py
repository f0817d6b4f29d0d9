"""Tests of the pure permission core (`podium.core`), mirroring its modules.

Hypothesis strategies shared by several test modules live here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import settings
from hypothesis import strategies as st

from podium.core.call_types import BUILTIN_CALL_TYPES, MAX_TTL_S, CallType
from podium.core.capabilities import Capability
from podium.core.policy import CallPhase, MemberGrants

#: Property tests stay fast: a moderate number of examples, no per-example deadline.
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

#: A fixed, timezone-aware instant that tests measure time from.
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

BUILTIN_ROLES = ("user", "speaker", "host", "admin")

capabilities = st.sampled_from(list(Capability))
capability_sets = st.frozensets(capabilities)
non_empty_capability_sets = st.frozensets(capabilities, min_size=1)
phases = st.sampled_from(list(CallPhase))
role_names = st.sampled_from([*BUILTIN_ROLES, "moderator", "guest"]) | st.from_regex(
    r"[a-z][a-z0-9_-]{0,31}", fullmatch=True
)
token_roles = st.none() | st.sampled_from(["admin", "user", "host", "speaker", "Admin"])
call_type_names = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
members = st.builds(MemberGrants, role=role_names, grants=capability_sets, revokes=capability_sets)


@st.composite
def random_call_types(draw: st.DrawFn) -> CallType:
    """A call type with random roles, grants, requestable set, backstage and timings."""
    return CallType(
        name=draw(call_type_names),
        grants=draw(st.dictionaries(role_names, capability_sets, max_size=6)),
        requestable=draw(capability_sets),
        backstage=draw(st.booleans()),
        request_ttl_s=draw(st.integers(1, MAX_TTL_S)),
        request_cooldown_s=draw(st.integers(0, MAX_TTL_S)),
    )


call_types = st.sampled_from(list(BUILTIN_CALL_TYPES.values())) | random_call_types()

# Spec §1 "Capabilities", in the order the table lists them.
SPEC_WIRE_NAMES = [
    "read-call",
    "create-call",
    "join-call",
    "join-backstage",
    "send-audio",
    "send-video",
    "screenshare",
    "update-call-permissions",
    "update-call-member",
    "mute-users",
    "go-live",
    "update-call",
    "end-call",
    "block-users",
]
