"""docker mode for a session without a terminal: sshd's own pipes handed to an engine-made exec.

Through the engine's exec stream every byte is copied by the engine's shim, by dockerd and by
this process: bulk transfers ran at ~0.55x and sshfs at ~0.4x of a plain account. So when the
container has dockersh's exec helper (bin/dockersh-exec.c, bound in read-only by the planner),
the engine runs the helper as the exec (the engine's seccomp, AppArmor, cgroup, ids and no
capabilities, as for any exec), and this process hands it the session's stdin, stdout and stderr
over a unix socket; the command reads and writes them as on a plain account. The helper sends
back the command's exact wait status, so a death by signal is one on every kernel, and passes on
the monitor's signals (the spare's protocol from GO on: enter/protocol.py).

The socket is abstract, named at random, bound in the container's network namespace (reachable
from that namespace alone) and accepted only from the exec's own process: the peer's pid
(SO_PEERCRED, a host pid here) must be the one the engine reports for the exec. A target's
container shared by several users, or one on the host's network, cannot take another's session.
Sessions with a terminal, recorded ones and containers without the helper (targets) keep the
stream (attach.py).
"""

from __future__ import annotations

import _socket
import os
import sys
import time

from dockersh.enter.protocol import FORK_FAILED, GO, MAX_MESSAGE, STARTED
from dockersh.enter.spare import Session
from dockersh.errors import DockershError
from dockersh.passedon import forward_to
from dockersh.paths import EXEC_HELPER, EXEC_HELPER_INSIDE

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from dockersh.backend.base import Backend, Container

CLONE_NEWNET = 0x40000000
#: How long the exec's helper may take to connect once the engine started it.
CONNECT_TIMEOUT = 10.0


def usable(container: Container) -> bool:
    """The container has the helper where the planner binds it."""
    return any(m.kind == "bind" and m.source == EXEC_HELPER and m.target == EXEC_HELPER_INSIDE
               for m in container.mounts)


def listen(pid: int) -> tuple[_socket.socket, str]:
    """A listening socket under a fresh random name, in the network namespace of ``pid`` (the
    container's init): this process is already there when sshd joined it for forwarding
    (pam_dockersh.so); otherwise it goes there for the socket and back."""
    name = f"dockersh-exec-{os.urandom(16).hex()}"
    theirs = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        here, there = os.stat("/proc/thread-self/ns/net"), os.fstat(theirs)
        if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
            return bound(name), name
        import ctypes  # 1-2 ms, only when sshd did not join the container's network

        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(theirs, CLONE_NEWNET) != 0:
                raise DockershError("cannot join your container's network to start the "
                                    f"session: {os.strerror(ctypes.get_errno())}")
            try:
                return bound(name), name
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:  # never go on in the container's
                    os._exit(125)
        finally:
            os.close(own)
    finally:
        os.close(theirs)


def bound(name: str) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.bind(f"\0{name}")
        sock.listen(8)
    except BaseException:
        sock.close()
        raise
    return sock


def accept(listener: _socket.socket, backend: Backend, exec_id: str) -> _socket.socket:
    """The helper's connection: the first whose peer is the exec's process. Until then, the
    exec ending (the helper could not run) or CONNECT_TIMEOUT is a failed start."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DockershError("the session did not start: the engine's exec never answered")
        listener.settimeout(min(remaining, 0.5))
        try:
            fd, _ = listener._accept()  # type: ignore[attr-defined]  # socket.py's: enum
        except TimeoutError:
            info = backend.exec_inspect(exec_id)
            if info is not None and not info.running and info.exit_code is not None:
                raise DockershError("the session did not start (the engine's exec ended with "
                                    f"status {info.exit_code})") from None
            continue
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, fd)
        peer = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        info = backend.exec_inspect(exec_id)
        if info is not None and info.running and info.pid == int.from_bytes(peer[0:4],
                                                                            sys.byteorder):
            conn.settimeout(None)
            return conn
        conn.close()  # another process of that network: never given a session


def run(backend: Backend, container: Container, argv: list[str], user: str, workdir: str,
        env: list[tuple[str, str]]) -> int:
    """The session through the helper; its exit code as os.waitstatus_to_exitcode gives it."""
    session: list[Session | None] = [None]
    early: list[int] = []  # signals that came before the command ran, in order

    def pass_on(signum: int) -> None:
        if session[0] is None:
            early.append(signum)
        else:
            session[0].forward(signum)

    listener, name = listen(container.pid)
    forward_to(pass_on)
    try:
        try:
            exec_id = backend.exec_create(container.id, [EXEC_HELPER_INSIDE, name, *argv], user,
                                          workdir, env, False, attach=False)
            backend.exec_start_detached(exec_id)
            conn = accept(listener, backend, exec_id)
        finally:
            listener.close()
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        try:
            conn.sendmsg([GO], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            answer = conn.recv(MAX_MESSAGE)
        except OSError:
            answer = b""
        if answer != STARTED:
            conn.close()
            raise DockershError(
                "the session did not start: no process could be made for it in your container "
                "(its pids_limit?)" if answer == FORK_FAILED else
                "the session's exec went away as it started the command, which may or may not "
                "have run; log in again")
        started = session[0] = Session(conn)
        for signum in early:
            started.forward(signum)
        return started.wait()
    finally:
        forward_to(None)
