"""The container's processes, by fds (a /proc/PID directory, a pidfd) checked against the
container's id: a pid an inspect named a moment ago may have gone to a host process since.

Its own module (no ctypes, unlike nsenter.py): a terminal login through the spare opens the
container's pty through it (relay.py) without paying for nsenter's imports.
"""

from __future__ import annotations

import os

from dockersh.errors import DockershError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal  # signal without its enum import (8 ms)


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


def pidfd_of(pid: int, container_id: str) -> int | None:
    """A pidfd of process ``pid`` when it is in the container (its cgroups name it, read after
    the pidfd pinned it and checked to be still that process), else None: what root signals."""
    if not container_id:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone already (or no pidfd)
        return None
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            ours = container_id in f.read()
        _signal.pidfd_send_signal(pidfd, 0)  # still the process opened: the cgroup was its
        if ours:
            return pidfd
    except OSError:
        pass
    os.close(pidfd)
    return None
