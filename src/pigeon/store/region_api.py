"""The store's part in regions (docs/architecture.md, "Regions"): remote accounts, the
cross-region outbox, and applying a message from another region. Implemented once for both
engines in :mod:`.sqlite_regions`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pigeon.protocol.keys import ClaimedKey, DeviceKeys, Envelope
from pigeon.protocol.media import Media
from pigeon.protocol.regions import Cross, CrossEnvelope, CrossFile, CrossStickerSet, RemoteUser
from pigeon.protocol.types import Message, MessageSticker
from pigeon.protocol.updates import Envelope as EnvelopeItem

if TYPE_CHECKING:
    from .base import Push
    from .sqlite_regions import Queued, Sides

#: outbox rows one relay read takes at most
MAX_OUTBOX_BATCH = 1_000


class RegionApi:
    #: whether this deployment has regions (server/backends.make_store says so): only then
    #: does an edit, a delete for everyone, a read mark or a pin in a private chat look for
    #: the other region's copy of the chat (docs/architecture.md, "Regions")
    crosses_regions: bool = False
    region: str = ""  # this region's name, with regions (server/backends.make_store)

    async def remember_remote(self, user: RemoteUser, region: str, now: float) -> None:
        """Keep (or refresh) the local row of ``user``, homed in ``region``."""
        raise NotImplementedError

    async def local_user(self, phone: str | None = None,
                         username_key: str | None = None) -> RemoteUser | None:
        """An account homed here, found by number (if discoverable) or by username."""
        raise NotImplementedError

    async def outbox(self, region: str, limit: int) -> list[Queued]:
        """The oldest messages queued for ``region`` (at most ``limit``, ≤ MAX_OUTBOX_BATCH)."""
        raise NotImplementedError

    async def outbox_done(self, ids: list[int]) -> None:
        """These outbox rows reached their region's stream: forget them."""
        raise NotImplementedError

    async def outbox_depth(self) -> dict[str, int]:
        """Messages queued per destination region."""
        raise NotImplementedError

    async def crossed_blob(self, digest: str) -> bool:
        """Whether the blob ``digest`` was sent to another region (a file of a message in a
        chat across regions): what another region may fetch."""
        raise NotImplementedError

    async def files_to_send(self, media: Media | None,
                            sticker: MessageSticker | None) -> tuple[list[CrossFile], int]:
        """The rows of a file (and its thumbnail) and the size of a sticker's image, as
        stored here, for a message sent into a group of another region."""
        raise NotImplementedError

    async def send_carried(self, sender_id: int, chat_id: int, random_id: int, text: str,
                           now: float, reply_to: int | None, files: list[CrossFile],
                           sticker: MessageSticker | None) -> tuple[Message, int, list[Push]]:
        """A message with a file or a sticker sent by a member homed elsewhere (forwarded by
        their region), the file rows kept under their ids there in the same transaction
        (their bytes fetched and checked before)."""
        raise NotImplementedError

    async def apply_cross(self, message: Cross, seq: int, now: float,
                          default_who_can_message: str | None) -> tuple[str, list[Push]]:
        """Item ``seq`` of the stream from ``message.origin`` (a message, an edit, a delete
        for everyone, a read mark): applied if it is the next one
        ("apply", with its pushes), else "old" (before) or "early" (wait for the one
        before it). Written once however often it comes."""
        raise NotImplementedError

    async def skip_cross(self, region: str, seq: int) -> str:
        """Item ``seq`` of ``region``'s stream will not be applied: let the next one come."""
        raise NotImplementedError

    async def typing_peer(self, user_id: int, chat_id: int) -> Sides | None:
        """The side homed elsewhere of the private chat ``chat_id`` of ``user_id`` (a
        member; NOT_A_MEMBER otherwise), or None: no such side."""
        raise NotImplementedError

    async def typing_audience(self, sender_id: int, recipient_id: int,
                              limit: int) -> tuple[int, list[int]] | None:
        """This copy's private chat of ``sender_id`` (homed elsewhere) and ``recipient_id``,
        and who in it may see the sender typing; None: no such chat here."""
        raise NotImplementedError

    async def keep_remote_sticker_set(self, theirs: CrossStickerSet, region: str,
                                      now: float, limit: int = 1 << 50) -> None:
        """Make or refresh this region's copy of a set published in ``region`` (its images
        stored here first); STICKER_SET_NAME_TAKEN if a set of that name by someone else is
        here; QUOTA_EXCEEDED if the images of all copies would be over ``limit`` bytes."""
        raise NotImplementedError

    async def remote_sticker_bytes(self, besides: str) -> int:
        """Bytes of the images of the copies of other regions' sticker sets here, but the
        one named ``besides``."""
        raise NotImplementedError

    async def reserve_user_ids(self, first_id: int, last_id: int) -> None:
        """New accounts, and new chats, get ids from first_id..last_id (this region's range):
        a group's id is then the same in every region that keeps a replica of it."""
        raise NotImplementedError

    async def group_home(self, chat_id: int) -> str | None:
        """The region a group lives in, if this region keeps only a replica of it; "" for a
        chat of this region (it never becomes a replica); None for no such chat (it may)."""
        raise NotImplementedError

    async def local_people(self, ids: list[int]) -> list[RemoteUser]:
        """Of these accounts, those homed here (at most MAX_IDS_PER_CALL)."""
        raise NotImplementedError

    # -- device keys and envelopes across regions (sqlite_region_keys.py) ------------------
    async def keys_for(self, asker_id: int, user_ids: list[int], limit: int) -> list[DeviceKeys]:
        """The devices (at most ``limit``) of the people among ``user_ids`` homed here whom
        ``asker_id``, homed elsewhere, may see or is tied to."""
        raise NotImplementedError

    async def devices_here(self, device_ids: list[int]) -> set[int]:
        """Of these device (session) ids, those of this region's own sessions: a region of
        index above 0 has sessions from before device ids were ranged, whose ids fall in
        region 0's range (at most MAX_IDS_PER_CALL)."""
        raise NotImplementedError

    async def claim_keys_for(self, asker_id: int, asker_device: int,
                             device_ids: list[int]) -> list[tuple[ClaimedKey, int]]:
        """:meth:`Store.claim_keys` for a device homed elsewhere, by the same rule as
        :meth:`keys_for`."""
        raise NotImplementedError

    async def send_envelopes_across(self, sender_id: int, sender_session: int,
                                    local: list[Envelope], remote: list[tuple[str, Envelope]],
                                    now: float) -> list[tuple[int, EnvelopeItem]]:
        """The local envelopes into their inboxes (as :meth:`Store.send_envelopes`) and the
        others, each with its device's region, into the outbox; one transaction."""
        raise NotImplementedError

    async def apply_envelope(self, cross: CrossEnvelope, seq: int,
                             now: float) -> tuple[str, list[tuple[int, EnvelopeItem]]]:
        """Item ``seq`` of ``cross.origin``'s stream into its device's inbox, if it is the
        next one; DEVICE_NOT_FOUND if its sender may not reach that device here."""
        raise NotImplementedError
