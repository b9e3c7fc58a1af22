"""Tests that need PostgreSQL skip without it, except under CI=true, where they fail."""

from __future__ import annotations

import pytest

from pigeon import testing_postgres as pg


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             ("", pytest.skip.Exception)])
async def test_a_missing_server_skips_or_fails_under_ci(monkeypatch: pytest.MonkeyPatch,
                                                        ci: str, outcome: type) -> None:
    monkeypatch.setattr(pg, "ADMIN_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no PostgreSQL at"):
        await pg.require_postgres()
