"""One process at a time uses a profile's end-to-end keys (two would each save their own
Olm sessions and lose the other's ratchet steps): a second waits, then says so."""

from __future__ import annotations

import pytest

from pigeon.cli import secret as secret_cli
from pigeon.cli.context import Ctx
from pigeon.protocol.errors import Conflict


async def test_keys_in_use_by_one_process_at_a_time(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(secret_cli, "E2E_LOCK_WAIT", 0.2)
    ctx = Ctx(str(tmp_path / "profile"), by_flag=True, ca_file=None)
    async with secret_cli.keys_in_use(ctx):
        with pytest.raises(Conflict) as refused:
            async with secret_cli.keys_in_use(ctx):
                pass
        assert refused.value.code == "PROFILE_BUSY"
        assert "another pigeon process" in refused.value.message
    async with secret_cli.keys_in_use(ctx):  # let go: the next one gets it
        pass
