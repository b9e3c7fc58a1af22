"""A TCP relay between a store and PostgreSQL, for the tests of this directory."""

from __future__ import annotations

import asyncio
import contextlib

# PostgreSQL's CommandComplete message for a COMMIT: 'C', its length (11), "COMMIT\0"
_COMMIT_COMPLETE = b"C\x00\x00\x00\x0bCOMMIT\x00"


class Relay:
    """A TCP relay to PostgreSQL that a test can cut and restore; with ``slow_commits``,
    every other connection it accepts hears of each COMMIT that much later (a connection
    whose answers travel slowly, as across a congested link)."""

    def __init__(self, host: str, port: int, slow_commits: float = 0.0) -> None:
        self.target = (host, port)
        self.slow_commits = slow_commits
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        self.accepted += 1
        slow = self.slow_commits if self.accepted % 2 == 0 else 0.0

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       delay: float = 0.0) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    if delay and _COMMIT_COMPLETE in data:
                        await asyncio.sleep(delay)
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer, slow))
        self._writers -= {writer, up_writer}
