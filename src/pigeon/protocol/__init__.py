"""The wire protocol, sans-I/O: schema, frames, limits and errors. Imports nothing of ours."""

from . import errors, limits, methods, streams, types, updates, versions
from .errors import PigeonError
from .frames import ClientProtocol, ServerProtocol
from .methods import METHODS

__all__ = [
    "METHODS",
    "ClientProtocol",
    "PigeonError",
    "ServerProtocol",
    "errors",
    "limits",
    "methods",
    "streams",
    "types",
    "updates",
    "versions",
]
