"""A terminal's size, read the same way everywhere (docker mode's exec, the recording's header
and resizes, the nsenter relay's pty).

No imports at the top: the login path uses it.
"""


def rows_cols(fd: int = 1) -> tuple[int, int]:
    """The terminal's (rows, columns) as the kernel has them: 0 where the client sent none.
    OSError when ``fd`` is no terminal (or the terminal hung up)."""
    import fcntl
    import sys
    import termios

    size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    return int.from_bytes(size[0:2], sys.byteorder), int.from_bytes(size[2:4], sys.byteorder)
