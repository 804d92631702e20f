"""gc's sweep of the state dockersh keeps per container and per user once both are gone (removed
outside dockersh: `docker rm`, `userdel`): the generated passwd/group under /var/lib/dockersh,
and the locks and cached plan under /run/dockersh. Without it they pile up for ever."""

from __future__ import annotations

import fcntl
import os
import time

from dockersh.lifecycle import ensure
from dockersh.paths import LOCK_DIR, PLAN_DIR, STATE_DIR
from dockersh.plan.naming import escape

#: A login writes a container's passwd/group just before it creates the container.
STATE_MAX_AGE = 600

#: Lock files in LOCK_DIR that are not a user's (the image probes' own, named per image).
PROBE_PREFIX = "probe-"


def _listdir(directory: str) -> list[str]:
    try:
        return [name for name in os.listdir(directory) if not name.startswith(".")]
    except FileNotFoundError:
        return []


def sweep_state(containers: set[str]) -> int:
    """Remove the passwd/group of containers not in ``containers`` (names), unless written in the
    last STATE_MAX_AGE seconds (a login about to create that container); how many went."""
    removed = 0
    for name in _listdir(STATE_DIR):
        try:
            if name in containers or time.time() - os.lstat(
                    f"{STATE_DIR}/{name}").st_mtime < STATE_MAX_AGE:
                continue
        except FileNotFoundError:
            continue
        ensure.remove_state(name)
        removed += 1
    return removed


def sweep_users(users: set[str]) -> int:
    """Remove the lock files and cached plan of each user not in ``users`` (those with a
    container), when nobody holds the user's lock or a session; how many users' went. A process
    that opened the lock file before it went sees that on getting it (locks.acquire) and opens
    the new one: two holders on two files are impossible."""
    live = {escape(user) for user in users}
    names = {name.rsplit(".", 1)[0] for name in _listdir(LOCK_DIR)
             if name.endswith((".lock", ".sessions")) and not name.startswith(PROBE_PREFIX)}
    removed = 0
    for name in (names | set(_listdir(PLAN_DIR))) - live:
        lock, sessions = f"{LOCK_DIR}/{name}.lock", f"{LOCK_DIR}/{name}.sessions"
        held = []
        try:
            for path in (lock, sessions):  # the user's lock first, as every holder takes them
                held.append(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                                    0o600))
                fcntl.flock(held[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
            for path in (f"{PLAN_DIR}/{name}", sessions, lock):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            removed += 1
        except OSError:  # held (BlockingIOError): a login or a session is there
            pass
        finally:
            for fd in held:
                os.close(fd)
    return removed
