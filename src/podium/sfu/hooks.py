"""The audit of aiortc's, aioice's and pylibsrtp's private internals the SFU relies on.

The SFU forwards RTP without decoding (`podium.sfu.receive`, `podium.sfu.send`),
shapes aiortc's negotiation state (`podium.sfu.negotiation`), and binds
loopback candidates per connection (`podium.rtc`): all through private
attributes of libraries pinned to one version each. Every such attribute is
listed in `REQUIRED_HOOKS`; `check_hooks()` fails loudly when one disappears
(or a library is not the version this was written against), and a test and
the media service call it, so upgrading any of them cannot silently break
forwarding.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

import aioice
import aioice.ice
import aiortc
import pylibsrtp
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

PINNED_AIORTC_VERSION: Final = "1.16.0"
#: aiortc's ICE library; the send path reads its nominated candidate pair.
PINNED_AIOICE_VERSION: Final = "0.13.0"
#: aiortc's SRTP library; the send path calls its libsrtp binding directly.
PINNED_PYLIBSRTP_VERSION: Final = "1.0.0"

#: pylibsrtp's cffi binding of libsrtp (untyped): the send path calls `srtp_protect`.
SRTP_BINDING: Final[Any] = importlib.import_module("pylibsrtp._binding")

#: (owner, attribute) pairs used by the SFU and `podium.rtc`. Name-mangled instance
#: attributes that are only assigned in `__init__` are looked up among the names its code uses.
REQUIRED_HOOKS: Final[tuple[tuple[object, str], ...]] = (
    (aioice.ice.Connection, "get_component_candidates"),
    (RTCIceGatherer, "_connection"),
    (pylibsrtp, "SRTP_MAX_TRAILER_LEN"),
    (pylibsrtp.Session, "_srtp"),
    (SRTP_BINDING, "ffi"),
    (SRTP_BINDING.lib, "srtp_protect"),
    (aioice.ice.StunProtocol, "datagram_received"),
    (aioice.ice.StunProtocol, "receiver"),
    (aioice.ice.StunProtocol, "local_candidate"),
    (aioice.ice.Connection, "data_received"),
    (aioice.ice.Connection, "_queue"),
    (aioice.ice.Connection, "_nominated"),
    (aioice.ice.CandidatePair, "protocol"),
    (aioice.ice.CandidatePair, "local_candidate"),
    (aioice.ice.CandidatePair, "remote_addr"),
    (aioice.ice.StunProtocol, "transport"),
    (RTCRtpReceiver, "receive"),
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder"),
    (RTCRtpReceiver, "_RTCRtpReceiver__decoder_thread"),
    (RTCRtpReceiver, "_RTCRtpReceiver__started"),
    (RTCRtpReceiver, "_RTCRtpReceiver__codecs"),
    (RTCRtpReceiver, "_enabled"),
    (RTCRtpReceiver, "_send_rtcp"),
    (RTCRtpReceiver, "_send_rtcp_nack"),
    (RTCRtpReceiver, "_RTCRtpReceiver__remote_bitrate_estimator"),
    (RTCRtpReceiver, "_RTCRtpReceiver__rtcp_ssrc"),
    (RTCRtpReceiver, "_RTCRtpReceiver__active_ssrc"),
    (RTCRtpReceiver, "_RTCRtpReceiver__remote_streams"),
    (RTCRtpReceiver, "_RTCRtpReceiver__rtx_ssrc"),
    (RTCRtpReceiver, "_RTCRtpReceiver__nack_generator"),
    (RTCRtpSender, "send"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_ssrc"),
    (RTCRtpSender, "_RTCRtpSender__ntp_timestamp"),
    (RTCRtpSender, "_RTCRtpSender__rtp_timestamp"),
    (RTCRtpSender, "_RTCRtpSender__octet_count"),
    (RTCRtpSender, "_RTCRtpSender__packet_count"),
    (RTCDtlsTransport, "_handle_rtp_data"),
    (RTCDtlsTransport, "_state"),
    (RTCDtlsTransport, "_tx_srtp"),
    (RTCDtlsTransport, "_rx_srtp"),
    (RTCDtlsTransport, "_handle_rtcp_data"),
    (RTCDtlsTransport, "_RTCDtlsTransport__rx_bytes"),
    (RTCDtlsTransport, "_RTCDtlsTransport__rx_packets"),
    (RTCDtlsTransport, "_RTCDtlsTransport__tx_bytes"),
    (RTCDtlsTransport, "_RTCDtlsTransport__tx_packets"),
    (State, "CONNECTED"),
    (State, "CLOSED"),
    (State, "FAILED"),
    (RTCIceTransport, "_connection"),
    (RTCRtpTransceiver, "_codecs"),
    (RTCRtpTransceiver, "_headerExtensions"),
    (RTCRtpTransceiver, "_get_mline_index"),
)


def _hook_present(owner: object, name: str) -> bool:
    if hasattr(owner, name) or name in getattr(owner, "__annotations__", {}):
        return True
    init = getattr(owner, "__init__", None)
    code = getattr(init, "__code__", None)
    return code is not None and name in code.co_names


def check_hooks() -> None:
    """Raise `RuntimeError` naming every missing hook, or if aiortc, aioice or pylibsrtp
    is not the pinned version."""
    missing = [
        f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{name}"
        for owner, name in REQUIRED_HOOKS
        if not _hook_present(owner, name)
    ]
    installed = (aiortc.__version__, aioice.__version__, pylibsrtp.__version__)
    pinned = (PINNED_AIORTC_VERSION, PINNED_AIOICE_VERSION, PINNED_PYLIBSRTP_VERSION)
    if missing or installed != pinned:
        raise RuntimeError(
            f"podium.sfu needs aiortc=={pinned[0]}, aioice=={pinned[1]} and "
            f"pylibsrtp=={pinned[2]} (installed: aiortc {installed[0]}, aioice "
            f"{installed[1]}, pylibsrtp {installed[2]}); missing private hooks: "
            f"{', '.join(missing) or 'none'}"
        )
