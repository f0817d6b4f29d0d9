"""`services.audience`: everyone's tier from a default and a few exceptions; the counter."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from podium.core.call_types import BUILTIN_CALL_TYPES, CallType
from podium.core.policy import CallAccess, CallPhase, MemberGrants
from podium.core.stage import tier_of
from podium.protocol.stage import Tier
from podium.services.audience import AudienceCounter, TierSplit, tier_split
from podium.services.calls import CallsService
from podium.services.context import Runtime
from podium.services.identity import Identity
from tests.core import PROPERTY_SETTINGS, call_types, members, phases

user_ids = st.from_regex(r"[a-z]{1,6}", fullmatch=True)


@PROPERTY_SETTINGS
@given(
    call_type=call_types,
    phase=phases,
    grants=st.dictionaries(user_ids, members, max_size=8),
    blocked=st.frozensets(user_ids, max_size=4),
    others=st.lists(user_ids, max_size=4),
)
def test_the_split_gives_everyone_the_tier_of_their_capabilities(
    call_type: CallType,
    phase: CallPhase,
    grants: dict[str, MemberGrants],
    blocked: frozenset[str],
    others: list[str],
) -> None:
    access = CallAccess(call_type, phase, grants, blocked)
    split = tier_split(access)
    for user_id in [*grants, *blocked, *others, "nobody"]:
        assert split.tier(user_id) is tier_of(access.capabilities_of(user_id))
    # the exceptions are only ever members or blocked users
    assert split.exceptions <= set(grants) | blocked


def _access(members: dict[str, MemberGrants], blocked: frozenset[str] = frozenset()) -> CallAccess:
    return CallAccess(BUILTIN_CALL_TYPES["audio_room"], CallPhase.LIVE, members, blocked)


def test_an_audio_room_listener_is_in_the_audience_and_its_hosts_on_stage() -> None:
    split = tier_split(
        _access(
            {
                "host": MemberGrants("host"),
                "speaker": MemberGrants("speaker"),
                "granted": MemberGrants("user", frozenset({"send-audio"})),  # type: ignore[arg-type]
                "member": MemberGrants("user"),
            },
            frozenset({"blocked"}),
        )
    )
    assert split.default is Tier.AUDIENCE
    assert split.exceptions == {"host", "speaker", "granted"}
    assert split.stage_filter == {"only": split.exceptions}
    assert split.audience_filter == {"excluding": split.exceptions}
    assert [split.tier(u) for u in ("host", "member", "blocked", "anyone")] == [
        Tier.STAGE,
        Tier.AUDIENCE,
        Tier.AUDIENCE,
        Tier.AUDIENCE,
    ]


def test_where_everyone_may_speak_the_filters_turn_around() -> None:
    split = TierSplit(Tier.STAGE, frozenset({"muted"}))
    assert split.tier("muted") is Tier.AUDIENCE and split.tier("x") is Tier.STAGE
    assert split.stage_filter == {"excluding": {"muted"}}
    assert split.audience_filter == {"only": {"muted"}}


async def test_the_counter_sends_once_per_window_and_only_changes(runtime: Runtime) -> None:
    host = Identity("host")
    calls = CallsService(runtime)
    await calls.get_or_create(host, "audio_room", "r", [], {})
    await calls.set_live(host, "audio_room:r", True)
    for i in range(3):
        await calls.join(Identity(f"l{i}"), "audio_room:r")
    counter = AudienceCounter(runtime, window_s=3600)
    assert runtime.audience_changes == {"audio_room:r"}
    await counter.step()
    assert runtime.audience_changes == set()
    await calls.join(Identity("late"), "audio_room:r")
    await counter.step()
    # inside the window: still pending, nothing logged
    assert runtime.audience_changes == {"audio_room:r"}
    async with runtime.store.read() as tx:
        events = await tx.events_since("audio_room:r", 0)
        call = await tx.get_call("audio_room:r")
    assert [e.payload for e in events if e.type == "call.audience_updated"] == [
        {"audience_count": 3}
    ]
    assert call is not None and call.audience_count == 3
    # once the window is over, the latest count is sent; unchanged, nothing is
    counter.window = timedelta(0)
    await counter.step()
    await counter.step()
    runtime.audience_changes.add("audio_room:r")
    await counter.step()
    async with runtime.store.read() as tx:
        events = await tx.events_since("audio_room:r", 0)
    assert [e.payload["audience_count"] for e in events if e.type == "call.audience_updated"] == [
        3,
        4,
    ]
