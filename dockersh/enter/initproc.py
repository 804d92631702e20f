"""The container's init, by a /proc/PID directory fd checked against the container's id.

Its own module (no ctypes, unlike nsenter.py): a terminal login through the spare opens the
container's pty through it (relay.py) without paying for nsenter's imports.
"""

from __future__ import annotations

import os

from dockersh.errors import DockershError


def open_init(pid: int, container_id: str) -> tuple[int, str]:
    """A /proc/PID directory fd of the container's init, and its cgroups' text: the pid comes
    from an inspect made a moment ago, and may have gone to another process since (a host one);
    the fd stays bound to the process it was opened for, and that one's cgroups must name the
    container. OSError when it is gone."""
    proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with open(os.open("cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)) as f:
            cgroups = f.read()
        if container_id not in cgroups:
            raise DockershError(f"process {pid} is not the container's (it has stopped or "
                                "restarted); log in again")
    except BaseException:
        os.close(proc)
        raise
    return proc, cgroups
