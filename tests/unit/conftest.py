"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pigeon.store import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A real SQLite store in the test's own directory, closed after."""
    opened = SqliteStore(tmp_path / "pigeon.db")
    await opened.open()
    yield opened
    await opened.close()
