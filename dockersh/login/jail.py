"""Leaving sshd's jail: the privileged entry's first step on an SSH login.

sshd chroots every session of a member into JAIL (the drop-in's ChrootDirectory), which
pam_dockersh.so fills, in that connection's own mount namespace, with what the front, sudo and
this program need and nothing else of the host, so that a unix-socket forward (which sshd's
chrooted child connects) reaches only the user's home and the connection's own /tmp. Root
leaves it here before anything else: a chroot to the jail's own /dev (absolute: a relative one
would resolve in the user's home, the cwd sshd left) puts the jail's root outside the new root,
``..`` from there climbs to the namespace's root, and ``chroot(".")`` makes that the root. It is
checked, not assumed: JAIL must then be the directory the jail's root was. The jail has no /proc
(a /proc/PID/root would lead out of it), which is how a jailed start is told apart: everywhere
else (the web terminal, root's shell, `dockersh --user`) /proc is there and nothing changes.
"""

from __future__ import annotations

import os

from dockersh.errors import DockershError
from dockersh.paths import JAIL

#: Where this session's own /tmp is seen after leaving ("" when it never was in a jail).
session_root = ""


def leave() -> None:
    global session_root
    if os.path.isdir("/proc/self"):
        return
    try:
        root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise DockershError(f"cannot leave sshd's jail ({exc.strerror})") from None
    try:
        jail = os.fstat(root)
        os.chroot("/dev")
        os.fchdir(root)
        while not same(os.stat("."), os.stat("..")):
            os.chdir("..")
        os.chroot(".")
        os.chdir("/")
        left = os.stat(JAIL)
    except OSError as exc:
        raise DockershError(f"cannot leave sshd's jail ({exc.strerror})") from None
    finally:
        os.close(root)
    if not same(left, jail) or not os.path.isdir("/proc/self"):
        raise DockershError(f"this connection's root was not sshd's jail {JAIL}; refusing")
    session_root = JAIL


def same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def session_path(path: str) -> str:
    """Where a path sshd named in the session (under its /tmp) is, seen from here."""
    return session_root + path
