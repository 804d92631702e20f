"""Session recordings as root's verbs find them: one by its session's name (`replay`), and
those older than ``[audit] keep`` (`gc`). A recording is ``[audit] sessions_dir/SESSION.cast``;
nothing else in that directory is ever opened or removed here."""

from __future__ import annotations

import os
import re
import stat
import time

from dockersh.config import units
from dockersh.config.schema import Config
from dockersh.errors import DockershError

#: audit.session_id's shape: UTC start, the user's name (as useradd allows it), monitor pid.
SESSION_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9_][A-Za-z0-9_.-]*\$?-[0-9]+")
SUFFIX = ".cast"


def directory(config: Config) -> str:
    """Where recordings are: ``[audit] sessions_dir``."""
    return config.audit.sessions_dir


def path_of(config: Config, session: str) -> str:
    """The recording of ``session``, which must be a session's name: never a path."""
    if not SESSION_ID.fullmatch(session):
        raise DockershError(f"{session!r} is not a session name (see `dockersh sessions`: e.g. "
                            "20261202T061530Z-alice-12345)", status=2)
    return os.path.join(directory(config), session + SUFFIX)


def open_recording(path: str) -> int:
    """An fd of the recording, a regular file not reached through a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise DockershError(f"there is no recording {path} (was the session recorded? "
                            "`dockersh sessions` says)") from None
    except OSError as exc:
        raise DockershError(f"cannot open {path} ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DockershError(f"{path} is not a regular file")
    return fd


def expired(config: Config, now: float) -> list[str]:
    """Recordings last written more than ``[audit] keep`` ago, oldest first ("" or "0": none)."""
    keep = units.parse_duration(config.audit.keep) or 0
    where = directory(config)
    if not keep:
        return []
    try:
        names = os.listdir(where)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if not (name.endswith(SUFFIX) and SESSION_ID.fullmatch(name.removesuffix(SUFFIX))):
            continue
        try:
            st = os.lstat(os.path.join(where, name))
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mtime < now - keep:
            found.append((st.st_mtime, os.path.join(where, name)))
    return [path for _, path in sorted(found)]


def apply_keep(config: Config, dry_run: bool) -> None:
    """gc's part: remove (or, dry, name) the recordings past ``[audit] keep``."""
    old = expired(config, time.time())
    for path in old:
        if dry_run:
            print(f"would remove {path} (a recording older than [audit] keep = "
                  f"{config.audit.keep!r})")
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
    if old and not dry_run:
        print(f"removed {len(old)} recording{'s' * (len(old) != 1)} older than [audit] keep = "
              f"{config.audit.keep!r}")
