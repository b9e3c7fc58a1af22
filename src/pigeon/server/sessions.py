"""Login by one-time code, session tokens, and the sessions (devices) list."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from pigeon.domain.admin import check_enabled
from pigeon.protocol import methods as m
from pigeon.domain.regions import home_of
from pigeon.protocol.errors import PigeonError, Unauthorized, WrongRegion
from pigeon.protocol.types import (
    Affected, Authorization, Ok, PowChallenge, SentCode, SessionInfo,
)
from pigeon.store import LoginCode, SessionRecord, UserRecord

from .phones import login_number
from .service_account import deliver_code
from .services import Caller, Services
from .users import normalize_phone, public_user, validate_device, validate_name

CODE_DIGITS = 6
TOKEN_PREFIX = "pgn_"


def hash_token(token: str) -> bytes:
    # Tokens are 256 random bits: a plain SHA-256 is enough (no dictionary to guard against),
    # and the database never holds a token that would work if leaked.
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


async def authenticate(services: Services, token: str) -> tuple[SessionRecord, UserRecord]:
    session = await services.store.session_by_token(hash_token(token))
    if session is None:
        raise Unauthorized("this session was terminated or never existed; log in again",
                           code="SESSION_INVALID")
    (user,) = await services.store.get_users([session.user_id])
    return session, user


async def challenge(caller: Caller, p: m.GetChallenge) -> PowChallenge:
    token, difficulty, expires_in = caller.services.shield.challenge()
    return PowChallenge(token=token, difficulty=difficulty, expires_in=expires_in)


async def _new_code(services: Services, phone: str) -> tuple[str, str]:
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    code_id = secrets.token_urlsafe(16)
    await services.store.save_login_code(LoginCode(
        id=code_id, phone=phone, code_hash=services.code_hash(code_id, code),
        expires=services.clock() + services.settings.code_ttl, attempts=0))
    return code_id, code


def check_home(services: Services, phone: str) -> None:
    """WRONG_REGION when the number's account lives in another region: it carries that
    region's endpoints, which the SDK reconnects to (docs/protocol.md, "Regions")."""
    regions = services.regions
    if regions is None:
        return
    home = home_of(regions.table, phone)
    if home != regions.name:
        raise WrongRegion(f"this number's account lives in region {home}",
                          endpoints=list(regions.table.get(home).endpoints))


async def send_code(caller: Caller, p: m.SendCode) -> SentCode:
    """A login code: in the app when the number's account has logged-in devices (free, and
    beyond the reach of whoever floods that number with SMS requests), else by SMS.

    Proof of work was settled before the call was queued (``Shield.prove``); the number is
    checked before anything is spent."""
    services, shield = caller.services, caller.services.shield
    number = login_number(p.phone)
    check_home(services, number.e164)
    shield.check_login(caller.address)
    ttl = int(services.settings.code_ttl)
    if not p.sms:
        user = await services.store.user_by_phone(number.e164)
        if user is not None and await services.store.list_sessions(user.id):
            shield.logins.check_app(number.e164, caller.address)
            code_id, code = await _new_code(services, number.e164)
            await deliver_code(services, user.id, code, ttl)
            services.metrics.codes_in_app.inc()
            return SentCode(code_id=code_id, expires_in=ttl, length=CODE_DIGITS,
                            delivery="app")
    shield.logins.check_sms(number.e164, number.country_code, caller.proven)
    code_id, code = await _new_code(services, number.e164)
    await services.codes.send(number.e164, code, ttl)
    services.metrics.codes_sent.inc()
    return SentCode(code_id=code_id, expires_in=ttl, length=CODE_DIGITS)


async def sign_in(caller: Caller, p: m.SignIn) -> Authorization:
    services, store = caller.services, caller.services.store
    phone = normalize_phone(p.phone)
    check_home(services, phone)
    device = validate_device(p.device)  # before the code is spent on a sign-in that must fail
    services.shield.check_login(caller.address)
    code = await store.take_code_attempt(p.code_id, services.clock(),
                                         services.settings.code_attempts)
    if code is None or code.phone != phone:
        raise Unauthorized("this code expired or was used up; request a new one",
                           code="CODE_EXPIRED")
    if not hmac.compare_digest(code.code_hash, services.code_hash(p.code_id, p.code.strip())):
        left = services.settings.code_attempts - code.attempts
        raise Unauthorized(f"wrong code; {left} attempt(s) left", code="CODE_INVALID")
    user = await store.user_by_phone(phone)
    if user is not None:
        services.shield.check_account(user.id)  # an account refused for abuse stays refused
        # Before the code is spent; the store checks again when it creates the session.
        check_enabled(await store.is_disabled(user.id))
    name = ""
    if user is None:
        if p.name is None:
            # The code stays valid (one attempt spent) so the client can ask for a name.
            raise Unauthorized("this number has no account yet; sign up with a name",
                               code="SIGN_UP_REQUIRED")
        name = validate_name(p.name)
    else:
        # A full account refuses a new device before the code is spent (issue 7, #5).
        caller.device.ensure_room(user.id)
    # Checking the code and consuming it are two steps; the consuming one is atomic, so of
    # several sign-ins racing with the same right code exactly one goes on (issue 7, #8).
    if not await store.consume_login_code(code.id):
        raise Unauthorized("this code expired or was used up; request a new one",
                           code="CODE_EXPIRED")
    if user is None:
        user = await store.create_user(phone, name, services.clock())
    token = new_token()
    session = await store.create_session(user.id, hash_token(token), device, caller.address,
                                         services.clock())
    try:
        caller.device.log_in(user.id, session.id)
    except PigeonError:
        # The account filled up meanwhile: a session nobody holds the token of must not stay.
        await store.delete_sessions(user.id, only=session.id)
        raise
    services.resumption.live(session.id, user.id)
    state = await store.get_state(user.id)
    caller.device.follow(state.streams)
    return Authorization(user=public_user(user, self_id=user.id), token=token,
                         session_id=session.id, state=state,
                         ticket=services.resumption.issue(session.id, user.id, token))


async def log_out(caller: Caller, p: m.LogOut) -> Ok:
    user_id, session_id = caller.user_id, caller.session_id
    caller.services.resumption.revoke([session_id])  # before the delete: revocation wins
    await caller.services.store.delete_sessions(user_id, only=session_id)
    caller.device.log_out()  # this connection stays open to carry the answer
    caller.services.end_sessions(user_id, [session_id], "logged out")
    return Ok()


async def list_sessions(caller: Caller, p: m.ListSessions) -> list[SessionInfo]:
    rows = await caller.services.store.list_sessions(caller.user_id)
    return [SessionInfo(id=s.id, device=s.device, address=s.address, created=s.created,
                        last_active=s.last_active, current=s.id == caller.session_id)
            for s in rows]


# What a terminated device is told (and, through its profile, its next command): issue 11,
# bug 2, where `receive --follow` waited silently for ever and then said "not logged in".
TERMINATED_ELSEWHERE = "this device was logged out from another device"


async def terminate_session(caller: Caller, p: m.TerminateSession) -> Ok:
    user_id = caller.user_id
    deleted = await caller.services.store.delete_sessions(user_id, only=p.session_id)
    if p.session_id == caller.session_id:
        caller.device.log_out()
    caller.services.end_sessions(user_id, deleted, TERMINATED_ELSEWHERE
                                        if p.session_id != caller.session_id
                                        else "this device ended its own session")
    return Ok()


async def terminate_others(caller: Caller, p: m.TerminateOtherSessions) -> Affected:
    user_id = caller.user_id
    deleted = await caller.services.store.delete_sessions(user_id, keep=caller.session_id)
    caller.services.end_sessions(user_id, deleted, TERMINATED_ELSEWHERE)
    return Affected(count=len(deleted))


HANDLERS = {
    "auth.challenge": challenge,
    "auth.send_code": send_code,
    "auth.sign_in": sign_in,
    "auth.log_out": log_out,
    "sessions.list": list_sessions,
    "sessions.terminate": terminate_session,
    "sessions.terminate_others": terminate_others,
}
