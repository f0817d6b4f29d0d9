"""SqlStore on SQLite and on a fresh PostgreSQL database per test (`database_url`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import create_async_engine

from podium.bus.events import Audience, CallEvent, EventDraft
from podium.core.call_types import BUILTIN_CALL_TYPES, CallType
from podium.core.capabilities import Capability
from podium.core.policy import CallPhase
from podium.core.requests import PermissionRequest, RequestState, Resolution, resolve
from podium.store.base import Transaction
from podium.store.records import BlockRecord, CallRecord, MemberRecord, ParticipantRecord
from podium.store.schema import metadata
from podium.store.sql import MIGRATIONS_DIR, SqlStore, create_store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
AUDIO = frozenset({Capability.SEND_AUDIO})


async def append_event(
    tx: Transaction,
    cid: str,
    type: str,
    payload: dict[str, Any],
    audience: Audience,
    *,
    created_at: datetime,
    refresh: bool = False,
) -> CallEvent:
    """One event through the batch API."""
    drafts = [EventDraft(type, payload, audience, refresh)]
    (event,) = await tx.append_events(cid, drafts, created_at=created_at)
    return event


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_call(
    call_id: str, *, type: str = "default", phase: CallPhase = CallPhase.LIVE, t: float = 0
) -> CallRecord:
    return CallRecord(f"{type}:{call_id}", type, call_id, phase, "creator", at(t), at(t))


def make_request(cid: str, request_id: str, user_id: str = "u1", t: float = 0) -> PermissionRequest:
    return PermissionRequest(
        request_id, cid, user_id, AUDIO, RequestState.PENDING, at(t), at(t + 300)
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    opened = SqlStore(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def add_calls(store: SqlStore, *calls: CallRecord) -> None:
    async with store.write() as tx:
        for call in calls:
            await tx.insert_call(call)


# opening, migrations, call types


async def test_open_seeds_builtin_call_types(store: SqlStore) -> None:
    async with store.read() as tx:
        stored = await tx.list_call_types()
        assert [ct.name for ct in stored] == sorted(BUILTIN_CALL_TYPES)
        for ct in stored:
            assert ct == BUILTIN_CALL_TYPES[ct.name]
            assert ct.builtin
        assert await tx.get_call_type("nope") is None


async def test_replaced_builtin_and_custom_types_survive_reopen(database_url: str) -> None:
    first = SqlStore(database_url)
    await first.open()
    replaced = CallType.from_dict(
        "audio_room", {"grants": {"user": ["join-call"]}, "requestable": ["send-video"]}
    )
    custom = CallType.from_dict(
        "town_hall",
        {"grants": {"host": ["end-call", "mute-users"]}, "backstage": True, "request_ttl_s": 9},
    )
    async with first.write() as tx:
        await tx.put_call_type(replaced)
        await tx.put_call_type(custom)
    await first.close()

    second = SqlStore(database_url)
    await second.open()
    async with second.read() as tx:
        assert await tx.get_call_type("audio_room") == replaced
        assert await tx.get_call_type("town_hall") == custom
        assert await tx.get_call_type("default") == BUILTIN_CALL_TYPES["default"]
        assert len(await tx.list_call_types()) == len(BUILTIN_CALL_TYPES) + 1
    await second.close()


async def test_concurrent_opens_of_a_new_database(database_url: str) -> None:
    stores = [SqlStore(database_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    async with stores[0].read() as tx:
        assert len(await tx.list_call_types()) == len(BUILTIN_CALL_TYPES)
    for s in stores:
        await s.close()


async def test_migrations_create_exactly_the_schema(store: SqlStore, database_url: str) -> None:
    def diff(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    if database_url.startswith("sqlite"):
        lite = create_engine(database_url)
        with lite.connect() as conn:
            assert diff(conn) == []
        lite.dispose()
        return
    engine = create_async_engine(database_url)
    async with engine.connect() as aconn:
        assert await aconn.run_sync(diff) == []
    await engine.dispose()


def test_create_store_rejects_unsupported_urls() -> None:
    for url in ("mysql+aiomysql://x/y", "sqlite://", "sqlite+aiosqlite:///:memory:"):
        with pytest.raises(ValueError, match="sqlite"):
            create_store(url)
    with pytest.raises(ValueError, match="not a database URL"):
        create_store("no scheme here")
    assert isinstance(create_store("postgresql://u@127.0.0.1/db"), SqlStore)


# calls


async def test_call_round_trip_in_utc(store: SqlStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    call = replace(make_call("a"), custom={"title": "Hi", "n": [1, 2]}, last_seq=0)
    await add_calls(store, replace(call, created_at=T0.astimezone(plus_two)))
    async with store.read() as tx:
        got = await tx.get_call("default:a")
        assert got == call
        assert got is not None and got.created_at.tzinfo is UTC
        assert await tx.get_call("default:missing") is None


async def test_update_call_changes_only_given_fields(store: SqlStore) -> None:
    await add_calls(store, make_call("a", phase=CallPhase.BACKSTAGE))
    async with store.write("default:a") as tx:
        await tx.update_call("default:a", updated_at=at(5), phase=CallPhase.LIVE)
        await tx.update_call("default:a", updated_at=at(6), custom={"k": "v"})
    async with store.read() as tx:
        got = await tx.get_call("default:a")
    assert got == replace(make_call("a"), updated_at=at(6), custom={"k": "v"})
    async with store.write("default:a") as tx:
        await tx.update_call("default:a", updated_at=at(9), phase=CallPhase.ENDED, ended_at=at(9))
        with pytest.raises(LookupError):
            await tx.update_call("default:nope", updated_at=at(9))
        got = await tx.get_call("default:a")
    assert got is not None and got.phase is CallPhase.ENDED and got.ended_at == at(9)


async def test_list_calls_filters(store: SqlStore) -> None:
    live_other = make_call("live-other", t=1)
    backstage_mine = make_call("backstage-mine", phase=CallPhase.BACKSTAGE, t=2)
    ended_mine = make_call("ended-mine", phase=CallPhase.ENDED, t=3)
    backstage_other = make_call("backstage-other", phase=CallPhase.BACKSTAGE, t=4)
    live_room = make_call("live-room", type="audio_room", t=5)
    await add_calls(store, live_other, backstage_mine, ended_mine, backstage_other, live_room)
    async with store.write() as tx:
        for call in (backstage_mine, ended_mine):
            await tx.upsert_member(MemberRecord(call.cid, "me", "user", AUDIO, AUDIO, T0, T0))
        await tx.upsert_member(
            MemberRecord(backstage_other.cid, "you", "host", AUDIO, AUDIO, T0, T0)
        )

    async with store.read() as tx:

        async def ids(
            call_type: str | None = None, live: bool | None = None, limit: int = 100
        ) -> list[str]:
            found = await tx.list_calls(user_id="me", call_type=call_type, live=live, limit=limit)
            return [c.id for c in found]

        assert await ids() == ["live-room", "ended-mine", "backstage-mine", "live-other"]
        assert await ids(call_type="default") == ["ended-mine", "backstage-mine", "live-other"]
        assert await ids(live=True) == ["live-room", "live-other"]
        assert await ids(live=False) == ["ended-mine", "backstage-mine"]
        assert await ids(call_type="audio_room", live=False) == []
        assert await ids(limit=2) == ["live-room", "ended-mine"]
        nobody = await tx.list_calls(user_id="nobody")
        assert [c.id for c in nobody] == ["live-room", "live-other"]


# members, participants, blocks


async def test_members(store: SqlStore) -> None:
    await add_calls(store, make_call("a"), make_call("b"))
    alice = MemberRecord("default:a", "alice", "host", AUDIO, frozenset(), at(1), at(1))
    bob = MemberRecord("default:a", "bob", "user", frozenset(), AUDIO, at(2), at(2))
    async with store.write("default:a") as tx:
        await tx.upsert_member(alice)
        await tx.upsert_member(bob)
        await tx.upsert_member(replace(bob, call_cid="default:b"))
    bob2 = replace(
        bob, role="speaker", grants=frozenset(Capability), revokes=frozenset(), updated_at=at(3)
    )
    async with store.write("default:a") as tx:
        await tx.upsert_member(bob2)
        assert await tx.get_member("default:a", "bob") == bob2
        assert await tx.list_members("default:a") == [alice, bob2]
        assert await tx.delete_member("default:a", "alice")
        assert not await tx.delete_member("default:a", "alice")
        assert await tx.get_member("default:a", "alice") is None
    async with store.read() as tx:
        assert await tx.list_members("default:a") == [bob2]
        assert await tx.list_members("default:b") == [replace(bob, call_cid="default:b")]


async def test_participants(store: SqlStore) -> None:
    await add_calls(store, make_call("a"), make_call("b"))
    ann = ParticipantRecord("default:a", "ann", "Ann", "https://img/ann", at(1), at(1))
    ben = ParticipantRecord("default:a", "ben", None, None, at(2), at(2))
    async with store.write("default:a") as tx:
        assert await tx.insert_participants([ben, ann]) == {"ann", "ben"}
        assert await tx.insert_participants([replace(ann, call_cid="default:b")]) == {"ann"}
        assert await tx.insert_participants([]) == set()
        renamed = replace(ann, name="Ann B.")
        cal = ParticipantRecord("default:a", "cal", None, None, at(3), at(3))
        assert await tx.insert_participants([renamed, cal]) == {"cal"}, "ann joined already"
        assert await tx.delete_participant("default:a", "cal")
        assert await tx.get_participant("default:a", "ann") == ann
        assert await tx.list_participants("default:a") == [ann, ben]
        assert await tx.delete_participant("default:a", "ben")
        assert not await tx.delete_participant("default:a", "ben")
        assert await tx.get_participant("default:a", "ben") is None
    async with store.write("default:a") as tx:
        await tx.insert_participants([ben])
        assert await tx.delete_participants("default:a") == ["ann", "ben"]
        assert await tx.delete_participants("default:a") == []
        assert await tx.list_participants("default:a") == []
        assert len(await tx.list_participants("default:b")) == 1


async def test_the_database_counts_each_calls_participants(store: SqlStore) -> None:
    await add_calls(store, make_call("a"), make_call("b"))
    people = [ParticipantRecord("default:a", f"u{i}", None, None, at(i), at(i)) for i in range(3)]

    async def counts() -> tuple[int, int]:
        async with store.read() as tx:
            a, b = await tx.get_call("default:a"), await tx.get_call("default:b")
        assert a is not None and b is not None
        return a.participant_count, b.participant_count

    async with store.write("default:a") as tx:
        await tx.insert_participants(people)
        await tx.insert_participants([replace(people[0], call_cid="default:b")])
    assert await counts() == (3, 1)
    async with store.write("default:a") as tx:
        assert await tx.insert_participants(people[1:]) == set()
        await tx.touch_participants([("default:a", "u1")], at(9))
        assert not await tx.delete_participant("default:a", "nobody")
    assert await counts() == (3, 1), "a repeated join, a touch or a missing row count nothing"
    async with store.write("default:a") as tx:
        assert await tx.delete_participant("default:a", "u1")
    assert await counts() == (2, 1)
    async with store.write("default:a") as tx:
        await tx.delete_participants("default:a")
    assert await counts() == (0, 1)
    with pytest.raises(RuntimeError):
        async with store.write("default:a") as tx:
            await tx.insert_participants(people[:1])
            raise RuntimeError("rolled back")
    assert await counts() == (0, 1), "a rolled-back join is not counted"


async def test_upgrading_counts_the_participants_already_joined(database_url: str) -> None:
    """Migration 0004 fills `participant_count` in for calls that had participants."""
    store = SqlStore(database_url)
    await store.open()
    await add_calls(store, make_call("a"), make_call("b"))
    async with store.write("default:a") as tx:
        joining = [ParticipantRecord("default:a", u, None, None, T0, T0) for u in ("u1", "u2")]
        await tx.insert_participants(joining)
    await store.close()

    def migrate(connection: Connection, revision: str) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        if revision == "head":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)

    async def run(revision: str) -> None:
        if database_url.startswith("sqlite"):
            lite = create_engine(database_url)
            with lite.begin() as conn:
                migrate(conn, revision)
            lite.dispose()
            return
        engine = create_async_engine(database_url)
        async with engine.begin() as aconn:
            await aconn.run_sync(migrate, revision)
        await engine.dispose()

    await run("0003")
    await run("head")
    store = SqlStore(database_url)
    await store.open()
    async with store.read() as tx:
        a, b = await tx.get_call("default:a"), await tx.get_call("default:b")
    await store.close()
    assert a is not None and a.participant_count == 2
    assert b is not None and b.participant_count == 0


async def test_blocks(store: SqlStore) -> None:
    await add_calls(store, make_call("a"))
    first = BlockRecord("default:a", "troll", "host", at(1))
    second = BlockRecord("default:a", "spammer", "host", at(2))
    async with store.write("default:a") as tx:
        await tx.insert_block(second)
        await tx.insert_block(first)
        assert await tx.get_block("default:a", "troll") == first
        assert await tx.list_blocks("default:a") == [first, second]
        assert await tx.delete_block("default:a", "troll")
        assert not await tx.delete_block("default:a", "troll")
    async with store.read() as tx:
        assert await tx.get_block("default:a", "troll") is None
        assert await tx.list_blocks("default:a") == [second]


# permission requests


async def test_requests_insert_get_list(store: SqlStore) -> None:
    await add_calls(store, make_call("a"))
    reqs = [make_request("default:a", f"r{i}", "u1" if i % 2 else "u2", t=i) for i in range(5)]
    async with store.write("default:a") as tx:
        for req in reversed(reqs):
            await tx.insert_request(req)
        accepted = resolve(reqs[1], Resolution.ACCEPT, by="host", now=at(9), reason="ok")
        assert await tx.resolve_request(accepted)
    reqs[1] = accepted
    async with store.read() as tx:
        assert await tx.get_request("default:a", "r1") == accepted
        assert await tx.get_request("default:a", "nope") is None
        assert await tx.list_requests("default:a") == reqs
        assert await tx.list_requests("default:a", user_id="u1") == [reqs[1], reqs[3]]
        pending = await tx.list_requests("default:a", state=RequestState.PENDING)
        assert pending == [reqs[0], reqs[2], reqs[3], reqs[4]]
        both = await tx.list_requests("default:a", state=RequestState.PENDING, user_id="u1")
        assert both == [reqs[3]]
        assert await tx.list_requests("default:a", limit=2) == reqs[:2]


async def test_resolve_request_first_answer_wins(store: SqlStore) -> None:
    await add_calls(store, make_call("a"))
    req = make_request("default:a", "r1")
    async with store.write("default:a") as tx:
        await tx.insert_request(req)
        with pytest.raises(ValueError, match="pending"):
            await tx.resolve_request(req)
        cancelled = resolve(req, Resolution.CANCEL, by="u1", now=at(1))
        assert await tx.resolve_request(cancelled)
        assert not await tx.resolve_request(resolve(req, Resolution.ACCEPT, by="h", now=at(2)))
    async with store.read() as tx:
        assert await tx.get_request("default:a", "r1") == cancelled


async def test_concurrent_writers_resolve_a_request_once(store: SqlStore) -> None:
    await add_calls(store, make_call("a"))
    pending = make_request("default:a", "r1")
    async with store.write("default:a") as tx:
        await tx.insert_request(pending)

    async def answer(host: str) -> tuple[bool, RequestState]:
        async with store.write("default:a") as tx:
            seen = await tx.get_request("default:a", "r1")
            assert seen is not None
            await asyncio.sleep(0.01)
            accepted = resolve(pending, Resolution.ACCEPT, by=host, now=at(1))
            return await tx.resolve_request(accepted), seen.state

    hosts = [f"host{i}" for i in range(6)]
    results = await asyncio.gather(*(answer(h) for h in hosts))
    assert [won for won, _ in results].count(True) == 1
    # Serialised by the call lock: every loser already saw the winner's answer.
    for won, seen in results:
        assert seen is (RequestState.PENDING if won else RequestState.ACCEPTED)
    async with store.read() as tx:
        stored = await tx.get_request("default:a", "r1")
    winner = hosts[[won for won, _ in results].index(True)]
    assert stored is not None and stored.resolved_by == winner


async def test_postgres_conditional_update_without_call_lock(pg_url: str) -> None:
    """Both transactions read `pending` before either writes; the row lock decides."""
    store = SqlStore(pg_url)
    await store.open()
    await add_calls(store, make_call("a"))
    async with store.write("default:a") as tx:
        await tx.insert_request(make_request("default:a", "r1"))
    both_read = asyncio.Barrier(2)

    async def answer(resolution: Resolution) -> bool:
        async with store.write() as tx:
            req = await tx.get_request("default:a", "r1")
            assert req is not None and req.is_pending
            await both_read.wait()
            return await tx.resolve_request(resolve(req, resolution, by="x", now=at(1)))

    results = await asyncio.gather(answer(Resolution.ACCEPT), answer(Resolution.REJECT))
    assert sorted(results) == [False, True]
    async with store.read() as tx:
        stored = await tx.get_request("default:a", "r1")
    winner = RequestState.ACCEPTED if results[0] else RequestState.REJECTED
    assert stored is not None and stored.state is winner
    await store.close()


# event log


async def test_append_event_allocates_seq_and_events_since(store: SqlStore) -> None:
    await add_calls(store, make_call("a"), make_call("b"))
    audience = Audience.holders(Capability.UPDATE_CALL_PERMISSIONS, "u1", "u2")
    async with store.write("default:a") as tx:
        appended = [
            await append_event(
                tx, "default:a", f"t{i}", {"i": i}, audience, created_at=at(i), refresh=i == 2
            )
            for i in range(1, 6)
        ]
        other = await append_event(tx, "default:b", "x", {}, Audience.watchers(), created_at=T0)
        with pytest.raises(LookupError):
            await append_event(tx, "default:zz", "x", {}, Audience.watchers(), created_at=T0)
    assert [e.seq for e in appended] == [1, 2, 3, 4, 5]
    assert other.seq == 1
    assert appended[1].refresh and not appended[0].refresh
    async with store.read() as tx:
        assert await tx.events_since("default:a", 0) == appended
        assert await tx.events_since("default:a", 3) == appended[3:]
        assert await tx.events_since("default:a", 1, limit=2) == appended[1:3]
        assert await tx.events_since("default:a", 5) == []
        call = await tx.get_call("default:a")
    assert call is not None and call.last_seq == 5


async def test_concurrent_appends_get_consecutive_seqs(store: SqlStore) -> None:
    await add_calls(store, make_call("a"))

    async def append(i: int) -> int:
        async with store.write("default:a") as tx:
            ev = await append_event(
                tx, "default:a", "t", {"i": i}, Audience.users("u"), created_at=T0
            )
            return ev.seq

    seqs = await asyncio.gather(*(append(i) for i in range(20)))
    assert sorted(seqs) == list(range(1, 21))


async def test_write_serialises_read_modify_write_of_a_call(store: SqlStore) -> None:
    await add_calls(store, replace(make_call("a"), custom={"n": 0}))

    async def bump() -> None:
        async with store.write("default:a") as tx:
            call = await tx.get_call("default:a")
            assert call is not None
            await asyncio.sleep(0.005)
            await tx.update_call("default:a", updated_at=T0, custom={"n": call.custom["n"] + 1})

    await asyncio.gather(*(bump() for _ in range(8)))
    async with store.read() as tx:
        call = await tx.get_call("default:a")
    assert call is not None and call.custom == {"n": 8}


async def test_get_or_create_of_a_new_call_inserts_it_once(store: SqlStore) -> None:
    async def get_or_create() -> bool:
        async with store.write("default:new") as tx:
            if await tx.get_call("default:new") is not None:
                return False
            await asyncio.sleep(0.01)
            await tx.insert_call(make_call("new"))
            return True

    assert sorted(await asyncio.gather(*(get_or_create() for _ in range(4)))) == [
        False,
        False,
        False,
        True,
    ]


# transactions and durability


async def test_failed_write_rolls_back_everything(store: SqlStore) -> None:
    await add_calls(store, make_call("a"))
    with pytest.raises(RuntimeError, match="boom"):
        async with store.write("default:a") as tx:
            await tx.insert_call(make_call("b"))
            await append_event(tx, "default:a", "t", {}, Audience.watchers(), created_at=T0)
            raise RuntimeError("boom")
    async with store.read() as tx:
        assert await tx.get_call("default:b") is None
        call = await tx.get_call("default:a")
        assert call is not None and call.last_seq == 0
        assert await tx.events_since("default:a", 0) == []


async def test_read_transaction_refuses_writes(store: SqlStore) -> None:
    async with store.read() as tx:
        with pytest.raises(RuntimeError, match="read transaction"):
            await tx.insert_call(make_call("a"))


async def test_naive_datetimes_are_rejected(store: SqlStore) -> None:
    naive = replace(make_call("a"), created_at=datetime(2025, 1, 1))
    with pytest.raises(StatementError, match="naive"):
        await add_calls(store, naive)


async def test_data_survives_close_and_reopen(database_url: str) -> None:
    first = SqlStore(database_url)
    await first.open()
    call = make_call("a")
    member = MemberRecord(call.cid, "alice", "host", AUDIO, frozenset(), T0, T0)
    request = make_request(call.cid, "r1")
    async with first.write(call.cid) as tx:
        await tx.insert_call(call)
        await tx.upsert_member(member)
        await tx.insert_request(request)
        await tx.insert_block(BlockRecord(call.cid, "troll", "alice", T0))
        await tx.insert_participants([ParticipantRecord(call.cid, "alice", "A", None, T0, T0)])
        event = await append_event(tx, call.cid, "t", {"k": 1}, Audience.watchers(), created_at=T0)
    await first.close()

    second = SqlStore(database_url)
    await second.open()
    async with second.read() as tx:
        assert await tx.get_call(call.cid) == replace(call, last_seq=1, participant_count=1)
        assert await tx.get_member(call.cid, "alice") == member
        assert await tx.get_request(call.cid, "r1") == request
        assert await tx.get_block(call.cid, "troll") is not None
        assert await tx.get_participant(call.cid, "alice") is not None
        assert await tx.events_since(call.cid, 0) == [event]
    async with second.write(call.cid) as tx:
        nxt = await append_event(tx, call.cid, "t", {}, Audience.watchers(), created_at=T0)
    assert nxt.seq == 2
    await second.close()
