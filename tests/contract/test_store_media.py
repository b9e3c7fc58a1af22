"""Contract: media files and uploads (issue 10). Who may read a file (its uploader, members
who see a message carrying it; not a removed member, nor a stranger), upload bounds checked
with the account's usage in one transaction, and the collector against a send racing it and
against a sticker made of the same bytes."""

from __future__ import annotations

import msgspec
from contract_support import MAX_MEMBERS, T0, make_users, raises

from pigeon.domain.media import UploadLimits
from pigeon.protocol.errors import Conflict, InvalidArgument, NotFound
from pigeon.protocol.media import Media
from pigeon.store import Store
from pigeon.store.base import FileRecord, NewSticker, UploadRecord

LIMITS = UploadLimits(max_file_bytes=1000, quota_bytes=2500, max_in_flight=2)


def upload(n: int, user_id: int, size: int = 500) -> UploadRecord:
    return UploadRecord(id=f"up{n}", user_id=user_id, size=size, name=f"f{n}", part_size=256,
                        kind="document", keep_location=False, created=T0)


def stored(n: int, owner_id: int, size: int = 500) -> FileRecord:
    return FileRecord(id=f"file{n}", owner_id=owner_id, digest=f"{n:064x}", size=size,
                      name=f"f{n}", mime="text/plain", kind="document", created=T0)


def media(record: FileRecord) -> Media:
    return Media(kind="document", file_id=record.id, name=record.name, size=record.size,
                 mime=record.mime)


async def test_upload_bounds_are_checked_against_the_accounts_usage(store: Store) -> None:
    ada, bob = await make_users(store, 2)
    with raises(InvalidArgument, "FILE_TOO_LARGE"):
        await store.create_upload(upload(0, ada, size=1001), LIMITS)
    await store.create_upload(upload(1, ada), LIMITS)
    await store.create_upload(upload(2, ada), LIMITS)
    with raises(Conflict, "TOO_MANY_UPLOADS"):
        await store.create_upload(upload(3, ada), LIMITS)
    await store.finish_upload("up1", [stored(1, ada, size=1000)])
    await store.finish_upload("up2", [stored(2, ada, size=1000)])
    with raises(Conflict, "QUOTA_EXCEEDED"):  # 2,000 stored + 600 > 2,500
        await store.create_upload(upload(4, ada, size=600), LIMITS)
    await store.create_upload(upload(5, bob, size=600), LIMITS)  # bob's quota is his own
    with raises(NotFound, "UPLOAD_NOT_FOUND"):
        await store.get_upload("up5", ada)


async def test_who_may_read_a_file(store: Store) -> None:
    ada, bob, eve, dan = await make_users(store, 4)
    await store.create_upload(upload(1, ada), LIMITS)
    record = stored(1, ada)
    await store.finish_upload("up1", [record])
    assert (await store.readable_file(ada, "file1")).digest == record.digest
    for stranger in (bob, eve):
        with raises(NotFound, "FILE_NOT_FOUND"):
            await store.readable_file(stranger, "file1")
    group, _ = await store.create_group(ada, "g", [bob, dan], T0, MAX_MEMBERS)
    await store.send_message(ada, group.id, 1, "", T0, media=media(record))
    assert (await store.readable_file(bob, "file1")).id == "file1"
    await store.remove_member(ada, group.id, dan, T0)
    # a removed member reads the chat's files no more, nor does someone never in it
    for outside in (dan, eve):
        with raises(NotFound, "FILE_NOT_FOUND"):
            await store.readable_file(outside, "file1")


async def test_a_send_racing_the_collector_never_refers_to_a_collected_file(
        store: Store) -> None:
    ada, bob = await make_users(store, 2)
    await store.create_upload(upload(1, ada), LIMITS)
    record = stored(1, ada)
    await store.finish_upload("up1", [record])
    chat = await store.open_private(ada, bob, T0, "everyone")
    # the sender was found allowed to read it; then the collector ran before the send
    assert (await store.readable_file(ada, "file1")).id == "file1"
    looked, gone = await store.collect_files(T0 + 1, 100)
    assert looked == 1 and gone == [record.digest]
    with raises(NotFound, "FILE_NOT_FOUND"):
        await store.send_message(ada, chat.id, 1, "", T0, media=media(record))


async def test_a_referenced_file_is_kept_and_collected_once_nothing_refers_to_it(
        store: Store) -> None:
    ada, bob = await make_users(store, 2)
    await store.create_upload(upload(1, ada), LIMITS)
    record = stored(1, ada)
    await store.finish_upload("up1", [record])
    chat = await store.open_private(ada, bob, T0, "everyone")
    sent, _, _ = await store.send_message(ada, chat.id, 1, "", T0, media=media(record))
    assert await store.collect_files(T0 + 10, 100) == (0, [])
    await store.delete_messages(ada, chat.id, [sent.id], for_everyone=True)
    assert await store.collect_files(T0 + 10, 100) == (1, [record.digest])
    with raises(NotFound, "FILE_NOT_FOUND"):
        await store.readable_file(ada, "file1")


async def test_the_collector_keeps_a_blob_that_a_sticker_uses(store: Store) -> None:
    # Content-addressed: the bytes of ada's sticker, sent by bob as a file, are one blob.
    ada, bob = await make_users(store, 2)
    await store.create_upload(upload(1, bob), LIMITS)
    record = stored(1, bob)
    await store.finish_upload("up1", [record])
    await store.create_sticker_set(ada, "frogs", "Frogs", "", T0)
    await store.add_sticker(ada, "frogs", NewSticker(record.digest, ["🐸"], 512, 512, False,
                                                     record.size))
    looked, gone = await store.collect_files(T0 + 1, 100)
    assert looked == 1 and gone == []  # the file row goes, its blob stays the sticker's
    with raises(NotFound, "FILE_NOT_FOUND"):
        await store.readable_file(bob, "file1")
    assert (await store.get_sticker_set(ada, "frogs")).stickers[0].file_id == record.digest
    # once the sticker is gone too, a later file with the same bytes frees the blob
    await store.remove_sticker(ada, "frogs", 1)
    await store.create_upload(upload(2, bob), LIMITS)
    await store.finish_upload("up2", [msgspec.structs.replace(record, id="file2")])
    assert await store.collect_files(T0 + 1, 100) == (1, [record.digest])


async def test_deleting_an_account_removes_its_files_and_uploads(store: Store) -> None:
    ada, bob = await make_users(store, 2)
    await store.create_upload(upload(1, ada), LIMITS)
    photo = stored(1, ada)
    thumb = FileRecord(id="thumb1", owner_id=ada, digest=f"{100:064x}", size=10, name="t",
                       mime="image/jpeg", kind="thumb", created=T0, parent="file1")
    await store.finish_upload("up1", [photo, thumb])
    chat = await store.open_private(ada, bob, T0, "everyone")
    await store.send_message(ada, chat.id, 1, "", T0, media=media(photo))
    await store.create_upload(upload(2, ada), LIMITS)  # in progress
    await store.create_upload(upload(3, bob), LIMITS)
    shared = stored(4, bob)  # bob's file holds the same bytes as ada's second one
    await store.finish_upload("up3", [shared])
    await store.create_upload(upload(5, ada), LIMITS)
    await store.finish_upload("up5", [msgspec.structs.replace(shared, id="file5",
                                                              owner_id=ada)])
    await store.delete_user(ada)
    gone, digests, removed = await store.delete_user_media(ada, 1)  # one file a step
    assert set(gone) == {"up1", "up2", "up5"} and removed == 1
    rest = await store.delete_user_media(ada, 100)
    assert rest[0] == [] and rest[2] == 1
    # the photo and its thumbnail go; the bytes bob's file also holds stay
    assert sorted(digests + rest[1]) == sorted([photo.digest, thumb.digest])
    assert await store.delete_user_media(ada, 100) == ([], [], 0)
    for reader, file_id in ((bob, "file1"), (bob, "thumb1"), (ada, "file5")):
        with raises(NotFound, "FILE_NOT_FOUND"):
            await store.readable_file(reader, file_id)
    assert (await store.readable_file(bob, "file4")).digest == shared.digest
    with raises(NotFound, "UPLOAD_NOT_FOUND"):
        await store.get_upload("up2", ada)


async def test_a_named_reader_reads_and_keeps_a_file_no_message_carries(store: Store) -> None:
    # A secret chat's file: the server sees no message, only the peer the uploader named.
    ada, bob, eve = await make_users(store, 3)
    await store.create_upload(upload(1, ada), LIMITS)
    record = stored(1, ada)
    await store.finish_upload("up1", [record], readers=[bob, ada, bob])
    assert (await store.readable_file(bob, "file1")).digest == record.digest
    with raises(NotFound, "FILE_NOT_FOUND"):
        await store.readable_file(eve, "file1")
    assert await store.collect_files(T0 + 10, 100) == (0, [])  # kept for its reader
    await store.delete_user(bob)
    await store.delete_user_media(bob, 100)  # the reader gone: nothing keeps it now
    assert await store.collect_files(T0 + 10, 100) == (1, [record.digest])
