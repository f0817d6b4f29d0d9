"""`bench/permission_loop.py` end to end with tiny numbers: it runs, and its JSON is complete."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.permission_loop import main

REQUIRED_KEYS = {
    "connected",
    "loop_p50_ms",
    "loop_p95_ms",
    "loop_p99_ms",
    "notify_p50_ms",
    "notify_p99_ms",
    "update_p50_ms",
    "update_p99_ms",
    "fanout_deliveries_per_s",
    "ceiling_deliveries_per_s",
    "fanout_ratio",
    "runs",
    "listeners",
    "rounds",
    "cpu_count",
    "python_version",
    "machine",
    "timestamp",
}


def test_tiny_run_writes_complete_results(tmp_path: Path) -> None:
    output = tmp_path / "results" / "permission_loop.json"
    started = time.monotonic()
    args = ["--listeners", "5", "--rounds", "5", "--runs", "1", "--fanout-events", "3"]
    summary = main([*args, "--run-timeout", "45", "--output", str(output)])
    assert time.monotonic() - started < 50

    written = json.loads(output.read_text())
    assert not REQUIRED_KEYS - written.keys(), REQUIRED_KEYS - written.keys()
    assert written == json.loads(json.dumps(summary))
    assert written["connected"] == 5
    assert (written["listeners"], written["rounds"], written["runs"]) == (5, 5, 1)
    assert written["per_run"][0]["rounds_ok"] == 5
    assert written["per_run"][0]["fanout_missing"] == 0
    assert written["per_run"][0]["ceiling_missing"] == 0
    for key in ("loop_p50_ms", "loop_p99_ms", "notify_p50_ms", "update_p99_ms"):
        assert written[key] > 0
    assert written["loop_p50_ms"] <= written["loop_p99_ms"]
    assert written["fanout_deliveries_per_s"] > 0
    assert written["ceiling_deliveries_per_s"] > 0
    assert written["fanout_ratio"] > 0
    assert written["cpu_count"] >= 1
