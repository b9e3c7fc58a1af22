"""What is parsed from the command line before anything is sent (issue 11, bug 6): server
URLs, listening addresses; and how durations and counts are said (bug 8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.cli.args import BadMessageId, BadServerUrl, message_id, server_url
from pigeon.cli.output import duration, plural
from pigeon.client.client import ws_url
from pigeon.server.settings import SettingsError, split_listen


@pytest.mark.parametrize("raw,url", [
    ("http://127.0.0.1:8700", "http://127.0.0.1:8700"),
    ("https://chat.example.org/", "https://chat.example.org"),
    ("HTTPS://Chat.Example.org:443/v1/ws", "https://chat.example.org:443"),
    ("wss://[::1]:8700", "wss://[::1]:8700"),
    ("127.0.0.1:8700", "http://127.0.0.1:8700"),
    ("localhost", "http://localhost"),
])
def test_good_server_urls(raw, url):
    assert server_url(raw) == url


@pytest.mark.parametrize("raw", [
    "htp:/bad", "htp://bad", "ftp://example.org", "http://", "http://:8700", "",
    "http://127.0.0.1:99999", "http://host:port", "http://a b", "http://x/y", "http://x?q=1",
    "http://user:pw@host", "http://host:0", "http://[nothex]:1", "http://-bad-.org",
])
def test_bad_server_urls(raw):
    with pytest.raises(BadServerUrl, match="not a server URL"):
        server_url(raw)


@given(st.text(max_size=60))
def test_any_text_is_a_url_the_client_can_use_or_a_clear_refusal(raw):
    try:
        url = server_url(raw)
    except BadServerUrl as exc:
        assert "not a server URL" in str(exc)
        return
    assert url.split("://")[0] in ("http", "https", "ws", "wss")
    assert server_url(url) == url  # stable: what is stored parses back to itself
    assert ws_url(url).endswith("/v1/ws") and ws_url(url).startswith(("ws://", "wss://"))


@given(host=st.sampled_from(["127.0.0.1", "[::1]", "localhost", "0.0.0.0"]),
       port=st.integers(min_value=0, max_value=10**7))
def test_a_listening_port_out_of_range_is_refused(host, port):
    if port > 65535:
        with pytest.raises(SettingsError, match="out of range"):
            split_listen(f"{host}:{port}")
    else:
        assert split_listen(f"{host}:{port}") == (host.strip("[]"), port)


@given(st.text(max_size=30))
def test_listen_is_host_port_or_refused(raw):
    try:
        host, port = split_listen(raw)
    except SettingsError:
        return
    assert host and 0 <= port <= 65535


@pytest.mark.parametrize("seconds,words", [
    (0, "0 seconds"), (1, "1 second"), (45, "45 seconds"), (60, "1 minute"),
    (90, "90 seconds"), (120, "2 minutes"), (300, "5 minutes"), (7200, "2 hours"),
])
def test_durations_in_words(seconds, words):
    assert duration(seconds) == words


def test_plural():
    assert (plural(1, "member"), plural(2, "member"), plural(0, "member")) == (
        "1 member", "2 members", "0 members")


@given(st.integers(min_value=1, max_value=2**62), st.booleans())
def test_a_message_id_reads_as_printed_or_bare(number, hashed):
    assert message_id(f"#{number}" if hashed else str(number)) == number


@pytest.mark.parametrize("raw", ["", "#", "0", "#0", "-1", "x1", "1x", "1.0", "1_0", "²", "١",
                                 "##1", str(2**62 + 1), "99999999999999999999999"])
def test_anything_else_is_not_a_message_id(raw):
    with pytest.raises(BadMessageId, match="not a message id"):
        message_id(raw)


def test_a_file_id_that_begins_with_a_dash_is_the_argument_not_an_option():
    from pigeon.cli.media import download

    ctx = download.make_context("download", ["-mqAbMHJZcHFVKaQDDWw0A", "--out", "f.txt"])
    assert ctx.params["file_id"] == "-mqAbMHJZcHFVKaQDDWw0A"


def test_new_file_ids_never_begin_with_a_dash():
    from pigeon.protocol.media import FILE_ID
    from pigeon.server.media_files import new_id

    ids = [new_id() for _ in range(2_000)]  # a leading "-" is 1 in 64 of token_urlsafe's
    assert all(FILE_ID.match(i) and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
