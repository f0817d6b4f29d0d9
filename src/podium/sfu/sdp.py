"""Keep the client's RTP numbering in every SDP the server sends.

Under BUNDLE a header extension id and a payload type mean one thing for the
whole session. aiortc numbers each offer it creates from its own defaults
(Opus 96, VP8 97, the mid extension 1), whatever the client negotiated before.
Chromium refuses an offer that gives an extension id to another URI ("RTP
extension ID reassignment not supported"), and it follows changed payload
types on the m-lines it already sends on, which a started aiortc receiver (and
the SFU's tap) does not. So the server learns every number used in the session
(`Numbering.learn`, from each SDP either side sent) and rewrites its own SDP
with `renumber` before applying it.

Codecs are told apart as Chromium and aiortc tell them apart: encoding name
and clock rate, the profile for H.264 (with the packetization mode), VP9 and
AV1, and, for RTX, the codec it retransmits (its `apt`). Pure text functions:
`podium.sfu.negotiation` makes aiortc's own state agree with the rewritten SDP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiortc.sdp import parse_h264_profile_level_id

#: One-byte header extension ids (RFC 8285; 15 is reserved).
EXTENSION_IDS = range(1, 15)
#: Payload types for codecs new to the session: the dynamic range, then the one
#: WebRTC stacks use once it is full (35-63, clear of RTCP's 64-95).
PAYLOAD_TYPE_RANGES = (range(96, 128), range(35, 64))
FREE_PAYLOAD_TYPES = tuple(n for numbers in PAYLOAD_TYPE_RANGES for n in numbers)
#: Below this, payload types are static (RFC 3551): never renumbered.
FIRST_DYNAMIC_PAYLOAD_TYPE = 35

_RTPMAP = re.compile(r"a=rtpmap:(\d+) ([^/\s]+)/(\d+)")
_FMTP = re.compile(r"a=fmtp:(\d+) (.*)")
_PT_ATTRIBUTE = re.compile(r"a=(rtpmap|fmtp|rtcp-fb):(\d+)(?=\s)")
_EXTMAP = re.compile(r"a=extmap:(\d+)((?:/\w+)?\s+(\S+).*)")
_APT = re.compile(r"(?<![\w-])apt=(\d+)")


@dataclass(frozen=True, slots=True)
class CodecKey:
    """What makes two payload types the same codec, whatever their numbers."""

    #: Encoding name, lower case ("opus", "vp8", "rtx").
    name: str
    clock_rate: int
    #: Format parameters that tell codecs of one name apart (H.264 mode and profile, ...).
    profile: tuple[str, ...] = ()
    #: For RTX: the codec it retransmits.
    repairs: CodecKey | None = None


@dataclass
class Numbering:
    """The session's numbers: extension URI -> id and codec -> payload type, first use wins."""

    extensions: dict[str, int] = field(default_factory=dict)
    payload_types: dict[CodecKey, int] = field(default_factory=dict)
    #: Every id and payload type seen, whatever it was used for.
    used_extension_ids: set[int] = field(default_factory=set)
    used_payload_types: set[int] = field(default_factory=set)

    def learn(self, sdp: str) -> None:
        """Add the numbers of one SDP (offer or answer, from either side)."""
        for line in _lines(sdp):
            match = _EXTMAP.fullmatch(line)
            if match is None:
                continue
            ext_id, uri = int(match[1]), match[3]
            if uri not in self.extensions and ext_id not in self.used_extension_ids:
                self.extensions[uri] = ext_id
            self.used_extension_ids.add(ext_id)
        for section in _sections(sdp)[1:]:
            codecs = _codecs(section)
            for payload_type in [*_formats(section), *codecs]:
                key = codecs.get(payload_type)
                if (
                    key is not None
                    and key not in self.payload_types
                    and payload_type not in self.used_payload_types
                ):
                    self.payload_types[key] = payload_type
                self.used_payload_types.add(payload_type)


def renumber(sdp: str, numbering: Numbering) -> str:
    """`sdp` with the session's numbers: known URIs and codecs keep theirs, new ones get free ones.

    A new URI or codec keeps its own number if the session has not used it,
    else it takes the first free one (`EXTENSION_IDS`, `FREE_PAYLOAD_TYPES`),
    preferring one that no other line of `sdp` has, so fewer numbers move.
    With none left, its extmap line, or the codec with its RTX, is left out.
    `m=`, `a=rtpmap`, `a=fmtp` (with its `apt=`), `a=rtcp-fb` and `a=extmap`
    lines follow; every other line is kept as it is (so RED's list of payload
    types is not rewritten: aiortc offers no RED).
    """
    sections = _sections(sdp)
    extension_ids = _extension_ids(sdp, numbering)
    payload_types = _payload_types(sections[1:], numbering)
    out = [_rewrite_extmaps(line, extension_ids) for line in sections[0]]
    for section, mapping in zip(sections[1:], payload_types, strict=True):
        out.extend(_rewrite_section(section, mapping, extension_ids))
    ending = "\r\n" if "\r\n" in sdp else "\n"
    return "".join(line + ending for line in out if line is not None)


# Parsing.


def _lines(sdp: str) -> list[str]:
    return sdp.splitlines()


def _sections(sdp: str) -> list[list[str]]:
    """The session-level lines, then one list of lines per m-line (starting with it)."""
    sections: list[list[str]] = [[]]
    for line in _lines(sdp):
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _formats(section: list[str]) -> list[int]:
    """The payload types on an RTP m-line, in order (none for a data channel)."""
    fields = section[0].split()
    if len(fields) < 4 or "RTP/" not in fields[2]:
        return []
    return [int(f) for f in fields[3:] if f.isdigit()]


def _parameters(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {name.strip().lower(): value.strip() for name, value in pairs}


def _h264_profile(profile_level_id: str) -> str:
    try:
        return (
            parse_h264_profile_level_id(profile_level_id)[0].name.removeprefix("PROFILE_").lower()
        )
    except ValueError:
        return profile_level_id.lower()


def _profile(name: str, parameters: dict[str, str]) -> tuple[str, ...]:
    if name == "h264":
        mode = parameters.get("packetization-mode", "0")
        return mode, _h264_profile(parameters.get("profile-level-id", "42e01f"))
    if name == "vp9":
        return (parameters.get("profile-id", "0"),)
    if name == "av1":
        return (parameters.get("profile", "0"),)
    return ()


def _codecs(section: list[str]) -> dict[int, CodecKey]:
    """Payload type -> codec of one m-line, for those with an `a=rtpmap` (RTX with a known apt)."""
    rtpmaps: dict[int, tuple[str, int]] = {}
    fmtps: dict[int, str] = {}
    for line in section:
        if match := _RTPMAP.match(line):
            rtpmaps.setdefault(int(match[1]), (match[2].lower(), int(match[3])))
        elif match := _FMTP.match(line):
            fmtps.setdefault(int(match[1]), match[2])
    codecs: dict[int, CodecKey] = {}
    for payload_type, (name, clock_rate) in rtpmaps.items():
        if name != "rtx":
            profile = _profile(name, _parameters(fmtps.get(payload_type, "")))
            codecs[payload_type] = CodecKey(name, clock_rate, profile)
    for payload_type, (name, clock_rate) in rtpmaps.items():
        apt = _parameters(fmtps.get(payload_type, "")).get("apt", "")
        if name == "rtx" and apt.isdigit() and int(apt) in codecs:
            codecs[payload_type] = CodecKey(name, clock_rate, repairs=codecs[int(apt)])
    return codecs


# Choosing numbers.


def _choose(
    known: int | None, own: int, used: set[int], taken: set[int], free: Iterable[int]
) -> int | None:
    """The session's number if not taken here, else `own` if unused, else the first free one."""
    if known is not None and known not in taken:
        return known
    if own in free and own not in used and own not in taken:
        return own
    return next((n for n in free if n not in used and n not in taken), None)


def _preferring_unowned(ranges: Iterable[range], owned: set[int]) -> list[int]:
    """The numbers of `ranges` in order, within each those no line of the SDP has first."""
    return [n for numbers in ranges for n in sorted(numbers, key=lambda n: n in owned)]


def _extension_ids(sdp: str, numbering: Numbering) -> dict[int, dict[str, int | None]]:
    """Own id -> URI -> the id to write (None: left out). One URI, one id, session-wide."""
    extmaps = [m for line in _lines(sdp) if (m := _EXTMAP.fullmatch(line))]
    free = _preferring_unowned([EXTENSION_IDS], {int(m[1]) for m in extmaps})
    chosen: dict[str, int | None] = {}
    taken: set[int] = set()
    mapping: dict[int, dict[str, int | None]] = {}
    for match in extmaps:
        own, uri = int(match[1]), match[3]
        if uri not in chosen:
            new = _choose(
                numbering.extensions.get(uri),
                own,
                numbering.used_extension_ids,
                taken,
                free,
            )
            chosen[uri] = new
            if new is not None:
                taken.add(new)
        mapping.setdefault(own, {})[uri] = chosen[uri]
    return mapping


def _payload_types(sections: list[list[str]], numbering: Numbering) -> list[dict[int, int | None]]:
    """Per m-line: own payload type -> the one to write (None: left out)."""
    codecs = [_codecs(section) for section in sections]
    mappings: list[dict[int, int | None]] = [{} for _ in sections]
    taken: set[int] = set()
    kept: set[CodecKey] = set()
    # Static payload types and codecs that cannot be identified keep their numbers.
    for section, section_codecs, mapping in zip(sections, codecs, mappings, strict=True):
        for payload_type in [*_formats(section), *section_codecs]:
            key = section_codecs.get(payload_type)
            if payload_type < FIRST_DYNAMIC_PAYLOAD_TYPE or key is None:
                mapping[payload_type] = payload_type
                taken.add(payload_type)
                if key is not None:
                    kept.add(key)
    free = _preferring_unowned(PAYLOAD_TYPE_RANGES, {pt for c in codecs for pt in c})
    chosen: dict[CodecKey, int | None] = {}
    # Media codecs before RTX, so an RTX whose codec is left out goes too.
    for repairs in (False, True):
        for section_codecs, mapping in zip(codecs, mappings, strict=True):
            for own, key in section_codecs.items():
                if own in mapping or (key.repairs is not None) != repairs:
                    continue
                if key not in chosen:
                    base = key.repairs
                    base_left_out = base not in kept and base is not None and chosen[base] is None
                    new = None
                    if not base_left_out:
                        new = _choose(
                            numbering.payload_types.get(key),
                            own,
                            numbering.used_payload_types,
                            taken,
                            free,
                        )
                    chosen[key] = new
                    if new is not None:
                        taken.add(new)
                mapping[own] = chosen[key]
    return mappings


# Rewriting.


def _rewrite_extmaps(line: str, extension_ids: dict[int, dict[str, int | None]]) -> str | None:
    match = _EXTMAP.fullmatch(line)
    if match is None:
        return line
    new = extension_ids[int(match[1])][match[3]]
    return None if new is None else f"a=extmap:{new}{match[2]}"


def _rewrite_section(
    section: list[str],
    mapping: dict[int, int | None],
    extension_ids: dict[int, dict[str, int | None]],
) -> list[str | None]:
    formats = _formats(section)
    out: list[str | None] = [section[0]]
    if formats:
        kept = [str(new) for f in formats if (new := mapping.get(f, f)) is not None]
        out[0] = " ".join([*section[0].split()[:3], *kept])
    for line in section[1:]:
        match = _PT_ATTRIBUTE.match(line)
        if match is None:
            out.append(_rewrite_extmaps(line, extension_ids))
            continue
        new = mapping.get(int(match[2]), int(match[2]))
        if new is None:
            out.append(None)
            continue
        rest = line[match.end() :]
        if match[1] == "fmtp":
            rest = _APT.sub(lambda m: f"apt={mapping.get(int(m[1]), int(m[1]))}", rest)
        out.append(f"a={match[1]}:{new}{rest}")
    return out
