"""Root's small state files: written atomically (a reader never sees half a file), read back
without trusting that they are whole. Used on the login path: only builtins are imported."""

from __future__ import annotations

import marshal
import os

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from typing import Any


def write(path: str, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` in one rename; its directory is made (0700) if missing.

    The temporary file has a random name and is made anew (O_EXCL, no symlink, not blocking):
    whoever else can write the directory (a metrics textfile directory owned by prometheus)
    cannot plant a file, link or FIFO there that this write would follow or wait on."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    while True:
        tmp = f"{directory}/.{os.path.basename(path)}.{os.urandom(6).hex()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_NONBLOCK | os.O_CLOEXEC, mode)
        except FileExistsError:
            continue
        break
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_marshal(path: str) -> Any:
    """What ``write_marshal`` stored, or None when the file is missing or not whole."""
    try:
        with open(path, "rb") as f:
            return marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None


def write_marshal(path: str, value: Any) -> None:
    write(path, marshal.dumps(value), 0o600)
