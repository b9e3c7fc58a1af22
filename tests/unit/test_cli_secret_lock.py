"""One process at a time uses a profile's end-to-end keys (two would each save their own
Olm sessions and lose the other's ratchet steps): a second waits, then says so; within a
process the hold is re-entrant."""

from __future__ import annotations

import pytest

from pigeon.cli import secret as secret_cli
from pigeon.cli.context import Ctx
from pigeon.protocol.errors import Conflict


async def test_keys_held_by_one_process_at_a_time(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(secret_cli, "E2E_LOCK_WAIT", 0.2)
    ctx = Ctx(str(tmp_path / "profile"), by_flag=True, ca_file=None)
    mine, other = secret_cli.ProfileKeys(ctx), secret_cli.ProfileKeys(ctx)
    async with mine.held():
        async with mine.held():  # re-entrant: an inbox batch inside a command
            pass
        with pytest.raises(Conflict) as refused:  # (another process: its own descriptor)
            async with other.held():
                pass
        assert refused.value.code == "PROFILE_BUSY"
    async with other.held():  # let go: the next one gets it
        pass


async def test_tasks_of_one_process_share_it(tmp_path, monkeypatch) -> None:
    import asyncio

    monkeypatch.setattr(secret_cli, "E2E_LOCK_WAIT", 0.2)
    keys = secret_cli.ProfileKeys(Ctx(str(tmp_path / "profile"), by_flag=True, ca_file=None))
    inside = 0

    async def use() -> None:
        nonlocal inside
        async with keys.held():
            inside += 1
            await asyncio.sleep(0.01)

    await asyncio.gather(*(use() for _ in range(5)))
    assert inside == 5
