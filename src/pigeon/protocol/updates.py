"""Updates: everything a user must see. Each carries that user's next ``pts`` (gap-free)."""

from __future__ import annotations

from .types import Chat, Message, State, Struct


class Update(Struct, tag_field="u"):
    pts: int


class NewMessage(Update, tag="new_message"):
    message: Message


class EditMessage(Update, tag="edit_message"):
    message: Message


class DeleteMessages(Update, tag="delete_messages"):
    chat_id: int
    message_ids: list[int]
    for_everyone: bool = False


class ReadInbox(Update, tag="read_inbox"):
    """The user read a chat up to ``max_id`` on one of their devices."""

    chat_id: int
    max_id: int
    unread_count: int = 0


class ReadOutbox(Update, tag="read_outbox"):
    """Someone else in the chat read the user's messages up to ``max_id``."""

    chat_id: int
    max_id: int


class ChatUpdate(Update, tag="chat"):
    """A chat was created, renamed, or its membership changed; ``chat.role`` is None once the
    user is no longer a member."""

    chat: Chat


class Typing(Update, tag="typing"):
    """Ephemeral: pushed to online devices, never stored, pts always 0."""

    chat_id: int
    user_id: int


AnyUpdate = NewMessage | EditMessage | DeleteMessages | ReadInbox | ReadOutbox | ChatUpdate | Typing


class Difference(Struct):
    updates: list[AnyUpdate]
    state: State
    more: bool = False

