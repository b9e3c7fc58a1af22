"""The mailbox of verification steps shared by the readers of one device's inbox
(client/sas_mailbox.py): sealed, bounded, stale mail dropped, taken once."""

from __future__ import annotations

import os

import pytest

from pigeon.client.profile import write_private
from pigeon.client.sas_mailbox import MAILBOX_FILE, MAX_MAIL, Mailbox
from pigeon.crypto.payloads import Verification
from pigeon.crypto.sas import DEFAULT_TIMEOUT
from pigeon.crypto.vault import Vault


def step(txn: str, kind: str = "start") -> Verification:
    return Verification(transaction_id=txn, step=kind)


@pytest.mark.parametrize("on_disk", [True, False])
async def test_mail_is_sealed_bounded_taken_once_and_goes_stale(tmp_path, on_disk):
    now = [1000.0]
    vault = Vault(tmp_path / "device-keys.vault", os.urandom(16), os.urandom(64), write_private)
    box = Mailbox(vault, tmp_path if on_disk else None, lambda: now[0])
    for i in range(MAX_MAIL + 6):
        await box.leave(7, 70, step(f"transaction-{i:03d}"))
    if on_disk:
        sealed = (tmp_path / MAILBOX_FILE).read_bytes()
        assert b"transaction-" not in sealed and b"start" not in sealed
        again = Mailbox(vault, tmp_path, lambda: now[0])  # another process, same profile
    else:
        again = box
    taken = await again.take(lambda mail, v: v.transaction_id.endswith("069"))
    assert [(m.user_id, m.device_id, m.verification()) for m in taken] == [
        (7, 70, step("transaction-069"))]
    assert await box.take(lambda mail, v: v.transaction_id.endswith("069")) == []
    assert await box.take(lambda mail, v: v.transaction_id.endswith("000")) == []  # bounded
    now[0] += DEFAULT_TIMEOUT + 1
    assert await box.take(lambda mail, v: True) == []  # stale: dropped


async def test_a_damaged_mailbox_starts_empty(tmp_path):
    vault = Vault(tmp_path / "device-keys.vault", os.urandom(16), os.urandom(64), write_private)
    (tmp_path / MAILBOX_FILE).write_bytes(b"not a vault")
    box = Mailbox(vault, tmp_path, lambda: 0.0)
    assert await box.take(lambda mail, v: True) == []
    await box.leave(1, 2, step("transaction-1"))
    assert len(await box.take(lambda mail, v: True)) == 1
