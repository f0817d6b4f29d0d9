"""`run_every`: failures are retried at the next tick; a database outage is two log lines."""

from __future__ import annotations

import asyncio
import logging

import pytest

from podium.core.errors import ServiceUnavailable
from podium.services.periodic import run_every


async def test_an_outage_logs_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[Exception | None] = [ServiceUnavailable("down")] * 5 + [None] * 2
    outcomes += [RuntimeError("bug")] + [None] * 100
    done = asyncio.Event()
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        if steps == 10:
            done.set()
        outcome = outcomes[steps - 1]
        if outcome is not None:
            raise outcome

    task = asyncio.create_task(run_every(0.001, step, "testing"))
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "podium.periodic"]
    assert lines[0] == (
        logging.WARNING,
        "testing: the database is unreachable; retrying every 0.001 s",
    )
    assert lines[1] == (logging.WARNING, "testing: the database is back")
    assert lines[2][0] == logging.ERROR and "testing failed" in lines[2][1]
    assert len(lines) == 3
