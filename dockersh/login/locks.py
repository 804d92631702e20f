"""Per-user locks: the only coordination between logins, gc and admin verbs.

Two flock files per user under /run/dockersh/locks (flock dies with its holder, so a killed
dockersh never leaves a lock behind):
- ``NAME.lock``: held exclusively while anyone looks at or changes the user's container.
- ``NAME.sessions``: held shared by every live session's monitor for the session's whole life
  (close-on-exec: no host file descriptor ever reaches a container), so "is anyone logged
  in?" is a non-blocking exclusive attempt, and /proc/locks counts the sessions. ls and gc
  also count processes entered into the container, which outlive a killed monitor.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

from dockersh.errors import DockershError
from dockersh.paths import LOCK_DIR, RUN_DIR
from dockersh.plan.naming import escape


def open_lock(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except FileNotFoundError:  # /run is empty after a reboot
        for directory in (RUN_DIR, LOCK_DIR):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)


def paths(user: str) -> tuple[str, str]:
    base = f"{LOCK_DIR}/{escape(user)}"
    return f"{base}.lock", f"{base}.sessions"


def acquire(path: str, mode: int, timeout: float) -> int:
    """Open and flock ``path``; wait up to ``timeout`` seconds, then fail with a clear message."""
    fd = open_lock(path)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            if _still_linked(fd, path):
                return fd
            os.close(fd)  # gc removed the file while we waited (leftovers): take the new one
            fd = open_lock(path)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise DockershError(
                    f"timed out after {timeout:.0f}s waiting for {path} "
                    "(another dockersh is busy with this container)"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _still_linked(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def try_exclusive(fd: int) -> bool:
    """True when no live session holds the sessions lock (and we now hold it exclusively)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def share(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_SH)


def release(fd: int) -> None:
    os.close(fd)


def count_sessions(user: str, flocks: dict[str, int] | None = None) -> int:
    """Live sessions of ``user``: shared flocks on their sessions file (``flocks``: one read of
    /proc/locks for many users)."""
    return holders(paths(user)[1], flocks)


def holders(path: str, flocks: dict[str, int] | None = None) -> int:
    """Processes holding ``path`` flocked shared (live sessions)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return (shared_flocks() if flocks is None else flocks).get(ident, 0)


def shared_flocks() -> dict[str, int]:
    """How many hold each file ("MAJ:MIN:INODE") flocked shared, from /proc/locks
    ("1: FLOCK  ADVISORY  READ  PID MAJ:MIN:INODE 0 EOF"; a waiter's line has "->" after the
    number, and is no holder)."""
    held: dict[str, int] = {}
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[3] == "READ":
                held[fields[5]] = held.get(fields[5], 0) + 1
    return held


class HeldOutput:
    """stderr while the user's lock is held: never blocks.

    The session's stderr is the user's: a client that opens its channel with a zero window
    never drains it, and a root process blocked writing there with the lock held would lock
    out every login and admin verb for that user. So it is written through a non-blocking
    description of its own (a reopen: the session's flags are untouched), and what does not
    fit now waits in memory until ``release``, called after the lock is.

    The reopen is root's own open of whatever fd 2 is, so only a pipe or a terminal the caller
    could already write is reopened: a host-shell member can start the front with fd 2 a
    read-only or O_PATH descriptor of /etc/shadow, which a write-mode reopen would hand to root
    to write, and a terminal counts only while it still is one (a hung-up console's fd fails
    isatty, and root's fresh open of its device would revive it). Anything else waits for
    ``release``, which writes through the caller's own fd."""

    def __init__(self, fd: int = 2) -> None:
        self.real = fd
        self.pending = b""
        self.tty = os.isatty(fd)
        self.fd = -1  # a socket cannot be reopened, nor a file written by root's open
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            kind = os.fstat(fd).st_mode
            if (not flags & os.O_PATH and flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
                    and (stat.S_ISFIFO(kind) or (stat.S_ISCHR(kind) and self.tty))):
                self.fd = os.open(f"/proc/self/fd/{fd}",
                                  os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            pass

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.pending += text.encode(errors="replace")
        while self.pending and self.fd >= 0:
            try:
                self.pending = self.pending[os.write(self.fd, self.pending):]
            except BlockingIOError:
                break
            except OSError:
                self.fd = -1
        return len(text)

    def flush(self) -> None:
        pass

    def release(self) -> None:
        """The lock is free: write what is left, blocking as any output may."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            while self.pending:
                self.pending = self.pending[os.write(self.real, self.pending):]
        except OSError:
            self.pending = b""
