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
        if not in_container(cgroups, container_id):
            raise DockershError(f"process {pid} is not the container's (it has stopped or "
                                "restarted); log in again")
    except BaseException:
        os.close(proc)
        raise
    return proc, cgroups


def in_container(cgroups: str, container_id: str) -> bool:
    """/proc/PID/cgroup's text puts the process in the container's own cgroup: a component of
    a path is the id (cgroupfs: /docker/ID) or the engine's unit or directory for it
    (docker-ID.scope, libpod-ID.scope, libpod-ID). Not any text with the id in it: the
    engine's own processes beside the container carry it too (Podman's conmon in
    libpod-conmon-ID.scope, its healthchecks in ID-….service), and run as root on the host."""
    names = {container_id, f"docker-{container_id}.scope", f"libpod-{container_id}.scope",
             f"libpod-{container_id}"}
    return bool(container_id) and any(
        not names.isdisjoint(line.split(":", 2)[-1].split("/")) for line in cgroups.splitlines())


def pidfd_of(pid: int, container_id: str, uid: int) -> int | None:
    """A pidfd of process ``pid`` when it is in the container and runs as ``uid`` (its cgroups
    and ids, read after the pidfd pinned it and checked to be still that process), else
    None: what root signals, for a session of ``uid``."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone already (or no pidfd)
        return None
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            ours = in_container(f.read(), container_id)
        with open(f"/proc/{pid}/status") as f:
            ours = ours and any(line.split()[1:2] == [str(uid)] for line in f
                                if line.startswith("Uid:"))
        _signal.pidfd_send_signal(pidfd, 0)  # still the process opened: what was read is its
        if ours:
            return pidfd
    except OSError:
        pass
    os.close(pidfd)
    return None
