"""Shapes from a protocol version no released client knows, for compatibility tests only.

``python -m pigeon.testing_shapes serve ...`` (``ServerProcess(..., module=MODULE)``) runs the
ordinary server after teaching it:

* an update type, ``x_poke``, of protocol version 2: a version-1 connection must get it held
  back, and this SDK, which does not know it, must skip it and move on;
* a chat kind, ``x_channel``, of version 2, which a version-1 connection gets as ``group``;
* two methods, ``test.emit_update`` and ``test.emit_chat``, that log one of each in the
  caller's own stream and push it to all of their devices, as a real update would be.

Nothing else imports this module, so no production path knows these shapes; and only the
server process learns them, never the test process, whose SDK must meet them as strangers.
The methods reach into the SQLite backend (a test may), so they work with that store only.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import msgspec

from pigeon.protocol import methods, updates, versions
from pigeon.protocol.frames import ServerProtocol
from pigeon.protocol.types import Affected, Chat
from pigeon.protocol.updates import ChatUpdate, Update

MODULE = "pigeon.testing_shapes"
POKE, CHANNEL, SINCE = "x_poke", "x_channel", 2
EMIT_UPDATE, EMIT_CHAT = "test.emit_update", "test.emit_chat"
CHANNEL_ID = 2**40  # no real chat has an id this high in a test


class Poke(Update, tag=POKE):
    note: str = ""


class Emit(methods.Params):
    note: str = ""


def register_shapes() -> None:
    """Teach this process the update type and the chat kind (not the methods)."""
    updates.register(Poke, SINCE)
    versions.register_value("ChatKind", CHANNEL, SINCE, older="group")


@contextlib.contextmanager
def shapes_registered() -> Iterator[None]:
    """:func:`register_shapes` for the duration of a unit test, then forget them again."""
    tables: list[dict[Any, Any]] = [versions.ENUMS, versions.OLDER_VALUE,
                                    versions.UPDATE_SINCE, updates.UPDATE_TYPES]
    saved = [copy.deepcopy(table) for table in tables]
    register_shapes()
    try:
        yield
    finally:
        for table, old in zip(tables, saved, strict=True):
            table.clear()
            table.update(old)
        versions.refresh()
        updates.body_decoder.rebuild()


def install() -> None:
    """Everything, in a server process: the shapes, and the methods that emit them."""
    from pigeon.server.dispatch import HANDLERS

    register_shapes()
    for name, result, handler in ((EMIT_UPDATE, Affected, _emit_update),
                                  (EMIT_CHAT, Chat, _emit_chat)):
        methods.METHODS[name] = methods.Method(Emit, result)
        ServerProtocol._param_decoders[name] = msgspec.msgpack.Decoder(Emit)
        HANDLERS[name] = handler


async def _log(caller: Any, update: Update, chat_id: int) -> int:
    """Log ``update`` in the caller's stream, push it to their devices; returns its pts."""
    from pigeon.domain.audience import only
    from pigeon.store.sqlite_log import push_stored

    push = await caller.services.store.engine.write(push_stored, chat_id, update,
                                                    only(caller.user_id))
    caller.services.bus.deliver([push])
    pts: int = push.targets[0][1]
    return pts


async def _emit_update(caller: Any, p: Emit) -> Affected:
    return Affected(pts=await _log(caller, Poke(pts=0, note=p.note), 0), count=1)


async def _emit_chat(caller: Any, p: Emit) -> Chat:
    chat = Chat(id=CHANNEL_ID, kind=CHANNEL, title=p.note or "a channel",  # type: ignore[arg-type]
                member_count=1, role="owner")
    await _log(caller, ChatUpdate(pts=0, chat=chat), CHANNEL_ID)
    return chat


if __name__ == "__main__":
    install()
    from pigeon.cli.main import main

    main()
