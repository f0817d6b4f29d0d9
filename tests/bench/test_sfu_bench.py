"""`bench/sfu.py` end to end with tiny numbers (Podium only): it runs, and its JSON is sane.

The script runs as a subprocess, as `make bench` runs it: as root it re-executes
itself in a private network namespace, which a test process must not do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sfu.py"

REQUIRED_KEYS = {
    "fwd_packets_per_cpu_s",
    "janus_fwd_packets_per_cpu_s",
    "janus_reason",
    "revoke_p50_ms",
    "revoke_p99_ms",
    "revokes",
    "revoke_failures",
    "cpu_per_subscriber_pct",
    "per_n",
    "runs",
    "network",
    "cpu_count",
    "python_version",
    "machine",
    "targets",
    "per_run",
}
REVOKES = 5


def test_tiny_podium_run_writes_sane_results(tmp_path: Path) -> None:
    output = tmp_path / "sfu.json"
    args = ["--no-janus", "--subscribers", "2", "--runs", "1", "--seconds", "3"]
    args += ["--warmup", "1", "--revokes", str(REVOKES), "--output", str(output)]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert elapsed < 60, f"took {elapsed:.0f} s"
    assert "janus not measured: --no-janus" in done.stdout

    written = json.loads(output.read_text())
    assert not REQUIRED_KEYS - written.keys(), REQUIRED_KEYS - written.keys()
    assert written["runs"] == 1
    assert written["janus_fwd_packets_per_cpu_s"] is None
    assert written["janus_reason"] == "--no-janus"
    assert written["targets"]["janus_ratio_met"] is None
    assert written["cpu_count"] >= 1
    assert written["python_version"].startswith("3.")

    [window] = written["per_n"]["podium"]
    assert window["subscribers"] == 2
    # The publisher sends ~50 audio + ~113 video packets a second; each subscriber gets all.
    assert 130 < window["packets_per_s_per_subscriber"] < 200, window
    assert written["fwd_packets_per_cpu_s"] > 500
    assert 0 < window["server_cpu_pct"] < 200
    assert 0 < written["cpu_per_subscriber_pct"] < 100
    assert written["per_n"]["janus"] == []

    assert written["revokes"] == REVOKES
    assert written["revoke_failures"] == 0
    assert 0 <= written["revoke_p50_ms"] <= written["revoke_p99_ms"] < 1000
