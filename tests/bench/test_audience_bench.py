"""`bench/audience.py` end to end with tiny numbers (one worker, SQLite): its JSON is complete.

The script runs as a subprocess, as `make bench` runs it: its load generators are
processes of their own, which a test process should not be the parent of.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "audience.py"
LISTENERS = 60
ROUNDS = 5

REQUIRED_KEYS = {
    "connected",
    "join_per_s",
    "join_per_s_500",
    "join_ratio",
    "loop_p50_ms",
    "loop_p99_ms",
    "loop_p99_ms_500",
    "loop_p99_ratio",
    "stage_event_p99_ms",
    "rss_per_listener_kib",
    "audience_frames_per_listener",
    "ceiling_deliveries_per_s",
    "fanout_deliveries_per_s",
    "fanout_ratio",
    "ramp_generators_cpu",
    "ramp_generator_max_cpu",
    "configs",
    "ceiling",
    "runs",
    "listeners",
    "procs",
    "workers_run",
    "workers_reason",
    "cpu_count",
    "python_version",
    "machine",
    "timestamp",
    "per_run",
}
TARGETS = 5


def test_tiny_run_writes_complete_results(tmp_path: Path) -> None:
    output = tmp_path / "audience.json"
    args = ["--listeners", str(LISTENERS), "--runs", "1", "--procs", "2", "--rounds", str(ROUNDS)]
    args += ["--warmup", "1", "--ceiling-events", "3", "--no-workers-run"]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--run-timeout", "90", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=150,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert elapsed < 120, f"took {elapsed:.0f} s"
    for verdict in ("PASS", "FAIL"):
        assert verdict in done.stdout, done.stdout[-3000:]

    written = json.loads(output.read_text())
    assert not REQUIRED_KEYS - written.keys(), REQUIRED_KEYS - written.keys()
    assert (written["listeners"], written["runs"], written["procs"]) == (LISTENERS, 1, 2)
    assert written["connected"] == LISTENERS
    assert written["workers_run"] is False
    assert written["configs"]["workers"]["unavailable"] == "--no-workers-run"

    sqlite = written["configs"]["sqlite"]
    assert len(sqlite["targets"]) == TARGETS
    assert all(t["met"] in (True, False) for t in sqlite["targets"]), sqlite["targets"]
    [run] = written["per_run"]
    figures = run["configs"]["sqlite"]
    assert figures["rounds_ok"] == ROUNDS and figures["rounds_ok_500"] == ROUNDS
    assert figures["ramp_500_error_count"] == 0 and figures["ramp_n_error_count"] == 0
    assert run["ceiling"]["ceiling_connected"] == LISTENERS
    assert run["ceiling"]["ceiling_missing"] == 0
    for key in ("join_per_s", "join_per_s_500", "loop_p50_ms", "ceiling_deliveries_per_s"):
        assert written[key] > 0, key
    assert written["loop_p50_ms"] <= written["loop_p99_ms"]
    assert 0 < written["ramp_generators_cpu"] < written["cpu_count"] * 1.5
    # every listener got each stage event (call.participant_moved), so these exist
    assert figures["stage_events"] == ROUNDS
    assert written["stage_event_p99_ms"] > 0
    assert written["fanout_deliveries_per_s"] > 0
    assert written["audience_frames_per_listener"] is not None
