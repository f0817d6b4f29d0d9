"""The "never" arrows of docs/architecture.md, read from the source's imports.

Every `import` and `from ... import` in `src/podium` (including those under
`TYPE_CHECKING`, which still tie the modules together) is checked against the
layers that a module's layer must never import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import podium

SOURCE = Path(podium.__file__).parent

SERVER = frozenset(
    {"core", "store", "bus", "api", "sfu", "services", "config", "tokens", "serving", "cli", "bot"}
)
#: layer -> the layers it must never import (a layer is `podium.<first part>`).
NEVER: dict[str, frozenset[str]] = {
    #: The wire vocabulary and the shared WebRTC factory sit under everything.
    "protocol": SERVER | {"client", "rtc"},
    "rtc": SERVER | {"client", "protocol"},
    "core": frozenset({"store", "bus", "api", "sfu", "services", "client", "config", "tokens"}),
    "store": frozenset({"api", "services", "sfu", "client"}),
    "bus": frozenset({"api", "services", "store", "sfu", "client"}),
    "sfu": frozenset({"api", "services", "store", "bus", "client"}),
    "services": frozenset({"api", "client"}),
    "client": SERVER,
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "podium" else None


def module_name(path: Path) -> str:
    relative = path.relative_to(SOURCE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, with relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def sources() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("layer", sorted(NEVER))
def test_no_layer_imports_what_it_must_never(layer: str) -> None:
    broken = []
    for path in sources():
        if layer_of(module_name(path)) != layer:
            continue
        for imported in imports_of(path):
            if layer_of(imported) in NEVER[layer]:
                broken.append(f"{module_name(path)} imports {imported}")
    assert broken == [], "\n".join(broken)


def test_the_checker_sees_every_layer() -> None:
    layers = {layer_of(module_name(path)) for path in sources()}
    assert set(NEVER) <= layers
    assert "podium.core.policy" in {module_name(p) for p in sources()}
