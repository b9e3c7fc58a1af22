"""Holding back, for a connection of an older version, the shapes it cannot read.

The server passes every result and every pushed update through :func:`hold_back` with the
connection's negotiated version before encoding it:

* an **enum value** newer than the connection becomes what its version has instead
  (``versions.OLDER_VALUE``: a new chat kind may read as ``group``);
* an **update type** newer than a version-1 connection becomes a placeholder of a type it
  knows, at the same ``pts``: an empty ``delete_messages`` (nothing deleted), or what the
  type registered as its downgrade. Dropping it instead would leave a hole in the ``pts``
  sequence that version 1 fills only with ``get_difference``, which would drop it again, for
  ever. Version 2 readers skip a type they do not know, so they are sent it as it is.

While no shape newer than the connection is registered (a connection of the newest version,
or any connection today) this returns its argument untouched at the cost of one comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from . import versions
from .types import OpenEnums
from .updates import DeleteMessages, Update

#: how an update type newer than version 1 is shown to a version-1 connection, by tag; types
#: absent here become an empty ``delete_messages`` in the same chat
DOWNGRADES: dict[str, Callable[[Any], Update]] = {}


def hold_back(value: Any, version: int) -> Any:
    """``value`` (a result, an update, a list of them) as a connection of ``version`` may
    receive it. The original is never modified."""
    if version >= versions.newest_shape():
        return value
    return _walk(value, version)


def _walk(value: Any, version: int) -> Any:
    if isinstance(value, list):
        walked = [_walk(v, version) for v in value]
        return value if all(a is b for a, b in zip(walked, value, strict=True)) else walked
    if not isinstance(value, msgspec.Struct):
        return value
    if isinstance(value, Update):
        tag = msgspec.inspect.type_info(type(value)).tag  # type: ignore[attr-defined]
        if versions.UPDATE_SINCE.get(tag, 1) > version and version < 2:
            value = DOWNGRADES.get(tag, placeholder)(value)
    changes: dict[str, Any] = {}
    open_fields = value.open_fields if isinstance(value, OpenEnums) else {}
    for name in value.__struct_fields__:
        field = getattr(value, name)
        if name in open_fields and isinstance(field, str):
            new = versions.value_for(open_fields[name], field, version)
        elif isinstance(field, (list, msgspec.Struct)):
            new = _walk(field, version)
        else:
            continue
        if new is not field:
            changes[name] = new
    return msgspec.structs.replace(value, **changes) if changes else value


def placeholder(update: Any) -> Update:
    """A version-1 update that changes nothing, at ``update``'s position: ``delete_messages``
    of no messages, in the update's chat if it has one."""
    chat_id = getattr(update, "chat_id", None)
    if chat_id is None:
        chat = getattr(update, "chat", None)
        chat_id = getattr(chat, "id", 0)
    return DeleteMessages(pts=update.pts, chat_id=chat_id if type(chat_id) is int else 0,
                          message_ids=[])
