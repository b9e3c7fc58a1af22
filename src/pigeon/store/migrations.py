"""Versioned schema migrations for SQLite, applied in order at start (PRAGMA user_version)."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the core messenger
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        phone TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        username TEXT,
        username_key TEXT UNIQUE,
        phone_discoverable INTEGER NOT NULL DEFAULT 0,
        pts INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE login_codes (
        id TEXT PRIMARY KEY,
        phone TEXT NOT NULL,
        code_hash BLOB NOT NULL,
        expires REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        token_hash BLOB NOT NULL UNIQUE,
        device TEXT NOT NULL,
        address TEXT NOT NULL,
        created REAL NOT NULL,
        last_active REAL NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions(user_id);
    CREATE TABLE chats (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        last_message_id INTEGER NOT NULL DEFAULT 0,
        member_count INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE private_chats (
        user_a INTEGER NOT NULL,
        user_b INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        PRIMARY KEY (user_a, user_b)
    ) WITHOUT ROWID;
    CREATE TABLE members (
        chat_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        role TEXT NOT NULL,
        joined REAL NOT NULL,
        history_from INTEGER NOT NULL DEFAULT 0,
        read_inbox_max_id INTEGER NOT NULL DEFAULT 0,
        read_outbox_max_id INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (chat_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX members_by_user ON members(user_id, chat_id);
    CREATE TABLE messages (
        chat_id INTEGER NOT NULL,
        id INTEGER NOT NULL,
        sender_id INTEGER NOT NULL,
        date REAL NOT NULL,
        text TEXT NOT NULL,
        reply_to INTEGER,
        fwd BLOB,
        edit_date REAL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (chat_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE hidden_messages (
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, chat_id, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE random_ids (
        sender_id INTEGER NOT NULL,
        random_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        pts INTEGER NOT NULL,
        PRIMARY KEY (sender_id, random_id)
    ) WITHOUT ROWID;
    CREATE TABLE updates (
        user_id INTEGER NOT NULL,
        pts INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        chat_id INTEGER NOT NULL DEFAULT 0,
        message_id INTEGER NOT NULL DEFAULT 0,
        data BLOB,
        PRIMARY KEY (user_id, pts)
    ) WITHOUT ROWID;
    """,
    # 2: consent to groups, who may see whom, group quotas (issue 7, findings 6, 7 and 18)
    """
    ALTER TABLE users ADD COLUMN who_can_add TEXT;
    ALTER TABLE chats ADD COLUMN creator_id INTEGER NOT NULL DEFAULT 0;
    UPDATE chats SET creator_id = COALESCE((SELECT user_id FROM members
        WHERE members.chat_id = chats.id AND role = 'owner'), 0) WHERE kind = 'group';
    CREATE INDEX chats_by_creator ON chats(creator_id, created);
    CREATE TABLE invitations (
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        inviter_id INTEGER NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (user_id, chat_id)
    ) WITHOUT ROWID;
    CREATE TABLE discovered (
        user_id INTEGER NOT NULL,
        peer_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, peer_id)
    ) WITHOUT ROWID;
    CREATE TABLE wrote_to (
        user_id INTEGER NOT NULL,
        peer_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, peer_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO wrote_to (user_id, peer_id)
        SELECT DISTINCT m.sender_id,
               CASE WHEN m.sender_id = p.user_a THEN p.user_b ELSE p.user_a END
        FROM private_chats p JOIN messages m ON m.chat_id = p.chat_id;
    """,
    # 3: what a departed member was entitled to (issue 7, finding 1). A message update in the
    # log refers to the live message row; someone who left a group must not read, through it,
    # an edit made after they left. Each chat counts its edits (``chats.edit_seq``); a message
    # keeps the count of its last edit; a departure records the period of message ids it ends
    # (``first_id`` exclusive, ``last_id`` inclusive) and the chat's count at that moment.
    """
    ALTER TABLE chats ADD COLUMN edit_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN edit_seq INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE departures (
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        edit_seq INTEGER NOT NULL,
        date REAL NOT NULL,
        PRIMARY KEY (user_id, chat_id, last_id)
    ) WITHOUT ROWID;
    """,
    # 4: session ids are never reused (issue 7, finding 4). Without AUTOINCREMENT SQLite hands
    # out max(id) + 1, so deleting the newest session gave its id to the next device: a stale
    # "terminate session N" could then end somebody's new one. SQLite cannot add
    # AUTOINCREMENT to a column, so the table is rebuilt; sqlite_sequence starts at the
    # highest id copied.
    """
    CREATE TABLE sessions_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id),
        token_hash BLOB NOT NULL UNIQUE,
        device TEXT NOT NULL,
        address TEXT NOT NULL,
        created REAL NOT NULL,
        last_active REAL NOT NULL
    );
    INSERT INTO sessions_v2 (id, user_id, token_hash, device, address, created, last_active)
        SELECT id, user_id, token_hash, device, address, created, last_active FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_v2 RENAME TO sessions;
    CREATE INDEX sessions_by_user ON sessions(user_id);
    """,
    # 5: the chats of the service account (login codes delivered in the app): only it writes
    """
    CREATE TABLE service_chats (
        chat_id INTEGER PRIMARY KEY
    );
    """,
    # 6: streams (issue 8, deliverable 2). Every sequence that is not a user's own pts: a very
    # large chat's (``chat:<id>``: one item per message, read by every member) and a device's
    # inbox (``device:<session id>``). ``streams`` holds each one's head, the row a writer
    # locks to number its items; ``stream_items`` the items. A message item refers to its
    # message row (``kind`` 1 or 2, ``ref`` the message id), as the per-user log does, so that
    # a deletion for everyone wipes its text there too; other items keep their encoded body.
    # ``members.stream_from``: the chat stream's head when a member joined, where they start.
    """
    CREATE TABLE streams (
        name TEXT PRIMARY KEY,
        head INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE stream_items (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        ref INTEGER NOT NULL DEFAULT 0,
        body BLOB,
        created REAL NOT NULL,
        PRIMARY KEY (stream, seq)
    ) WITHOUT ROWID;
    ALTER TABLE members ADD COLUMN stream_from INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: safety (issue 11): blocks, abuse reports, contacts, message requests, and accounts an
    # operator disabled or deleted. ``message_requests`` holds, per private chat, the state
    # of the request its other side made to ``user_id``: pending, accepted or declined; a
    # private chat without a row was never a request (those made before this migration).
    """
    ALTER TABLE users ADD COLUMN who_can_message TEXT;
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE blocks (
        user_id INTEGER NOT NULL,
        peer_id INTEGER NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (user_id, peer_id)
    ) WITHOUT ROWID;
    CREATE TABLE contacts (
        user_id INTEGER NOT NULL,
        peer_id INTEGER NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        PRIMARY KEY (user_id, peer_id)
    ) WITHOUT ROWID;
    CREATE TABLE message_requests (
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        peer_id INTEGER NOT NULL,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (user_id, chat_id)
    ) WITHOUT ROWID;
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        reporter_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        sender_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        UNIQUE (reporter_id, chat_id, message_id)
    );
    CREATE INDEX reports_by_reporter ON reports(reporter_id, created);
    """,
    # 8: mute (each member's own, synced to their devices) and the pinned message (the chat's)
    """
    ALTER TABLE members ADD COLUMN muted_until REAL NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN pinned_message_id INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: device keys (issue 9): public keys only, as each device (session) published them.
    # Ending a session deletes its rows in the same transaction (sqlite_keys.forget).
    """
    CREATE TABLE device_keys (
        session_id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        curve25519 TEXT NOT NULL,
        ed25519 TEXT NOT NULL,
        signature TEXT NOT NULL,
        fallback_id TEXT,
        fallback_key TEXT,
        fallback_signature TEXT
    );
    CREATE INDEX device_keys_user ON device_keys (user_id);
    CREATE TABLE one_time_keys (
        session_id INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        key TEXT NOT NULL,
        signature TEXT NOT NULL,
        PRIMARY KEY (session_id, key_id)
    ) WITHOUT ROWID;
    """,
    # 10: sticker sets (issue 10; pigeon.domain.stickers). A sticker's place is its position
    # (from 1); emoji are stored between unit separators (\x1f) so that one instr() finds an
    # emoji exactly. A sticker message keeps its MessageSticker, encoded, on the message row.
    """
    CREATE TABLE sticker_sets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        author_id INTEGER NOT NULL,
        licence TEXT NOT NULL DEFAULT '',
        published REAL,
        created REAL NOT NULL
    );
    CREATE INDEX sticker_sets_by_author ON sticker_sets (author_id);
    CREATE TABLE stickers (
        set_id INTEGER NOT NULL,
        position INTEGER NOT NULL,
        file_id TEXT NOT NULL,
        emoji TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        animated INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        PRIMARY KEY (set_id, position)
    ) WITHOUT ROWID;
    CREATE INDEX stickers_by_file ON stickers (file_id);
    CREATE TABLE installed_stickers (
        user_id INTEGER NOT NULL,
        set_id INTEGER NOT NULL,
        installed REAL NOT NULL,
        PRIMARY KEY (user_id, set_id)
    ) WITHOUT ROWID;
    CREATE INDEX installed_by_set ON installed_stickers (set_id);
    ALTER TABLE messages ADD COLUMN sticker BLOB;
    """,
    # 11: media (issue 10). A message's file (msgpack Media, NULL for none); the files, each
    # a blob of the blob store by digest; which messages refer to which file (a file no
    # message refers to is collected); uploads in progress (their parts are files on disk).
    """
    ALTER TABLE messages ADD COLUMN media BLOB;
    CREATE TABLE media_files (
        id TEXT PRIMARY KEY,
        owner_id INTEGER NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        name TEXT NOT NULL,
        mime TEXT NOT NULL,
        kind TEXT NOT NULL,
        width INTEGER NOT NULL DEFAULT 0,
        height INTEGER NOT NULL DEFAULT 0,
        thumb TEXT,
        parent TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX media_files_owner ON media_files (owner_id);
    CREATE INDEX media_files_digest ON media_files (digest);
    CREATE INDEX media_files_parent ON media_files (parent);
    CREATE INDEX media_files_created ON media_files (created);
    CREATE TABLE media_refs (
        file_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (file_id, chat_id, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX media_refs_message ON media_refs (chat_id, message_id);
    CREATE TABLE media_uploads (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL,
        size INTEGER NOT NULL,
        name TEXT NOT NULL,
        part_size INTEGER NOT NULL,
        kind TEXT NOT NULL,
        keep_location INTEGER NOT NULL,
        created REAL NOT NULL,
        file_id TEXT
    );
    CREATE INDEX media_uploads_user ON media_uploads (user_id);
    CREATE INDEX media_uploads_created ON media_uploads (created);
    """,
    # 12: end-to-end encrypted groups (issue 9): a group's flag, and a message's opaque
    # ciphertext (its text then stays empty)
    """
    ALTER TABLE chats ADD COLUMN secret INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN ciphertext BLOB;
    """,
    # 13: who may read a file besides the members of the chats it was sent to: the other
    # person of a secret chat (its message, with the file's key, is end-to-end encrypted).
    """
    CREATE TABLE media_readers (
        file_id TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        PRIMARY KEY (file_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX media_readers_user ON media_readers (user_id);
    """,
    # 14 (issue 12, regions): an account homed in another region (NULL: this one), and the
    # transactional outbox of private messages to people homed elsewhere: written in the
    # sender's transaction, deleted once the region's JetStream stream has it.
    """
    ALTER TABLE users ADD COLUMN home_region TEXT;
    CREATE TABLE region_outbox (
        id INTEGER PRIMARY KEY,
        region TEXT NOT NULL,
        sender_id INTEGER NOT NULL,
        recipient_id INTEGER NOT NULL,
        random_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        date REAL NOT NULL
    );
    CREATE INDEX region_outbox_region ON region_outbox (region, id);
    CREATE TABLE region_inbox (
        region TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
    );
    """,
    # 15 (issue 12, regions): the outbox carries more than messages: a row's kind (an old row
    # is a message) and the fields of its kind beyond the columns (msgpack; NULL: none). And
    # in a private chat across regions, each message's author and random_id by its id in
    # this region's copy (random_ids is keyed the other way), so that an edit, a delete or a
    # read mark here can name the message to the other copy; filled for the chats already
    # across regions. And the sticker files that came from another region with a message
    # (served to anyone, as a sticker's file here is; their sets stay there).
    """
    ALTER TABLE region_outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
    ALTER TABLE region_outbox ADD COLUMN body BLOB;
    CREATE TABLE region_sticker_files (
        file_id TEXT PRIMARY KEY
    );
    CREATE TABLE crossed_messages (
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        sender_id INTEGER NOT NULL,
        random_id INTEGER NOT NULL,
        PRIMARY KEY (chat_id, message_id)
    );
    INSERT INTO crossed_messages (chat_id, message_id, sender_id, random_id)
        SELECT r.chat_id, r.message_id, r.sender_id, r.random_id FROM random_ids r
        WHERE r.chat_id IN (SELECT m.chat_id FROM members m JOIN users u ON u.id = m.user_id
                            WHERE u.home_region IS NOT NULL);
    """,
    # 16 (issue 12, regions): groups spanning regions. A chat's home region (NULL: here; set:
    # a replica of a group homed there, written only by what that region ships), and, in a
    # group's own region, the other regions that keep a replica of it (those with members).
    """
    ALTER TABLE chats ADD COLUMN home_region TEXT;
    CREATE TABLE group_regions (
        chat_id INTEGER NOT NULL,
        region TEXT NOT NULL,
        PRIMARY KEY (chat_id, region)
    );
    """,
    # 17 (issue 12, regions): when the chat's pin (or unpin) was made and by whom, so that
    # both copies of a private chat across regions keep the last one (by date, then author
    # id) whatever order the two regions' pins arrive in
    """
    ALTER TABLE chats ADD COLUMN pin_date REAL NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN pin_by INTEGER NOT NULL DEFAULT 0;
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns it. Each step is one transaction."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"the database is at schema version {version}, newer than this Pigeon "
            f"({len(MIGRATIONS)}): upgrade Pigeon instead"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
