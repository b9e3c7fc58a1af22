"""The smaller things a new user met in the first ten minutes (issue 11, bug 8)."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest
from cli_support import ok, pigeon, sign_up

from pigeon.testing import ServerProcess


def test_what_register_verify_and_groups_say(tmp_path, phone):
    # Codes that live under a minute were said to expire "in 0 minutes".
    with ServerProcess(tmp_path / "data", env={"PIGEON_CODE_TTL": "45"}) as server:
        alice, number = tmp_path / "alice", phone()
        said = ok(alice, "register", "--server", server.url, number)
        assert "it expires in 45 seconds" in said
        assert f"Next: pigeon --profile {alice} verify CODE" in said  # the hint keeps --profile
        ok(alice, "verify", server.code_for(number), "--name", "Alice")
        # Every device was named "pigeon-cli": now the host name, as the sessions list shows.
        assert socket.gethostname() in ok(alice, "sessions", "list")
        assert ok(alice, "group", "create", "Alone").strip().endswith("with 1 member")


def test_send_to_a_user_id_and_usernames_with_capitals(server, phone, tmp_path):
    alice, carol = tmp_path / "alice", tmp_path / "carol"
    sign_up(server, alice, phone(), "Alice", "alice_d")
    sign_up(server, carol, phone(), "Carol")
    # The help said a-z while the server took capitals: now they agree, and say how.
    assert "you are now @Carol_2" in ok(carol, "username", "set", "Carol_2")
    help_text = " ".join(ok(None, "username", "set", "--help").split())
    assert "letters (a-z, A-Z)" in help_text and "@Carol_2 and @carol_2 are one name" in help_text
    carol_id = ok(carol, "whoami").split("user ")[1].split(",")[0]
    # `send --to user:ID` was refused although group commands take user:ID.
    assert ok(alice, "send", "--to", f"user:{carol_id}", "by id").startswith("sent chat:")
    assert ok(alice, "send", "--to", "@carol_2", "by name, any case").startswith("sent chat:")
    assert [line.split("] ", 1)[1].split(": ", 1)[1] for line in ok(carol, "history",
            "@alice_d").splitlines()] == ["by id", "by name, any case"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_self_signed_server_with_ca_file(tmp_path, phone):
    """TLS with a self-signed certificate needed SSL_CERT_FILE, undocumented: --ca-file."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with ServerProcess(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key)) as srv:
        url, profile, number = f"https://127.0.0.1:{srv.port}", tmp_path / "p", phone()
        untrusted = pigeon(profile, "register", "--server", url, number)
        assert untrusted.returncode == 3 and "certificate" in untrusted.stderr
        ok(None, "--profile", str(profile), "--ca-file", str(cert), "register", "--server", url,
           number)
        ok(profile, "verify", srv.code_for(number), "--name", "Tess")  # remembered
        assert "Tess" in ok(profile, "whoami")
