"""The service account "Pigeon": login codes delivered to an account's logged-in devices.

When someone asks for a login code for a number whose account is logged in somewhere, the
code goes to those devices first, as a message from the reserved service account in the
user's private chat with it (a plain ``new_message`` update; Telegram does the same). It
costs no SMS, and whoever floods that number with code requests cannot lock its owner out:
the SMS limit per number does not apply, only a limit per number and requesting network.

The account cannot log in (its "phone" is no number), nobody can open a chat with it, write
in its chats, forward its messages or add it to a group; see store/sqlite_service.py.
"""

from __future__ import annotations

from pigeon.protocol.errors import Forbidden

from .services import Services

_SENTINEL_NONE = 0  # ids start at 1: 0 caches "there is no service account yet"


def code_text(code: str, expires_in: int) -> str:
    minutes = max(1, expires_in // 60)
    return (f"Login code: {code}\n\n"
            "Someone asked to log in to your Pigeon account on another device. Never give "
            "this code to anyone, even if they say they are from Pigeon: we never ask for "
            f"it. If it was not you, ignore this message. The code expires in {minutes} "
            "minutes.")


async def deliver_code(services: Services, user_id: int, code: str, expires_in: int) -> None:
    message, pushes = await services.store.send_service_message(
        user_id, code_text(code, expires_in), services.clock())
    services.service_user = message.sender_id
    services.bus.deliver(pushes)


async def service_user_id(services: Services) -> int | None:
    """The service account's id, None if it does not exist yet. Looked up once: in this
    process only deliver_code can create it, and it records the id."""
    if services.service_user is None:
        found = await services.store.service_user_id()
        services.service_user = found if found is not None else _SENTINEL_NONE
    return services.service_user or None


async def refuse_service_account(services: Services, user_ids: list[int]) -> None:
    """Forbidden if the service account is among ``user_ids`` (adding it to a group)."""
    sid = await service_user_id(services)
    if sid is not None and sid in user_ids:
        raise Forbidden("the Pigeon service account cannot join groups", code="FORBIDDEN")
