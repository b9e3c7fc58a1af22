"""A device's local state in a profile directory: its session and where its sync stands.

Files are written atomically (write, fsync, rename) with mode 0600: the session token in
``session.json`` is as good as the account to whoever reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Profile:
    directory: Path | None = None  # None: state lives in memory only
    server: str | None = None
    token: str | None = None
    user_id: int | None = None
    session_id: int | None = None
    phone: str | None = None
    code_id: str | None = None      # between `register` and `verify`
    pts: int = 0                    # the position in the user's own stream, user:<id>
    streams: dict[str, int] = field(default_factory=dict)  # positions in the other streams
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path | None) -> Profile:
        if directory is None:
            return cls()
        path = directory / "profile.json"
        if not path.exists():
            return cls(directory=directory)
        data = json.loads(path.read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(directory=directory, **{k: v for k, v in known.items() if k != "directory"})

    def save(self, pts: int | None = None) -> None:
        """Write the profile; ``pts`` saves an earlier sync position than the one in memory
        (what the application has handled so far), so updates queued but not yet handled
        are fetched again after a crash instead of being lost."""
        if self.directory is None:
            return
        _private_directory(self.directory)
        data = {k: v for k, v in asdict(self).items() if k != "directory"}
        if pts is not None:
            data["pts"] = min(pts, self.pts)
        path = self.directory / "profile.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a .tmp left by a crash keeps its old mode through O_CREAT
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def forget_session(self) -> None:
        self.token = self.user_id = self.session_id = None
        self.pts = 0
        self.streams = {}


def _private_directory(directory: Path) -> None:
    """Create the profile directory 0700, or take group and other access away from an
    existing one: it holds the session token, and a listing shows when it was used."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        with contextlib.suppress(OSError):  # not ours to change: the file is 0600 regardless
            directory.chmod(mode & 0o700)
