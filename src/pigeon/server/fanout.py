"""A call's fan-out, charged to the caller's account, then delivered.

Every update a write makes (one per recipient: a message to an N-member group makes N) costs
the single writer thread. The shield gives each account a budget of them (``rate_fanout``,
docs/shield.md); a handler reserves the likely cost before its store call, which refuses the
call before it reaches the writer when the account is out of budget, and settles the real
cost once the store answered::

    fanout = reserve(caller, p.chat_id)
    message, pts, pushes = await store.send_message(...)
    fanout.deliver(pushes, chat_size=...)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pigeon.domain.streams import on_chat_stream
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.types import Chat
from pigeon.store import Push

from .services import Caller, Services
from .streams import follow_changes, publish


def recipients(pushes: Sequence[Push]) -> int:
    """What the writes cost: one per recipient's update, one per item of a chat's stream."""
    return sum(len(push.targets) or bool(push.stream) for push in pushes)


class FanOut:
    __slots__ = ("caller", "chat_id", "taken")

    def __init__(self, caller: Caller, chat_id: int | None, taken: float) -> None:
        self.caller = caller
        self.chat_id = chat_id
        self.taken = taken

    def deliver(self, pushes: Sequence[Push], *, exclude_sink: int | None = None,
                chat_size: int | None = None) -> None:
        services = self.caller.services
        services.shield.charge_fanout(self.caller.user_id, self.taken, recipients(pushes),
                                      self.chat_id, chat_size)
        follow_changes(services, pushes)
        services.bus.deliver(pushes, exclude_sink=exclude_sink)
        publish(services, pushes)


def reserve(caller: Caller, chat_id: int | None, estimate: int | None = None) -> FanOut:
    """Take the call's likely fan-out from the budget now (RATE_LIMITED if it is spent).

    Synchronous on purpose: a device's pipelined sends must reach the store queue in the
    order they came, so nothing here awaits. A chat whose size the shield does not know yet
    is looked up beside the call, for the next ones; until then its cost is settled after
    the write (the account goes into debt), so only the calls already in flight at that
    moment pass unreserved."""
    shield = caller.services.shield
    if (estimate is None and chat_id is not None and shield.enabled
            and chat_id not in shield.chat_sizes and chat_id not in shield.chat_sizes_asked):
        shield.chat_sizes_asked.add(chat_id)
        task = asyncio.create_task(_learn_size(caller.services, caller.user_id, chat_id))
        _lookups.add(task)
        task.add_done_callback(_lookups.discard)
    taken = shield.reserve_fanout(caller.user_id, chat_id, estimate)
    return FanOut(caller, chat_id, taken)


_lookups: set[asyncio.Task[None]] = set()  # references, so that the tasks are not collected


async def _learn_size(services: Services, user_id: int, chat_id: int) -> None:
    try:
        chat = await services.store.get_chat(user_id, chat_id)
    except (PigeonError, RuntimeError):
        return  # not a member (the call itself says so), or the store is closing
    finally:
        services.shield.chat_sizes_asked.discard(chat_id)
    services.shield.remember_chat_size(chat_id, fanout_size(chat))


def fanout_size(chat: Chat) -> int:
    """The updates one message to ``chat`` makes: one per member, or one item in all for a
    large chat, which is written once on its own stream (server/streams.py)."""
    return 1 if on_chat_stream(chat.kind) else chat.member_count


def afterwards(caller: Caller, chat_id: int | None = None) -> FanOut:
    """Charge only after the write: for what must always work, such as leaving a group."""
    return FanOut(caller, chat_id, 0.0)
