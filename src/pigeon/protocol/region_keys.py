"""Device keys asked of another region (issue 12, deliverable 6; docs/architecture.md,
"Regions", "Secret chats across regions"): the devices of people homed there
(``<prefix>.region.<name>.keys``) and a key of each of their devices to start an Olm session
with (``<prefix>.region.<name>.claim``), both request/reply. The asking region vouches only
for its own people (``asker_id`` must be an id of ``origin``); the keys' region runs its own
rule of who may reach whom (domain/keys.py) on its own copy, and answers at most the bounds
below. Envelopes travel on the stream (:class:`pigeon.protocol.regions.CrossEnvelope`).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from .keys import MAX_DEVICES_PER_CALL, MAX_USERS_PER_QUERY, ClaimedKey, DeviceKeys
from .regions import ID, RegionName

#: devices one answer to a keys question carries at most (of at most 100 people); past it
#: the answering region leaves the rest out (a person with more devices than that is not
#: someone a secret chat can reach whole anyway: each message is one envelope per device)
MAX_REMOTE_DEVICES = 1_000


class KeysAsk(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """``asker_id`` (homed in ``origin``) asks for the devices of these people."""

    origin: RegionName
    asker_id: ID
    user_ids: Annotated[list[ID], Meta(min_length=1, max_length=MAX_USERS_PER_QUERY)]


class KeysFound(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The devices the asker may see (people it may not see are left out, as at home)."""

    devices: Annotated[list[DeviceKeys], Meta(max_length=MAX_REMOTE_DEVICES)] = []


class ClaimAsk(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """``asker_id``'s device ``asker_device`` (homed in ``origin``) claims a key of each of
    these devices (homed in the region asked)."""

    origin: RegionName
    asker_id: ID
    asker_device: ID
    device_ids: Annotated[list[ID], Meta(min_length=1, max_length=MAX_DEVICES_PER_CALL)]


class ClaimFound(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A key of each device the asker may reach (a one-time key taken there, atomically, or
    the fallback key); other devices are left out."""

    keys: Annotated[list[ClaimedKey], Meta(max_length=MAX_DEVICES_PER_CALL)] = []
