"""`SqlTransaction` queries behind limits, presence, revocation and catch-up, on both databases."""

from __future__ import annotations

from podium.bus.events import Audience
from podium.core.requests import Resolution, resolve
from podium.store.records import ParticipantRecord, RevokedToken
from podium.store.sql import SqlStore
from tests.store.test_sql import add_calls, append_event, at, make_call, make_request, store

__all__ = ["store"]


async def test_last_seqs_of_many_calls(store: SqlStore) -> None:
    calls = [make_call(f"c{i}") for i in range(3)]
    await add_calls(store, *calls)
    async with store.write(calls[1].cid) as tx:
        for _ in range(4):
            await append_event(tx, calls[1].cid, "t", {}, Audience.watchers(), created_at=at(1))
    # More ids than one IN list takes, most of them of calls that do not exist.
    many = [c.cid for c in calls] + [f"default:absent{i}" for i in range(1200)]
    async with store.read() as tx:
        assert await tx.last_seqs(many) == {calls[0].cid: 0, calls[1].cid: 4, calls[2].cid: 0}
        assert await tx.last_seqs([]) == {}


async def test_calls_created_since_counts_one_creator(store: SqlStore) -> None:
    mine = [make_call(f"m{i}", t=i * 60) for i in range(4)]
    other = make_call("o", t=30)
    await add_calls(store, *mine, other)
    async with store.read() as tx:
        assert await tx.calls_created_since("creator", at(61)) == [at(120), at(180)]
        assert await tx.calls_created_since("nobody", at(0)) == []
    assert other.created_by == "creator"


async def test_request_activity_counts_asked_and_cancelled_by_the_user(store: SqlStore) -> None:
    call = make_call("a")
    await add_calls(store, call)
    asked = [make_request(call.cid, f"r{i}", "u1", t=i) for i in range(3)]
    someone_else = make_request(call.cid, "x", "u2", t=1)
    async with store.write(call.cid) as tx:
        for request in (*asked, someone_else):
            await tx.insert_request(request)
        await tx.resolve_request(resolve(asked[0], Resolution.CANCEL, by="u1", now=at(10)))
        # Cancelled by a server token, not by the user: not the user's activity.
        await tx.resolve_request(resolve(asked[1], Resolution.CANCEL, by="server", now=at(11)))
        await tx.resolve_request(resolve(asked[2], Resolution.REJECT, by="host", now=at(12)))
    async with store.read() as tx:
        assert await tx.request_activity(call.cid, "u1", at(-1)) == [at(0), at(1), at(2), at(10)]
        assert await tx.request_activity(call.cid, "u1", at(1.5)) == [at(2), at(10)]
        assert await tx.request_activity(call.cid, "u2", at(-1)) == [at(1)]


async def test_touch_moves_seen_at_forward_only_and_stale_lists_the_unseen(
    store: SqlStore,
) -> None:
    call = make_call("p")
    await add_calls(store, call)
    people = [ParticipantRecord(call.cid, f"u{i}", None, None, at(0), at(i)) for i in range(3)]
    async with store.write(call.cid) as tx:
        await tx.insert_participants(people)
        await tx.touch_participants(
            [(call.cid, "u0"), (call.cid, "u2"), ("default:x", "u0")], at(1)
        )
    async with store.read() as tx:
        seen = {p.user_id: p.seen_at for p in await tx.list_participants(call.cid)}
        assert seen == {"u0": at(1), "u1": at(1), "u2": at(2)}, "u2 was seen later already"
        stale = await tx.stale_participants(at(1.5))
        assert sorted(p.user_id for p in stale) == ["u0", "u1"]
        assert await tx.stale_participants(at(1)) == []


async def test_revocations_are_read_since_and_pruned_when_expired(store: SqlStore) -> None:
    first = RevokedToken("jti-1", at(100), at(1), "alice")
    second = RevokedToken("jti-2", at(5), at(2), "server")
    async with store.write() as tx:
        await tx.revoke_token(first)
        await tx.revoke_token(second)
        await tx.revoke_token(RevokedToken("jti-1", at(999), at(3), "again"))
    async with store.read() as tx:
        assert await tx.revocations_since(at(0)) == [first, second]
        assert await tx.revocations_since(at(1)) == [second]
    async with store.write() as tx:
        assert await tx.delete_expired_revocations(at(10)) == 1
    async with store.read() as tx:
        assert await tx.revocations_since(at(0)) == [first]
