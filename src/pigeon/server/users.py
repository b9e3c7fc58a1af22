"""Profiles, @usernames and finding people (by username, or by phone where they allow it)."""

from __future__ import annotations

from pigeon.domain.text import (
    validate_device,  # noqa: F401  (sessions.py takes it from here)
    validate_name,
    validate_username,
)
from pigeon.protocol import methods as m
from pigeon.protocol.errors import NotFound, Unavailable
from pigeon.protocol.types import Me, User
from pigeon.store import UserRecord

from pigeon.domain.regions import home_of

from .phones import e164, valid_number
from .services import Caller


def normalize_phone(raw: str) -> str:
    """E.164, or PHONE_INVALID. Numbers must be given in international form (+CC...)."""
    return e164(valid_number(raw))


def public_user(user: UserRecord, self_id: int | None = None) -> User:
    """What others may see of a user: the phone only for themself or by their consent."""
    show_phone = user.id == self_id or user.phone_discoverable
    return User(id=user.id, name=user.name, username=user.username,
                phone=user.phone if show_phone else None)


async def _me(caller: Caller, user: UserRecord) -> Me:
    services = caller.services
    settings = services.settings
    adding = await services.store.get_who_can_add(user.id) or settings.default_who_can_add
    messaging = (await services.store.get_who_can_message(user.id)
                 or settings.default_who_can_message)
    return Me(user=public_user(user, user.id), phone=user.phone,
              phone_discoverable=user.phone_discoverable,
              who_can_add=adding, who_can_message=messaging)


async def get_me(caller: Caller, p: m.GetMe) -> Me:
    (user,) = await caller.services.store.get_users([caller.user_id])
    return await _me(caller, user)


async def update_profile(caller: Caller, p: m.UpdateProfile) -> User:
    user = await caller.services.store.update_user(caller.user_id, name=validate_name(p.name))
    return public_user(user, user.id)


async def set_username(caller: Caller, p: m.SetUsername) -> User:
    username = None if p.username is None else validate_username(p.username)
    user = await caller.services.store.update_user(caller.user_id, username=username)
    return public_user(user, user.id)


async def set_privacy(caller: Caller, p: m.SetPrivacy) -> Me:
    store = caller.services.store
    if p.who_can_add is not None:
        await store.set_who_can_add(caller.user_id, p.who_can_add)
    if p.who_can_message is not None:
        await store.set_who_can_message(caller.user_id, p.who_can_message)
    user = await store.update_user(caller.user_id, phone_discoverable=p.phone_discoverable)
    return await _me(caller, user)


async def resolve_username(caller: Caller, p: m.ResolveUsername) -> User:
    name = validate_username(p.username)
    user = await caller.services.store.user_by_username(name)
    if user is None and caller.services.regions is not None:
        return await _resolve_remote(caller, username=name)
    if user is None:
        raise NotFound(f"nobody has the username @{name}", code="USER_NOT_FOUND")
    # Found by the name they chose to be found by: they may be seen from now on.
    await caller.services.store.remember_discovery(caller.user_id, user.id)
    return public_user(user, caller.user_id)


async def resolve_phone(caller: Caller, p: m.ResolvePhone) -> User:
    phone = normalize_phone(p.phone)
    regions = caller.services.regions
    if regions is not None and home_of(regions.table, phone) != regions.name:
        return await _resolve_remote(caller, phone=phone)
    user = await caller.services.store.user_by_phone(phone)
    # One answer for "no such user" and "not discoverable", so that a number's owner cannot
    # be learned by probing.
    if user is None or not (user.phone_discoverable or user.id == caller.user_id):
        raise NotFound("no user can be found by that number", code="USER_NOT_FOUND")
    await caller.services.store.remember_discovery(caller.user_id, user.id)
    return public_user(user, caller.user_id)


async def _resolve_remote(caller: Caller, *, phone: str | None = None,
                          username: str | None = None) -> User:
    """Someone homed in another region: asked of their region (of each other region for a
    username: usernames say nothing of a region); remembered here for the chat rows."""
    regions = caller.services.regions
    assert regions is not None
    asked = [home_of(regions.table, phone)] if phone is not None else regions.others
    away: Unavailable | None = None
    for region in asked:
        try:
            found = await regions.lookup(region, phone=phone, username=username)
        except Unavailable as exc:  # another region may still have them
            away = exc
            continue
        if found is not None:
            await caller.services.store.remember_discovery(caller.user_id, found.id)
            return User(id=found.id, name=found.name, username=found.username)
    if away is not None:  # not found where we could ask: maybe where we could not
        raise away
    raise NotFound("no user can be found by that " + ("number" if phone else "username"),
                   code="USER_NOT_FOUND")


async def get_users(caller: Caller, p: m.GetUsers) -> list[User]:
    """Only the people the caller may see (Store.visible_users); the others are left out,
    exactly as ids that do not exist (issue 7, finding 18: ids 1-100 listed every account)."""
    me = caller.user_id
    return [public_user(u, me) for u in await caller.services.store.visible_users(me, p.ids)]


HANDLERS = {
    "account.get_me": get_me,
    "account.update_profile": update_profile,
    "account.set_username": set_username,
    "account.set_privacy": set_privacy,
    "users.resolve_username": resolve_username,
    "users.resolve_phone": resolve_phone,
    "users.get": get_users,
}
