"""Stickers through a real server process (issue 10): an artist's set made, filled over
HTTP, published; found, installed on every device of a user, sent as a message; and who may
do what to whose set. The image rules themselves: tests/unit/test_sticker_images.py."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from sticker_images import jpeg, png

from pigeon.client import Client
from pigeon.protocol.errors import Conflict, Forbidden, InvalidArgument, NotFound, Unauthorized
from pigeon.client import Profile
from pigeon.protocol.updates import DeleteMessages, NewMessage, StickersInstalled
from pigeon.testing import ServerProcess, login


async def next_of(client: Client, kind: type, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    async def wait():  # type: ignore[no-untyped-def]
        async for update in client.updates():
            if isinstance(update, kind):
                return update
        raise AssertionError("updates ended")
    return await asyncio.wait_for(wait(), timeout)


def http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
         ) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
async def people(shared_server, phone, tmp_path):  # type: ignore[no-untyped-def]
    artist_phone, fan_phone = phone(), phone()
    artist = await login(shared_server, artist_phone, "Ada <b>&</b>", profile=tmp_path / "artist")
    fan = await login(shared_server, fan_phone, "Fan", profile=tmp_path / "fan", device="phone")
    fan2 = await login(shared_server, fan_phone, "Fan", profile=tmp_path / "fan2", device="laptop")
    yield artist, fan, fan2
    for client in (artist, fan, fan2):
        await client.close()


async def test_artist_makes_a_set_that_fans_install_on_every_device_and_send(shared_server,
                                                                                people):
    server = shared_server
    artist, fan, fan2 = people
    made = await artist.stickers.create("Cats_1", "Cats <script>", licence="CC BY 4.0")
    assert made.info.name == "cats_1" and not made.info.published and made.stickers == []
    await artist.stickers.add("cats_1", png(300, 200), ["😺"])
    await artist.stickers.add("cats_1", jpeg(200, 640), ["😸", "😺", "😸"])
    whole = await artist.stickers.add("cats_1", png(40, 40), ["🐱"])
    sizes = [(s.width, s.height) for s in whole.stickers]
    assert sizes == [(512, 341), (160, 512), (512, 512)]
    assert whole.stickers[1].emoji == ["😸", "😺"]  # each emoji once, in order
    assert all(0 < s.size <= 512 * 1024 for s in whole.stickers)
    moved = await artist.stickers.move("cats_1", 3, 1)
    assert [s.emoji[0] for s in moved.stickers] == ["🐱", "😺", "😸"]
    removed = await artist.stickers.remove("cats_1", 1)
    assert [s.emoji[0] for s in removed.stickers] == ["😺", "😸"]

    # Unpublished, it is the artist's alone.
    with pytest.raises(NotFound) as hidden:
        await fan.stickers.get("cats_1")
    assert hidden.value.code == "STICKER_SET_NOT_FOUND"
    assert await fan.stickers.search("cats") == []
    await artist.stickers.publish("cats_1")
    found = await fan.stickers.search("SCRIPT")  # by title, case-insensitive
    assert [i.name for i in found] == ["cats_1"] and found[0].author_name == "Ada <b>&</b>"
    assert [i.name for i in await fan.stickers.search("ats_")] == ["cats_1"]  # by name

    installed = await fan.stickers.install("cats_1")
    assert installed.names == ["cats_1"]
    synced = await next_of(fan2, StickersInstalled)  # the other device hears of it
    assert synced.names == ["cats_1"] and fan2.stickers.installed == ["cats_1"]
    assert (await fan.stickers.install("cats_1")).names == ["cats_1"]  # twice: no change
    assert (await fan2.stickers.get("cats_1")).info.installed

    hits = await fan.stickers.by_emoji("😺")
    assert [(h.set, h.sticker.index) for h in hits] == [("cats_1", 1), ("cats_1", 2)]
    assert await fan.stickers.by_emoji("🐶") == []

    assert artist.profile.user_id is not None
    chat = await fan.chats.open_private(artist.profile.user_id)
    await fan.messages.send(chat.id, "hi")
    await artist.messages.send(chat.id, "hello")
    sent = await fan.stickers.send(chat.id, "cats_1", 2)
    assert sent.message.text == "" and sent.message.sticker is not None
    assert sent.message.sticker.file_id == removed.stickers[1].file_id
    got = await next_of(artist, NewMessage)
    while got.message.sticker is None:
        got = await next_of(artist, NewMessage)
    assert (got.message.sticker.set, got.message.sticker.index, got.message.sticker.emoji) \
        == ("cats_1", 2, "😸")
    history = await artist.messages.history(chat.id, limit=1)
    assert history[0].sticker == got.message.sticker

    assert (await fan2.stickers.uninstall("cats_1")).names == []
    # fan's own install came back to it too (every device hears, the caller's as well)
    assert (await next_of(fan, StickersInstalled)).names == ["cats_1"]
    assert (await next_of(fan, StickersInstalled)).names == []
    assert await fan.stickers.by_emoji("😺") == []

    # Anyone may fetch the image; it never changes, so a cache may keep it.
    file_id = removed.stickers[0].file_id
    status, headers, body = await asyncio.to_thread(
        http, f"{server.url}/stickers/files/{file_id}.webp")
    assert status == 200 and headers["Content-Type"] == "image/webp"
    assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"
    assert headers["ETag"] == f'"{file_id}"' and "immutable" in headers["Cache-Control"]
    status, _, _ = await asyncio.to_thread(
        http, f"{server.url}/stickers/files/{file_id}.webp",
        headers={"If-None-Match": f'"{file_id}"'})
    assert status == 304
    for missing in ("0" * 64 + ".webp", "../../pigeon.db", "x.webp"):
        assert (await asyncio.to_thread(http, f"{server.url}/stickers/files/{missing}"))[0] \
            == 404


async def test_only_the_author_changes_a_set_and_a_published_set_only_grows(people):
    artist, fan, _ = people
    await artist.stickers.create("dogs", "Dogs")
    with pytest.raises(NotFound):  # nothing to publish yet
        await artist.stickers.publish("dogs")
    await artist.stickers.add("dogs", png(), ["🐶"])
    await artist.stickers.add("dogs", png(), ["🐕"])
    with pytest.raises(Conflict) as taken:
        await fan.stickers.create("DOGS", "Mine now")
    assert taken.value.code == "STICKER_SET_NAME_TAKEN"
    # Someone else's set, unpublished: as if it did not exist.
    with pytest.raises(NotFound):
        await fan.stickers.add("dogs", png(), ["🐶"])
    await artist.stickers.publish("dogs")
    # Published: its author is public, and nobody else may change it.
    for call in (fan.stickers.add("dogs", png(), ["🐶"]), fan.stickers.remove("dogs", 1),
                 fan.stickers.move("dogs", 1, 2), fan.stickers.publish("dogs")):
        with pytest.raises(Forbidden) as refused:
            await call
        assert refused.value.code == "NOT_SET_AUTHOR"
    for call in (artist.stickers.remove("dogs", 1), artist.stickers.move("dogs", 1, 2)):
        with pytest.raises(Conflict) as published:
            await call
        assert published.value.code == "STICKER_SET_PUBLISHED"
    grown = await artist.stickers.add("dogs", png(), ["🦮"])  # a published set grows
    assert len(grown.stickers) == 3 and grown.info.published
    with pytest.raises(NotFound) as no_such:
        await fan.stickers.send(1, "dogs", 9)
    assert no_such.value.code == "STICKER_NOT_FOUND"


async def test_bad_input_is_refused_with_a_typed_error_and_nothing_is_added(shared_server,
                                                                            people):
    server = shared_server
    artist, fan, _ = people
    await artist.stickers.create("frogs", "Frogs")
    for bad_name in ("ab", "1frog", "frög", "fr-og", "a" * 33):
        with pytest.raises(InvalidArgument) as invalid:
            await artist.stickers.create(bad_name, "x")
        # past the wire's bound (32), the frame's decoder refuses it before the rule does
        wanted = "INVALID_ARGUMENT" if len(bad_name) > 32 else "STICKER_SET_NAME_INVALID"
        assert invalid.value.code == wanted
    with pytest.raises(InvalidArgument):
        await artist.stickers.create("frogs2", "\x1b[2Jtitle")
    for images, emoji, code in ((b"not an image at all", ["🐸"], "IMAGE_INVALID"),
                                (png()[:200], ["🐸"], "IMAGE_INVALID"),
                                (png(), ["frog"], "EMOJI_INVALID"),
                                (png(), [], "EMOJI_INVALID"),
                                (png(), [chr(0x1F400 + i) for i in range(9)], "EMOJI_INVALID")):
        with pytest.raises(InvalidArgument) as refused:
            await artist.stickers.add("frogs", images, emoji)
        assert refused.value.code == code
    assert (await artist.stickers.get("frogs")).stickers == []
    # The HTTP door: no token, a wrong one, too big a body.
    url = f"{server.url}/v1/stickers/frogs?emoji=%F0%9F%90%B8"
    status, _, body = await asyncio.to_thread(http, url, data=png())
    assert status == 401 and b"AUTH_REQUIRED" in body
    status, _, body = await asyncio.to_thread(
        http, url, data=png(), headers={"Authorization": "Bearer pgn_nope"})
    assert status == 401 and b"SESSION_INVALID" in body
    token = artist.profile.token
    status, _, body = await asyncio.to_thread(
        http, url, data=b"\0" * (5 * 1024 * 1024 + 1),
        headers={"Authorization": f"Bearer {token}"})
    assert status == 413 and b"IMAGE_TOO_LARGE" in body
    with pytest.raises(Unauthorized):
        await Client(server.url, fan.profile.directory / "nowhere").stickers.add(
            "frogs", png(), ["🐸"])
    assert (await artist.stickers.get("frogs")).stickers == []


async def test_a_page_of_stickers_loads_within_its_own_budget_not_the_http_one(phone, tmp_path):
    """A set's page shows up to 120 images at once: with the real ``http_rate`` (burst 20)
    they would be refused; sticker files have a budget of their own."""
    with ServerProcess(tmp_path / "data", env={"PIGEON_HTTP_RATE": "5/1s burst 20"}) as server:
        artist = await login(server, phone(), "Ada", profile=tmp_path / "ada")
        try:
            await artist.stickers.create("many", "Many")
            whole = await artist.stickers.add("many", png(), ["🦉"])
        finally:
            await artist.close()
        url = f"{server.url}/stickers/files/{whole.stickers[0].file_id}.webp"
        statuses = await asyncio.gather(*(asyncio.to_thread(http, url) for _ in range(40)))
        assert [s for s, _, _ in statuses] == [200] * 40


async def test_uploads_are_charged_to_the_session_not_the_addresss_http_budget(phone, tmp_path):
    """An artist adding many stickers spends their session's call budget (an add costs 10
    calls), not the address's budget for anonymous HTTP (burst 20), and is never banned for
    the latter; past the session's budget: 429 RATE_LIMITED, nothing added."""
    env = {"PIGEON_HTTP_RATE": "5/1s burst 20", "PIGEON_RATE_SESSION": "1/1h burst 300"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        artist = await login(server, phone(), "Ada", profile=tmp_path / "ada")
        try:
            await artist.stickers.create("busy", "Busy")
            for _ in range(25):  # more than http_rate's burst
                whole = await artist.stickers.add("busy", png(16, 16), ["🦉"])
            assert len(whole.stickers) == 25
            url = f"{server.url}/v1/stickers/busy?emoji=%F0%9F%A6%89"
            auth = {"Authorization": f"Bearer {artist.profile.token}"}
            answers = []
            while len(answers) < 10 and (not answers or answers[-1][0] == 200):
                answers.append(await asyncio.to_thread(http, url, data=png(16, 16),
                                                       headers=auth))
            status, headers, body = answers[-1]  # the budget (300) ran out: refused
            assert status == 429 and b"RATE_LIMITED" in body and "Retry-After" in headers
            added = 25 + len(answers) - 1
            assert 25 < added < 30  # 300 / 10, less the calls of logging in and creating
            assert len((await artist.stickers.get("busy")).stickers) == added
        finally:
            await artist.close()


async def test_a_version_1_device_gets_a_placeholder_for_the_installed_list(shared_server,
                                                                          phone, tmp_path):
    """``stickers_installed`` is version 2: a version-1 device of the same user gets an empty
    ``delete_messages`` at its pts instead, so its sync stays gap-free and it moves on."""
    number = phone()
    artist = await login(shared_server, phone(), "Ada", profile=tmp_path / "ada")
    fan = await login(shared_server, number, "Fan", profile=tmp_path / "fan")
    old = Client(shared_server.url, Profile.load(tmp_path / "old"), versions=(1,))
    await old.connect()
    try:
        await old.auth.send_code(number, sms=True)
        await old.auth.sign_in(await asyncio.to_thread(shared_server.code_for, number))
        assert old.version == 1
        await artist.stickers.create("oldies", "Oldies")
        await artist.stickers.add("oldies", png(), ["📼"])
        await artist.stickers.publish("oldies")
        installed = await fan.stickers.install("oldies")
        placeholder = await next_of(old, DeleteMessages)
        assert placeholder.message_ids == [] and placeholder.pts == installed.pts
        assert old.skipped_updates == 0 and old.profile.pts == installed.pts
    finally:
        for client in (artist, fan, old):
            await client.close()
