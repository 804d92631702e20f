"""``docker exec`` through the back end's exec calls, in this process, moving the stream's bytes:
sessions with a terminal and containers without the exec helper (handover.py
serves the rest).

What the docker CLI would do, without its ~75 ms start: create the exec, start it on a hijacked
connection, and move bytes between the SSH session's stdin/stdout/stderr and the stream until
the command ends; then return its exit code. Doing it here also fixes two things the CLI gets
wrong for a login shell: a hangup (SIGHUP/SIGTERM) reaches the command in the container instead
of orphaning it (so do the client's signals: dockersh/passedon.py), a death by signal is one
(exit_code), and the detach keys are chosen by us.

- Without a terminal the stream is multiplexed (8-byte frame headers): stdout and stderr stay
  apart, bytes are never altered, stdin EOF is passed on as a half-close.
- With a terminal the local one is put in raw mode (the container's pty does the line
  discipline) before the exec is made, keeping what was typed ahead; the exec's first step sets
  its pty to the local size (TERMINAL), and every SIGWINCH sends the new one.
- Backpressure: stdin is read only when what was read before has been sent, so neither side
  can deadlock the other.
- A recorded session (login/recording.py) is told every byte each way, and each resize.
"""

from __future__ import annotations

import os
import select
import time

from dockersh import winsize
from dockersh.enter.initproc import pidfd_of
from dockersh.passedon import forward_to, send

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    import signal as _signal
    from _socket import socket
    from collections.abc import Callable

    from dockersh.backend.base import Backend
    from dockersh.login.recording import Recording
else:
    import _signal  # signal without the enum import (8 ms)

CHUNK = 65536
#: With a terminal the exec starts as this shell line, given the terminal's size and then the
#: session's argv. It sets the size on the container's pty (the engine makes the pty at the start,
#: and API 1.41 has no size at start: a resize from here would come after the command began, at
#: 0x0), names the pty in SSH_TTY as sshd does on the host, then becomes the session's command.
TERMINAL = ["/bin/sh", "-c",
            '[ "$1" = 0 ] || stty rows "$1" cols "$2" 2>/dev/null; shift 2; '
            'SSH_TTY=$(tty 2>/dev/null) && export SSH_TTY; exec "$@"', "sh"]


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class Output:
    """Delivers the stream to stdout/stderr: raw with a terminal, else demultiplexed."""

    def __init__(self, tty: bool, recording: Recording | None = None) -> None:
        self.tty = tty
        self.buffer = b""
        self.recording = recording

    def feed(self, data: bytes) -> None:
        if self.tty:
            write_all(1, data)
            if self.recording is not None:
                self.recording.output(data)
            return
        buffer = self.buffer + data
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            fd = 2 if buffer[0] == 2 else 1
            write_all(fd, buffer[8:8 + size])
            if self.recording is not None:
                self.recording.output(buffer[8:8 + size], fd)
            buffer = buffer[8 + size:]
        self.buffer = buffer


def pump(sock: socket, early: bytes, tty: bool, recording: Recording | None = None,
         started: Callable[[], bool] | None = None) -> None:
    """Move bytes until the container closes the stream (the command ended). ``started``
    is called after each wait (20 ms at most) of the first two seconds until it says True:
    the command has started (the engine says so a moment after its answer) and is pinned."""
    output = Output(tty, recording)
    until = time.monotonic() + 2 if started is not None else 0.0
    if early:
        output.feed(early)
    sock.setblocking(False)
    sfd = sock.fileno()
    poller = select.poll()
    stdin_open, pending, half_closed = True, b"", False
    while True:
        poller.register(sfd, select.POLLIN | (select.POLLOUT if pending else 0))
        if stdin_open and not pending:
            poller.register(0, select.POLLIN)
        else:
            try:
                poller.unregister(0)
            except KeyError:
                pass
        ready = poller.poll(20 if until else None)
        if until and started is not None and (started() or time.monotonic() > until):
            until = 0.0
        for fd, events in ready:
            if fd == 0:
                try:
                    data = os.read(0, CHUNK) if not events & select.POLLNVAL else b""
                except OSError:  # EIO: the terminal hung up
                    data = b""
                if data:
                    pending = data
                    if recording is not None:
                        recording.input(data)
                else:
                    stdin_open = False
            elif events & select.POLLOUT and pending:
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    pass
            if fd == sfd and events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                try:
                    data = sock.recv(CHUNK)
                except BlockingIOError:
                    continue
                if not data:
                    return
                try:
                    output.feed(data)
                except BrokenPipeError:  # our stdout is gone: the command gets EPIPE too
                    return
        if not stdin_open and not pending and not half_closed:
            sock.shutdown(1)  # SHUT_WR: the command sees EOF on its stdin
            half_closed = True


def exit_code(backend: Backend, exec_id: str, command: int | None = None) -> int:
    """The command's exit status; the engine records it a moment after the stream closes.

    The engine reports a death by signal N as 128 + N, like an exit with that number. With
    ``command`` (a pidfd of it, ``pinned``), on Linux 6.15 and later the kernel tells them
    apart: a death by signal is then -N, as os.waitstatus_to_exitcode gives it, so that the
    monitor dies of it too and sshd reports exit-signal as on a plain account.
    """
    for _ in range(100):
        info = backend.exec_inspect(exec_id)
        if info is not None and not info.running and info.exit_code is not None:
            if info.exit_code > 128 and command is not None:
                status = wait_status(command)
                if status is not None and os.WIFSIGNALED(status):
                    return -os.WTERMSIG(status)
            return info.exit_code
        time.sleep(0.02)
    return 255


#: linux/pidfd.h (6.15): _IOWR(0xFF, 11, struct pidfd_info), its 64 bytes (VER0); the mask bit
#: asking for the exit status, and where the kernel puts it (after 8 + 8 + 11 * 4 bytes).
PIDFD_GET_INFO = 0xC040FF0B
PIDFD_INFO_EXIT = 1 << 3
EXIT_CODE = slice(60, 64)


def wait_status(pidfd: int) -> int | None:
    """The wait status of the process behind ``pidfd`` once it has been reaped (by anyone:
    here, the engine's shim), else None (it has not, or the kernel is older than 6.15)."""
    import fcntl
    import sys

    info = bytearray(64)
    info[0:8] = PIDFD_INFO_EXIT.to_bytes(8, sys.byteorder)
    try:
        fcntl.ioctl(pidfd, PIDFD_GET_INFO, info)
    except OSError:
        return None
    if not int.from_bytes(info[0:8], sys.byteorder) & PIDFD_INFO_EXIT:
        return None
    return int.from_bytes(info[EXIT_CODE], sys.byteorder, signed=True)


def pinned(backend: Backend, exec_id: str, container_id: str, uid: int) -> int | None:
    """A pidfd of the exec's command, by the host pid the engine reports, or None.

    That pid may be stale: the command may just have ended and its number gone to another
    process, a host one (this runs as root), or another user's in a shared target. So the
    process is pinned with a pidfd, must be in the container's cgroup and run as the
    session's ``uid``, and still be the one pinned after that was read (initproc.pidfd_of).
    """
    from dockersh.errors import DockershError

    try:
        info = backend.exec_inspect(exec_id)
    except DockershError:  # the session goes on; only its signals cannot be passed on
        return None
    if info is None or not (info.running and info.pid):
        return None
    return pidfd_of(info.pid, container_id, uid)


def run(backend: Backend, container_id: str, argv: list[str], user: str, workdir: str,
        env: list[tuple[str, str]], tty: bool, recording: Recording | None = None) -> int:
    """The exec, its bytes and its exit code."""
    saved = None
    uid = int(user.split(":")[0])  # "UID:GID": whose process the command must be, to be signalled
    command: list[int | None] = [None]  # the command's pidfd, once pinned
    early_signals: list[int] = []  # those that came before
    if tty:
        import termios
        import tty as tty_mode

        # Raw at once, and with TCSANOW: TCSAFLUSH would drop what the user typed ahead.
        saved = termios.tcgetattr(0)
        tty_mode.setraw(0, termios.TCSANOW)
        rows, cols = winsize.rows_cols()
        argv = [*TERMINAL, str(rows), str(cols), *argv]
    try:
        exec_id = backend.exec_create(container_id, argv, user, workdir, env, tty)
        sock, early = backend.exec_start(exec_id, tty)
        def pin() -> bool:
            """The command pinned by a pidfd (for its signals and its exit status), once it
            runs: the engine answers the start before it starts the command. Called by the
            pump, never by a signal handler (an engine call)."""
            if command[0] is None:
                command[0] = pinned(backend, exec_id, container_id, uid)
                if command[0] is not None:  # what came before, in order
                    for signum in early_signals:
                        pass_on(signum)
            return command[0] is not None

        def pass_on(signum: int) -> None:
            """A hangup or the client's signal: the command in the container gets it, as on
            a plain account (kept until it is pinned)."""
            pidfd = command[0]
            if pidfd is None:
                early_signals.append(signum)
                return
            send(pidfd, signum)

        forward_to(pass_on)
        if tty:
            def resize(_signum: int = 0, _frame: object = None) -> None:
                try:
                    rows, cols = winsize.rows_cols()
                except OSError:  # the SSH terminal hung up with the resize: the hangup ends it
                    return
                if rows and cols:
                    backend.exec_resize(exec_id, rows, cols)
                    if recording is not None and _signum:
                        recording.resize(cols, rows)

            resize()  # in case the image has no stty, or the window changed meanwhile
            _signal.signal(_signal.SIGWINCH, resize)
        try:
            pump(sock, early, tty, recording, pin)
        finally:
            sock.close()
    finally:
        if saved is not None:
            import termios

            try:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            except termios.error:  # the terminal hung up (EIO): nothing to restore, still
                pass  # end the session's record with its exit code
    try:
        return exit_code(backend, exec_id, command[0])
    finally:
        forward_to(None)
        if command[0] is not None:
            os.close(command[0])
