"""Upgrades (issue 11): a database written by the previous release's own server (commit
7150398, schema version 5; tests/fixtures/make_release_db.py made the fixture) is opened by
today's server, migrated, and serves every session, message, username and sync position it
held, and today's features on top."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pigeon.client import Client, Profile
from pigeon.protocol import methods as m
from pigeon.store.migrations import MIGRATIONS
from pigeon.testing import ServerProcess

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RELEASE = "7150398"


def old_database(data: Path) -> dict:  # type: ignore[type-arg]
    data.mkdir(mode=0o700)
    conn = sqlite3.connect(data / "pigeon.db")
    conn.executescript((FIXTURES / f"release_{RELEASE}.sql").read_text())
    assert conn.execute("PRAGMA user_version").fetchone() == (5,)
    conn.close()
    return json.loads((FIXTURES / f"release_{RELEASE}.json").read_text())


def device(server: ServerProcess, person: dict) -> Client:  # type: ignore[type-arg]
    profile = Profile.load(None)
    profile.token, profile.user_id, profile.session_id = (
        person["token"], person["user_id"], person["session_id"])
    profile.pts = person["pts"]
    return Client(server.url, profile)


async def test_the_previous_releases_database_is_migrated_and_serves_everything(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    expected = old_database(data)
    people = expected["people"]
    with ServerProcess(data) as server:
        alice, bob, carol = (device(server, people[n]) for n in ("alice", "bob", "carol"))
        for client in (alice, bob, carol):
            await client.connect()  # the old sessions' tokens still log in
        try:
            chat, group = expected["private_chat"], expected["group"]
            for client in (alice, bob):
                shown = [msg.text for msg in reversed(await client.messages.history(chat))]
                assert shown == expected["private_texts"]
            assert [msg.text for msg in await carol.messages.history(group)] == \
                expected["group_texts"]
            # Sync positions: each is where the old server left it, and the log behind it
            # is still there to be read from the start.
            for name, client in (("alice", alice), ("bob", bob), ("carol", carol)):
                state = await client.call("updates.get_state", m.GetState())
                assert state.pts == people[name]["pts"]
                difference = await client.call("updates.get_difference", m.GetDifference(pts=0))
                assert len(difference.updates) == people[name]["pts"]
            assert (await bob.account.resolve_username("@alice_old")).id == people["alice"][
                "user_id"]
            assert (await alice.account.me()).who_can_message == "everyone"  # tests' default
            sessions = await alice.sessions.list()
            assert [s.id for s in sessions] == [people["alice"]["session_id"]]
            # Today's features on the old data: the old private chat is no request.
            assert await bob.requests.list() == []
            await bob.safety.block(people["alice"]["user_id"])
            await alice.messages.send(chat, "after the upgrade")
            assert [msg.text for msg in reversed(await bob.messages.history(chat))] == \
                expected["private_texts"]
            contact = await alice.contacts.add(people["bob"]["user_id"], "Bob")
            assert contact.user.username == "bob_old"
        finally:
            for client in (alice, bob, carol):
                await client.close()
    conn = sqlite3.connect(data / "pigeon.db")
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
