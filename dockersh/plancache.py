"""The session plan, cached between logins so a warm login never parses TOML or imports typing.

Keyed by everything the plan depends on: dockersh's version, the config files' identity (inode,
size, mtime and ctime: a user can't rewind ctime), the account as NSS reports it and the host
name. A miss means the full pipeline runs; the cache is root's, in /run (gone at reboot).
"""

from __future__ import annotations

import marshal
import os

from dockersh import __version__
from dockersh.locks import RUN_DIR
from dockersh.naming import escape

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from dockersh.identity import User

CACHE_DIR = f"{RUN_DIR}/plans"


def _stat_key(path: str) -> tuple[int, ...] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def key(user: User, config_path: str, user_file: str) -> tuple[object, ...]:
    return (__version__, config_path, _stat_key(config_path), _stat_key(user_file), user.key(),
            os.uname().nodename)


def _path(user: User) -> str:
    return f"{CACHE_DIR}/{escape(user.name)}"


def load(user: User, cache_key: tuple[object, ...]) -> dict[str, object] | None:
    try:
        with open(_path(user), "rb") as f:
            stored_key, session = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return session if stored_key == cache_key else None


def store(user: User, cache_key: tuple[object, ...], session: dict[str, object]) -> None:
    """Write atomically; a failure only costs the next login its speed."""
    path = _path(user)
    tmp = f"{path}.{os.getpid()}"
    try:
        for directory in (RUN_DIR, CACHE_DIR):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(tmp, "wb") as f:
            marshal.dump((cache_key, session), f)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
