"""The spare: one process already inside a user's container that forks their nsenter sessions.

Joining a container's cgroups makes the kernel wait out an RCU grace period (8-15 ms on a stock
kernel), the largest cost of an nsenter login; a process forked by one already inside inherits
them for nothing. So an nsenter login that finds no spare leaves one behind once its own session
has started: entered exactly as a session is (``nsenter.join``: cgroups, namespaces, the user's
ids, no capabilities, no-new-privileges), listening on a socket it bound on the host before
entering, in a directory only root can reach. Later logins connect, pass their stdin, stdout and
stderr and what to run, and wait for the exit status; the socket carries nothing else. A login
with a terminal passes the container's pty its monitor made (relay.py: the SSH session's own,
on the host's devpts, never reaches the container), which the session takes as its controlling
terminal.

The spare lives in the container's pid namespace, adopted by its init, so it ends with the
container. To the user it is one of their own processes, not dumpable (no ptrace, no
/proc/PID/fd): killing or stopping it costs them the fast path and nothing else, since a login
falls back to entering directly when the spare does not answer within ``READY_TIMEOUT``.
What the two ends say to each other is in protocol.py.
"""

from __future__ import annotations

import _socket
import marshal
import os
import select
import sys

from dockersh import passedon
from dockersh.enter import protocol
from dockersh.enter.protocol import (
    EXITED,
    FORK_FAILED,
    GO,
    KILL,
    MAX_MESSAGE,
    MAX_REQUEST,
    READY,
    STARTED,
)
from dockersh.paths import SECCOMP_DIR, SPARE_DIR

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Mapping
    from typing import Any, NoReturn

    from dockersh.enter.nsenter import Target
else:
    import _signal

#: How long a login waits for the spare's first answer before entering directly.
READY_TIMEOUT = 1.0
MSG_CMSG_CLOEXEC = 0x40000000


def path(container_id: str) -> str:
    return f"{SPARE_DIR}/{container_id}"


def ids(uid: int, gid: int, groups: list[int]) -> tuple[int, int, int, list[int]]:
    """What a spare serves: the protocol's version (a spare of an older one, left running by an
    upgrade, answers NOT_MINE and retires) and the session's ids."""
    return protocol.VERSION, int(uid), int(gid), sorted(int(g) for g in groups)


class Session:
    """A session the spare forked, seen from its monitor; ``failure``: it is not known to have
    started, so it ends at once with status 125 and this line."""

    def __init__(self, sock: _socket.socket, failure: str = "") -> None:
        self.sock, self.failure = sock, failure

    def forward(self, signum: int) -> None:
        """A hangup or the client's signal for the session (in a signal handler): the spare
        sends it to the shell."""
        try:
            self.sock.send(protocol.kill(signum))
        except OSError:
            pass

    def wait(self) -> int:
        """The exit code as os.waitstatus_to_exitcode gives it (negative: the signal)."""
        while not self.failure:
            try:
                message = self.sock.recv(MAX_MESSAGE)
            except OSError:
                message = b""
            if message.startswith(EXITED):
                self.sock.close()
                return exit_code(message)
            if not message:  # the spare died: with its container (or its user killed it)
                self.sock.close()
                return -_signal.SIGKILL
        return 125


#: Signals whose default action does not end a process: a "death" by one is a lie.
NOT_FATAL = frozenset({_signal.SIGCHLD, _signal.SIGCONT, _signal.SIGSTOP, _signal.SIGTSTP,
                       _signal.SIGTTIN, _signal.SIGTTOU, _signal.SIGURG, _signal.SIGWINCH})


def exit_code(message: bytes) -> int:
    """EXITED's wait status as os.waitstatus_to_exitcode gives it. What runs in the container
    (the spare, docker mode's exec helper) is the user's to tamper with: a status that no
    ended process has (stopped, killed by a signal that does not kill, not a number) would
    have the root monitor stop or fail as it re-raises it, and counts as a kill instead."""
    try:
        code = os.waitstatus_to_exitcode(protocol.number(message))
    except (ValueError, OverflowError):
        return -_signal.SIGKILL
    return -_signal.SIGKILL if code < 0 and -code in NOT_FATAL else code


def sweep(containers: set[str]) -> None:
    """Remove the files kept per container (the spare's socket and lock, the cached seccomp
    filters and their locks; named ID or ID.something) of containers that are gone (gc). An id
    with a lock held (a spare of a container made since the list was taken) and files being
    written (dot-files) are left alone."""
    import fcntl

    for directory in (SPARE_DIR, SECCOMP_DIR):
        try:
            names = [name for name in os.listdir(directory) if not name.startswith(".")]
        except FileNotFoundError:
            continue
        for gone in {name.split(".")[0] for name in names} - containers:
            mine = [f"{directory}/{name}" for name in names if name.split(".")[0] == gone]
            held = []
            try:
                for path in (p for p in mine if p.endswith(".lock")):
                    held.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW))
                    fcntl.flock(held[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
                for path in mine:
                    os.unlink(path)
            except OSError:  # in use (BlockingIOError), or gone already
                pass
            finally:
                for fd in held:
                    os.close(fd)


def begin(container_id: str, uid: int, gid: int, groups: list[int], argv: list[str],
          env: Mapping[str, str], home: str,
          stdio: tuple[int, int, int] = (0, 1, 2)) -> Session | None:
    """Start this session through the container's spare, on ``stdio`` (this process's fds 0-2,
    or a recorded session's pipes).

    None when there is no live spare for these ids, it does not answer in time or cannot fork
    (nothing was started then): the caller enters directly.
    """
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path(container_id))
        peer = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        if int.from_bytes(peer[4:8], sys.byteorder) != uid:
            raise OSError("not the user's spare")
        sock.send(marshal.dumps((ids(uid, gid, groups), list(argv), dict(env), home)))
        sock.settimeout(READY_TIMEOUT)
        if sock.recv(MAX_MESSAGE) != READY:
            raise OSError("the spare refused")
        # The fds travel only now that the spare answers: fds in flight to a spare that never
        # reads them would keep the SSH channel open. From GO on the session may run, so no
        # more falling back.
        sock.settimeout(None)
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in stdio)
        sock.sendmsg([GO], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    except OSError:  # timeouts included
        sock.close()
        return None
    try:
        answer = sock.recv(MAX_MESSAGE)
    except OSError:
        answer = b""
    if answer == FORK_FAILED:  # nothing runs: entering directly is safe
        sock.close()
        return None
    if answer != STARTED:  # it went away after GO: the command may have started; never twice
        sock.close()
        return Session(sock, "your container's spare went away as it started the command, "
                             "which may or may not have run; log in again")
    return Session(sock)


def start(target: Target, container_id: str) -> None:
    """Leave a spare in the container, unless one is there or starting.

    Called by a monitor whose children are born in the container's pid namespace, after its own
    session started. The middle process exits at once, so the container's init adopts the spare
    (and ``dockersh ls`` does not count it as a session entered from outside).
    """
    try:
        middle = os.fork()
    except OSError:
        return  # no spare this time (the next login tries again); this session goes on
    if middle:
        os.waitpid(middle, 0)
        return
    try:
        if os.fork() == 0:
            become(target, container_id)
    finally:
        os._exit(0)


def become(target: Target, container_id: str) -> NoReturn:
    """In the spare: let go of the session, claim the socket, enter the container, serve."""
    import fcntl
    import socket
    import termios  # for fork_session: inside, the container's files hold no termios module

    from dockersh.enter import nsenter

    del termios
    os.setsid()  # out of the SSH session: its hangups are not for the spare
    passedon.reset_in_child()  # the session's signal handlers (HUP, TERM, INT, QUIT...)
    close_all_but(set(target.ns_fds.values()))  # the session's fds and locks above all
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.makedirs(SPARE_DIR, mode=0o700, exist_ok=True)
    lock = os.open(f"{path(container_id)}.lock",
                   os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held for the spare's life
    except BlockingIOError:
        os._exit(0)  # another spare serves this container, or is about to
    try:
        os.unlink(path(container_id))  # a dead spare's socket
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path(container_id))
    nsenter.join(target)
    nsenter.become_spare()
    os.close(os.pidfd_open(os.getpid()))  # what serve() relies on is allowed (seccomp)
    listener.listen(64)  # after the change of ids: a login checks them (SO_PEERCRED)
    for fd in target.ns_fds.values():
        os.close(fd)
    Server(listener, lock, ids(target.uid, target.gid, target.groups)).serve()


def close_all_but(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own fd, closed by now


class Peer:
    """One login's connection: its request, then (after GO) its session."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.request: Any = None
        self.child = 0


class Server:
    def __init__(self, listener: Any, lock: int, own: tuple[int, int, int, list[int]]) -> None:
        self.listener, self.lock, self.own = listener, lock, own
        self.poller = select.poll()
        self.poller.register(listener, select.POLLIN)
        self.peers: dict[int, Peer] = {}  # by connection fd
        self.children: dict[int, Peer] = {}  # by pidfd of the session

    def serve(self) -> NoReturn:
        """Until retired and done with every login it answered, or killed with the container."""
        while self.lock >= 0 or self.children or self.peers:
            for fd, _ in self.poller.poll():
                if self.lock >= 0 and fd == self.listener.fileno():
                    conn, _ = self.listener.accept()
                    self.peers[conn.fileno()] = Peer(conn)
                    self.poller.register(conn, select.POLLIN)
                elif fd in self.children:
                    self.reap(fd)
                elif fd in self.peers and not self.hear(self.peers[fd]) and self.lock >= 0:
                    self.poller.unregister(self.listener)
                    self.listener.close()
                    os.close(self.lock)  # a new spare may start
                    self.lock = -1
        os._exit(0)

    def hear(self, peer: Peer) -> bool:
        """Act on one message from a login; False when this spare must retire."""
        if peer.request is None:
            return self.hear_request(peer)
        if not peer.child:
            self.hear_go(peer)
            return True
        try:
            message = peer.conn.recv(MAX_MESSAGE)
        except OSError:
            message = b""
        if message.startswith(KILL):
            os.kill(peer.child, protocol.number(message))  # not reaped yet: still our child
        elif not message:  # its login went away, and so did the SSH channel
            os.kill(peer.child, _signal.SIGHUP)
            self.drop(peer)
        return True

    def hear_request(self, peer: Peer) -> bool:
        try:
            peer.request = marshal.loads(peer.conn.recv(MAX_REQUEST))
            wanted = peer.request[0]
        except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError):
            wanted = None
        if wanted == self.own:
            send(peer.conn, READY)
            return True
        send(peer.conn, protocol.NOT_MINE)
        self.drop(peer)
        return wanted is None  # asked for other ids: this spare is stale

    def hear_go(self, peer: Peer) -> None:
        """GO with the login's fds 0-2: fork the session on them."""
        import socket

        try:
            message, ancillary, _, _ = peer.conn.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(12),
                                                         MSG_CMSG_CLOEXEC)
        except OSError:
            message, ancillary = b"", []
        fds = [int.from_bytes(data[i:i + 4], sys.byteorder)
               for level, kind, data in ancillary
               if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
               for i in range(0, len(data) - len(data) % 4, 4)]
        if message == GO and len(fds) == 3:
            try:
                peer.child = fork_session(fds, peer.request)
            except OSError:
                send(peer.conn, FORK_FAILED)
            else:
                send(peer.conn, STARTED)
                try:
                    pidfd = os.pidfd_open(peer.child)
                except OSError:  # out of fds: the session could not be followed; end it
                    os.kill(peer.child, _signal.SIGKILL)
                    send(peer.conn, protocol.exited(os.waitpid(peer.child, 0)[1]))
                    self.drop(peer)
                else:
                    self.children[pidfd] = peer
                    self.poller.register(pidfd, select.POLLIN)
        for fd in fds:
            os.close(fd)
        if not peer.child:
            self.drop(peer)

    def reap(self, pidfd: int) -> None:
        peer = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        status = os.waitpid(peer.child, 0)[1]
        if peer.conn.fileno() >= 0:
            send(peer.conn, protocol.exited(status))
            self.drop(peer)

    def drop(self, peer: Peer) -> None:
        fd = peer.conn.fileno()
        if fd >= 0:
            self.poller.unregister(fd)
            del self.peers[fd]
            peer.conn.close()


def fork_session(fds: list[int], request: Any) -> int:
    from dockersh.enter import nsenter

    _, argv, env, home = request

    def enter() -> None:
        os.setsid()
        for target_fd, fd in enumerate(fds):
            os.dup2(fd, target_fd)
        if os.isatty(0):  # the container's pty of a terminal login (relay.py): its terminal
            import fcntl
            import termios  # imported before the spare entered (become)

            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        nsenter.exec_shell(argv, env, home)

    return nsenter.fork_child(enter)


def send(conn: Any, message: bytes) -> None:
    try:
        conn.send(message)
    except OSError:
        pass  # its login is gone
