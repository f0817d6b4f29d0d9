"""`podium.protocol.ids`: the `call_cid` format and its parse, as a table and a property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.protocol.ids import ID_PATTERN, call_cid, is_call_cid, parse_call_cid

ids = st.text(st.sampled_from("abcXYZ019_-"), min_size=1, max_size=64)


@given(ids, ids)
def test_parse_undoes_call_cid(call_type: str, call_id: str) -> None:
    cid = call_cid(call_type, call_id)
    assert parse_call_cid(cid) == (call_type, call_id)
    assert is_call_cid(cid)


@pytest.mark.parametrize(
    "cid",
    ["", "default", ":x", "default:", "a:b:c", "de fault:x", "default:x\n", "x" * 65 + ":y", "é:x"],
)
def test_malformed_call_cids_are_refused(cid: str) -> None:
    with pytest.raises(ValueError, match="call_cid must be"):
        parse_call_cid(cid)
    assert not is_call_cid(cid)


@pytest.mark.parametrize("value", [None, 3, ["default:x"], b"default:x"])
def test_only_strings_are_call_cids(value: object) -> None:
    assert not is_call_cid(value)


@pytest.mark.parametrize(
    ("text", "valid"),
    [("a", True), ("a" * 64, True), ("a" * 65, False), ("a\n", False), ("", False)],
)
def test_id_pattern(text: str, valid: bool) -> None:
    assert bool(ID_PATTERN.fullmatch(text)) is valid
