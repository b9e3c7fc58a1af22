"""The legitimate side: real SDK clients, each from its own loopback address.

* Users chat in pairs at a steady total rate. Sends are issued on a fixed schedule whether
  or not earlier ones were answered (open loop: a slow server cannot slow the offered load
  and so hide its own latency), and each is timed until its durable acknowledgement.
* The peer's device counts the push of every message it receives.
* Newcomers sign up at a trickle (``--logins``), through the SDK, which solves proof of
  work when asked: can people still join while the login path is flooded?
* ``--newcomers N``: N people sign up with the SDK during the attack, spread evenly over
  it, each from a network of its own with a mobile number from one of ten countries; each
  is timed from when it set out to when it is logged in.

Reconnect mode's storm is in :mod:`.storm`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable

import aiohttp

from pigeon.client import Client, Profile
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.updates import NewMessage

from .addresses import legit_address, newcomer_address, signup_address
from .setup import Account, CodeSource, Fixture, newcomer_phone, phone
from .stats import RunStats


def _profile(url: str, account: Account) -> Profile:
    return Profile(server=url, token=account.token, user_id=account.user_id, phone=account.phone)


async def connect_all(url: str, accounts: list[Account], first_index: int, *, bind: bool = True,
                      concurrency: int = 100, timeout: float = 120.0) -> list[Client]:
    """Connect a logged-in client per account (retrying briefly); raises if one cannot."""
    clients: list[Client] = [
        Client(url, _profile(url, a),
               local_address=legit_address(first_index + i) if bind else None)
        for i, a in enumerate(accounts)]
    slots = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + timeout

    async def one(client: Client) -> None:
        async with slots:
            while True:
                try:
                    await client.connect()
                    return
                except (TimeoutError, PigeonError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(one(c) for c in clients))
    return clients


async def close_all(clients: list[Client], timeout: float = 15.0) -> None:
    if clients:
        await asyncio.wait([asyncio.ensure_future(c.close()) for c in clients], timeout=timeout)


class Legit:
    def __init__(self, url: str, fixture: Fixture, stats: RunStats, rate: float,
                 timeout: float, bind: bool = True) -> None:
        self.url, self.fixture, self.stats, self.bind = url, fixture, stats, bind
        self.rate, self.timeout = rate, timeout
        self.users: list[Client] = []
        self.t0 = 0.0
        self.end = 0.0                  # senders stop issuing at this time.time(); may move
        self._in_flight: set[asyncio.Task[None]] = set()
        self._expected: dict[str, tuple[int, float]] = {}  # text -> (second, issued at)
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        self.users = await connect_all(self.url, self.fixture.users, 0, bind=self.bind)

    def start(self, t0: float, end: float) -> None:
        self.t0, self.end = t0, end
        n = len(self.users)
        for i, client in enumerate(self.users):
            chat = self.fixture.chats[i // 2]
            self._tasks.append(asyncio.create_task(self._sender(i, client, chat, n)))
            self._tasks.append(asyncio.create_task(self._receiver(client)))

    async def _sender(self, i: int, client: Client, chat: int, n: int) -> None:
        interval = n / self.rate
        next_at = self.t0 + interval * (i / n)  # spread the users over one interval
        for seq in itertools.count():
            if next_at >= self.end:
                return
            await asyncio.sleep(max(0.0, next_at - time.time()))
            if next_at >= self.end:  # finish() came while we slept
                return
            sec = int(next_at - self.t0)
            text = f"{i}:{seq}"
            self.stats.issued(sec)
            self._expected[text] = (sec, next_at)
            task = asyncio.create_task(self._send(client, chat, text, sec, next_at))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            next_at += interval

    async def _send(self, client: Client, chat: int, text: str, sec: int,
                    scheduled: float) -> None:
        # Timed from when the send was due, not from when this task got to run: if the
        # siege's own loop lags, that shows as latency instead of hiding it.
        try:
            remaining = scheduled + self.timeout - time.time()
            if remaining <= 0:
                raise TimeoutError
            await asyncio.wait_for(client.messages.send(chat, text), remaining)
        except TimeoutError:
            self.stats.failed(sec, "TIMEOUT")
        except PigeonError as exc:
            self.stats.failed(sec, exc.code)
        except (OSError, aiohttp.ClientError) as exc:
            self.stats.failed(sec, type(exc).__name__)
        else:
            self.stats.acked(sec, time.time() - scheduled)

    async def _receiver(self, client: Client) -> None:
        me = client.profile.user_id
        async for update in client.updates():
            if isinstance(update, NewMessage) and update.message.sender_id != me:
                seen = self._expected.pop(update.message.text, None)
                if seen is not None:
                    self.stats.delivered(seen[0], time.time() - seen[1])

    async def finish(self) -> None:
        """Stop issuing; wait for the sends in flight (each ends by its timeout) and a
        moment for the last pushes."""
        self.end = 0.0
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=self.timeout + 2.0)
        for task in list(self._in_flight):
            task.cancel()  # past their timeout: expire_pending() counts them as timed out
        self.stats.expire_pending()
        await asyncio.sleep(1.0)
        for task in self._tasks:
            task.cancel()


async def signups(url: str, codes: CodeSource, stats: RunStats, t0: float,
                  until: Callable[[], float], rate: float, bind: bool = True) -> None:
    """``rate`` newcomers a second sign up with the SDK until ``until()`` (time.time())."""
    tasks: set[asyncio.Task[None]] = set()
    next_at = t0 + 0.5 / rate
    for i in itertools.count():
        if next_at >= until():
            break
        await asyncio.sleep(max(0.0, next_at - time.time()))
        if next_at >= until():
            break
        task = asyncio.create_task(_signup(url, codes, stats, int(next_at - t0), i, bind))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += 1.0 / rate
    if tasks:
        await asyncio.wait(list(tasks), timeout=20.0)


async def _signup(url: str, codes: CodeSource, stats: RunStats, sec: int, i: int,
                  bind: bool) -> None:
    client = Client(url, Profile(), local_address=signup_address(i) if bind else None,
                         reconnect=False, track_updates=False)
    number = phone("signup", i)
    error: str | None = None
    try:
        async with asyncio.timeout(15.0):
            await client.connect()
            await client.auth.send_code(number)
            code = await codes.get(number, timeout=10.0)
            await client.auth.sign_in(code, name=f"Newcomer {i}", device="siege")
    except TimeoutError:
        error = "TIMEOUT"
    except PigeonError as exc:
        error = exc.code
    except (OSError, aiohttp.ClientError) as exc:
        error = type(exc).__name__
    finally:
        with contextlib.suppress(Exception):  # closing a client that never connected
            await client.close()
    stats.login(sec, error)


async def newcomers(url: str, codes: CodeSource, stats: RunStats, t0: float,
                    window: tuple[float, float], count: int, timeout: float,
                    bind: bool = True) -> None:
    """``count`` newcomers sign up during the attack window (seconds since ``t0``)."""
    start, end = window
    step = (end - start) / count
    tasks = []
    for i in range(count):
        at = t0 + start + (i + 0.5) * step
        await asyncio.sleep(max(0.0, at - time.time()))
        tasks.append(asyncio.create_task(_newcomer(url, codes, stats, t0, at, i, timeout,
                                                   bind)))
    await asyncio.wait(tasks)


async def _newcomer(url: str, codes: CodeSource, stats: RunStats, t0: float, at: float,
                    i: int, timeout: float, bind: bool) -> None:
    client = Client(url, Profile(), local_address=newcomer_address(i) if bind else None,
                    reconnect=False, track_updates=False, connect_timeout=timeout)
    number = newcomer_phone(i)
    error: str | None = None
    try:
        async with asyncio.timeout(max(0.1, at + timeout + 5.0 - time.time())):
            await client.connect()
            await client.auth.send_code(number)
            code = await codes.get(number, timeout=timeout)
            await client.auth.sign_in(code, name=f"Newcomer {i}", device="siege")
    except TimeoutError:
        error = "TIMEOUT"
    except PigeonError as exc:
        error = exc.code
    except (OSError, aiohttp.ClientError) as exc:
        error = type(exc).__name__
    finally:
        took = time.time() - at
        with contextlib.suppress(Exception):  # closing a client that never connected
            await client.close()
    stats.newcomer(int(at - t0), took, error)
