"""The login-code baselines are saved now and then in the background, and once more at the
stop: a background save ends, and the stop's save does not wait on one forever (it used to:
the background save waited for itself, and every stop of a server up more than a minute spent
its shield's whole bound, 3 s, on it)."""

import asyncio
import dataclasses
import json

from pigeon.server.settings import Settings
from pigeon.shield.guard import Shield
from pigeon.shield.logins import BUDGETS_FILE, SAVE_EVERY


async def test_the_background_save_ends_and_the_stop_save_follows_it(tmp_path, clock):
    settings = dataclasses.replace(Settings(), data=tmp_path)
    s = Shield(settings, b"k" * 32, clock=clock, wall_clock=clock)
    for _ in range(SAVE_EVERY):
        s.logins.tick()
    background = s.logins._saving
    assert background is not None
    await asyncio.wait_for(background, 10)  # it ends (no timing: 10 s is only a backstop)
    assert set(json.loads((tmp_path / BUDGETS_FILE).read_text())) == {"country", "global"}
    (tmp_path / BUDGETS_FILE).unlink()
    for _ in range(SAVE_EVERY):
        s.logins.tick()
    await asyncio.wait_for(s.logins.save(), 10)  # waits for the running one, then writes
    assert (tmp_path / BUDGETS_FILE).exists()
