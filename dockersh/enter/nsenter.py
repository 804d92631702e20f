"""The fast path: enter the running container directly, without the Docker engine.

About 3 ms instead of ~80 ms for ``docker exec``. nsenter alone would give only namespaces, so
this module puts back what docker exec guarantees: the container's cgroups (its limits apply),
all its namespaces but the user namespace (mount, pid, uts, ipc, net, cgroup), the user's uid,
gid and groups, an empty capability bounding set, no capabilities, no-new-privileges, Docker's
seccomp filter (copied from the container's init, as runc gives it to docker exec processes),
the home directory as working directory, the container's environment. It does not apply the
AppArmor profile (SECURITY.md says so).

The monitor joins the pid namespace for its children only (setns(CLONE_NEWPID) affects children),
then forks; the child does the rest and execs the shell, which is then a process of the container.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os

from dockersh import passedon, statefiles
from dockersh.enter.initproc import open_init
from dockersh.errors import DockershError
from dockersh.login import locks
from dockersh.paths import SECCOMP_DIR

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable, Mapping
    from typing import Any

    from dockersh.backend.base import Container
    from dockersh.plan.sessionplan import SessionPlan
else:
    import _signal  # signal without the enum import (8 ms)

PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
#: Entered in this order; mnt last, since entering it changes what paths mean.
NAMESPACES = ("cgroup", "ipc", "uts", "net", "mnt")

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
PTRACE_EVENT_STOP = 128
WALL = 0x40000000
BPF_INSTRUCTION = 8  # bytes of one struct sock_filter

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def _check(result: int, what: str) -> None:
    if result != 0:
        raise DockershError(f"nsenter: {what} failed: {os.strerror(ctypes.get_errno())}")


class Target:
    """What to enter and what to run there, all read before any namespace is entered."""

    def __init__(self, container: Container, plan: SessionPlan, env: Mapping[str, str],
                 argv: list[str]) -> None:
        self.pid = container.pid
        if self.pid <= 0:
            raise DockershError("the container is not running")
        self.uid, self.gid = plan.uid, plan.gid
        self.groups = list(plan.groups)
        self.home = plan.home
        self.env = dict(env)
        self.argv = argv
        # The pid comes from an inspect made a moment ago: since then the container may have
        # stopped (its user can end their own init) and the number gone to another process,
        # a host one. Everything is read through one /proc/PID directory fd, which stays
        # bound to the process it was opened for (reads fail once that one is gone): so the
        # process whose cgroups name this container is the one whose namespaces are taken.
        try:
            proc, cgroups = open_init(self.pid, container.id)
            try:
                self.ns_fds = {ns: os.open(f"ns/{ns}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
                               for ns in (*NAMESPACES, "pid")}
                started = "".join(c for c in container.started_at if c.isdigit())
                self.seccomp = seccomp_filters(proc, self.pid, f"{container.id}.{started}")
            finally:
                os.close(proc)
        except OSError as exc:
            raise DockershError(f"the container's process {self.pid} is gone ({exc.strerror}); "
                                "log in again") from None
        with open("/proc/self/mountinfo") as f:
            self.cgroup_procs = cgroup_procs(cgroups, f.read())
        with open("/proc/sys/kernel/cap_last_cap") as f:
            self.last_cap = int(f.read())


def seccomp_filters(proc: int, pid: int, run: str) -> list[bytes]:
    """The container's seccomp filters, newest first: what runc gives every docker exec
    process, copied once from its init and cached per run of the container (``run``: its id and
    start time; a restart may bring another default profile). ``proc`` is the init's /proc/PID
    directory fd."""
    cache = f"{SECCOMP_DIR}/{run}"  # swept by gc with the spare's files
    filters: Any = statefiles.read_marshal(cache)
    if isinstance(filters, list):
        return filters
    try:
        os.makedirs(SECCOMP_DIR, mode=0o700, exist_ok=True)
        lock = locks.acquire(f"{cache}.lock", fcntl.LOCK_EX, 10)  # one reader at a time
        try:
            filters = statefiles.read_marshal(cache)
            if not isinstance(filters, list):
                status = os.open("status", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
                with open(status) as f:
                    confined = "\nSeccomp:\t2\n" in f.read()
                filters = read_filters(proc, pid) if confined else []
                statefiles.write_marshal(cache, filters)
        finally:
            locks.release(lock)
    except OSError as exc:
        raise DockershError(f"cannot read the container's seccomp filter ({exc.strerror}); "
                            "log in again") from None
    return list(filters)


def read_filters(proc: int, pid: int) -> list[bytes]:
    """Stop the init with ptrace for as long as it takes to read its filters (well under 1 ms)."""
    _check(_libc.ptrace(PTRACE_SEIZE, pid, None, None), "reading the container's seccomp filter")
    pending = 0  # a signal the init was about to receive when it stopped: delivered on detach
    try:
        _check(_libc.ptrace(PTRACE_INTERRUPT, pid, None, None), "stopping the container's init")
        status = os.waitpid(pid, WALL)[1]
        if os.WIFSTOPPED(status) and status >> 16 != PTRACE_EVENT_STOP:
            pending = os.WSTOPSIG(status)  # a signal-delivery stop (SIGCHLD, docker stop's TERM)
        os.close(os.open("status", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc))  # still the init
        filters: list[bytes] = []
        while True:
            count = _libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, len(filters), None)
            if count < 0 and ctypes.get_errno() == errno.ENOENT:
                return filters
            _check(0 if count > 0 else -1, "reading the container's seccomp filter")
            buffer = ctypes.create_string_buffer(count * BPF_INSTRUCTION)
            _check(0 if _libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, len(filters), buffer) ==
                   count else -1, "reading the container's seccomp filter")
            filters.append(buffer.raw)
    finally:
        _libc.ptrace(PTRACE_DETACH, pid, None, pending)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def cgroup_procs(cgroups: str, mountinfo: str) -> list[str]:
    """The cgroup.procs file of each hierarchy the container's init is in (v1 and v2), from
    the text of its /proc/PID/cgroup and of /proc/self/mountinfo. A path is joined to a mount
    of its hierarchy relative to that mount's root (field 4), which is not "/" when dockerd
    itself runs in a container that shares the host's cgroup namespace."""
    mounts: list[tuple[set[str], str, str]] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2":
            mounts.append(({""}, fields[3], fields[4]))
        elif fstype == "cgroup":
            mounts.append((set(options.split(",")), fields[3], fields[4]))
    procs = []
    for line in cgroups.splitlines():
        _, controllers, path = line.split(":", 2)
        wanted = set(controllers.split(",")) if controllers else {""}
        hierarchy = [(root.rstrip("/"), at) for opts, root, at in mounts if wanted <= opts]
        for root, mountpoint in hierarchy:
            if path == root or path.startswith(root + "/"):
                procs.append(f"{mountpoint}{path[len(root):]}/cgroup.procs")
                break
        else:
            if hierarchy:  # mounted, but not the part of it the container is in
                raise DockershError(f"the container's cgroup {controllers or 'v2'}:{path} is "
                                    "outside every mount of its hierarchy")
    return procs


def setns(fd: int, name: str) -> None:
    _check(_libc.setns(fd, 0), f"entering the {name} namespace")


def prepare_pid_namespace(target: Target) -> None:
    """In the monitor: children forked from now on are born in the container's pid namespace."""
    setns(target.ns_fds["pid"], "pid")


def join(target: Target) -> None:
    """Join the container's cgroups and namespaces and drop every privilege: the state a
    session's shell starts in (and the spare's, which forks them)."""
    for procs in target.cgroup_procs:
        with open(procs, "w") as f:
            f.write("0")  # "0" is the writing process
    for ns in NAMESPACES:
        setns(target.ns_fds[ns], ns)
    for cap in range(target.last_cap + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping capabilities")
    undumpable()  # it holds the monitor's descriptors until the shell's exec
    os.setgroups(target.groups)
    os.setgid(target.gid)
    os.setuid(target.uid)  # from root to the user: permitted and effective sets are cleared
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no-new-privileges")
    for bpf in reversed(target.seccomp):  # oldest first, as runc installed them
        program = SockFprog(len(bpf) // BPF_INSTRUCTION, bpf)
        _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0),
               "applying the container's seccomp filter")


def undumpable() -> None:
    """No ptrace and no /proc/PID/fd of this process, even for processes of the uid it becomes:
    the kernel clears the flag on the change from root to the user only while fs.suid_dumpable
    is 0; said here, not assumed. An exec of the user's program sets it again."""
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "clearing the dumpable flag")


def become_spare() -> None:
    """The spare's marks: not dumpable (``join`` did it; it stays so, as the spare never
    execs), and a name that ``ps`` shows."""
    _check(_libc.prctl(PR_SET_NAME, b"dockersh-spare", 0, 0, 0), "naming the spare")


def exec_shell(argv: list[str], env: dict[str, str], home: str) -> None:
    """The last step of every session: the home as working directory (else /), then the shell;
    SSH_TTY names the session's terminal when it has a name inside the container."""
    if os.isatty(0):
        try:
            env = {**env, "SSH_TTY": os.ttyname(0)}
        except OSError:  # the host's devpts: no name in the container (`tty`: not a tty)
            pass
    try:
        os.chdir(home)
    except OSError:
        os.chdir("/")
    os.execve(argv[0], argv, env)


def enter(target: Target) -> None:
    """In the child: join cgroups and namespaces, drop every privilege, exec the shell."""
    join(target)
    exec_shell(target.argv, target.env, target.home)


def fork_child(enter: Callable[[], None]) -> int:
    """Fork a child that runs ``enter`` (which execs the shell) with the signals Python changed
    restored; if it fails, one line on the session's stderr and status 125, never a return
    into the parent's code. Used by the monitor and by the spare."""
    child = os.fork()
    if child == 0:
        try:
            # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive exec: restore them all.
            for sig in (_signal.SIGINT, _signal.SIGQUIT, _signal.SIGPIPE, _signal.SIGXFSZ):
                _signal.signal(sig, _signal.SIG_DFL)
            passedon.reset_in_child()
            enter()
        except BaseException as exc:
            message = exc.message if isinstance(exc, DockershError) else str(exc)
            os.write(2, f"dockersh: cannot start the session: {message}\n".encode())
        os._exit(125)
    return child
