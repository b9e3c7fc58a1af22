"""The domain package stays pure: its rules take rows and return decisions, so that every
store backend can call them inside its own transaction (docs/architecture.md, "Rules in the
domain, backends store and fetch"). Nothing in it may reach for I/O, a clock or a layer above."""

from __future__ import annotations

import ast
from pathlib import Path

import pigeon.domain

DOMAIN = Path(pigeon.domain.__file__).parent
ALLOWED = ("__future__", "collections", "typing", "re", "unicodedata", "pigeon.protocol")


def imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_the_domain_imports_only_the_protocol_and_pure_standard_modules():
    modules = sorted(DOMAIN.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        for name in imports(path):
            assert any(name == ok or name.startswith(ok + ".") for ok in ALLOWED), \
                f"{path.name} imports {name}: the domain does no I/O and reads no clock"
