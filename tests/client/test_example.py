"""`examples/audio_room.py` runs to completion against a real `podium serve --dev`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.server import ServerProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audio_room.py"

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


def test_audio_room_example(server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    out = result.stdout
    assert "can request=True" in out
    assert "host was notified" in out
    assert "has send-audio=True, awaiting=False" in out
