"""Contract: end-to-end encrypted groups take ciphertext only (issue 9, deliverable 4)."""

from __future__ import annotations

from contract_support import MAX_MEMBERS, T0, full_difference, make_users, pushed_to, raises

from pigeon.domain.messages import forward_origin
from pigeon.protocol import updates as up
from pigeon.protocol.errors import Forbidden, InvalidArgument
from pigeon.protocol.media import Media
from pigeon.protocol.types import MessageSticker
from pigeon.store import Store

SEALED = b"\x83\xa1v\x01opaque megolm bytes"


async def test_secret_group_stores_and_relays_ciphertext_only(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat, _ = await store.create_group(a, "T", [b], T0, MAX_MEMBERS, secret=True)
    assert chat.secret and chat.kind == "group"
    assert (await store.get_chat(b, chat.id)).secret
    sent, _, pushes = await store.send_message(a, chat.id, 1, "", T0, ciphertext=SEALED)
    assert (sent.text, sent.ciphertext) == ("", SEALED)
    [pushed] = pushed_to(pushes, b)
    assert isinstance(pushed, up.NewMessage) and pushed.message.ciphertext == SEALED
    [read] = await store.history(b, chat.id, None, 10)
    assert (read.text, read.ciphertext) == ("", SEALED)
    synced = [u for u in await full_difference(store, b) if isinstance(u, up.NewMessage)]
    assert [u.message.ciphertext for u in synced] == [SEALED]
    # Replies and deletion work as anywhere.
    reply, _, _ = await store.send_message(b, chat.id, 2, "", T0, reply_to=sent.id,
                                           ciphertext=SEALED)
    assert reply.reply_to == sent.id


async def test_secret_group_refuses_plaintext_edits_and_forwards(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat, _ = await store.create_group(a, "T", [b], T0, MAX_MEMBERS, secret=True)
    plain, _ = await store.create_group(a, "P", [b], T0, MAX_MEMBERS)
    with raises(Forbidden, "ENCRYPTION_REQUIRED"):
        await store.send_message(a, chat.id, 1, "in clear", T0)
    with raises(Forbidden, "ENCRYPTION_REQUIRED"):  # text beside ciphertext: still plaintext
        await store.send_message(a, chat.id, 2, "leak", T0, ciphertext=SEALED)
    sent, _, _ = await store.send_message(a, chat.id, 3, "", T0, ciphertext=SEALED)
    with raises(Forbidden, "ENCRYPTION_REQUIRED"):
        await store.edit_message(a, chat.id, sent.id, "in clear", T0)
    shown, _, _ = await store.send_message(a, plain.id, 4, "hello", T0)
    with raises(Forbidden, "ENCRYPTION_REQUIRED"):
        await store.send_message(a, chat.id, 5, shown.text, T0, fwd_from=forward_origin(shown))
    with raises(InvalidArgument, "CHAT_NOT_ENCRYPTED"):
        await store.send_message(a, plain.id, 6, "", T0, ciphertext=SEALED)
    assert [m.id for m in await store.history(b, chat.id, None, 10)] == [sent.id]


async def test_plain_groups_unchanged_and_secret_is_not_large(store: Store) -> None:
    a, b = await make_users(store, 2)
    plain, _ = await store.create_group(a, "P", [b], T0, MAX_MEMBERS)
    assert not plain.secret
    sent, _, _ = await store.send_message(a, plain.id, 1, "hi", T0)
    assert (sent.text, sent.ciphertext) == ("hi", None)
    with raises(InvalidArgument, "INVALID_ARGUMENT"):
        await store.create_group(a, "L", [b], T0, MAX_MEMBERS, large=True, secret=True)


async def test_only_members_send_or_read_ciphertext(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat, _ = await store.create_group(a, "T", [b], T0, MAX_MEMBERS, secret=True)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.send_message(c, chat.id, 1, "", T0, ciphertext=SEALED)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.history(c, chat.id, None, 10)
    await store.remove_member(a, chat.id, b, T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.send_message(b, chat.id, 2, "", T0, ciphertext=SEALED)
    after, _, pushes = await store.send_message(a, chat.id, 3, "", T0, ciphertext=SEALED)
    assert pushed_to(pushes, b) == []  # a removed member is not sent what comes after


async def test_secret_group_refuses_stickers_and_files_even_beside_ciphertext(
        store: Store) -> None:
    a, b = await make_users(store, 2)
    chat, _ = await store.create_group(a, "T", [b], T0, MAX_MEMBERS, secret=True)
    sticker = MessageSticker(set="owls", index=1, emoji="x", file_id="f" * 64)
    media = Media(kind="document", file_id="m" * 32, name="a.txt", size=1, mime="text/plain")
    for extra in ({"sticker": sticker}, {"media": media}):
        for random_id, ciphertext in ((1, None), (2, SEALED)):
            with raises(Forbidden, "ENCRYPTION_REQUIRED"):  # the server holds them in clear
                await store.send_message(a, chat.id, random_id, "", T0, ciphertext=ciphertext,
                                         **extra)  # type: ignore[arg-type]
    assert await store.history(b, chat.id, None, 10) == []
