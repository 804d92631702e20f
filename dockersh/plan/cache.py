"""The session plan, cached between logins so a warm login never parses TOML or imports typing.

Keyed by everything the plan depends on: dockersh's version and installed code (the files that
make plans: a reinstall changes their identity, so a plan cached by older code, perhaps without a
key the new code reads, is never used), the config files' identity (inode, size, mtime and ctime:
a user can't rewind ctime), the account as NSS reports it and the host name. A miss means the
full pipeline runs; the cache is root's, in /run (gone at reboot).
"""

from __future__ import annotations

import os

from dockersh import __version__, statefiles
from dockersh.paths import PLAN_DIR, RUN_DIR
from dockersh.plan.naming import escape
from dockersh.plan.sessionplan import SessionPlan

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from dockersh.login.identity import User

_PACKAGE = os.path.dirname(os.path.dirname(__file__))
_CODE = (f"{_PACKAGE}/config/schema.py", f"{_PACKAGE}/plan/planner.py",
         f"{_PACKAGE}/plan/sessionplan.py")


def _stat_key(path: str) -> tuple[int, ...] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def key(user: User, config_path: str, user_file: str) -> tuple[object, ...]:
    return (__version__, *map(_stat_key, _CODE), config_path, _stat_key(config_path),
            _stat_key(user_file), user.key(), os.uname().nodename)


def _path(user: User) -> str:
    return f"{PLAN_DIR}/{escape(user.name)}"


def load(user: User, cache_key: tuple[object, ...]) -> SessionPlan | None:
    stored = statefiles.read_marshal(_path(user))
    if isinstance(stored, tuple) and len(stored) == 2 and stored[0] == cache_key:
        return SessionPlan.from_values(stored[1])
    return None


def store(user: User, cache_key: tuple[object, ...], session: SessionPlan) -> None:
    """A failure only costs the next login its speed."""
    try:
        os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
        statefiles.write_marshal(_path(user), (cache_key, session.values()))
    except (OSError, ValueError):
        pass
