"""`podium.core.json_values`: what is refused before storing, and what a read repairs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.json_values import (
    MAX_DEPTH,
    REPLACEMENT,
    decode_strict,
    encoded_size,
    json_problem,
    sanitized,
)


def nested(depth: int, key: str = "a") -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {key: value}
    return value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, "x", None, True, 1.5]}, None),
        (nested(MAX_DEPTH), None),
        (nested(MAX_DEPTH + 1), "nested deeper than 32 levels"),
        ([[[]]], None),
        ({"s": "\ud800"}, "s: a string holds a lone UTF-16 surrogate"),
        ({"\udfff": 1}, "value: a key holds a lone UTF-16 surrogate"),
        ({"n": [0, float("nan")]}, "n[1]: numbers must be finite (no NaN or Infinity)"),
        ({"n": float("inf")}, "n: numbers must be finite (no NaN or Infinity)"),
        (float("-inf"), "value: numbers must be finite (no NaN or Infinity)"),
        ("\U0001f600 paired surrogates are fine", None),
    ],
)
def test_json_problem_names_the_problem_and_where(value: Any, problem: str | None) -> None:
    found = json_problem(value)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.endswith(problem), found


def test_a_long_path_is_quoted_by_its_end() -> None:
    problem = json_problem(nested(300, key="k" * 10))
    assert problem is not None and problem.startswith("…")
    assert len(problem) < 200


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_decode_strict_refuses_non_finite_constants(text: str) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        decode_strict(text)


def test_decode_strict_reads_what_json_problem_then_refuses() -> None:
    assert json_problem(decode_strict('{"s": "\\ud800"}')) is not None
    assert decode_strict(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}


def test_sanitized_repairs_each_poison() -> None:
    poisoned = {"s": "a\ud800b", "\udc00k": 1, "n": [float("nan"), 2.0], "deep": nested(300)}
    clean = sanitized(poisoned)
    assert clean["s"] == f"a{REPLACEMENT}b"
    assert clean[f"{REPLACEMENT}k"] == 1
    assert clean["n"] == [None, 2.0]
    assert json_problem(clean) is None
    json.dumps(clean, allow_nan=False).encode("utf-8")


def test_sanitized_returns_a_safe_value_itself() -> None:
    value = {"a": [1, {"b": "c"}]}
    assert sanitized(value) is value


def test_encoded_size_counts_utf8_bytes_of_compact_json() -> None:
    assert encoded_size({"a": "é"}) == len('{"a":"é"}'.encode())


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(codec=None), max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values)
def test_sanitized_values_always_encode_and_have_no_problem(value: Any) -> None:
    clean = sanitized(value)
    assert json_problem(clean) is None
    text = json.dumps(clean, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    if json_problem(value) is None:
        assert clean is value


@given(json_values)
def test_values_without_a_problem_round_trip_through_strict_decoding(value: Any) -> None:
    if json_problem(value) is None:
        assert decode_strict(json.dumps(value, allow_nan=False)) == value
