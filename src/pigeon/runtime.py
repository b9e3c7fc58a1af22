"""Running Pigeon's processes on the fastest event loop available."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop where it is installed (Linux, macOS), else on asyncio's own
    loop. uvloop roughly halves the cost of socket I/O, which is most of a server's work."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop does not build everywhere
        return asyncio.run(main)
    return uvloop.run(main)
