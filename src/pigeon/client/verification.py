"""``client.verifier``: SAS verification of another device over device-to-device
envelopes (issue 9, deliverable 6), the I/O around :class:`pigeon.crypto.sas.SasFlow`.

Both devices run this: one :meth:`Verifier.request` s, the other
:meth:`Verifier.wait_for_request` s; each then shows :attr:`Pending.short_code` to its
person and calls :meth:`Pending.confirm` or :meth:`Pending.reject`, and
:meth:`Pending.finish` waits for the other side and stores the verified state
(``client.trust``).

For now it reads the inbox itself through ``client.devices.receive()`` and skips payloads
that are not verification steps (they are acknowledged: a verification is meant to run
alone, as `pigeon devices verify` does). The client's router of device messages
(client/inbox.py) takes this place at merge: it feeds :meth:`Pending.take` with the
``Verification`` payloads of a verification in progress in its process, and hands any other
to :meth:`Verifier.offer`, which leaves it in the profile's mailbox (client/sas_mailbox.py)
for the process that runs that verification, or for a later ``pigeon devices verify
--accept``, and returns the line `receive` prints about a request. Both this module's pump
and ``--accept`` read the mailbox as well as the inbox, so a ``receive --follow`` on the same
profile does not starve a verification.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pigeon.crypto.payloads import Verification as Step
from pigeon.crypto.payloads import encode_payload, read_payload
from pigeon.crypto.sas import DEFAULT_TIMEOUT, Cancel, Party, SasFlow, ShortCode, State
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.keys import DeviceKeys
from pigeon.protocol.updates import Envelope

from .devices import DeviceMessage
from .sas_mailbox import Mailbox

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("pigeon.client.verification")


#: how long to wait for a pushed envelope before reading the inbox anyway, in seconds
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

    # -- steps read by another reader of the inbox ------------------------------------------
    def _mailbox(self) -> Mailbox:
        if self._box is None:
            self._box = Mailbox(self.client.devices.vault, self.client.profile.directory,
                                self.wall_clock)
        return self._box

    async def offer(self, sender: DeviceKeys, step: Step) -> str | None:
        """Leave a step of a verification not running in this process (the inbox router
        calls this) for the one that runs it, or for :meth:`wait_for_request`; for a
        ``start``, the line to show the person."""
        await self._mailbox().leave(sender.user_id, sender.device_id, step)
        if step.step != "start":
            return None
        return (f"device {sender.device_id} of user:{sender.user_id} asks to verify this "
                f"device: run `pigeon devices verify --accept` within "
                f"{int(DEFAULT_TIMEOUT) // 60} minutes")

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
        flow, start = SasFlow.start(self._me(), [party(d) for d in found], now=self.clock(),
                                    timeout=self.timeout)
        pending = Pending(self, flow, {d.device_id: d for d in found})
        await self.send(found, start)
        return pending

    async def wait_for_request(self, user_id: int | None = None) -> Pending:
        """The next verification another device asks of this one (from ``user_id`` only if
        given), accepted."""
        deadline = self.clock() + self.timeout
        while True:
            starts: dict[str, tuple[DeviceKeys, Step]] = {}
            for mail in await self._mailbox().take(
                    lambda _, v: v.step in ("start", "cancel")):  # seen by `receive` first
                got = await self._from_device(mail.user_id, mail.device_id, mail.verification())
                if got is not None:
                    _stand(starts, user_id, *got)
            for message in await self.client.devices.receive():
                got = await self._step_of(message)
                if got is not None:
                    _stand(starts, user_id, *got)
            if starts:  # the newest request still standing
                return await self._accept(*list(starts.values())[-1])
            if self.clock() >= deadline:
                raise VerificationFailed("no device asked to verify in time", code="SAS_TIMEOUT")
            await self._wait_push(deadline)

    async def _accept(self, sender: DeviceKeys, start: Step) -> Pending:
        await self.client.trust.check([sender.user_id])
        flow, accept = SasFlow.respond(self._me(), party(sender), start, now=self.clock(),
                                       timeout=self.timeout)
        await self.send([sender], accept)
        return Pending(self, flow, {sender.device_id: sender})

    # -- the inbox and the envelopes ------------------------------------------------------
    async def send(self, targets: list[DeviceKeys], step: Step) -> None:
        await self.client.devices.send_to_devices(targets, encode_payload(step))

    async def pump(self, pending: Pending, until: Callable[[], bool]) -> None:
        """Read the inbox into ``pending`` until ``until()`` or its flow ends or expires."""
        flow = pending.flow
        while not until() and not flow.done:
            for mail in await self._mailbox().take(
                    lambda _, v: v.transaction_id == flow.transaction_id):
                sender = pending.candidate(mail.user_id, mail.device_id)
                step = mail.verification()
                if sender is not None and step is not None:
                    await pending.take(sender, step)
            for message in await self.client.devices.receive():
                got = await self._step_of(message)
                if got is None:
                    continue
                if got[1].transaction_id == flow.transaction_id:
                    await pending.take(*got)
                else:  # another verification's (a request while this one runs): kept
                    await self.offer(*got)
            if until() or flow.done:
                return
            if flow.expire(self.clock()):
                await pending._send([flow.cancel_step()])
                return
            await self._wait_push(flow.deadline)

    async def _step_of(self, message: DeviceMessage) -> tuple[DeviceKeys, Step] | None:
        if message.body is None:
            log.warning("an envelope from device %d could not be read: %s",
                        message.sender_device, message.error)
            return None
        payload = read_payload(message.body)
        if not isinstance(payload, Step):
            log.info("skipped a %s payload while verifying", type(payload).__name__)
            return None
        return await self._from_device(message.sender_id, message.sender_device, payload)

    async def _from_device(self, user_id: int, device_id: int,
                           step: Step | None) -> tuple[DeviceKeys, Step] | None:
        if step is None:
            return None
        for device in await self.client.devices.query([user_id]):
            if device.device_id == device_id:
                return device, step
        return None

    async def _wait_push(self, deadline: float) -> None:
        """Until an envelope is pushed, POLL_SECONDS pass, or the deadline."""
        async def pushed() -> None:
            async for update in self.client.updates():
                if isinstance(update, Envelope):
                    return

        wait = max(0.0, min(POLL_SECONDS, deadline - self.clock()))
        try:
            await asyncio.wait_for(pushed(), wait)
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
