"""Issue 7, finding 15: the data directory and the CLI profile are private to their owner."""

import os
import stat
import subprocess
import sys

import pytest

from pigeon.testing import ServerProcess, login


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def modes(directory) -> dict[str, int]:
    return {name: mode(directory / name) for name in sorted(os.listdir(directory))}


async def test_data_directory_and_every_file_in_it_are_private(tmp_path, phone):
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        client = await login(server, phone(), "Private", username="private_p")
        chat = await client.chats.create_group("written to the WAL", [])
        await client.messages.send(chat.id, "and so is this")
        await client.close()
        files = modes(data)  # while the server runs: the WAL and shared memory exist
    assert mode(data) == 0o700
    assert {"pigeon.db", "pigeon.db-wal", "pigeon.db-shm", "secret.key"} <= set(files)
    assert files == private(data, files)


def private(data, files):  # type: ignore[no-untyped-def]
    """What each entry's mode must be: 0700 for a directory (the media store), 0600 else."""
    return {name: 0o700 if (data / name).is_dir() else 0o600 for name in files}


def test_a_data_directory_others_can_read_is_refused(tmp_path):
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "pigeon", "serve", "--data", str(data), "--listen",
         "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "refusing to start" in line and "0755" in line
    assert "chmod 700" in line and "--allow-shared-data-dir" in line
    assert os.listdir(data) == []  # nothing was written before the refusal


@pytest.mark.parametrize("how", ["flag", "env"])
async def test_sharing_the_data_directory_on_purpose(tmp_path, phone, how):
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o750)
    args = ("--allow-shared-data-dir",) if how == "flag" else ()
    env = {"PIGEON_ALLOW_SHARED_DATA_DIR": "1"} if how == "env" else None
    with ServerProcess(data, *args, env=env) as server:
        client = await login(server, phone(), "Shared")
        await client.close()
        files = modes(data)
    assert mode(data) == 0o750  # the operator's choice, left alone
    assert files["pigeon.db"] == files["secret.key"] == 0o600  # what it creates is still private


async def test_files_left_open_by_an_older_version_are_made_private(tmp_path, phone):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for name, content in (("pigeon.db", b""), ("secret.key", os.urandom(32))):
        (data / name).write_bytes(content)
        (data / name).chmod(0o644)
    with ServerProcess(data) as server:
        client = await login(server, phone(), "Upgraded")
        await client.close()
        files = modes(data)
    assert files == private(data, files)


def test_cli_profile_directory_and_file_are_private(server, phone, tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    profile.chmod(0o755)  # made by hand, or by an older pigeon
    result = subprocess.run(
        [sys.executable, "-m", "pigeon", "--profile", str(profile), "register", "--server",
         server.url, phone()], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert mode(profile) == 0o700
    assert modes(profile) == {"profile.json": 0o600, "profile.lock": 0o600}
