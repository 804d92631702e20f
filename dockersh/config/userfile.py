"""Reading a user's own ``~/.dockersh.toml`` as root without being fooled by it.

The file is the user's: it may be a symlink to /etc/shadow, a hard link to someone else's file, a
FIFO that blocks forever, or 100 MB. So: no following links, only a regular file the user owns,
non-blocking open, a size cap, and no byte of a refused file is ever echoed.
"""

from __future__ import annotations

import os
import stat

MAX_SIZE = 64 * 1024


class Refused(Exception):
    """The file was not read; the message says why, never what it contains."""


def read(path: str, uid: int) -> str | None:
    """The file's text, None when it does not exist; Refused when it is not safe to use."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symlink
            raise Refused("it is a symbolic link") from None
        raise Refused(f"cannot open it ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("it is not a regular file")
        if st.st_uid != uid:
            raise Refused("it is not owned by you")
        if st.st_nlink != 1:
            raise Refused("it has more than one hard link")
        if st.st_size > MAX_SIZE:
            raise Refused(f"it is larger than {MAX_SIZE // 1024} KiB")
        data = os.read(fd, MAX_SIZE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SIZE:
        raise Refused(f"it is larger than {MAX_SIZE // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("it is not valid UTF-8") from None
