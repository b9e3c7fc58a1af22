"""Issue 7, finding 9: `chats.members` with `offset` 2**63 answered INTERNAL and logged an
OverflowError (SQLite holds signed 64-bit integers). Every integer the protocol accepts is now
bounded; these tests send every method extreme integers and expect typed answers only.

The property test drives the real server stack in process (the sans-I/O decoder, the
connection, the shield, the handlers and a SQLite store on disk) without sockets, so that it
can afford hundreds of examples; the last test asks a real server process over WebSocket.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.bus import LocalBus
from pigeon.protocol.errors import CODES
from pigeon.protocol.methods import METHODS
from pigeon.server.codes import make_sender
from pigeon.server.connection import Connection
from pigeon.server.metrics import Metrics
from pigeon.server.services import Services
from pigeon.server.sessions import hash_token, new_token
from pigeon.server.settings import load_settings
from pigeon.shield.guard import Shield
from pigeon.store import SqliteStore
from pigeon.testing import LOOPBACK_LIMITS, ServerProcess

EXTREMES = [0, 1, 2, -1, 2**31, 2**53, 2**62, 2**62 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
            -(2**63), -(2**63) - 1]
BEYOND = [2**63, 2**64 - 1, 2**64, -(2**63) - 1]  # past what SQLite's INTEGER holds
FLOATS = [0.0, -1.0, 1e9, 2.0**53, 2.0**64, 1e308, float("inf"), float("-inf"), float("nan")]
STRINGS = ["x", "@alice_bounds", "+12025550123", "123456", "member", "owner", ""]
_ids = itertools.count(1)


def _wire_int(value: int) -> Any:
    """MessagePack holds -2**63 .. 2**64-1; a peer can still send a bigger one as a float."""
    return value if -(2**63) <= value <= 2**64 - 1 else float(value)


def _values(info: Any) -> st.SearchStrategy[Any]:
    """Values for one field, extreme integers wherever the schema has an integer (or a small
    valid one, so that checks which come first, such as membership, let the call reach the
    store often enough)."""
    t = msgspec.inspect
    if isinstance(info, t.IntType):
        return st.one_of(st.sampled_from([1, 2]), st.sampled_from(BEYOND).map(_wire_int),
                         st.sampled_from(EXTREMES).map(_wire_int))
    if isinstance(info, t.FloatType):
        return st.sampled_from(FLOATS) | st.sampled_from(EXTREMES).map(float)
    if isinstance(info, t.BoolType):
        return st.booleans()
    if isinstance(info, t.StrType):
        return st.sampled_from(STRINGS)
    if isinstance(info, t.BytesType):
        return st.sampled_from([b"", b"x", b"\x00" * 64])
    if isinstance(info, t.LiteralType):
        return st.sampled_from(list(info.values))
    if isinstance(info, t.NoneType):
        return st.none()
    if isinstance(info, t.UnionType):
        return st.one_of(*(_values(member) for member in info.types))
    if isinstance(info, t.ListType):
        return st.lists(_values(info.item_type), max_size=3)
    if isinstance(info, t.StructType):
        return _params(info)
    raise AssertionError(f"no strategy for {info}")


def _params(info: Any) -> st.SearchStrategy[dict[str, Any]]:
    # Every field, optional ones too (their strategies include None where the type does):
    # a field left out is a field not tested.
    return st.fixed_dictionaries({f.encode_name: _values(f.type) for f in info.fields})




def _has_int(info: Any) -> bool:
    t = msgspec.inspect
    if isinstance(info, t.IntType):
        return True
    if isinstance(info, t.UnionType):
        return any(_has_int(member) for member in info.types)
    if isinstance(info, t.ListType):
        return _has_int(info.item_type)
    if isinstance(info, t.StructType):
        return any(_has_int(f.type) for f in info.fields)
    return False


def _valid(info: Any) -> Any:
    """A plausible value: chat 2 is the world's group, user 2 its other member."""
    t = msgspec.inspect
    if isinstance(info, t.IntType):
        return 2
    if isinstance(info, t.FloatType):
        return 1.0
    if isinstance(info, t.BoolType):
        return False
    if isinstance(info, t.StrType):
        return "x"
    if isinstance(info, t.BytesType):
        return b"x"
    if isinstance(info, t.LiteralType):
        return info.values[-1]
    if isinstance(info, t.UnionType):
        return _valid(next(m for m in info.types if not isinstance(m, t.NoneType)))
    if isinstance(info, t.ListType):
        return [_valid(info.item_type)]
    if isinstance(info, t.StructType):
        return {f.encode_name: _valid(f.type) for f in info.fields}
    raise AssertionError(f"no valid value for {info}")


def _extreme(info: Any, value: int) -> Any:
    """``info``'s valid value with every integer in it replaced by ``value``."""
    t = msgspec.inspect
    if isinstance(info, t.IntType):
        return _wire_int(value)
    if isinstance(info, t.UnionType):
        return _extreme(next(m for m in info.types if _has_int(m)), value)
    if isinstance(info, t.ListType):
        return [_extreme(info.item_type, value)]
    if isinstance(info, t.StructType):
        return {f.encode_name: _extreme(f.type, value) if _has_int(f.type) else _valid(f.type)
                for f in info.fields}
    raise AssertionError(f"no integer in {info}")


# The property test keeps its caller in the group (the sweep covers leaving), so that later
# examples still reach the store rather than stop at the membership check.
STAYING = sorted(set(METHODS) - {"chats.leave", "chats.remove_member"})


def _one_extreme(info: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Valid params but for one integer field, which takes one extreme value: the shape
    that finds a single unbounded field (chats.members' offset) in few examples."""
    base = {f.encode_name: _valid(f.type) for f in info.fields}
    fields = [f for f in info.fields if _has_int(f.type)]
    if not fields:
        return st.just(base)
    return st.builds(lambda f, v: {**base, f.encode_name: _extreme(f.type, v)},
                     st.sampled_from(fields), st.sampled_from(BEYOND + EXTREMES))


PARAMS = {name: _one_extreme(msgspec.inspect.type_info(m.params))
          | _params(msgspec.inspect.type_info(m.params)) for name, m in METHODS.items()}


def sweep() -> list[tuple[str, dict[str, Any]]]:
    """Every method, every field holding an integer, every extreme, the rest valid. Calls
    that take the caller out of the group come last, so the others reach the store."""
    calls = []
    leaving = ("chats.leave", "chats.remove_member")
    for name, method in sorted(METHODS.items(), key=lambda item: (item[0] in leaving, item[0])):
        fields = msgspec.inspect.type_info(method.params).fields
        base = {f.encode_name: _valid(f.type) for f in fields}
        for f in fields:
            if _has_int(f.type):
                calls += [(name, {**base, f.encode_name: _extreme(f.type, v)}) for v in EXTREMES]
    return calls


class Errors(logging.Handler):
    """Collects what the server logs at ERROR: a typed refusal is never logged as one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class World:
    """One logged-in connection to an in-process server, a group and a private chat."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.conn: Connection | None = None

    @classmethod
    async def open(cls, data: Path) -> World:
        s = load_settings(None, {"data": data}, environ=dict(LOOPBACK_LIMITS))
        store = SqliteStore(s.db_path)
        await store.open()
        services = Services(settings=s, store=store, bus=LocalBus(),
                            codes=make_sender("console", None), metrics=Metrics(),
                            secret=b"k" * 32, shield=Shield(s, b"k" * 32))
        world = cls(services)
        me = await store.create_user("+12025550199", "Me", 1.0)
        peer = await store.create_user("+12025550198", "Peer", 1.0)
        await store.open_private(me.id, peer.id, 1.0)
        group, _ = await store.create_group(me.id, "G", [peer.id], 1.0, s.max_group_members)
        for random_id in range(3):  # messages 1-3, so that message ids find something
            await store.send_message(me.id, group.id, random_id, "hi", 1.0)
        world.me = me.id
        return world

    async def connection(self) -> Connection:
        """A logged-in connection; a fresh one when an example logged out or was closed."""
        conn = self.conn
        if conn is None or conn.close_code is not None or conn.user_id is None:
            if conn is not None:
                conn.finished()
            store = self.services.store
            session = await store.create_session(self.me, hash_token(new_token()), "t",
                                                 "127.0.0.1", 1.0)
            conn = self.conn = Connection(self.services, "127.0.0.1")
            conn.protocol.receive(msgspec.msgpack.encode({"t": "hello", "versions": [1]}))
            conn.login(self.me, session.id)
        return conn

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        conn = await self.connection()
        request_id = next(_ids)
        frame = {"t": "call", "id": request_id, "method": method, "params": params}
        await conn.receive(msgspec.msgpack.encode(frame))
        while True:
            data = await asyncio.wait_for(conn.next_frame(), 10)
            assert data is not None, f"{method} closed the connection"
            answer = msgspec.msgpack.decode(data)
            if answer.get("id") == request_id:
                return answer

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.drain()
            self.conn.finished()
        await self.services.store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop,
                                                                       World, Errors]]:
    errors = Errors()
    logging.getLogger("pigeon").addHandler(errors)
    loop = asyncio.new_event_loop()
    opened = loop.run_until_complete(World.open(tmp_path_factory.mktemp("bounds")))
    try:
        yield loop, opened, errors
    finally:
        logging.getLogger("pigeon").removeHandler(errors)
        loop.run_until_complete(opened.close())
        loop.close()


@pytest.mark.parametrize("method", STAYING)
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_extreme_integers_get_typed_answers(world: Any, method: str, data: st.DataObject) -> None:
    loop, opened, errors = world
    params = data.draw(PARAMS[method], label="params")
    logged = len(errors.records)
    answer = loop.run_until_complete(opened.call(method, params))
    if answer["t"] == "error":
        assert answer["code"] in CODES and answer["code"] != "INTERNAL", (params, answer)
    else:
        assert answer["t"] == "result", answer
    assert len(errors.records) == logged, (params, [r.getMessage() for r in errors.records])


def test_every_integer_field_at_every_extreme(tmp_path: Path) -> None:
    """Deterministic companion of the property test: each extreme in each field once."""
    errors = Errors()
    logging.getLogger("pigeon").addHandler(errors)
    loop = asyncio.new_event_loop()
    world = loop.run_until_complete(World.open(tmp_path))
    calls = sweep()
    assert len(calls) > 300
    try:
        for method, params in calls:
            answer = loop.run_until_complete(world.call(method, params))
            assert answer["t"] in ("result", "error"), answer
            if answer["t"] == "error":
                assert answer["code"] in CODES and answer["code"] != "INTERNAL", (
                    method, params, answer)
            assert not errors.records, (method, params, [r.getMessage() for r in errors.records])
    finally:
        logging.getLogger("pigeon").removeHandler(errors)
        loop.run_until_complete(world.close())
        loop.close()


@pytest.mark.parametrize("offset", [2**63, 2**64 - 1, 2**62, -1])
def test_members_offset_out_of_range_is_invalid_argument(offset: int, tmp_path: Path) -> None:
    """The exact report, in process: a typed INVALID_ARGUMENT naming the field."""
    loop = asyncio.new_event_loop()
    world = loop.run_until_complete(World.open(tmp_path))
    try:
        answer = loop.run_until_complete(
            world.call("chats.members", {"chat_id": 2, "offset": offset}))
        assert answer["t"] == "error" and answer["code"] == "INVALID_ARGUMENT", answer
        assert "offset" in answer["message"]
    finally:
        loop.run_until_complete(world.close())
        loop.close()


async def test_real_server_answers_members_offset_2_63_with_a_typed_error(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server:
        from pigeon.testing import login

        alice = await login(server, "+12025550177", "Alice")
        group = await alice.chats.create_group("G", [])
        token = alice.profile.token
        await alice.close()
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_bytes(msgspec.msgpack.encode(
                {"t": "hello", "versions": [1], "token": token}))
            assert msgspec.msgpack.decode((await ws.receive(timeout=5)).data)["t"] == "welcome"
            for offset in (2**63, 2**64 - 1):
                await ws.send_bytes(msgspec.msgpack.encode(
                    {"t": "call", "id": 7, "method": "chats.members",
                     "params": {"chat_id": group.id, "offset": offset}}))
                answer = msgspec.msgpack.decode((await ws.receive(timeout=5)).data)
                assert answer["t"] == "error" and answer["code"] == "INVALID_ARGUMENT", answer
            await ws.send_bytes(msgspec.msgpack.encode(
                {"t": "call", "id": 8, "method": "chats.members",
                 "params": {"chat_id": group.id, "offset": 0}}))
            answer = msgspec.msgpack.decode((await ws.receive(timeout=5)).data)
            assert answer["t"] == "result" and len(answer["value"]) == 1, answer
        log = "".join(server.log)
        assert "Traceback" not in log and "OverflowError" not in log, log
