"""``client.verifier``: SAS verification of another device over device-to-device
envelopes (issue 9, deliverable 6), the I/O around :class:`pigeon.crypto.sas.SasFlow`.

Both devices run this: one :meth:`Verifier.request` s, the other
:meth:`Verifier.wait_for_request` s; each then shows :attr:`Pending.short_code` to its
person and calls :meth:`Pending.confirm` or :meth:`Pending.reject`, and
:meth:`Pending.finish` waits for the other side and stores the verified state
(``client.trust``).

Steps arrive through the device's one inbox reader (``client.inbox``, which this module
registers with for ``Verification`` payloads): a step of a verification running in this
process goes to its :meth:`Pending.take` (after the batch is acknowledged: a handler must
not send); any other to :meth:`Verifier.offer`, which leaves it in the profile's mailbox
(client/sas_mailbox.py) before the batch is acknowledged, for the process that runs that
verification or for a later ``pigeon devices verify --accept``, and, for a request, emits a
:class:`VerificationRequest` on ``client.updates()`` (the line ``receive`` prints). A
verification opens secret chats (``client.secret``) before it reads the inbox, so that
secret messages read meanwhile are kept for ``receive``, never acknowledged unread; it
holds ``client.e2e_guard`` around each send, as every user of the device's Olm state does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from pigeon.crypto.payloads import Verification as Step
from pigeon.crypto.payloads import encode_payload
from pigeon.crypto.sas import DEFAULT_TIMEOUT, Cancel, Party, SasFlow, ShortCode, State
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.keys import DeviceKeys

from .inbox import Incoming
from .sas_mailbox import Mailbox

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("pigeon.client.verification")


#: how long to wait for a step before looking in the mailbox again (where another process
#: on this profile leaves what it read), in seconds
POLL_SECONDS = 1.0

_CODES = {
    Cancel.USER: "SAS_CANCELLED", Cancel.MISMATCHED_SAS: "SAS_MISMATCH",
    Cancel.KEY_MISMATCH: "SAS_KEY_MISMATCH", Cancel.UNEXPECTED: "SAS_UNEXPECTED",
    Cancel.TIMEOUT: "SAS_TIMEOUT", Cancel.ACCEPTED_ELSEWHERE: "SAS_CANCELLED",
}


class VerificationFailed(PigeonError):
    """The verification ended without success; ``code`` says how (SAS_MISMATCH,
    SAS_KEY_MISMATCH, SAS_TIMEOUT, SAS_CANCELLED, SAS_UNEXPECTED)."""

    code = "SAS_CANCELLED"


class VerificationRequest(msgspec.Struct, frozen=True):
    """On ``client.updates()``: a device asks to verify this one (``line`` says what to
    do), read by the inbox while no verification of this process waited for it."""

    user_id: int
    device_id: int
    transaction_id: str
    line: str


def failure(flow: SasFlow) -> VerificationFailed:
    cancel = flow.cancel_code
    code = _CODES.get(cancel, "SAS_CANCELLED") if isinstance(cancel, Cancel) else "SAS_CANCELLED"
    who = "the other device" if flow.cancelled_by_peer else "this device"
    reason = flow.cancel_reason or str(flow.cancel_code)
    if flow.cancel_code is Cancel.MISMATCHED_SAS:
        reason = "the emoji did not match: do not trust that device"
    elif flow.cancel_code is Cancel.KEY_MISMATCH:
        reason = f"{reason}; do not trust that device"
    return VerificationFailed(f"verification cancelled by {who}: {reason}", code=code)


def party(device: DeviceKeys) -> Party:
    return Party(device.user_id, device.device_id, device.identity.ed25519)


class Pending:
    """One verification in progress, from this device's side."""

    def __init__(self, verifier: Verifier, flow: SasFlow,
                 devices: dict[int, DeviceKeys]) -> None:
        self._verifier = verifier
        self.flow = flow
        self._devices = devices  # device id -> keys, the peer's candidates

    def candidate(self, user_id: int, device_id: int) -> DeviceKeys | None:
        device = self._devices.get(device_id)
        return device if device is not None and device.user_id == user_id else None

    @property
    def peer(self) -> DeviceKeys | None:
        return self._devices.get(self.flow.peer.device_id) if self.flow.peer else None

    async def short_code(self) -> ShortCode:
        """The emoji and numbers to compare, once both keys are exchanged."""
        await self._verifier.pump(self, lambda: self.flow.short_code is not None)
        if self.flow.short_code is None or self.flow.state is State.CANCELLED:
            raise failure(self.flow)
        return self.flow.short_code

    async def confirm(self) -> None:
        if self.flow.done:  # the other side gave up while our person looked
            raise failure(self.flow)
        await self._send(self.flow.confirm(self._verifier.clock()))

    async def reject(self) -> None:
        if self.flow.done:
            raise failure(self.flow)
        await self._send(self.flow.reject())
        raise failure(self.flow)

    async def cancel(self) -> None:
        await self._send(self.flow.cancel(Cancel.USER, "cancelled by its person"))

    async def finish(self) -> DeviceKeys:
        """Wait for the other side's MAC; on success the device is stored verified."""
        await self._verifier.pump(self, lambda: self.flow.done)
        if self.flow.state is not State.VERIFIED or self.peer is None:
            raise failure(self.flow)
        await self._verifier.client.trust.set_verified(self.peer)
        return self.peer

    async def take(self, sender: DeviceKeys, step: Step) -> None:
        """A step read from the inbox (by the pump here, or by the client's router)."""
        before = self.flow.peer
        await self._send(self.flow.receive(party(sender), step, self._verifier.clock()))
        if before is None and self.flow.peer is not None and len(self._devices) > 1:
            # The others were asked too: tell them another device took it.
            others = [d for d in self._devices.values() if d.device_id != sender.device_id]
            await self._verifier.send(others, Step(
                transaction_id=self.flow.transaction_id, step="cancel",
                code=Cancel.ACCEPTED_ELSEWHERE.value, reason="another device answered"))

    async def _send(self, steps: list[Step]) -> None:
        peer = self.peer
        targets = [peer] if peer is not None else list(self._devices.values())
        for step in steps:
            await self._verifier.send(targets, step)


class Verifier:
    def __init__(self, client: Client, clock: Callable[[], float] = time.monotonic,
                 timeout: float = DEFAULT_TIMEOUT,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock
        self.wall_clock = wall_clock
        self.timeout = timeout
        self._box: Mailbox | None = None
        self._running: dict[str, Pending] = {}  # transaction -> a verification of this process
        self._stepped = asyncio.Event()  # a step came (to a running one, or to the mailbox)
        client.inbox.on(Step, self._on_step)

    # -- steps read by another reader of the inbox ------------------------------------------
    def _mailbox(self) -> Mailbox:
        if self._box is None:
            self._box = Mailbox(self.client.devices.vault, self.client.profile.directory,
                                self.wall_clock)
        return self._box

    async def _on_step(self, message: Incoming) -> None:
        """The inbox's handler of ``Verification`` payloads (the Olm state is locked: sends
        wait until the batch is acknowledged)."""
        step: Step = message.payload
        pending = self._running.get(step.transaction_id)
        if pending is not None and pending.flow.done:
            del self._running[step.transaction_id]
            return
        if pending is None:
            line = await self.offer(message.sender_id, message.sender_device, step)
            if line is not None:
                self.client.emit(VerificationRequest(message.sender_id, message.sender_device,
                                                     step.transaction_id, line))
            self._stepped.set()
            return
        sender = pending.candidate(message.sender_id, message.sender_device)
        if sender is None:
            return  # a device this verification did not ask: ignored, as SasFlow would

        async def take() -> None:
            await pending.take(sender, step)
            self._stepped.set()
        message.later(take)

    async def offer(self, user_id: int, device_id: int, step: Step) -> str | None:
        """Leave a step of a verification not running in this process (the inbox router
        calls this) for the one that runs it, or for :meth:`wait_for_request`; for a
        ``start``, the line to show the person."""
        await self._mailbox().leave(user_id, device_id, step)
        if step.step != "start":
            return None
        return (f"device {device_id} of user:{user_id} asks to verify this "
                f"device: run `pigeon devices verify --accept` within "
                f"{int(DEFAULT_TIMEOUT) // 60} minutes")

    async def _reading(self) -> None:
        """Make sure the inbox is read while a verification waits: secret chats open first
        (their messages are kept, not acknowledged unread), then the inbox follows its
        pushes (a client that tracks updates) or is read at every look (:meth:`_read`)."""
        if not self.client.secret.is_open:
            await self.client.secret.open()
        if self.client.track_updates and not self.client.inbox.following:
            self.client.inbox.follow()

    async def _read(self) -> None:
        """A client not tracking updates gets no pushes (`devices verify`, which must not
        move the position `receive` prints from): its inbox is read now."""
        if not self.client.inbox.following:
            await self.client.inbox.receive()

    def _me(self) -> Party:
        profile = self.client.profile
        assert profile.user_id is not None and profile.session_id is not None
        return Party(profile.user_id, profile.session_id, self.client.devices.identity.ed25519)

    async def request(self, user_id: int, device_id: int | None = None) -> Pending:
        """Ask ``user_id``'s device ``device_id`` (all of their devices but this one when
        None; the first to accept is verified) to verify with this one."""
        own = self.client.profile.session_id
        everyone = await self.client.devices.query([user_id])
        found = [d for d in everyone
                 if d.device_id != own and (device_id is None or d.device_id == device_id)]
        if not found:
            which = f"device {device_id} of " if device_id is not None else "a device of "
            raise VerificationFailed(f"{which}user:{user_id} to verify was not found (its "
                                     f"keys are not published, or do not verify)",
                                     code="DEVICE_NOT_FOUND")
        await self.client.trust.check([user_id], everyone)  # all of them: seen as they are
        await self._reading()
        flow, start = SasFlow.start(self._me(), [party(d) for d in found], now=self.clock(),
                                    timeout=self.timeout)
        pending = Pending(self, flow, {d.device_id: d for d in found})
        self._running[flow.transaction_id] = pending
        await self.send(found, start)
        return pending

    async def wait_for_request(self, user_id: int | None = None) -> Pending:
        """The next verification another device asks of this one (from ``user_id`` only if
        given), accepted."""
        deadline = self.clock() + self.timeout
        await self._reading()
        starts: dict[str, tuple[DeviceKeys, Step]] = {}
        while True:
            self._stepped.clear()  # before looking: a step that comes meanwhile wakes us
            await self._read()
            for mail in await self._mailbox().take(
                    lambda _, v: v.step in ("start", "cancel")):  # the inbox leaves them there
                got = await self._from_device(mail.user_id, mail.device_id, mail.verification())
                if got is not None:
                    _stand(starts, user_id, *got)
            if starts:  # the newest request still standing
                return await self._accept(*list(starts.values())[-1])
            if self.clock() >= deadline:
                raise VerificationFailed("no device asked to verify in time", code="SAS_TIMEOUT")
            await self._wait_step(deadline)

    async def _accept(self, sender: DeviceKeys, start: Step) -> Pending:
        await self.client.trust.check([sender.user_id])
        flow, accept = SasFlow.respond(self._me(), party(sender), start, now=self.clock(),
                                       timeout=self.timeout)
        pending = Pending(self, flow, {sender.device_id: sender})
        self._running[flow.transaction_id] = pending
        await self.send([sender], accept)
        return pending

    # -- the inbox and the envelopes ------------------------------------------------------
    async def send(self, targets: list[DeviceKeys], step: Step) -> None:
        async with self.client.e2e_guard():
            await self.client.devices.send_to_devices(targets, encode_payload(step))

    async def pump(self, pending: Pending, until: Callable[[], bool]) -> None:
        """Wait until ``until()`` or ``pending``'s flow ends or expires: the inbox feeds it
        the steps it reads; the mailbox, those another process on this profile read."""
        flow = pending.flow
        await self._reading()
        while not until() and not flow.done:
            self._stepped.clear()  # before looking: a step that comes meanwhile wakes us
            await self._read()
            for mail in await self._mailbox().take(
                    lambda _, v: v.transaction_id == flow.transaction_id):
                sender = pending.candidate(mail.user_id, mail.device_id)
                step = mail.verification()
                if sender is not None and step is not None:
                    await pending.take(sender, step)
            if until() or flow.done:
                break
            if flow.expire(self.clock()):
                await pending._send([flow.cancel_step()])
                break
            await self._wait_step(flow.deadline)
        if flow.done:
            self._running.pop(flow.transaction_id, None)

    async def _from_device(self, user_id: int, device_id: int,
                           step: Step | None) -> tuple[DeviceKeys, Step] | None:
        if step is None:
            return None
        for device in await self.client.devices.query([user_id]):
            if device.device_id == device_id:
                return device, step
        return None

    async def _wait_step(self, deadline: float) -> None:
        """Until a step comes, POLL_SECONDS pass, or the deadline."""
        wait = max(0.0, min(POLL_SECONDS, deadline - self.clock()))
        try:
            await asyncio.wait_for(self._stepped.wait(), wait)
        except TimeoutError:
            pass


def _stand(starts: dict[str, tuple[DeviceKeys, Step]], user_id: int | None,
           sender: DeviceKeys, step: Step) -> None:
    """Track the requests still standing: a start (from ``user_id`` if given) stands until
    a cancel of its transaction (withdrawn, or answered by another device)."""
    if step.step == "cancel":
        starts.pop(step.transaction_id, None)
    elif step.step == "start" and (user_id is None or sender.user_id == user_id):
        starts[step.transaction_id] = (sender, step)
