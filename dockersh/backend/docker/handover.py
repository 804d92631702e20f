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
(SO_PEERCRED, a host pid here) must be the one the engine reports for the exec, and its uid
the session's. A target's
container shared by several users, or one on the host's network, cannot take another's session.
A recorded session gets pipes (enter/relay.py's, as in nsenter mode) that the monitor copies,
telling the recording. Sessions with a terminal and containers without the helper (targets)
keep the stream (attach.py).
"""

from __future__ import annotations

import _socket
import os
import sys
import time

from dockersh.enter.initproc import open_init, pidfd_of
from dockersh.enter.protocol import FORK_FAILED, GO, MAX_MESSAGE, STARTED
from dockersh.enter.spare import Session
from dockersh.errors import DockershError
from dockersh.labels import LABEL_USER
from dockersh.passedon import forward_to
from dockersh.paths import EXEC_HELPER, EXEC_HELPER_INSIDE

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    import signal as _signal

    from dockersh.backend.base import Backend, Container
    from dockersh.enter.relay import Pipes
    from dockersh.login.recording import Recording
else:
    import _signal  # signal without its enum import (8 ms)

CLONE_NEWNET = 0x40000000
#: How long the exec's helper may take to connect once the engine started it.
CONNECT_TIMEOUT = 10.0


def usable(container: Container, user: str) -> bool:
    """The container is ``user``'s own, made by dockersh, and has the helper where the planner
    binds it (a target never uses it, whatever it mounts)."""
    return container.labels.get(LABEL_USER) == user and any(
        m.kind == "bind" and m.source == EXEC_HELPER and m.target == EXEC_HELPER_INSIDE
        for m in container.mounts)


def listen(container: Container) -> tuple[_socket.socket, str]:
    """A listening socket under a fresh random name, in the container's network namespace
    (its init's, checked to be the container's: initproc.open_init): this process is already
    there when sshd joined it for forwarding (pam_dockersh.so); otherwise it goes there for
    the socket and back."""
    name = f"dockersh-exec-{os.urandom(16).hex()}"
    try:
        proc, _ = open_init(container.pid, container.id)
    except OSError:
        raise DockershError("your container stopped as the session started; log in "
                            "again") from None
    try:
        theirs = os.open("ns/net", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    finally:
        os.close(proc)
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


def accept(listener: _socket.socket, backend: Backend, exec_id: str, uid: int,
           container_id: str) -> _socket.socket:
    """The helper's connection: the first whose peer (SO_PEERCRED) is the exec's process, by
    its host pid as the engine reported it once the exec started, and has the session's uid
    (a pid number may have been reused since a connect: never by another user's process
    then). Any other connection is closed unanswered, at no engine call. Until then, the exec
    ending (the helper could not run) or CONNECT_TIMEOUT is a failed start, and a helper
    still there is killed: the command of a session whose start failed never runs (say, on
    the user's own socket of that name, bound once this one is closed; pinned by a pidfd and
    checked to be in the container, as a pid the engine named may be a host process's by
    now)."""
    info = backend.exec_inspect(exec_id)
    if info is None or not info.running or info.pid <= 0:
        raise DockershError("the session did not start (the engine's exec ended with status "
                            f"{info.exit_code if info is not None else '?'})")
    helper = pidfd_of(info.pid, container_id, uid)
    if helper is None:
        raise DockershError("the session did not start (the engine's exec ended)")
    try:
        return accepted(listener, backend, exec_id, (info.pid, uid))
    except BaseException:
        try:
            _signal.pidfd_send_signal(helper, _signal.SIGKILL)
        except OSError:  # it ended
            pass
        raise
    finally:
        os.close(helper)


def accepted(listener: _socket.socket, backend: Backend, exec_id: str,
             wanted: tuple[int, int]) -> _socket.socket:
    """accept's wait for the connection from the peer ``wanted`` (pid, uid)."""
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
        if (int.from_bytes(peer[0:4], sys.byteorder),
                int.from_bytes(peer[4:8], sys.byteorder)) == wanted:
            conn.settimeout(None)
            return conn
        conn.close()  # another process of that network: never given a session


def run(backend: Backend, container: Container, argv: list[str], uid: int, gid: int,
        workdir: str, env: list[tuple[str, str]], relay: Pipes | None = None,
        recording: Recording | None = None) -> int:
    """The session through the helper, on the SSH session's fds, or on ``relay``'s pipes (a
    recorded session: the monitor copies and tells ``recording``); its exit code as
    os.waitstatus_to_exitcode gives it."""
    session: list[Session | None] = [None]
    early: list[int] = []  # signals that came before the command ran, in order, once each

    def pass_on(signum: int) -> None:
        if session[0] is not None:
            session[0].forward(signum)
        elif signum not in early:
            early.append(signum)

    listener, name = listen(container)
    forward_to(pass_on)
    try:
        try:
            exec_id = backend.exec_create(container.id, [EXEC_HELPER_INSIDE, name, *argv],
                                          f"{uid}:{gid}", workdir, env, False, attach=False)
            backend.exec_start_detached(exec_id)
            conn = accept(listener, backend, exec_id, uid, container.id)
        finally:
            listener.close()
        stdio = (0, 1, 2) if relay is None else relay.child_fds
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in stdio)
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
        if relay is not None and recording is not None:
            relay.started()
            relay.run(recording, conn.fileno())  # readable: its exit status
        return started.wait()
    finally:
        forward_to(None)
