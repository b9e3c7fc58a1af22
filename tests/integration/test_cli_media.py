"""`pigeon upload`, `pigeon download` and media in `pigeon receive --json` (issue 10, CLI
contract), run as a person would in a shell."""

from __future__ import annotations

import json

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
    secret = pigeon(alice, "upload", str(report), "--to", "secret:1")
    assert secret.returncode == 2 and "secret" in secret.stderr
