"""The audit of aiortc's, aioice's and pylibsrtp's private internals."""

from __future__ import annotations

import aioice
import aiortc
import pylibsrtp
import pytest
from aiortc import RTCRtpReceiver

from podium.sfu.hooks import PINNED_AIORTC_VERSION, check_hooks


def test_hooks_present() -> None:
    assert aiortc.__version__ == PINNED_AIORTC_VERSION, (
        f"aiortc {aiortc.__version__} is installed but podium.sfu is written against "
        f"{PINNED_AIORTC_VERSION}: re-check every hook in podium.sfu.hooks.REQUIRED_HOOKS"
    )
    check_hooks()


def test_check_hooks_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"aiortc==1\.16\.0, .*installed: aiortc 9\.9\.9"):
        check_hooks()
    monkeypatch.undo()
    monkeypatch.setattr(aioice, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"aioice==0\.13\.0 .*aioice 9\.9\.9"):
        check_hooks()
    monkeypatch.undo()
    monkeypatch.setattr(pylibsrtp, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"pylibsrtp==1\.0\.0 .*pylibsrtp 9\.9\.9"):
        check_hooks()
    monkeypatch.undo()
    monkeypatch.delattr(RTCRtpReceiver, "_handle_rtp_packet")
    with pytest.raises(RuntimeError, match=r"RTCRtpReceiver\._handle_rtp_packet"):
        check_hooks()
