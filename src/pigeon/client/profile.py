"""A device's local state in a profile directory: its session and where its sync stands.

Files are written atomically (a temporary file of their own, fsync, rename) with mode 0600: the
session token in ``profile.json`` is as good as the account to whoever reads it.

Issue 11, bug 1: one profile is often used by several processes at once (``receive --follow``
in one terminal, ``send`` in another). Every process used to write through the same
``profile.tmp``, so one renamed the other's file away (``FileNotFoundError``), and a process
saving what it loaded at start undid what another had saved meanwhile. Now each write has its
own temporary file, and each save is a read-modify-write under an exclusive lock on
``profile.lock``: it re-reads the file and writes over it only the fields this process changed
since it last loaded or saved. The lock is held for a read and a small write only.

Where profiles live (issue 11, bug 4): a bare name is ``$XDG_CONFIG_HOME/pigeon/profiles/NAME``
(``~/.config/pigeon/profiles/NAME``), anything with a slash is a path, and the default profile
stays where it always was, ``~/.config/pigeon``; see :func:`resolve_profile`.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROFILE_FILE = "profile.json"
LOCK_FILE = "profile.lock"
DEFAULT_NAME = "default"  # what `pigeon profiles` calls the default profile
MAX_OWN_SENDS = 1000      # sends of this device remembered until `receive` passes them
SEND_MARK_TTL = 120.0     # seconds after which a send's mark is taken for a crashed process

# Fields written only through locked updates of what is on disk (several `send` processes
# add to them at once), never from a process's copy in memory.
_SHARED = frozenset({"own_pts", "sending"})
_NOT_SAVED = frozenset({"directory", "_saved"})


@dataclass
class Profile:
    directory: Path | None = None  # None: state lives in memory only
    server: str | None = None
    token: str | None = None
    # The resumption ticket of the token's session (issue 13): a hello with it is checked
    # without a database read. Worthless without the token; replaced at every welcome.
    ticket: str | None = None
    user_id: int | None = None
    session_id: int | None = None
    phone: str | None = None
    code_id: str | None = None      # between `register` and `verify`
    pts: int = 0                    # the position in the user's own stream, user:<id>
    streams: dict[str, int] = field(default_factory=dict)  # positions in the other streams
    ca_file: str | None = None      # certificate authority (PEM) the server's TLS is checked by
    # The deployment's other nodes, as its servers last said (welcome): tried in turn when
    # ``server`` stops answering (issue 12).
    endpoints: list[str] = field(default_factory=list)
    ended: str | None = None        # why the last session ended, when the server ended it
    # The pts of messages this device sent (`pigeon send`) that `receive` has not passed yet,
    # so that it does not show them back; and marks of sends in flight ({mark: [chat, since]}).
    own_pts: list[int] = field(default_factory=list)
    sending: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # What this process last read or wrote: a field differing from it was changed here.
    _saved: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, directory: Path | None) -> Profile:
        if directory is None:
            return cls()
        profile = cls(directory=directory, **_fields(_read(directory)))
        profile._saved = profile._data()
        return profile

    def _data(self) -> dict[str, Any]:
        return copy.deepcopy({k: v for k, v in asdict(self).items() if k not in _NOT_SAVED})

    def save(self, pts: int | None = None) -> None:
        """Write the profile; ``pts`` saves an earlier sync position than the one in memory
        (what the application has handled so far), so updates queued but not yet handled
        are fetched again after a crash instead of being lost. Fields that another process
        changed and this one did not are kept as that process wrote them."""
        if self.directory is None:
            return
        mine = self._data()
        if pts is not None:
            mine["pts"] = min(pts, self.pts)
        with self._locked() as disk:
            for name, value in mine.items():
                if name not in _SHARED and (name not in disk or value != self._saved.get(name)):
                    disk[name] = value
            # Own sends at or below the saved position have been passed: forget them.
            disk["own_pts"] = [p for p in disk.get("own_pts", []) if p > disk.get("pts", 0)]
        self._saved = mine

    def forget_session(self, why: str | None = None) -> None:
        self.token = self.ticket = self.user_id = self.session_id = None
        self.pts = 0
        self.streams = {}
        self.ended = why

    # -- sends of this device ----------------------------------------------------------------
    def begin_send(self, chat_id: int) -> str:
        """Mark a send to ``chat_id`` in flight: a `receive` that meanwhile gets a message of
        ours in that chat waits for :meth:`end_send` to learn whether this device sent it."""
        mark, now = secrets.token_hex(8), time.time()

        def begin(disk: dict[str, Any]) -> None:
            # Marks of sends that never ended (their process was killed) are dropped here.
            disk["sending"] = {k: v for k, v in disk.get("sending", {}).items()
                               if now - v[1] < SEND_MARK_TTL}
            disk["sending"][mark] = [chat_id, now]
        self._update(begin)
        return mark

    def end_send(self, mark: str, pts: int | None) -> None:
        """The send marked ``mark`` is done: its message has ``pts`` (None: it failed)."""
        def done(disk: dict[str, Any]) -> None:
            disk.get("sending", {}).pop(mark, None)
            own = disk.setdefault("own_pts", [])
            if pts is not None and pts > disk.get("pts", 0):
                own.append(pts)
                del own[:-MAX_OWN_SENDS]
        self._update(done)

    def sent_here(self, pts: int, chat_id: int) -> bool | None:
        """Whether the message at ``pts`` in ``chat_id`` was sent from this device: True,
        False, or None while a send to that chat is still in flight (ask again shortly)."""
        disk = _read(self.directory) if self.directory is not None else asdict(self)
        if pts in disk.get("own_pts", []):
            return True
        now = time.time()
        if any(chat == chat_id and now - since < SEND_MARK_TTL
               for chat, since in disk.get("sending", {}).values()):
            return None
        return False

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        if self.directory is None:
            data = {name: getattr(self, name) for name in _SHARED}
            change(data)
        else:
            with self._locked() as data:
                change(data)
        self.own_pts, self.sending = list(data.get("own_pts", [])), dict(data.get("sending", {}))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The profile as on disk, under the profile's lock; written back afterwards."""
        assert self.directory is not None
        _private_directory(self.directory)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Blocks only while another process reads and rewrites this small file.
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = _read(self.directory)
            before = copy.deepcopy(data)
            yield data
            if data != before or not before:  # a `send` changes nothing: no write, no fsync
                _write(self.directory / PROFILE_FILE, data)
        finally:
            os.close(fd)  # closing releases the lock


def _read(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / PROFILE_FILE).read_text())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    known = set(Profile.__dataclass_fields__) - _NOT_SAVED
    return {k: v for k, v in data.items() if k in known}


def _write(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data, indent=2).encode())


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically through a temporary file of this write's own (mkstemp makes
    it 0600), so that concurrent writers never rename each other's file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _private_directory(directory: Path) -> None:
    """Create the profile directory 0700, or take group and other access away from an
    existing one: it holds the session token, and a listing shows when it was used."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        with contextlib.suppress(OSError):  # not ours to change: the file is 0600 regardless
            directory.chmod(mode & 0o700)


# -- where profiles live ----------------------------------------------------------------------
def config_home() -> Path:
    """``$XDG_CONFIG_HOME`` (the XDG base directory spec: ignored unless absolute), else
    ``~/.config``."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"


def default_profile() -> Path:
    """``~/.config/pigeon``, where the default profile has always been (honouring
    ``XDG_CONFIG_HOME``; a default profile left in ``~/.config/pigeon`` before pigeon
    honoured it is still found there)."""
    home = config_home() / "pigeon"
    legacy = Path.home() / ".config" / "pigeon"
    if not (home / PROFILE_FILE).exists() and (legacy / PROFILE_FILE).exists():
        return legacy
    return home


def profiles_home() -> Path:
    return config_home() / "pigeon" / "profiles"


def is_profile_name(ref: str) -> bool:
    """A bare name (no slash, not ``.``/``..``, not ``~...``) rather than a path."""
    return bool(ref) and "/" not in ref and ref not in (".", "..") and not ref.startswith("~") \
        and "\0" not in ref


def resolve_profile(ref: str | Path | None) -> Path:
    """Where the profile ``ref`` lives: None or ``default`` is the default profile; a bare
    name is ``profiles_home()/NAME``; a ``Path``, or a string with a slash, is that path
    (``~`` expanded)."""
    if ref is None or ref == DEFAULT_NAME:
        return default_profile()
    if isinstance(ref, Path):
        return ref
    if is_profile_name(ref):
        return profiles_home() / ref
    if not ref or "\0" in ref:
        raise ValueError(f"{ref!r} is neither a profile name nor a path")
    return Path(ref).expanduser()


def list_profiles() -> list[tuple[str, Path]]:
    """The default profile (if it exists) and every named one, by name."""
    found = []
    if (default_profile() / PROFILE_FILE).exists():
        found.append((DEFAULT_NAME, default_profile()))
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in sorted(profiles_home().iterdir()):
            if (entry / PROFILE_FILE).exists() and entry.name != DEFAULT_NAME:
                found.append((entry.name, entry))
    return found
