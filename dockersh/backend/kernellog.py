"""Whether the kernel OOM-killed a process of a container since it last started, from its log.

Why not only the engine's ``OOMKilled``: dockerd 20.10 (Debian 12's) drops the OOM event when
the container's main process is the victim and its exit is handled first, and on fresh CI
machines it missed a child's too, so a user was told "exit status 137" for a container that
ran out of memory. The kernel's record (``oom-kill:...,oom_memcg=/docker/ID,...``) is what
the engines' flag comes from. It is read only for a container found stopped with status 137,
by root (dockersh's monitor); where /dev/kmsg cannot be read (some containers), the engine's
flag is all there is.

The kernel rate-limits these records (10 in 5 s, all cgroups together) and its log is a ring:
a user whose container OOM-loops can keep another's kill out of it, which then reads as
"exit status 137", as before. The log's times are the kernel's clock since boot; a start time
is mapped onto it through CLOCK_MONOTONIC, which NTP slews, so over a long uptime a kill close
to a restart can be missed (the old message) or one just before it counted (a wrong reason,
never a wrong exit).
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Iterator

KMSG = "/dev/kmsg"
#: Slack for the engine's start time, which it takes after the process started, and for the
#: kernel clock's distance from CLOCK_MONOTONIC (1-2 ms here), in seconds.
SLACK = 0.5


def oom_killed_since(container_id: str, started: float, path: str = KMSG) -> bool:
    """True when the log holds an OOM kill in the container's memory cgroup at or after
    ``started`` (epoch seconds)."""
    since = started - (time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)) - SLACK
    return any(at >= since and killed_in(message, container_id) for at, message in kills(path))


#: path -> (when read, its OOM-kill records): ``ls`` asks for every stopped container.
_read: dict[str, tuple[float, list[tuple[float, str]]]] = {}
FRESH = 2.0  # seconds a read serves (the web service lives long)


def kills(path: str) -> list[tuple[float, str]]:
    """The log's OOM-kill records, read again when the last read is older than ``FRESH``."""
    now = time.monotonic()
    if path not in _read or now - _read[path][0] > FRESH:
        _read[path] = (now, [(at, text) for at, text in records(path)
                             if text.startswith("oom-kill:")])
    return _read[path][1]


def killed_in(message: str, container_id: str) -> bool:
    """Whether one log message is an OOM kill whose cgroup (the one at its limit, or the
    victim's) is the container's. A task name (16 bytes) cannot spell a container's 64-digit
    id, and ``records`` keeps only what the kernel wrote."""
    if not message.startswith("oom-kill:") or len(container_id) < 12:
        return False
    for field in message[len("oom-kill:"):].split(","):
        key, _, value = field.partition("=")
        if key in ("oom_memcg", "task_memcg") and container_id in value:
            return True
    return False


def records(path: str) -> Iterator[tuple[float, str]]:
    """(seconds since boot, message) of each record the kernel wrote, oldest first: /dev/kmsg
    gives one record per read ("prio,seq,usec,flags;message\n", then " KEY=value" lines); a
    saved copy of it is read as lines. Records written through /dev/kmsg (root's daemons, or
    a container given the device) have a facility other than the kernel's (0), and are left
    out."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    rest = b""
    try:
        while True:
            try:
                chunk = os.read(fd, 8192)
            except BrokenPipeError:  # the record was overwritten while we read: go on
                continue
            except OSError:  # BlockingIOError: the end of the log
                return
            if not chunk:
                return
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                head, semicolon, message = line.partition(b";")
                fields = head.split(b",")
                if (semicolon and not line.startswith(b" ") and len(fields) >= 3
                        and fields[0].isdigit() and int(fields[0]) >> 3 == 0
                        and fields[2].isdigit()):
                    yield int(fields[2]) / 1e6, message.decode(errors="replace")
    finally:
        os.close(fd)
