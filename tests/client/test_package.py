"""`podium.client` stands alone (no server package, aiortc unpatched); `__all__` is complete."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys

import podium.client

SERVER_PACKAGES = (
    "podium.sfu",
    "podium.services",
    "podium.store",
    "podium.api",
    "podium.bus",
    "podium.core",
    "podium.tokens",
)
SERVER_LIBRARIES = ("fastapi", "sqlalchemy", "jwt")


def aiortc_attributes() -> dict[str, object]:
    """Every attribute of aioice's and aiortc's modules, and of the classes they define, by name.

    Every submodule is imported first, so a later import adds nothing: an
    attribute that is then a different object was patched.
    """
    import importlib
    import pkgutil
    import sys

    import aioice
    import aiortc

    for package in (aioice, aiortc):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    found: dict[str, object] = {}
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] not in ("aioice", "aiortc"):
            continue
        for attribute, value in vars(module).items():
            found[f"{name}.{attribute}"] = value
            if isinstance(value, type) and value.__module__ == name:
                for member, inner in vars(value).items():
                    found[f"{name}.{attribute}.{member}"] = inner
    return found


def patched(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """The names whose objects differ between two `aiortc_attributes()`."""
    missing = object()
    return sorted(
        n
        for n in before.keys() | after.keys()
        if before.get(n, missing) is not after.get(n, missing)
    )


def test_imports_nothing_from_the_server_and_patches_nothing() -> None:
    """In a fresh interpreter: `podium.client` and every submodule (media included)."""
    code = (
        "import json, pkgutil, sys\n"
        f"{inspect.getsource(aiortc_attributes)}\n"
        f"{inspect.getsource(patched)}\n"
        "before = aiortc_attributes()\n"
        "import podium.client\n"
        "for module in pkgutil.iter_modules(podium.client.__path__, 'podium.client.'):\n"
        "    __import__(module.name)\n"
        "print(json.dumps({'loaded': sorted(sys.modules), "
        "'patched': patched(before, aiortc_attributes())}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(result.stdout)
    loaded = report["loaded"]
    assert "podium.client.call" in loaded and "podium.client.media" in loaded
    server = [m for m in loaded if m.startswith(SERVER_PACKAGES)]
    assert server == [], f"podium.client imported server modules: {server}"
    assert not [m for m in loaded if m.partition(".")[0] in SERVER_LIBRARIES]
    assert report["patched"] == [], f"importing podium.client patched {report['patched']}"


def test_all_is_complete() -> None:
    exported = set(podium.client.__all__)
    assert len(exported) == len(podium.client.__all__), "duplicates in __all__"
    for name in exported:
        assert hasattr(podium.client, name), f"__all__ names missing {name}"
    public = {
        name
        for name, value in vars(podium.client).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == exported, f"public but not in __all__: {public - exported}"
    # Every public class defined in a submodule is re-exported.
    for module in pkgutil.iter_modules(podium.client.__path__, "podium.client."):
        mod = importlib.import_module(module.name)
        for name, value in vars(mod).items():
            if inspect.isclass(value) and value.__module__ == mod.__name__:
                assert name.startswith("_") or name in exported, f"{mod.__name__}.{name}"


def test_spec_api_is_there() -> None:
    call = podium.client.Call
    for method in (
        "get_or_create",
        "get",
        "join",
        "leave",
        "go_live",
        "stop_live",
        "end",
        "update_members",
        "request_permissions",
        "list_requests",
        "accept",
        "reject",
        "cancel",
        "grant_permissions",
        "revoke_permissions",
        "mute",
        "block",
        "unblock",
        "watch",
    ):
        assert inspect.iscoroutinefunction(getattr(call, method)), method
    for method in ("has_permission", "permission", "on"):
        assert callable(getattr(call, method))
    handle = podium.client.PermissionHandle
    for prop in ("has_permission", "can_request_permission", "is_awaiting_permission"):
        assert isinstance(inspect.getattr_static(handle, prop), property), prop
    assert inspect.iscoroutinefunction(handle.request)
    assert inspect.iscoroutinefunction(podium.client.Client.dev_token)
