"""The CLI's modules import one another without a cycle (issue 8, deliverable 5): shared
helpers live in ``cli/context.py``, which ``main`` and the command groups both import, so no
module needs a late import to break a loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pigeon.cli

CLI = Path(pigeon.cli.__file__).parent


def local_imports(path: Path) -> set[str]:
    """The sibling modules that ``path`` imports (``from .x import``, ``from pigeon.cli.x``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                names.add(node.module.split(".")[0])
            elif node.level == 0 and node.module and node.module.startswith("pigeon.cli."):
                names.add(node.module.split(".")[2])
    return names


def test_cli_modules_import_each_other_without_a_cycle():
    graph = {p.stem: local_imports(p) for p in CLI.glob("*.py")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle: " + " -> ".join((*path, name))
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
    assert "main" not in set().union(*graph.values()), "a command module imports cli.main"
