"""``pigeon devices [@user]`` and ``pigeon devices verify`` (issue 9, deliverable 6).

Verification needs both devices at hand: on one, ``pigeon devices verify @user [--device
ID]``; on the other, ``pigeon devices verify --accept``. Each prints the same seven emoji
and three numbers and asks its person whether they match (``--yes`` answers for scripts and
tests, after printing them).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import click

from pigeon.client.trust import fingerprint
from pigeon.client.verification import Pending, VerificationFailed
from pigeon.crypto.sas import DEFAULT_TIMEOUT, ShortCode
from pigeon.protocol.keys import DeviceKeys

from .context import Ctx, resolve_user, run
from .output import echo, json_line, visible
from .secret import secret_session

pass_ctx = click.make_pass_decorator(Ctx)


class DevicesGroup(click.Group):
    """``devices [@user]`` lists; ``devices verify ...`` verifies: a first word that is not a
    subcommand is the user to list."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DevicesGroup)
def devices() -> None:
    """`pigeon devices [@user] [--json]` lists a user's devices (yours without @user): id,
    name, Ed25519 fingerprint, verified or not. `pigeon devices verify` verifies one."""


def _device_json(device: DeviceKeys, verified: bool, own: int | None) -> dict[str, Any]:
    return {"user_id": device.user_id, "device_id": device.device_id, "name": device.name,
            "fingerprint": fingerprint(device.identity.ed25519), "verified": verified,
            "this_device": device.device_id == own}


@devices.command("list", hidden=True)
@click.argument("user", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device.")
@pass_ctx
@run
async def list_devices(ctx: Ctx, user: str | None, as_json: bool) -> None:
    """List USER's devices (yours without USER): id, name, Ed25519 fingerprint, verified."""
    async with secret_session(ctx) as client:
        user_id = await resolve_user(client, user) if user else client.profile.user_id
        assert user_id is not None
        own = client.profile.session_id
        found = sorted(await client.devices.query([user_id]), key=lambda d: d.device_id)
        rows = [(d, await client.trust.is_verified(d)) for d in found]
    if as_json:
        for device, verified in rows:
            echo(json_line(_device_json(device, verified, own)))
        return
    if not rows:
        echo(f"user:{user_id} has no device with published keys")
    for device, verified in rows:
        state = "this device" if device.device_id == own else (
            "verified" if verified else "not verified")
        echo(f"device {device.device_id}  {visible(device.name)}  "
             f"{fingerprint(device.identity.ed25519)}  ({state})")


@devices.command("verify")
@click.argument("user", required=False)
@click.option("--device", "device_id", type=click.IntRange(1, 2**62), default=None,
              help="The device to verify (default: the first of USER's devices to accept).")
@click.option("--accept", is_flag=True,
              help="Wait for another device to ask, and verify with it (the other side of "
                   "`pigeon devices verify USER`); with USER, only from that user.")
@click.option("--yes", is_flag=True,
              help="Confirm that the emoji match without asking (scripts and tests: the emoji "
                   "are still printed).")
@click.option("--timeout", type=click.IntRange(1, 3600), default=int(DEFAULT_TIMEOUT),
              show_default=True,
              help="Seconds to wait for the other device and for your answer.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: request, sas, verified.")
@pass_ctx
@run
async def verify(ctx: Ctx, user: str | None, device_id: int | None, accept: bool, yes: bool,
                 timeout: int, as_json: bool) -> None:
    """Verify USER's device by comparing emoji (SAS): run `pigeon devices verify --accept` on
    that device at the same time. Without USER, --device ID is one of your own devices."""
    if user is None and not accept and device_id is None:
        raise click.UsageError("name the USER whose device to verify (or --device ID for one "
                               "of yours), or pass --accept")
    if accept and device_id is not None:
        raise click.UsageError("--device goes with USER, on the side that asks")
    # The profile's end-to-end state is held for each use (an inbox batch, a send), not while
    # the person looks: a `receive --follow` on this profile keeps working meanwhile.
    async with secret_session(ctx, hold_keys=False, announce=False) as client:
        client.verifier.timeout = float(timeout)
        user_id = await resolve_user(client, user) if user else None
        if user_id is None and not accept:
            user_id = client.profile.user_id  # one of this user's own other devices
        if accept:
            say(as_json, {"event": "waiting"}, "waiting for a device to ask for verification "
                "(on it: pigeon devices verify USER)...")
            pending = await client.verifier.wait_for_request(user_id)
            peer = pending.peer
            assert peer is not None
            say(as_json, {"event": "request", **_device_json(peer, False, None)},
                f"device {peer.device_id} ({visible(peer.name)}) of user:{peer.user_id} asks "
                f"to verify; its key: {fingerprint(peer.identity.ed25519)}")
        else:
            assert user_id is not None
            pending = await client.verifier.request(user_id, device_id)
            say(as_json, {"event": "waiting"}, f"asked user:{user_id}'s "
                f"{'device ' + str(device_id) if device_id else 'devices'}; on it run "
                f"`pigeon devices verify --accept`...")
        try:
            await _compare(pending, yes, as_json)
            peer = await pending.finish()
        except asyncio.CancelledError:  # Ctrl-C: tell the other side rather than let it wait
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pending.cancel(), 3)
            raise
    say(as_json, {"event": "verified", **_device_json(peer, True, None)},
        f"verified device {peer.device_id} ({visible(peer.name)}) of user:{peer.user_id}: "
        f"{fingerprint(peer.identity.ed25519)}")


async def _compare(pending: Pending, yes: bool, as_json: bool) -> None:
    code = await pending.short_code()
    say(as_json, {"event": "sas", "emoji": [e for e, _ in code.words()],
                  "names": [n for _, n in code.words()], "decimals": list(code.decimals)},
        _sas_lines(code), plain=True)
    if yes:
        await pending.confirm()
        return
    try:
        # In a thread: the connection keeps being served while the person looks.
        answer = await asyncio.to_thread(_ask)
    except (click.Abort, EOFError):
        await pending.cancel()
        raise VerificationFailed("verification cancelled by this device: no answer",
                                 code="SAS_CANCELLED") from None
    if answer:
        await pending.confirm()
    else:
        await pending.reject()


def _ask() -> bool:
    """The person's answer: a prompt on a terminal, else a line on standard input."""
    question = "do the emoji (or numbers) match the other device's?"
    if sys.stdin.isatty():
        return bool(click.confirm(question, default=False, err=True))
    click.echo(f"{question} [y/N] ", err=True)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.strip().lower() in ("y", "yes")


def _sas_lines(code: ShortCode) -> str:
    emoji = "  ".join(f"{e} {name}" for e, name in code.words())
    numbers = " ".join(str(n) for n in code.decimals)
    return f"compare with the other device:\n  {emoji}\n  or the numbers: {numbers}"


def say(as_json: bool, obj: dict[str, Any], line: str, plain: bool = False) -> None:
    if as_json:
        echo(json_line(obj))
    elif plain:
        # Our own table's emoji, some with a variation selector that echo would escape.
        click.echo(line)
    else:
        echo(line)
    sys.stdout.flush()  # the other terminal's person (or a test) reads as it comes
