"""/proc/PID/stat, read the same way everywhere: the fields after the command name, which may
itself hold spaces and parentheses (so: split after the last ")").

No imports: the login path (the init check, the forwarding state) uses it.
"""

#: Indexes into fields(): the state letter, the parent, the flags, the start time (clock ticks).
STATE = 0
PPID = 1
FLAGS = 6
START_TIME = 19


def parse(data: bytes) -> list[bytes]:
    """The fields of a stat line after the command name."""
    return data.rpartition(b")")[2].split()


def fields(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name (OSError when it is gone)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return parse(f.read())
