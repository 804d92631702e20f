"""Who the session is for: the kernel's word (real uid) or sudo's (SUDO_UID), resolved through NSS.

Never $USER, $HOME, argv or anything the SSH client sent: those are the caller's to forge.
"""

from __future__ import annotations

import grp
import os
import pwd

from dockersh.errors import DockershError

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping


class User:
    """A host account as NSS (files, LDAP, SSSD) reports it, with its groups."""

    __slots__ = ("gecos", "gid", "groups", "home", "name", "shell", "uid")

    def __init__(
        self,
        name: str,
        uid: int,
        gid: int,
        home: str,
        shell: str,
        gecos: str = "",
        groups: tuple[tuple[str, int], ...] = (),
    ) -> None:
        self.name, self.uid, self.gid, self.home, self.shell = name, uid, gid, home, shell
        self.gecos = gecos
        #: every group the user is in, primary first, as (name, gid)
        self.groups = groups

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.groups)

    def key(self) -> tuple[object, ...]:
        """Everything about the account that a plan depends on (for the plan cache)."""
        return (self.name, self.uid, self.gid, self.home, self.shell, self.gecos, self.groups)

    def __repr__(self) -> str:
        return f"User({self.name!r}, uid={self.uid})"


def group_name(gid: int, names: dict[int, str] | None = None) -> str:
    """The group's name (its number when it has none); ``names``, a caller's memo of them for
    one pass over many users (``ls``: each lookup reads /etc/group). Never a process-wide one:
    the web service decides by group name and lives long."""
    if names is not None and gid in names:
        return names[gid]
    try:
        name = grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
    if names is not None:
        names[gid] = name
    return name


def _from_pwd(entry: pwd.struct_passwd, names: dict[int, str] | None = None) -> User:
    groups: list[tuple[str, int]] = []
    for gid in [entry.pw_gid, *os.getgrouplist(entry.pw_name, entry.pw_gid)]:
        if any(g == gid for _, g in groups):
            continue
        groups.append((group_name(gid, names), gid))
    return User(
        entry.pw_name,
        entry.pw_uid,
        entry.pw_gid,
        entry.pw_dir,
        entry.pw_shell,
        entry.pw_gecos,
        tuple(groups),
    )


def by_name(name: str) -> User:
    try:
        return _from_pwd(pwd.getpwnam(name))
    except KeyError:
        raise DockershError(f"no such user: {name!r}") from None


def by_uid(uid: int, names: dict[int, str] | None = None) -> User:
    try:
        return _from_pwd(pwd.getpwuid(uid), names)
    except KeyError:
        raise DockershError(f"uid {uid} has no account (passwd/NSS); refusing") from None


def caller_uid(environ: Mapping[str, str]) -> tuple[int, bool]:
    """The uid that asked, and whether it came through sudo.

    Only root can have set SUDO_UID in a root process's environment: sudo sets it, and its
    env_reset removes a caller's own copy. For any other real uid the kernel's answer stands.
    """
    uid = os.getuid()
    if uid != 0 or os.geteuid() != 0:
        return uid, False
    sudo_uid = environ.get("SUDO_UID")
    if sudo_uid is None:
        return 0, False
    if not sudo_uid.isdigit():
        raise DockershError("SUDO_UID is not a number; refusing")
    return int(sudo_uid), True
