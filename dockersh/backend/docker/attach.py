"""``docker exec`` through the back end's exec calls, in this process.

What the docker CLI would do, without its ~75 ms start: create the exec, start it on a hijacked
connection, and move bytes between the SSH session's stdin/stdout/stderr and the stream until
the command ends; then return its exit code. Doing it here also fixes two things the CLI gets
wrong for a login shell: a hangup (SIGHUP/SIGTERM) reaches the command in the container instead
of orphaning it, and the detach keys are chosen by us.

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

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    import signal as _signal
    from _socket import socket

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


def pump(sock: socket, early: bytes, tty: bool, recording: Recording | None = None) -> None:
    """Move bytes until the container closes the stream (the command ended)."""
    output = Output(tty, recording)
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
        for fd, events in poller.poll():
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


def exit_code(backend: Backend, exec_id: str) -> int:
    """The command's exit status; the engine records it a moment after the stream closes."""
    for _ in range(100):
        info = backend.exec_inspect(exec_id)
        if info is not None and not info.running and info.exit_code is not None:
            return info.exit_code
        time.sleep(0.02)
    return 255


def signal_command(backend: Backend, exec_id: str, container_id: str, signum: int) -> None:
    """Send ``signum`` to the exec's command, by the host pid the engine reports.

    That pid may be stale: the command may just have ended and its number gone to another
    process, a host one (this runs as root). So the process is pinned with a pidfd, must be
    in the container's cgroup, and gets the signal through the same pidfd.
    """
    info = backend.exec_inspect(exec_id)
    if info is None or not (info.running and info.pid):
        return
    pid = info.pid
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone already (or no pidfd): nothing to signal safely
        return
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            ours = container_id in f.read()
        _signal.pidfd_send_signal(pidfd, 0)  # still the process opened: the cgroup was its
        if ours:
            _signal.pidfd_send_signal(pidfd, signum)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def run(backend: Backend, container_id: str, argv: list[str], user: str, workdir: str,
        env: list[tuple[str, str]], tty: bool, recording: Recording | None = None) -> int:
    """The exec, its bytes and its exit code."""
    saved = None
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

        def hang_up(signum: int, _frame: object) -> None:
            """SSH went away: the command in the container gets the signal, as a host shell
            would."""
            signal_command(backend, exec_id, container_id, signum)

        for sig in (_signal.SIGHUP, _signal.SIGTERM):
            _signal.signal(sig, hang_up)
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
            pump(sock, early, tty, recording)
        finally:
            sock.close()
    finally:
        if saved is not None:
            import termios

            try:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            except termios.error:  # the terminal hung up (EIO): nothing to restore, still
                pass  # end the session's record with its exit code
    return exit_code(backend, exec_id)
