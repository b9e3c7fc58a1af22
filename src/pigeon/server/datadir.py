"""The data directory is the server's alone: it holds every message, phone number and session
hash (``pigeon.db`` and its ``-wal``/``-shm``) and the login-code key (``secret.key``).

Issue 7, finding 15: the directory used to be created 0755 and the database 0644, readable by
every local account. Now the server runs with umask 077, so everything it creates there (and
everything SQLite creates later: SQLite also gives ``-wal``/``-shm`` the database's own mode) is
0700/0600; it removes group and other access from files left by older versions; and it refuses
to start on a directory that group or others can enter, unless ``allow_shared_data_dir`` says
that is intended.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from .settings import SettingsError

LOCK_FILE = "lock"  # held (flock) by the one server using the directory
PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
SHARED_BITS = 0o077  # any access for group or others


class DataDirError(SettingsError):
    """The data directory cannot be used safely; the message says why and what to do."""


def prepare_data_dir(data: Path, *, allow_shared: bool = False) -> None:
    """Create ``data`` (mode 0700) or check that it is private, and make the files in it
    private. Call after :func:`private_umask`, before anything is written there."""
    try:
        data.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        st = data.stat()
    except OSError as exc:
        raise DataDirError(f"cannot use data directory {data}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataDirError(f"data directory {data} is not a directory")
    if allow_shared:
        return  # the operator shares it on purpose (say, a backup group): leave modes alone
    mode = stat.S_IMODE(st.st_mode)
    if mode & SHARED_BITS:
        raise DataDirError(
            f"refusing to start: data directory {data} is open to group or others (mode "
            f"{mode:04o}) and holds every message and phone number; run `chmod 700 {data}`, or "
            "pass --allow-shared-data-dir (PIGEON_ALLOW_SHARED_DATA_DIR=1) if that is intended")
    _make_files_private(data)


class DataDirInUse(DataDirError):
    """Another server holds the data directory's lock."""


def lock_data_dir(data: Path) -> int:
    """Take the data directory for this process: an exclusive ``flock`` on ``DATA/lock``,
    held until the returned descriptor is closed or the process ends (the kernel releases it
    even after ``kill -9``, so a crash never leaves a stale lock).

    Issue 11, bug 5: a second server on the same directory started happily; each had its own
    connections and its own idea of who to push to, so a message sent through one never
    reached a follower of the other. The lock is taken before the database is opened."""
    path = data / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DataDirError(f"cannot use data directory {data}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise DataDirInUse(
            f"refusing to start: another pigeon server{who} is using data directory {data}; "
            "stop it first, or give this one a --data of its own") from None
    except OSError as exc:
        os.close(fd)
        raise DataDirError(f"cannot lock data directory {data}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for the refusal message only
    return fd


def _make_files_private(data: Path) -> None:
    """Older versions left ``pigeon.db`` and its WAL 0644: take group and other access away
    from every regular file of ours at the top of the directory."""
    uid = os.geteuid()
    with os.scandir(data) as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_uid == uid and st.st_mode & SHARED_BITS:
                    os.chmod(entry.path, stat.S_IMODE(st.st_mode) & ~SHARED_BITS)
            except OSError:
                continue  # gone meanwhile, or not ours to change: the directory guards it


def private_umask() -> int:
    """Make every file this process creates from now on private (0600, directories 0700);
    returns the previous umask. The umask is per process: the server process owns it."""
    return os.umask(PRIVATE_UMASK)
