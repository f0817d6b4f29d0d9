"""Ids and the `call_cid` that names a call on the wire: `{type}:{id}`."""

from __future__ import annotations

import re
from typing import Final, TypeGuard

#: Call ids, call type names, request ids and user ids: 1-64 chars of `[A-Za-z0-9_-]`
#: (anchored, for validators that search; use `ID_PATTERN.fullmatch`).
ID_REGEX: Final = r"^[A-Za-z0-9_-]{1,64}$"
ID_PATTERN: Final = re.compile(ID_REGEX)
CID_SEPARATOR: Final = ":"


def call_cid(call_type: str, call_id: str) -> str:
    return f"{call_type}{CID_SEPARATOR}{call_id}"


def parse_call_cid(cid: str) -> tuple[str, str]:
    """`(type, id)` of a `call_cid`; ValueError when it is not `{type}:{id}` of valid ids."""
    call_type, sep, call_id = cid.partition(CID_SEPARATOR)
    if not (sep and ID_PATTERN.fullmatch(call_type) and ID_PATTERN.fullmatch(call_id)):
        raise ValueError(f"call_cid must be '{{type}}:{{id}}' of 1-64 [A-Za-z0-9_-], got {cid!r}")
    return call_type, call_id


def is_call_cid(value: object) -> TypeGuard[str]:
    """Whether `value` is a well-formed `call_cid` (a string `{type}:{id}` of valid ids)."""
    if not isinstance(value, str):
        return False
    try:
        parse_call_cid(value)
    except ValueError:
        return False
    return True
