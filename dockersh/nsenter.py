"""The fast path: enter the running container directly, without the Docker engine.

About 3 ms instead of ~80 ms for ``docker exec``. nsenter alone would give only namespaces, so
this module puts back what docker exec guarantees: the container's cgroups (its limits apply),
all its namespaces but the user namespace (mount, pid, uts, ipc, net, cgroup), the user's uid,
gid and groups, an empty capability bounding set, no capabilities, no-new-privileges, the home
directory as working directory, the container's environment. It does not apply Docker's seccomp
or AppArmor profiles (SECURITY.md says so).

The monitor joins the pid namespace for its children only (setns(CLONE_NEWPID) affects children),
then forks; the child does the rest and execs the shell, which is then a process of the container.
"""

from __future__ import annotations

import ctypes
import os

from dockersh.errors import DockershError

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
#: Entered in this order; mnt last, since entering it changes what paths mean.
NAMESPACES = ("cgroup", "ipc", "uts", "net", "mnt")


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise DockershError(f"nsenter: {what} failed: {os.strerror(ctypes.get_errno())}")


class Target:
    """What to enter and what to run there, all read before any namespace is entered."""

    def __init__(self, container: dict[str, Any], session: dict[str, Any],
                 env: Mapping[str, str], argv: list[str]) -> None:
        self.pid = int(container["State"]["Pid"])
        if self.pid <= 0:
            raise DockershError("the container is not running")
        self.uid, self.gid = int(session["uid"]), int(session["gid"])
        self.groups = [int(g) for g in session["groups"]]
        self.home = str(session["home"])
        self.env = dict(env)
        self.argv = argv
        # The pid comes from an inspect made a moment ago: since then the container may have
        # stopped (its user can end their own init) and the number gone to another process,
        # a host one. Everything is read through one /proc/PID directory fd, which stays
        # bound to the process it was opened for (reads fail once that one is gone): so the
        # process whose cgroups name this container is the one whose namespaces are taken.
        try:
            proc = os.open(f"/proc/{self.pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fd = os.open("cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
                with open(fd) as f:
                    cgroups = f.read()
                if str(container["Id"]) not in cgroups:
                    raise DockershError(f"process {self.pid} is not the container's (it has "
                                        "stopped or restarted); log in again")
                self.ns_fds = {ns: os.open(f"ns/{ns}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
                               for ns in (*NAMESPACES, "pid")}
            finally:
                os.close(proc)
        except OSError as exc:
            raise DockershError(f"the container's process {self.pid} is gone ({exc.strerror}); "
                                "log in again") from None
        self.cgroup_procs = cgroup_procs(cgroups)
        with open("/proc/sys/kernel/cap_last_cap") as f:
            self.last_cap = int(f.read())


def cgroup_procs(cgroups: str) -> list[str]:
    """The cgroup.procs file of each hierarchy the container's init is in (v1 and v2), from
    the text of its /proc/PID/cgroup."""
    mounts: list[tuple[set[str], str]] = []
    mountpoint: str
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3]
            if fstype == "cgroup2":
                mounts.append(({""}, fields[4]))
            elif fstype == "cgroup":
                mounts.append((set(options.split(",")), fields[4]))
    procs = []
    for line in cgroups.splitlines():
        _, controllers, path = line.split(":", 2)
        wanted = set(controllers.split(",")) if controllers else {""}
        for opts, mountpoint in mounts:
            if wanted <= opts:
                procs.append(f"{mountpoint}{path}/cgroup.procs")
                break
    return procs


def prepare_pid_namespace(target: Target) -> None:
    """In the monitor: children forked from now on are born in the container's pid namespace."""
    _check(_libc.setns(target.ns_fds["pid"], 0), "entering the pid namespace")


def join(target: Target) -> None:
    """Join the container's cgroups and namespaces and drop every privilege: the state a
    session's shell starts in (and the spare's, which forks them)."""
    for procs in target.cgroup_procs:
        with open(procs, "w") as f:
            f.write("0")  # "0" is the writing process
    for ns in NAMESPACES:
        _check(_libc.setns(target.ns_fds[ns], 0), f"entering the {ns} namespace")
    for cap in range(target.last_cap + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping capabilities")
    os.setgroups(target.groups)
    os.setgid(target.gid)
    os.setuid(target.uid)  # from root to the user: permitted and effective sets are cleared
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no-new-privileges")


def become_spare() -> None:
    """The spare's marks: not dumpable (no ptrace, no /proc/PID/fd, even for processes of the
    same uid: the kernel already clears it on the change from root to the user; said here, not
    assumed), and a name that ``ps`` shows."""
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "clearing the dumpable flag")
    _check(_libc.prctl(PR_SET_NAME, b"dockersh-spare", 0, 0, 0), "naming the spare")


def exec_shell(argv: list[str], env: dict[str, str], home: str) -> None:
    """The last step of every session: the home as working directory (else /), then the shell."""
    try:
        os.chdir(home)
    except OSError:
        os.chdir("/")
    os.execve(argv[0], argv, env)


def enter(target: Target) -> None:
    """In the child: join cgroups and namespaces, drop every privilege, exec the shell."""
    join(target)
    exec_shell(target.argv, target.env, target.home)
