"""The signals a session's monitor passes on to the session's command, in every exec mode.

A plain account's command gets them from sshd: a hangup (HUP, TERM when sshd is told to stop)
and what an SSH client sends in a "signal" request (asyncssh's send_signal), which sshd sends
to the login's process group as the user (killpg). Here that group is the monitor, which is
root (sudo execs it in place): the user may not signal it, and sshd gets EPERM. So the monitor
forks a catcher that becomes the user (every id; not dumpable) and stays
in the group, holding nothing but two pipes: it writes each signal it gets to one, which wakes
the monitor (SIGIO) to pass it on; KILL kills it, and the monitor, seeing that, kills the
command, as sshd's killpg would have. It exits when the monitor does (the other pipe's EOF).

Left out: the fault signals sshd also names (ABRT, FPE, ILL, SEGV, PIPE), which for the monitor
would be its own.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable
else:
    import _signal  # signal without the enum import (8 ms): the login path uses this

PR_SET_DUMPABLE = 4
PASSED_ON = (_signal.SIGHUP, _signal.SIGTERM, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGUSR1,
             _signal.SIGUSR2, _signal.SIGALRM)


#: Where the signals go once the session's command runs (``forward_to``); until then, dropped.
_forward: list[Callable[[int], None] | None] = [None]


#: A delivery is under way: a signal that interrupts it is dropped, so that a flood of them
#: cannot nest handlers without bound.
_busy = [False]


def send(pidfd: int, signum: int) -> None:
    """A signal to the process ``pidfd`` holds; nothing when it has ended (its pid may be
    someone else's by now, its pidfd never is)."""
    try:
        _signal.pidfd_send_signal(pidfd, signum)
    except OSError:
        pass


def forward_to(forward: Callable[[int], None] | None) -> None:
    """From now on, every PASSED_ON signal for the session, and KILL sent to its process
    group, goes to ``forward`` (in a signal handler: no engine call, keep it short); None once
    the command is gone."""
    _forward[0] = forward


def deliver(signum: int) -> None:
    forward = _forward[0]
    if forward is not None and not _busy[0]:
        _busy[0] = True
        try:
            forward(signum)
        finally:
            _busy[0] = False


def reset_in_child() -> None:
    """In a process the monitor forks (the session's child, the spare): none of this."""
    _forward[0] = None
    for sig in (*PASSED_ON, _signal.SIGIO, _signal.SIGCHLD):
        _signal.signal(sig, _signal.SIG_DFL)


def start(uid: int, gid: int) -> None:
    """Fork the catcher and take the session's signals (``forward_to`` says where to). Before
    anything is forked into the container's pid namespace: the catcher stays on the host's."""
    import fcntl

    signals, signals_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    alive_r, _alive = os.pipe2(os.O_CLOEXEC)  # ours stays open, unwritten, until we exit
    fcntl.fcntl(signals, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(signals, fcntl.F_SETFL, fcntl.fcntl(signals, fcntl.F_GETFL) | os.O_ASYNC)
    catcher = os.fork()
    if catcher == 0:
        try:
            become_catcher(uid, gid, signals_w, alive_r)
        finally:
            os._exit(0)
    os.close(signals_w)
    os.close(alive_r)

    def delivered(_signum: int, _frame: object) -> None:
        caught = b""
        try:
            while chunk := os.read(signals, 256):  # SIGIOs merge: all that is there
                caught += chunk
        except OSError:  # EAGAIN: that was all
            pass
        for signum in set(caught) & set(PASSED_ON):
            deliver(signum)

    def reaped(_signum: int, _frame: object) -> None:
        try:
            pid, status = os.waitpid(catcher, os.WNOHANG)
        except ChildProcessError:
            return
        if pid and os.WIFSIGNALED(status) and os.WTERMSIG(status) == _signal.SIGKILL:
            deliver(_signal.SIGKILL)

    _signal.signal(_signal.SIGIO, delivered)
    _signal.signal(_signal.SIGCHLD, reaped)
    for sig in PASSED_ON:  # sent to the monitor itself: a hangup, from sudo or the engine
        _signal.signal(sig, lambda signum, _frame: deliver(signum))


def become_catcher(uid: int, gid: int, signals: int, alive: int) -> None:
    """In the catcher: nothing of the session's kept (its fds, locks, privileges); each
    signal written to ``signals`` until ``alive`` ends."""
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd not in (signals, alive):
            try:
                os.close(fd)
            except OSError:
                pass
    import ctypes

    os.chdir("/")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # Not dumpable whatever fs.suid_dumpable says: it holds a copy of the monitor's memory.
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        os._exit(1)

    def caught(signum: int, _frame: object) -> None:
        try:
            os.write(signals, bytes([signum]))
        except OSError:
            pass

    for sig in PASSED_ON:
        _signal.signal(sig, caught)
    while os.read(alive, 1):
        pass
