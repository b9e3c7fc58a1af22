"""The SDK stands on the protocol alone (issue 8, deliverable 5): it imports nothing from the
server or its shield, so a client install needs neither and their internals can change
without breaking it. The proof-of-work format lives in ``pigeon.protocol.pow``, the token
bucket that a ``Budget`` describes in ``pigeon.protocol.buckets``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pigeon.client

CLIENT = Path(pigeon.client.__file__).parent
FORBIDDEN = ("pigeon.shield", "pigeon.server", "pigeon.store", "pigeon.bus", "pigeon.cli")


def imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_the_sdk_imports_nothing_from_the_server_or_the_shield():
    modules = sorted(CLIENT.glob("*.py"))
    assert len(modules) > 3
    for path in modules:
        for name in imports(path):
            assert not any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN), \
                f"client/{path.name} imports {name}: the SDK reads only the protocol package"


def test_importing_the_sdk_loads_no_server_module():
    # The transitive check: what the interpreter actually loads, not only the direct imports.
    code = ("import sys, pigeon.client\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['pigeon', 'shield'], ['pigeon', 'server']))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "", f"importing pigeon.client loads {out}"
