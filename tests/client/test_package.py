"""`podium.client` stands alone: no server package is imported, and `__all__` is complete."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys

import podium.client

SERVER_PACKAGES = ("podium.core", "podium.services", "podium.api", "podium.store", "podium.bus")


def test_imports_nothing_from_the_server() -> None:
    code = (
        "import json, sys\n"
        "import podium.client\n"
        "for name in [m.name for m in __import__('pkgutil').iter_modules("
        "podium.client.__path__, 'podium.client.')]:\n"
        "    __import__(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('podium'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(result.stdout)
    assert "podium.client.call" in loaded
    server = [m for m in loaded if m.startswith(SERVER_PACKAGES) or m == "podium.tokens"]
    assert server == [], f"podium.client imported server modules: {server}"
    assert not any(m in loaded for m in ("fastapi", "sqlalchemy", "jwt"))


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
