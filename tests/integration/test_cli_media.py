"""`pigeon upload`, `pigeon download` and media in `pigeon receive --json` (issue 10, CLI
contract), run as a person would in a shell."""

from __future__ import annotations

import json
import secrets

import pytest
from cli_support import ok, one_error_line, pigeon, sign_up
from PIL import Image

pytestmark = pytest.mark.slow


def test_upload_receive_and_download(server, phone, tmp_path):
    alice, bob, eve = tmp_path / "alice", tmp_path / "bob", tmp_path / "eve"
    sign_up(server, alice, phone(), "Alice", "alice_m")
    sign_up(server, bob, phone(), "Bob", "bob_m")
    sign_up(server, eve, phone(), "Eve", "eve_m")
    picture = tmp_path / "sunset.png"
    Image.new("RGBA", (800, 600), (255, 128, 0, 200)).save(picture)
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4\n" + b"x" * 5000)
    out = ok(alice, "upload", str(picture), "--to", "@bob_m", "--caption", "tonight")
    assert out.startswith("sent photo sunset.png") and "image/png" in out
    ok(alice, "upload", str(report), "--to", "@bob_m")  # piped: no progress bar
    lines = [json.loads(line) for line in ok(bob, "receive", "--json").splitlines()]
    photo, doc = lines
    assert photo["text"] == "tonight" and photo["media"]["kind"] == "photo"
    assert set(photo["media"]) == {"kind", "file_id", "name", "size", "mime"}
    assert doc["media"]["mime"] == "application/pdf" and doc["text"] == ""
    assert doc["media"]["size"] == report.stat().st_size
    got = tmp_path / "got.pdf"
    assert "saved" in ok(bob, "download", doc["media"]["file_id"], "--out", str(got))
    assert got.read_bytes() == report.read_bytes()
    # a half-finished download resumes from OUT.part
    again = tmp_path / "again.pdf"
    (tmp_path / "again.pdf.part").write_bytes(report.read_bytes()[:1000])
    etag = (tmp_path / "again.pdf.part.etag")
    etag.write_text(f'"{__import__("hashlib").sha256(report.read_bytes()).hexdigest()}"')
    ok(bob, "download", doc["media"]["file_id"], "--out", str(again))
    assert again.read_bytes() == report.read_bytes()
    refused = pigeon(eve, "download", doc["media"]["file_id"], "--out", str(tmp_path / "e"))
    assert refused.returncode == 1 and "FILE_NOT_FOUND" in one_error_line(refused)
    secret = pigeon(alice, "upload", str(report), "--to", "secret:1")  # keys are locked
    assert secret.returncode == 1 and "PASSPHRASE_REQUIRED" in one_error_line(secret)


def test_a_secret_chat_file_is_encrypted_on_the_device(server, phone, tmp_path):
    """`upload --to secret:ID`: encrypted before it leaves (a fresh key per file), the key
    and hash inside the end-to-end message; the server holds only ciphertext (a marker scan
    of its whole data directory), only the peer may fetch it, and `download` decrypts."""
    alice, bob, eve = tmp_path / "alice", tmp_path / "bob", tmp_path / "eve"
    sign_up(server, alice, phone(), "Alice", "alice_sf")
    sign_up(server, bob, phone(), "Bob", "bob_sf")
    sign_up(server, eve, phone(), "Eve", "eve_sf")
    ok(alice, "send", "--to", "@bob_sf", "hello")
    ok(bob, "send", "--to", "@alice_sf", "hi")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    env = {"PIGEON_PASSPHRASE_FILE": str(passphrase)}
    ok(bob, "secret", "list", env=env)  # Bob's device publishes its keys
    chat = ok(alice, "secret", "start", "@bob_sf", env=env).split()[2]
    marker = b"MARKER-" + secrets.token_hex(8).encode()
    plans = tmp_path / "plans-MARKERNAME.txt"
    plans.write_bytes(marker * 20_000)  # 460 KB: several 64 KiB blocks of the cipher
    out = ok(alice, "upload", str(plans), "--to", chat, "--caption", "the MARKERCAPTION",
             env=env)
    assert out.startswith(f"sent document {plans.name}") and "encrypted on this device" in out
    file_id = out.split()[-1]
    for stored in server.data.rglob("*"):
        if stored.is_file():
            data = stored.read_bytes()
            for secret in (marker, b"MARKERNAME", b"MARKERCAPTION"):
                assert secret not in data, stored
    lines = [json.loads(line) for line in ok(bob, "receive", "--json", env=env).splitlines()]
    (got,) = [obj for obj in lines if obj.get("secret")]
    assert got["chat"] == chat and got["text"] == "the MARKERCAPTION"
    assert got["media"] == {"kind": "document", "file_id": file_id, "name": plans.name,
                            "size": plans.stat().st_size, "mime": "text/plain"}
    opened = tmp_path / "opened.txt"
    assert "decrypted" in ok(bob, "download", file_id, "--out", str(opened), env=env)
    assert opened.read_bytes() == plans.read_bytes()
    assert not list(tmp_path.glob("opened.txt.*"))  # no ciphertext or partial left behind
    # the ciphertext is the peer's to fetch, nobody else's; without the key it is noise
    refused = pigeon(eve, "download", file_id, "--out", str(tmp_path / "e"))
    assert refused.returncode == 1 and "FILE_NOT_FOUND" in one_error_line(refused)
