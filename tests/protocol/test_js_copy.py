"""`web/podium/protocol.js` holds the same wire vocabulary as `podium.protocol`.

podium.js has no build step, so it keeps its own copy of the names; Node
reads that copy here and every list and map must equal the Python one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

import podium
from podium.protocol.capabilities import CAPABILITY_NAMES
from podium.protocol.errors import ErrorCode, SfuErrorCode
from podium.protocol.events import DenyReason, EventType, LeftReason, PermissionsReason, StopReason
from podium.protocol.ids import ID_REGEX
from podium.protocol.media import MUTE_SOURCE, SOURCE_CAPABILITY, SOURCE_TRACK_KIND
from podium.protocol.stage import Tier

PROTOCOL_JS = Path(podium.__file__).parent / "web" / "podium" / "protocol.js"

READ = """
const p = await import(process.argv[1]);
const plain = Object.fromEntries(Object.entries(p).filter(([, v]) => typeof v !== "function"));
plain.ID_PATTERN = p.ID_PATTERN.source;
plain.callCid = p.callCid("audio_room", "x");
console.log(JSON.stringify(plain));
"""


def values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


@pytest.fixture(scope="module")
def js() -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "Node.js is needed (make test installs the JavaScript tooling)"
    result = subprocess.run(
        [node, "--input-type=module", "-e", READ, PROTOCOL_JS.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_every_list_and_map_equals_the_python_one(js: dict[str, Any]) -> None:
    python = {
        "CAPABILITIES": list(CAPABILITY_NAMES),
        "SOURCES": {s.value: k.value for s, k in SOURCE_TRACK_KIND.items()},
        "SOURCE_CAPABILITY": {s.value: c.value for s, c in SOURCE_CAPABILITY.items()},
        "MUTE_SOURCE": {k.value: s.value for k, s in MUTE_SOURCE.items()},
        "EVENT_TYPES": values(EventType),
        "PERMISSIONS_REASONS": values(PermissionsReason),
        "LEFT_REASONS": values(LeftReason),
        "TIERS": values(Tier),
        "STOP_REASONS": values(StopReason),
        "DENY_REASONS": values(DenyReason),
        "ERROR_CODES": values(ErrorCode),
        "SFU_ERROR_CODES": values(SfuErrorCode),
        "ID_PATTERN": ID_REGEX,
        "callCid": "audio_room:x",
    }
    assert set(js) == set(python), "protocol.js exports other names than this test compares"
    for name, expected in python.items():
        assert js[name] == expected, name
