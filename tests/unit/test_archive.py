"""The profile's message archive (pigeon.client.archive): whatever a person types is a query
that runs, never an FTS5 syntax error; edits and deletions keep the index true."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.client.archive import Archive, match_expression
from pigeon.protocol.types import Message, User
from text_strategies import any_text

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)


def msg(chat_id: int, id_: int, text: str, **extra) -> Message:  # type: ignore[no-untyped-def]
    return Message(chat_id=chat_id, id=id_, sender_id=2, date=float(id_), text=text, **extra)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_any_query_runs(query):
    # Kept texts come from the wire, UTF-8: never a lone surrogate, which a query may hold.
    kept = query.encode("utf-8", "replace").decode("utf-8")
    with tempfile.TemporaryDirectory() as tmp, Archive(Path(tmp)) as archive:
        archive.keep([(msg(1, 1, kept), None)])
        archive.search(query)  # raises on a syntax error
        if match_expression(query) is None:
            assert archive.search(query) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(words, min_size=1, max_size=6), st.lists(words, min_size=1, max_size=6))
def test_a_kept_text_is_found_by_its_words_until_edited_or_deleted(before, after):
    alice = User(id=2, name="Alice")
    with tempfile.TemporaryDirectory() as tmp, Archive(Path(tmp)) as archive:
        archive.keep([(msg(1, 1, " ".join(before)), alice), (msg(2, 1, "other"), None)])
        assert [f.message.id for f in archive.search(before[0], chat_id=1)] == [1]
        assert archive.search(before[-1])[0].sender == alice
        archive.keep([(msg(1, 1, " ".join(after), edit_date=9.0), None)])
        assert archive.search(after[0], chat_id=1)[0].message.text == " ".join(after)
        assert archive.search(after[0], chat_id=1)[0].sender == alice  # the name stays
        if not any(w.startswith(before[0]) for w in after):
            assert archive.search(before[0], chat_id=1) == []
        archive.keep([(msg(1, 1, "", deleted=True), None)])
        assert archive.search(after[0], chat_id=1) == []
        assert archive.text(2, 1) == "other"
        archive.forget(2, [1])
        assert archive.text(2, 1) is None
