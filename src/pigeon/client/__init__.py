"""The asyncio SDK: ``async with Client(server, profile) as client: ...``."""

from .client import Client
from .link import ConnectionLost, ServerUnreachable
from .profile import Profile

__all__ = ["Client", "ConnectionLost", "Profile", "ServerUnreachable"]
