"""`podium.core.call_types`: the built-in types, the wire form and its validation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from podium.core.call_types import (
    BUILTIN_CALL_TYPES,
    DEFAULT_REQUEST_COOLDOWN_S,
    DEFAULT_REQUEST_TTL_S,
    MAX_TTL_S,
    CallType,
)
from podium.core.capabilities import Capability
from podium.core.errors import ValidationFailed
from tests.core import PROPERTY_SETTINGS, SPEC_WIRE_NAMES, call_types, role_names

# Spec §1, written out: every role of every built-in type holds read-call and create-call.
BASE = {"read-call", "create-call"}
MEDIA = {"send-audio", "send-video", "screenshare"}
EVERYTHING = set(SPEC_WIRE_NAMES)

# type -> (backstage, requestable, {role: capabilities}) for the roles each type defines.
BUILTIN_TABLE: dict[str, tuple[bool, set[str], dict[str, set[str]]]] = {
    "default": (
        False,
        set(),
        {
            "user": BASE | {"join-call"} | MEDIA,
            "host": EVERYTHING,
            "admin": EVERYTHING,
        },
    ),
    "audio_room": (
        True,
        MEDIA,
        {
            "user": BASE | {"join-call"},
            "speaker": BASE | {"join-call", "send-audio"},
            "host": EVERYTHING,
            "admin": EVERYTHING,
        },
    ),
    "livestream": (
        True,
        set(),
        {
            "user": BASE | {"join-call"},
            "host": EVERYTHING,
            "admin": EVERYTHING,
        },
    ),
    "development": (
        False,
        set(),
        {
            "user": EVERYTHING,
            "host": EVERYTHING,
            "admin": EVERYTHING,
        },
    ),
}


def names(caps: frozenset[Capability]) -> set[str]:
    return {c.value for c in caps}


# --- built-in types -----------------------------------------------------------------


def test_builtin_type_names() -> None:
    assert set(BUILTIN_CALL_TYPES) == {"default", "audio_room", "livestream", "development"}
    for key, ct in BUILTIN_CALL_TYPES.items():
        assert ct.name == key


@pytest.mark.parametrize("type_name", sorted(BUILTIN_TABLE))
def test_builtin_type_matches_spec(type_name: str) -> None:
    backstage, requestable, grants = BUILTIN_TABLE[type_name]
    ct = BUILTIN_CALL_TYPES[type_name]
    assert ct.builtin is True
    assert ct.backstage is backstage
    assert names(ct.requestable) == requestable
    assert ct.request_ttl_s == 300
    assert ct.request_cooldown_s == 30
    assert {role: names(caps) for role, caps in ct.grants.items()} == grants


@pytest.mark.parametrize("type_name", sorted(BUILTIN_TABLE))
def test_every_builtin_role_holds_read_and_create(type_name: str) -> None:
    for caps in BUILTIN_CALL_TYPES[type_name].grants.values():
        assert names(caps) >= BASE


def test_default_timings() -> None:
    assert DEFAULT_REQUEST_TTL_S == 300
    assert DEFAULT_REQUEST_COOLDOWN_S == 30
    assert MAX_TTL_S == 7 * 24 * 3600


# --- role_capabilities --------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "role", "expected"),
    [
        ("default", "user", BASE | {"join-call"} | MEDIA),
        ("default", "host", EVERYTHING),
        ("default", "admin", EVERYTHING),
        ("audio_room", "user", BASE | {"join-call"}),
        ("audio_room", "speaker", BASE | {"join-call", "send-audio"}),
        ("audio_room", "host", EVERYTHING),
        ("livestream", "user", BASE | {"join-call"}),
        ("livestream", "admin", EVERYTHING),
        ("development", "user", EVERYTHING),
        # A role the type does not define holds what `user` holds: spec "every
        # role" of a built-in type holds read-call and create-call, and every
        # role of `development` holds everything.
        ("default", "speaker", BASE | {"join-call"} | MEDIA),
        ("default", "moderator", BASE | {"join-call"} | MEDIA),
        ("audio_room", "moderator", BASE | {"join-call"}),
        ("livestream", "speaker", BASE | {"join-call"}),
        ("development", "speaker", EVERYTHING),
        ("development", "moderator", EVERYTHING),
    ],
)
def test_role_capabilities(type_name: str, role: str, expected: set[str]) -> None:
    assert names(BUILTIN_CALL_TYPES[type_name].role_capabilities(role)) == expected


def test_undefined_role_without_a_user_role_holds_nothing() -> None:
    ct = CallType(name="t", grants={"host": frozenset({Capability.END_CALL})})
    assert ct.role_capabilities("host") == {Capability.END_CALL}
    assert ct.role_capabilities("user") == frozenset()
    assert ct.role_capabilities("speaker") == frozenset()


def test_defined_role_with_no_capabilities_holds_nothing() -> None:
    ct = CallType(
        name="t", grants={"user": frozenset({Capability.READ_CALL}), "muted": frozenset()}
    )
    assert ct.role_capabilities("muted") == frozenset()
    assert ct.role_capabilities("other") == {Capability.READ_CALL}


# --- to_dict / from_dict ------------------------------------------------------------


def test_to_dict_of_audio_room() -> None:
    assert BUILTIN_CALL_TYPES["audio_room"].to_dict() == {
        "name": "audio_room",
        "grants": {
            "admin": sorted_spec(EVERYTHING),
            "host": sorted_spec(EVERYTHING),
            "speaker": ["read-call", "create-call", "join-call", "send-audio"],
            "user": ["read-call", "create-call", "join-call"],
        },
        "requestable": ["send-audio", "send-video", "screenshare"],
        "backstage": True,
        "request_ttl_s": 300,
        "request_cooldown_s": 30,
    }


def sorted_spec(caps: set[str]) -> list[str]:
    return [c.value for c in Capability if c.value in caps]


def test_to_dict_orders_roles_and_capabilities() -> None:
    ct = CallType(
        name="x",
        grants={
            "zeta": frozenset({Capability.BLOCK_USERS, Capability.READ_CALL}),
            "alpha": frozenset({Capability.SCREENSHARE, Capability.JOIN_CALL}),
        },
        requestable=frozenset({Capability.SCREENSHARE, Capability.SEND_AUDIO}),
    )
    data = ct.to_dict()
    assert list(data["grants"]) == ["alpha", "zeta"]
    assert data["grants"]["alpha"] == ["join-call", "screenshare"]
    assert data["grants"]["zeta"] == ["read-call", "block-users"]
    assert data["requestable"] == ["send-audio", "screenshare"]
    assert "builtin" not in data


@pytest.mark.parametrize("type_name", sorted(BUILTIN_TABLE))
def test_builtin_round_trip(type_name: str) -> None:
    ct = BUILTIN_CALL_TYPES[type_name]
    back = CallType.from_dict(type_name, json.loads(json.dumps(ct.to_dict())))
    assert back == ct  # `builtin` does not take part in equality
    assert back.builtin is False
    assert back.to_dict() == ct.to_dict()


@PROPERTY_SETTINGS
@given(call_types)
def test_round_trip(ct: CallType) -> None:
    wire = json.loads(json.dumps(ct.to_dict()))
    back = CallType.from_dict(ct.name, wire)
    assert back == ct
    assert back.to_dict() == wire


def test_from_dict_defaults() -> None:
    ct = CallType.from_dict("empty", {})
    assert ct == CallType(name="empty", grants={})
    assert ct.grants == {}
    assert ct.requestable == frozenset()
    assert ct.backstage is False
    assert ct.request_ttl_s == 300
    assert ct.request_cooldown_s == 30
    assert ct.builtin is False


def test_from_dict_full() -> None:
    ct = CallType.from_dict(
        "Town-Hall_2",
        {
            "grants": {
                "user": ["read-call", "join-call"],
                "panelist": ["read-call", "join-call", "send-audio", "send-audio"],
                "nobody": [],
            },
            "requestable": ["send-audio", "end-call"],
            "backstage": True,
            "request_ttl_s": 60,
            "request_cooldown_s": 0,
        },
    )
    assert ct.name == "Town-Hall_2"
    assert {r: names(c) for r, c in ct.grants.items()} == {
        "user": {"read-call", "join-call"},
        "panelist": {"read-call", "join-call", "send-audio"},
        "nobody": set(),
    }
    # A custom type gets exactly the grants it names: nothing is added.
    assert "create-call" not in names(ct.grants["user"])
    assert names(ct.requestable) == {"send-audio", "end-call"}
    assert ct.backstage is True
    assert ct.request_ttl_s == 60
    assert ct.request_cooldown_s == 0


def test_from_dict_uses_the_given_name_not_the_body() -> None:
    ct = CallType.from_dict("path_name", {"name": "body_name"})
    assert ct.name == "path_name"


def test_from_dict_ignores_unknown_keys() -> None:
    assert CallType.from_dict("t", {"builtin": True, "extra": 1}) == CallType("t", {})


def test_from_dict_does_not_mutate_its_input() -> None:
    data: dict[str, Any] = {"grants": {"user": ["read-call"]}, "requestable": ["send-audio"]}
    snapshot = json.loads(json.dumps(data))
    CallType.from_dict("t", data)
    assert data == snapshot


@pytest.mark.parametrize(
    "name", ["a", "Z", "0", "a" * 64, "audio_room", "my-type", "A_b-9", "_", "-"]
)
def test_from_dict_accepts_names(name: str) -> None:
    assert CallType.from_dict(name, {}).name == name


@pytest.mark.parametrize(
    "name",
    ["", "a" * 65, "audio room", "a.b", "a:b", "a/b", "ünïcode", "tab\t", "default\n", "\ndefault"],
)
def test_from_dict_rejects_names(name: str) -> None:
    with pytest.raises(ValidationFailed, match="call type name"):
        CallType.from_dict(name, {})


@pytest.mark.parametrize(
    ("role", "detail"),
    [
        ("", ""),
        ("Host", "Host"),
        ("1st", "1st"),
        ("-x", "-x"),
        ("a" * 33, "a" * 33),
        ("co host", "co host"),
        ("host\n", "host\n"),
        (1, "1"),
        (None, "None"),
    ],
)
def test_from_dict_rejects_role_names(role: Any, detail: str) -> None:
    with pytest.raises(ValidationFailed, match="invalid role name") as info:
        CallType.from_dict("t", {"grants": {role: ["read-call"]}})
    assert info.value.details == {"role": detail}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # grants
        ({"grants": None}, "grants must be an object"),
        ({"grants": []}, "grants must be an object"),
        ({"grants": [["user", ["read-call"]]]}, "grants must be an object"),
        ({"grants": "user"}, "grants must be an object"),
        ({"grants": 1}, "grants must be an object"),
        ({"grants": {"user": "read-call"}}, r"grants\[user\] must be a list"),
        ({"grants": {"user": None}}, r"grants\[user\] must be a list"),
        ({"grants": {"user": ("read-call",)}}, r"grants\[user\] must be a list"),
        ({"grants": {"user": {"read-call": True}}}, r"grants\[user\] must be a list"),
        ({"grants": {"user": ["read-call", 1]}}, r"grants\[user\] must be a list"),
        ({"grants": {"user": [None]}}, r"grants\[user\] must be a list"),
        ({"grants": {"user": [["read-call"]]}}, r"grants\[user\] must be a list"),
        ({"grants": {"user": ["read-call", "fly"]}}, "unknown capability: fly"),
        ({"grants": {"user": ["READ-CALL"]}}, "unknown capability: READ-CALL"),
        # requestable
        ({"requestable": None}, "requestable must be a list"),
        ({"requestable": "send-audio"}, "requestable must be a list"),
        ({"requestable": {"send-audio": True}}, "requestable must be a list"),
        ({"requestable": ("send-audio",)}, "requestable must be a list"),
        ({"requestable": [1]}, "requestable must be a list"),
        ({"requestable": ["send-audio", "teleport"]}, "unknown capability: teleport"),
        # request_ttl_s: an integer in 1..MAX_TTL_S
        ({"request_ttl_s": None}, "request_ttl_s must be an integer"),
        ({"request_ttl_s": "300"}, "request_ttl_s must be an integer"),
        ({"request_ttl_s": 300.0}, "request_ttl_s must be an integer"),
        ({"request_ttl_s": 1.5}, "request_ttl_s must be an integer"),
        ({"request_ttl_s": True}, "request_ttl_s must be an integer"),
        ({"request_ttl_s": False}, "request_ttl_s must be an integer"),
        ({"request_ttl_s": [300]}, "request_ttl_s must be an integer"),
        ({"request_ttl_s": -1}, "request_ttl_s must be between 0 and 604800"),
        ({"request_ttl_s": MAX_TTL_S + 1}, "request_ttl_s must be between 0 and 604800"),
        ({"request_ttl_s": 10**30}, "request_ttl_s must be between"),
        ({"request_ttl_s": 0}, "request_ttl_s must be at least 1"),
        # request_cooldown_s: an integer in 0..MAX_TTL_S
        ({"request_cooldown_s": None}, "request_cooldown_s must be an integer"),
        ({"request_cooldown_s": "30"}, "request_cooldown_s must be an integer"),
        ({"request_cooldown_s": 30.0}, "request_cooldown_s must be an integer"),
        ({"request_cooldown_s": True}, "request_cooldown_s must be an integer"),
        ({"request_cooldown_s": -1}, "request_cooldown_s must be between 0 and 604800"),
        ({"request_cooldown_s": MAX_TTL_S + 1}, "request_cooldown_s must be between"),
        # backstage
        ({"backstage": None}, "backstage must be a boolean"),
        ({"backstage": "true"}, "backstage must be a boolean"),
        ({"backstage": 1}, "backstage must be a boolean"),
        ({"backstage": 0}, "backstage must be a boolean"),
        ({"backstage": []}, "backstage must be a boolean"),
    ],
)
def test_from_dict_validation_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        CallType.from_dict("t", data)
    assert info.value.code == "validation_error"
    assert info.value.status == 422


def test_unknown_capability_details() -> None:
    with pytest.raises(ValidationFailed) as info:
        CallType.from_dict("t", {"grants": {"user": ["read-call", "zz", "aa"]}})
    assert info.value.details["unknown_capabilities"] == ["aa", "zz"]
    assert "read-call" in info.value.details["known"]


@pytest.mark.parametrize(
    ("ttl", "cooldown"),
    [(1, 0), (MAX_TTL_S, MAX_TTL_S), (1, MAX_TTL_S), (MAX_TTL_S, 0), (300, 30)],
)
def test_from_dict_timing_bounds_accepted(ttl: int, cooldown: int) -> None:
    ct = CallType.from_dict("t", {"request_ttl_s": ttl, "request_cooldown_s": cooldown})
    assert (ct.request_ttl_s, ct.request_cooldown_s) == (ttl, cooldown)


@PROPERTY_SETTINGS
@given(role_names)
def test_from_dict_accepts_every_valid_role_name(role: str) -> None:
    ct = CallType.from_dict("t", {"grants": {role: ["send-audio"]}})
    assert ct.grants == {role: {Capability.SEND_AUDIO}}


def test_equality_ignores_builtin_flag() -> None:
    a = CallType(name="t", grants={}, builtin=True)
    b = CallType(name="t", grants={}, builtin=False)
    assert a == b


def test_call_type_is_frozen() -> None:
    ct = BUILTIN_CALL_TYPES["default"]
    with pytest.raises(AttributeError):
        ct.backstage = True  # type: ignore[misc]
