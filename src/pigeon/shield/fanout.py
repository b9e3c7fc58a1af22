"""The fan-out budget (issue 7, finding 6): every update a write makes for someone else costs
the one writer thread (a message to a 20,000-member group took 415 ms of it and stalled
everyone's sends), so each account gets a budget of such updates (``rate_fanout``), and the
last known size of each chat lets a send be refused before it reaches the writer.

A part of :class:`~.guard.Shield`, which sets up what these methods use; server/fanout.py
reserves before a write and settles after it.
"""

from __future__ import annotations

from collections import OrderedDict

from pigeon.protocol.errors import RateLimited

from .state import Limiter


class FanoutBudget:
    # Set by Shield.__init__.
    enabled: bool
    per_account_fanout: Limiter
    chat_sizes: OrderedDict[int, int]
    max_chat_sizes: int
    refused: dict[str, int]

    def reserve_fanout(self, user_id: int, chat_id: int | None,
                       estimate: int | None = None) -> float:
        """Before a write that updates others: take its likely fan-out (``estimate``, else the
        chat's last known size, else 1) from the account's budget, or raise RATE_LIMITED.
        Returns what was taken; :meth:`charge_fanout` settles the difference afterwards."""
        if not self.enabled:
            return 0.0
        if estimate is None:
            estimate = self.chat_sizes.get(chat_id, 1) if chat_id is not None else 1
        # A cost above the burst could never be paid; the debt after the write covers it.
        cost = min(float(estimate), self.per_account_fanout.rate.burst)
        wait = self.per_account_fanout.take(str(user_id), cost)
        if wait:
            # No strike: an honest admin of a big group meets this too, and simply waits.
            self.refused["fanout"] = self.refused.get("fanout", 0) + 1
            raise RateLimited(f"your messages reach many people; retry in {wait:.1f} s",
                              retry_after=round(wait, 2))
        return cost

    def charge_fanout(self, user_id: int, taken: float, recipients: int,
                      chat_id: int | None = None, chat_size: int | None = None) -> None:
        """After the write: charge what it really cost (the account may go into debt, which
        its next writes wait out) and remember the chat's size for the next reservation."""
        if not self.enabled:
            return
        # A reservation that was right (every private message after the first) is settled
        # already: charging nothing would only cost a lookup on every send.
        if recipients != taken:
            self.per_account_fanout.charge(str(user_id), recipients - taken)
        if chat_id is not None and chat_size is not None:
            self.remember_chat_size(chat_id, chat_size)

    def remember_chat_size(self, chat_id: int, size: int) -> None:
        sizes = self.chat_sizes
        sizes[chat_id] = size
        sizes.move_to_end(chat_id)
        if len(sizes) > self.max_chat_sizes:
            sizes.popitem(last=False)
