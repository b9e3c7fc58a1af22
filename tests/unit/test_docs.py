"""docs/protocol.md is a contract with client authors: it must name everything on the wire."""

from pathlib import Path

import msgspec

from pigeon.protocol.errors import CODES
from pigeon.protocol.methods import METHODS
from pigeon.protocol.updates import AnyUpdate

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


def test_every_method_is_documented():
    assert [m for m in METHODS if f"`{m}`" not in DOC] == []


def test_every_update_is_documented():
    tags = [msgspec.inspect.type_info(t).tag for t in AnyUpdate.__args__]
    assert [t for t in tags if f"`{t}`" not in DOC] == []


def test_every_error_code_is_documented():
    assert [c for c in CODES if f"`{c}`" not in DOC] == []
