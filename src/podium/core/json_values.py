"""JSON values Podium stores and sends back: what makes one unsafe, and how to read one safely.

Python's `json` module accepts what other parsers and encoders refuse: `NaN`
and `Infinity` (not JSON; browsers cannot parse them), lone UTF-16 surrogates
such as `"\\ud800"` (no UTF-8 encoder takes them) and nesting as deep as the
stack allows (serialisers stop at some depth). Stored once, any of them makes
every later read of the value fail. So input is checked with `json_problem`
before anything is stored, and values read back are passed through
`sanitized`, which repairs what older versions may have stored.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

#: The deepest nesting of objects and arrays taken in (a scalar at top level is depth 0).
MAX_DEPTH: Final = 32
#: The largest `custom` object of a call, encoded as compact JSON.
MAX_CUSTOM_BYTES: Final = 16 * 1024
#: How much of a long path an error message quotes.
MAX_PATH_CHARS: Final = 120
#: What replaces a lone surrogate in a value read back.
REPLACEMENT: Final = "\ufffd"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_strict(text: str | bytes) -> Any:
    """`json.loads` without `NaN`/`Infinity`; `json.JSONDecodeError` for text that is not JSON.

    Other problems of the decoded value (depth, surrogates, numbers too large
    for a float) are `json_problem`'s to find.
    """
    return json.loads(text, parse_constant=_reject_constant)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a decoded JSON value cannot be stored and sent back, or None when it can.

    The answer names where the problem is, as a path such as `custom.a[2]`
    (its end only, when it is long).
    """
    problem = _first_problem(value, max_depth)
    if problem is None:
        return None
    path, what = problem
    if len(path) > MAX_PATH_CHARS:
        path = "…" + path[-MAX_PATH_CHARS:]
    return f"{path or 'value'}: {what}"


def _first_problem(value: Any, max_depth: int) -> tuple[str, str] | None:
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                return path, "a string holds a lone UTF-16 surrogate"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, "numbers must be finite (no NaN or Infinity)"
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                return path, f"nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if _has_surrogate(key):
                        return path, "a key holds a lone UTF-16 surrogate"
                    stack.append((child, depth + 1, f"{path}.{key}" if path else key))
            else:
                stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def sanitized(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """`value` itself when it is safe; else a copy with every problem repaired.

    Lone surrogates become U+FFFD, non-finite numbers and containers nested
    past `max_depth` become null: a value read back can always be sent.
    """
    if _first_problem(value, max_depth) is None:
        return value
    return _repair(value, 0, max_depth)


def _repair(value: Any, depth: int, max_depth: int) -> Any:
    if isinstance(value, str):
        return _repair_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict | list):
        if depth >= max_depth:
            return None
        if isinstance(value, dict):
            return {
                _repair_text(str(k)): _repair(v, depth + 1, max_depth) for k, v in value.items()
            }
        return [_repair(v, depth + 1, max_depth) for v in value]
    return value


def _repair_text(text: str) -> str:
    if not _has_surrogate(text):
        return text
    return "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def encoded_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON (what a size limit counts)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
