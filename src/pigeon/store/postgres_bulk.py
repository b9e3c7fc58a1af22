"""Sends in bulk on PostgreSQL: a batch's private text messages read, decided and written
together, in three statements for the lot instead of three each.

Group commit (:mod:`.postgres_engine`) puts many callers' sends in one transaction, but one by
one each still costs three statements (its first read, its recipients' ``pts``, its writes:
:func:`.sqlite_messages._tx_send_message`), and on these machines each statement costs
PostgreSQL's backend more CPU than the rows it writes (docs/architecture.md, "Where the time
goes"). Here a run of consecutive sends of one batch is done as:

1. every chat of the run locked, in id order; then ONE read: each send's first row (the
   columns a send alone reads, :func:`.sqlite_messages.sending_columns`). Apart, because at
   READ COMMITTED a statement sees the rows of its own start: a read that waited for a lock
   would see what the lock's holder changed in the chat row, and nothing else it changed (a
   message the peer just wrote, a mark);
2. the domain's rules for each send, in order, in memory. What a send changes that a later
   one in the same chat reads (the chat's last message id, the sender's read mark, the peer's
   outbox mark, who wrote after whose mark) is carried from one to the next;
3. ONE write: every recipient's ``pts`` moved on by the count of their updates (their rows
   locked in id order, at the end: held for the shortest time), and the update log, random_id,
   message, chat and member rows of all the sends, each table once, from arrays (unnest).

A send this does not cover (a reply, forward, sticker or file; a group; a replay; a first
message to someone, or one held back from its peer; a peer homed in another region) goes the
usual way, alone, at its place in the order: what was decided before it is written first, and
the later sends in its chat are read again before they are decided (a send changes nothing a
send in another chat reads: its chat's rows, the gate of that chat's two sides, users' pts,
which the write numbers from what is committed). A send the rules refuse wrote nothing, here
or alone; one
done alone that fails after it wrote makes the engine run the batch again with a savepoint per
job, as for any job (:func:`.postgres_engine.attempt`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from pigeon.domain import encryption, membership
from pigeon.domain import messages as rules
from pigeon.domain.records import Standing
from pigeon.protocol import updates as up
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.types import Message

from .postgres_conn import SyncConnection
from .postgres_dialect import escape_text
from .postgres_engine import attempt
from .records import Push
from .sqlite_log import pts_in
from .sqlite_messages import sending_columns, sending_joins
from .sqlite_regions import private_sides
from .sqlite_rows import NEW, STORED, encode
from .sqlite_safety import gate_on

Outcome = tuple[Any, BaseException | None]
Target = tuple[int, int]  # (user id, the how-manieth of their updates in this write)


_LOCK = "SELECT id FROM chats WHERE id = ANY(CAST(? AS BIGINT[])) ORDER BY id FOR UPDATE"

# Each send's first row (row[1:18]: what _tx_send_message reads), the peer's outbox mark and
# whether the peer wrote after the sender's read mark (who is told of the read, _tell_authors).
_READ = (
    "SELECT a.i, " + sending_columns("a.sender") + ", p.read_outbox_max_id, "
    "EXISTS (SELECT 1 FROM messages x WHERE x.chat_id = c.id "
    "AND x.id > m.read_inbox_max_id AND x.sender_id = p.user_id) "
    "FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[])) "
    "WITH ORDINALITY AS a(sender, random_id, chat, i) JOIN chats c ON c.id = a.chat "
    + sending_joins("a.sender", "a.random_id"))

# Every table once. The users' rows are locked in id order (``locked``) so that writers
# which share users cannot deadlock on them; each recipient's first new pts is base + 1.
_WRITE = """
WITH locked AS (
    SELECT u.id FROM users u WHERE u.id = ANY(CAST(? AS BIGINT[])) ORDER BY u.id FOR UPDATE),
bumped AS (
    UPDATE users SET pts = users.pts + v.n
    FROM locked l JOIN unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[])) AS v(id, n)
    ON v.id = l.id WHERE users.id = l.id
    RETURNING users.id, users.pts - v.n AS base),
logged AS (
    INSERT INTO updates (user_id, pts, kind, chat_id, message_id, data)
    SELECT u.user_id, b.base + u.k, u.kind, u.chat_id, u.message_id, u.data
    FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]),
                CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BYTEA[]))
         AS u(user_id, k, kind, chat_id, message_id, data)
    JOIN bumped b ON b.id = u.user_id),
remembered AS (
    INSERT INTO random_ids (sender_id, random_id, chat_id, message_id, pts)
    SELECT s.sender_id, s.random_id, s.chat_id, s.message_id, b.base + s.k
    FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]),
                CAST(? AS BIGINT[]), CAST(? AS BIGINT[]))
         AS s(sender_id, random_id, chat_id, message_id, k)
    JOIN bumped b ON b.id = s.sender_id),
sent AS (
    INSERT INTO messages (chat_id, id, sender_id, date, text, ciphertext)
    SELECT * FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]),
                         CAST(? AS DOUBLE PRECISION[]), CAST(? AS TEXT[]), CAST(? AS BYTEA[]))),
moved AS (
    UPDATE chats SET last_message_id = v.last
    FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[])) AS v(id, last) WHERE chats.id = v.id),
marked AS (
    UPDATE members
    SET read_inbox_max_id = COALESCE(v.inbox, members.read_inbox_max_id),
        read_outbox_max_id = COALESCE(v.outbox, members.read_outbox_max_id)
    FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]),
                CAST(? AS BIGINT[])) AS v(chat_id, user_id, inbox, outbox)
    WHERE members.chat_id = v.chat_id AND members.user_id = v.user_id)
SELECT id, base FROM bumped"""


def send_in_bulk(conn: SyncConnection, calls: Sequence[tuple[Any, ...]],
                 alone: Callable[..., Any]) -> list[Outcome]:
    """The outcome of each of ``calls`` (the arguments of ``alone``, the send done by itself),
    in order, as if each had been run alone, one after the other, in this transaction."""
    outcomes: list[Outcome] = [(None, None)] * len(calls)
    conn.execute(_LOCK, (sorted({call[1] for call in calls}),))
    rows = _read(conn, calls, range(len(calls)))
    sends = _Sends()
    touched: set[int] = set()  # chats a send done alone wrote in since their rows were read
    for index, call in enumerate(calls):
        chat_id = call[1]
        planned = None
        if not _goes_alone(call, rows.get(index)):
            if chat_id in touched:
                touched.discard(chat_id)
                sends.forget(chat_id)
                rows.update(_read(conn, calls, [i for i in range(index, len(calls))
                                                if calls[i][1] == chat_id]))
            try:
                planned = sends.plan(conn, call, rows[index])
            except PigeonError as exc:
                outcomes[index] = (None, exc)
                continue
        if planned is not None:
            sends.planned.append((index, planned))
            continue
        sends.write(conn, outcomes)  # what was decided before it, first
        outcomes[index] = attempt(conn, alone, call)
        touched.add(chat_id)
        sends.random_ids.add((call[0], call[2]))
    sends.write(conn, outcomes)
    return outcomes


def _read(conn: SyncConnection, calls: Sequence[tuple[Any, ...]],
          indexes: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """The first rows of the sends at ``indexes`` (none for a chat that does not exist)."""
    sender, random_id, chat = ([calls[i][column] for i in indexes] for column in (0, 2, 1))
    return {indexes[row[0] - 1]: row
            for row in conn.execute(_READ, (sender, random_id, chat)).fetchall()}


def _goes_alone(call: tuple[Any, ...], row: tuple[Any, ...] | None) -> bool:
    """A send done alone whatever its chat's rows say now: a reply, a forward, a sticker or a
    file; no such chat; not a private chat (a chat's kind never changes)."""
    _, _, _, _, _, reply_to, fwd_from, *attached = call
    return (reply_to is not None or fwd_from is not None
            or any(a is not None for a in attached[:2]) or row is None or row[1] != "private")


class _Planned:
    """One send decided: its message and its updates, each for (user, k) targets."""

    __slots__ = ("message", "pushes")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.pushes: list[tuple[Any, list[Target]]] = []


class _Sends:
    """The run's sends, decided in order: what they changed since their chat's rows were
    read (carried to the next send in that chat), and what they will write."""

    def __init__(self) -> None:
        self.last: dict[int, int] = {}  # chat -> its last message id, as the sends leave it
        self.inbox: dict[tuple[int, int], int] = {}  # (chat, user) -> read mark
        self.outbox: dict[tuple[int, int], int] = {}  # (chat, user) -> outbox mark
        self.wrote: dict[int, list[tuple[int, int]]] = {}  # chat -> [(message id, sender)]
        self.random_ids: set[tuple[int, int]] = set()  # (sender, random_id) used in the run
        self._pending()

    def _pending(self) -> None:
        """Nothing to write (again, after a write)."""
        self.planned: list[tuple[int, _Planned]] = []
        self.counts: dict[int, int] = {}  # user -> their updates so far
        self.updates: list[tuple[int, int, int, int, int, bytes | None]] = []
        self.remembered: list[tuple[int, int, int, int, int]] = []
        self.messages: list[tuple[int, int, int, float, str, bytes | None]] = []
        self.moved: dict[int, int] = {}  # chat -> last message id
        self.marks: dict[tuple[int, int], tuple[int | None, int | None]] = {}

    def forget(self, chat_id: int) -> None:
        """The chat's rows are read again: what the run changed there is in them."""
        self.last.pop(chat_id, None)
        self.wrote.pop(chat_id, None)
        for marks in (self.inbox, self.outbox):
            for key in [key for key in marks if key[0] == chat_id]:
                del marks[key]

    def plan(self, conn: SyncConnection, call: tuple[Any, ...],
             row: tuple[Any, ...]) -> _Planned | None:
        """A private text send (:func:`_goes_alone` said so) decided and its writes noted;
        None if it must go alone. A refusal is raised before anything is noted, as the send
        alone raises it before it writes."""
        sender_id, chat_id, random_id, text, now, *_, ciphertext = _padded(call)
        first = row[1:18]  # as _tx_send_message reads it
        peer_id = first[10]
        if first[7] is not None or (sender_id, random_id) in self.random_ids:
            return None  # a replay: answered from the message it made
        if peer_id is None:
            return None
        sender = membership.member(None if first[1] is None else self._standing(
            sender_id, chat_id, first), chat_id)
        encryption.check_body(sender.secret, text, ciphertext, attached=False)
        rules.check_service_rules(to_service_chat=bool(first[6]),
                                  forwards_from_service_chat=False)
        if private_sides(sender_id, first[15], peer_id, first[16]) is not None:
            return None
        _, _, sender_pending, wrote = first[11:15]
        if not wrote or sender_pending:  # the gate writes (a first contact, a request)
            return None
        if gate_on(cast(Any, conn), sender_id, chat_id, first[10:15], sending=True) is not None:
            return None  # held back from the peer: the usual way hides it
        message_id = sender.last_message_id + 1
        new = Message(chat_id=chat_id, id=message_id, sender_id=sender_id, date=now,
                      text=text, ciphertext=ciphertext)
        planned = _Planned(new)
        planned.pushes.append((up.NewMessage(pts=0, message=new),
                               self._log(NEW, chat_id, message_id, None, sender_id, peer_id)))
        reading = rules.read_on_send(sender, message_id)
        if reading.tells and rules.tells_authors(sender.kind) and self._peer_wrote(
                chat_id, peer_id, reading, first, row[19]):
            outbox = self.outbox.get((chat_id, peer_id), row[18])
            if rules.authors_to_tell([(peer_id, outbox)], sender_id, reading.told):
                self.outbox[(chat_id, peer_id)] = reading.told
                inbox = self.marks.get((chat_id, peer_id), (None, None))[0]
                self.marks[(chat_id, peer_id)] = (inbox, reading.told)
                update = up.ReadOutbox(pts=0, chat_id=chat_id, max_id=reading.told)
                planned.pushes.append((update, self._log(
                    STORED, chat_id, 0, encode(update), peer_id)))
        self.last[chat_id] = self.moved[chat_id] = message_id
        self.inbox[(chat_id, sender_id)] = reading.mark
        outbox = self.marks.get((chat_id, sender_id), (None, None))[1]
        self.marks[(chat_id, sender_id)] = (reading.mark, outbox)
        self.wrote.setdefault(chat_id, []).append((message_id, sender_id))
        self.random_ids.add((sender_id, random_id))
        self.remembered.append((sender_id, random_id, chat_id, message_id,
                                planned.pushes[0][1][0][1]))
        self.messages.append((chat_id, message_id, sender_id, float(now), escape_text(text),
                              ciphertext))
        return planned

    def _standing(self, sender_id: int, chat_id: int, first: Sequence[Any]) -> Standing:
        kind, role, history_from, inbox, last, secret = first[:6]
        return Standing(kind, role, history_from, self.inbox.get((chat_id, sender_id), inbox),
                        self.last.get(chat_id, last), bool(secret))

    def _peer_wrote(self, chat_id: int, peer_id: int, reading: rules.Reading,
                    first: Sequence[Any], wrote_after_mark: bool) -> bool:
        """Whether the peer wrote a message in (after, told]: of those committed before the
        read, the read's own answer (for the sender's mark as read), and of the run's since."""
        if reading.after == first[3] and wrote_after_mark:
            return True
        return any(author == peer_id and reading.after < mid <= reading.told
                   for mid, author in self.wrote.get(chat_id, ()))

    def _log(self, kind: int, chat_id: int, message_id: int, data: bytes | None,
             *user_ids: int) -> list[Target]:
        targets = []
        for user_id in user_ids:
            k = self.counts[user_id] = self.counts.get(user_id, 0) + 1
            targets.append((user_id, k))
            self.updates.append((user_id, k, kind, chat_id, message_id, data))
        return targets

    def write(self, conn: SyncConnection, outcomes: list[Outcome]) -> None:
        """Everything planned since the last write, in one statement; each planned send's
        outcome."""
        if not self.planned:
            return
        users = sorted(self.counts)
        marks = self.marks
        bases = dict(conn.execute(_WRITE, (
            users, users, [self.counts[u] for u in users],
            *_columns(self.updates, 6), *_columns(self.remembered, 5),
            *_columns(self.messages, 6), list(self.moved), list(self.moved.values()),
            [chat for chat, _ in marks], [user for _, user in marks],
            [inbox for inbox, _ in marks.values()], [outbox for _, outbox in marks.values()],
        )).fetchall())
        for index, planned in self.planned:
            pushes = [Push(update, [(uid, bases[uid] + k) for uid, k in targets
                                    if uid in bases])
                      for update, targets in planned.pushes]
            outcomes[index] = ((planned.message, pts_in(pushes[:1], planned.message.sender_id),
                                pushes), None)
        self._pending()


def _padded(call: tuple[Any, ...]) -> tuple[Any, ...]:
    """A send's arguments with the optional ones (sticker, media, ciphertext) filled in."""
    return (*call, *(None,) * (10 - len(call)))


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (unnest's arrays)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width
