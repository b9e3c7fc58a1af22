"""The shield: admission, rate limits and load shedding between the transport and the work.

Layers, in the order a request meets them (``docs/shield.md`` explains how to tune each):

* :mod:`.admission` caps connections per address, per prefix and in total at accept time;
* :mod:`.bans` refuses addresses and prefixes that keep tripping limits, and :mod:`.nft`
  mirrors them into nftables;
* :mod:`.ratelimit` holds token buckets per session, account, address, prefix, phone number;
* :mod:`.pow` asks unauthenticated expensive calls for adaptive proof-of-work under load, and
  :mod:`.ticket` lets a rationed newcomer in at accept with a solved challenge;
* :mod:`.logins` limits login codes: per address and number, in the app per number and
  network, and by SMS within the adaptive budgets of :mod:`.codebudget`;
* :mod:`.scheduler` gives each work class its budget and sheds by queue delay (CoDel).

Everything here is transport-agnostic and takes a replaceable clock.
"""

from .admission import Admission, Decision, Ticket, prefix_of
from .bans import Ban, BanList, Mirror
from .nft import NftMirror
from .pow import DifficultyController, ProofOfWork, solve, work_bits
from .ratelimit import KeyedLimiter, Rate, TokenBucket
from .scheduler import DEFAULT_BUDGETS, Scheduler, Slot, WorkClass

__all__ = [
    "DEFAULT_BUDGETS",
    "Admission",
    "Ban",
    "BanList",
    "Decision",
    "DifficultyController",
    "KeyedLimiter",
    "Mirror",
    "NftMirror",
    "ProofOfWork",
    "Rate",
    "Scheduler",
    "Slot",
    "Ticket",
    "TokenBucket",
    "WorkClass",
    "prefix_of",
    "solve",
    "work_bits",
]
