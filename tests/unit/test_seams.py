"""The seams issue 12 plugs into: the server knows the Store and Bus interfaces only, and
handlers know the device they serve only as plain data and a narrow capability."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pigeon.server
from pigeon.bus.base import Bus
from pigeon.server import services
from pigeon.server.connection import DeviceLink
from pigeon.server.dispatch import HANDLERS
from pigeon.store.base import Store

SERVER = Path(pigeon.server.__file__).parent
PICKER = "backends.py"  # the one module that names a backend


def backend_imports(source: str) -> list[str]:
    """Imports of a SQLite module, or of ``SqliteStore`` by any route, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if "sqlite" in a.name.lower()]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if "sqlite" in module.lower():
                found.append(module)
            found += [f"{module}.{a.name}" for a in node.names if "sqlite" in a.name.lower()]
        elif isinstance(node, ast.Attribute) and node.attr == "SqliteStore":
            found.append("SqliteStore")
    return found


def test_the_checker_sees_every_route_to_a_backend() -> None:
    assert backend_imports("from pigeon.store import SqliteStore") == ["pigeon.store.SqliteStore"]
    assert backend_imports("from pigeon.store.sqlite_log import push") == [
        "pigeon.store.sqlite_log"]
    assert backend_imports("import sqlite3") == ["sqlite3"]
    assert backend_imports("import pigeon.store\npigeon.store.SqliteStore()") == ["SqliteStore"]
    assert backend_imports("from pigeon.store import Store") == []


def test_only_the_picker_names_a_store_backend() -> None:
    modules = sorted(SERVER.glob("*.py"))
    assert len(modules) > 15  # the walk found the server package
    offenders = {p.name: backend_imports(p.read_text()) for p in modules if p.name != PICKER}
    assert {name: found for name, found in offenders.items() if found} == {}
    assert backend_imports((SERVER / PICKER).read_text())  # and the picker does pick one


def test_importing_the_server_loads_no_backend() -> None:
    # A fresh interpreter: this one has loaded SQLite for other tests. The picker imports
    # its backend when called, not when imported, so the whole server can load without it.
    code = ("import importlib, pkgutil, sys, pigeon.server\n"
            "for m in pkgutil.iter_modules(pigeon.server.__path__):\n"
            "    importlib.import_module('pigeon.server.' + m.name)\n"
            "print(' '.join(sorted(k for k in sys.modules if 'sqlite' in k)))\n")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert loaded == []


def test_services_are_typed_by_interface() -> None:
    # Annotations are strings here (postponed evaluation); resolve the two by name.
    hints = services.Services.__annotations__
    assert (hints["store"], hints["bus"]) == ("Store", "Bus")
    assert services.Store is Store and services.Bus is Bus


def connection_references(source: str) -> list[str]:
    """Every mention of the connection, by name, attribute or import, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.lower() == "connection":
            found.append(f".{node.attr}")
        elif isinstance(node, ast.Name) and node.id.lower() in ("connection", "conn"):
            found.append(node.id)
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").endswith("connection"):
                found.append(f"import {node.module}")
            found += [a.name for a in node.names if a.name == "Connection"]
    return found


def handler_modules() -> set[ModuleType]:
    return {inspect.getmodule(handler) for handler in HANDLERS.values()}  # type: ignore[misc]


def test_the_checker_sees_a_handler_reaching_for_the_connection() -> None:
    assert connection_references("caller.connection.login(1, 2)") == [".connection"]
    assert connection_references("from .connection import Connection") == [
        "import connection", "Connection"]
    assert connection_references("caller.device.log_in(1, 2)") == []


def test_handlers_do_not_touch_the_connection() -> None:
    modules = handler_modules()
    names = {m.__name__ for m in modules}
    assert {"pigeon.server.sessions", "pigeon.server.messages", "pigeon.server.chats"} <= names
    found = {m.__name__: connection_references(inspect.getsource(m)) for m in modules}
    assert {name: refs for name, refs in found.items() if refs} == {}


def test_a_caller_holds_plain_data_and_a_narrow_device() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(services.Caller)}
    assert set(fields) == {"services", "device", "address", "version", "proven"}
    assert "Connection" not in " ".join(str(t) for t in fields.values())
    # What the connection lends handlers is exactly the Device protocol, nothing more.
    protocol = {n for c in services.Device.__mro__ if c.__module__.startswith("pigeon")
                for n in vars(c) if not n.startswith("_")}
    lent = {n for n in vars(DeviceLink) if not n.startswith("_")}
    assert protocol == lent == {"user_id", "session_id", "sink_id", "ensure_room", "log_in",
                                "log_out", "follow"}
    assert DeviceLink.__slots__ == ("_connection",)  # no way to add a handle later by accident


IMPLEMENTATIONS = ("LocalBus", "MemoryShieldState", "SqliteStore")


def implementations_named(source: str) -> set[str]:
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    return names & set(IMPLEMENTATIONS)


def test_only_the_picker_names_an_implementation() -> None:
    assert implementations_named("from pigeon.bus import LocalBus\nLocalBus()") == {"LocalBus"}
    named = {p.name: implementations_named(p.read_text()) for p in SERVER.glob("*.py")}
    assert named.pop(PICKER) == set(IMPLEMENTATIONS)
    assert {name: found for name, found in named.items() if found} == {}
