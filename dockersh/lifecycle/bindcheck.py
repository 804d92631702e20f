"""Bind-mount sources that the session's user could redirect.

Docker resolves a bind mount's source on the host, symbolic links included, every time the
container starts. So if the user can change any directory on the way to a source (say the
admin mounts ``/home/{user}/data``: the user owns their home), they replace the last part with
a symlink to ``/``, ``/proc`` or another user's files from inside their session, stop their
container, and the next login mounts that host path into it. Before a container is created or
started, every mount source is walked like the kernel would, and refused when a directory on
the way (or a symlink's) is one the user could change. Cold path only: never on a warm login.
"""

from __future__ import annotations

import os
import stat

from dockersh.errors import DockershError
from dockersh.login.identity import User

MAX_LINKS = 40


def _changeable(directory: os.stat_result, entry: os.stat_result | None, user: User) -> bool:
    """Can ``user`` replace ``entry`` (None: absent) in ``directory``? POSIX mode bits and
    ownership (an owner can always chmod); ACLs are not read: do not grant write by ACL."""
    if directory.st_uid == user.uid:
        return True
    gids = {gid for _, gid in user.groups} | {user.gid}
    if directory.st_gid in gids:
        writable = bool(directory.st_mode & stat.S_IWGRP)
    else:
        writable = bool(directory.st_mode & stat.S_IWOTH)
    if not writable:
        return False
    # A sticky directory (/tmp): only the entry's owner may rename or remove it.
    sticky = bool(directory.st_mode & stat.S_ISVTX)
    return not (sticky and entry is not None and entry.st_uid != user.uid)


def changeable_part(path: str, user: User) -> str | None:
    """The first path (a directory entry, or a symlink's) on the way to ``path`` that ``user``
    could change, or None when only others (root) can change where ``path`` leads."""
    pending = [p for p in path.split("/") if p]
    current = "/"
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current) or "/"
            continue
        candidate = os.path.join(current, part)
        directory = os.stat(current)
        try:
            entry: os.stat_result | None = os.lstat(candidate)
        except FileNotFoundError:
            entry = None
        if _changeable(directory, entry, user):
            return candidate
        if entry is None:
            return None  # not there yet (dockersh makes passwd and group): root's to create
        if entry is not None and stat.S_ISLNK(entry.st_mode):
            links += 1
            if links > MAX_LINKS:
                return candidate
            target = os.readlink(candidate)
            pending = [p for p in target.split("/") if p] + pending
            if target.startswith("/"):
                current = "/"
            continue
        current = candidate
    return None


def check(sources: list[str], user: User) -> None:
    """Refuse (one line) when any mount source could be redirected by ``user``."""
    for source in sources:
        try:
            part = changeable_part(source, user)
        except OSError as exc:
            raise DockershError(f"cannot check mount source {source}: {exc.strerror}") from None
        if part is not None:
            raise DockershError(
                f"mount source {source} is not safe: {user.name} can change {part}, and so "
                "where the mount leads; refusing to mount it (the administrator must use a "
                "path only root can change)")
