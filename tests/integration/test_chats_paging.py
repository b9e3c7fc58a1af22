"""Issue 7, finding 7: no quotas on groups, and `chats.list` answered every dialog at once
(6,000 groups listed 45 times a second took other users' history from 1 ms to 619 ms). Now
the list comes in pages bounded in count and bytes, a page costs in the rate limits by its
size, and groups created and joined per account are capped. Real server processes."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from pigeon.protocol.errors import Conflict, RateLimited
from pigeon.testing import ServerProcess, login

LIMITS = {"PIGEON_MAX_GROUPS_CREATED_PER_DAY": "12", "PIGEON_MAX_GROUPS_JOINED": "14"}


@pytest.fixture(scope="module")
def paging_server(tmp_path_factory: pytest.TempPathFactory):
    with ServerProcess(tmp_path_factory.mktemp("paging") / "data", env=LIMITS) as server:
        yield server


async def test_chats_list_pages_through_every_dialog(paging_server, phone, tmp_path) -> None:
    owner = await login(paging_server, phone(), "Owner")
    try:
        owner.max_rate_wait = 0.0
        created = [(await owner.chats.create_group(f"G{i}", [])).id for i in range(10)]
        for chat_id in created[:5]:  # the five first groups get a message: they move up
            await owner.messages.send(chat_id, "news")
        first = await owner.chats.list(limit=4)
        assert len(first) == 4
        everything = [d async for d in owner.chats.all(page=3)]
        ids = [d.chat.id for d in everything]
        assert sorted(ids) == sorted(created) and len(set(ids)) == len(ids)
        assert ids[:5] == created[4::-1]  # newest message first, then newest joined
        assert [d.chat.id for d in first] == ids[:4]
        dates = [(d.date, d.chat.id) for d in everything]
        assert dates == sorted(dates, reverse=True)
    finally:
        await owner.close()


async def test_a_page_is_bounded_in_bytes(paging_server, phone) -> None:
    """Ten dialogs whose last messages are 4,096 emoji (16 KiB each): a page holds fewer than
    its limit, stays far under the SDK's 256 KiB frame limit, and paging still finds all."""
    owner = await login(paging_server, phone(), "Emoji")
    try:
        owner.max_rate_wait = 0.0
        big = "\U0001f600" * 4096
        created = []
        for i in range(10):
            chat = await owner.chats.create_group(f"E{i}", [])
            await owner.messages.send(chat.id, big)
            created.append(chat.id)
        page = await owner.chats.list(limit=100)
        assert 1 <= len(page) < 10
        assert len(msgspec.msgpack.encode(page)) <= 160 * 1024
        rest = await owner.chats.list(limit=100, after=page[-1])
        more = [d.chat.id for d in page + rest]
        while rest:
            rest = await owner.chats.list(limit=100, after=rest[-1])
            more += [d.chat.id for d in rest]
        assert sorted(more) == sorted(created)
    finally:
        await owner.close()


async def test_a_page_costs_by_its_size(tmp_path, phone) -> None:
    # A full page (100) costs 10 calls' worth: 3 pages fit in this session's burst of 38.
    with ServerProcess(tmp_path / "data", env={"PIGEON_RATE_SESSION": "1/1h burst 38"}) as srv:
        reader = await login(srv, phone(), "Reader")
        try:
            reader.max_rate_wait = 0.0
            for _ in range(3):
                await reader.chats.list(limit=100)
            with pytest.raises(RateLimited):
                await reader.chats.list(limit=100)
            await reader.chats.list(limit=5)  # a small page costs one: it still fits
        finally:
            await reader.close()


async def test_quotas_on_groups_created_and_joined(paging_server, phone) -> None:
    maker = await login(paging_server, phone(), "Maker")
    joiner = await login(paging_server, phone(), "Joiner")
    try:
        maker.max_rate_wait = joiner.max_rate_wait = 0.0
        for i in range(12):
            await maker.chats.create_group(f"Q{i}", [joiner.profile.user_id])
        with pytest.raises(Conflict) as refused:
            await maker.chats.create_group("one too many", [])
        assert refused.value.code == "QUOTA_EXCEEDED"
        # Joiner is in 12 groups; two more of his own make 14, the most he may be in.
        for i in range(2):
            await joiner.chats.create_group(f"Own{i}", [])
        helper = await login(paging_server, phone(), "Helper")
        try:
            group = await helper.chats.create_group("Full house", [])
            with pytest.raises(Conflict) as refused:
                await helper.chats.add_members(group.id, [joiner.profile.user_id])
            assert refused.value.code == "QUOTA_EXCEEDED"
        finally:
            await helper.close()
    finally:
        await maker.close()
        await joiner.close()


async def test_cli_chats_lists_more_than_a_page(tmp_path, phone) -> None:
    """`pigeon chats` pages through all: ten 16 KiB dialogs do not fit one page's bytes."""
    with ServerProcess(tmp_path / "data") as server:
        profile = tmp_path / "p"
        client = await login(server, phone(), "Many", profile=profile)
        try:
            for i in range(12):
                chat = await client.chats.create_group(f"Page{i}", [])
                if i < 10:
                    await client.messages.send(chat.id, "\U0001f600" * 4096)
            assert len(await client.chats.list()) < 12
        finally:
            await client.close()
        result = subprocess.run([sys.executable, "-m", "pigeon", "--profile", str(profile),
                                 "chats"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 12 and len({line.split()[0] for line in lines}) == 12
