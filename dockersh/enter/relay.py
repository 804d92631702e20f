"""nsenter mode's recorded sessions: the container side gets fds of its own, the monitor copies.

An unrecorded nsenter session's shell keeps the SSH session's fds (nothing is copied, nothing
costs). A recorded one cannot: its bytes must pass the monitor to reach the recording. So the
shell gets a terminal of its own (``Terminal``: a new pty, with the SSH terminal's modes and
size, in raw mode outside while the inner one does the line discipline, as docker mode's
attach does) or three pipes (``Pipes``: no terminal; these go through the spare too), and the
monitor moves the bytes both ways, unchanged, with backpressure (stdin is read only when what
was read before reached the session). Imported only for recorded sessions.
"""

from __future__ import annotations

import fcntl
import os
import select
import termios

from dockersh.backend.docker.attach import CHUNK, write_all
from dockersh.login.recording import window_size

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    import signal as _signal

    from dockersh.login.recording import Recording
else:
    import _signal  # signal without the enum import (8 ms)


def nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Stdin:
    """The client's bytes on their way to the session: read fd 0 only when the last read is
    delivered; None once fd 0 ended or the session no longer takes them."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.pending = b""
        self.open = True

    def read(self) -> None:
        try:
            data = os.read(0, CHUNK)
        except OSError:  # EIO: the terminal hung up
            data = b""
        if data:
            self.recording.input(data)
            self.pending = data
        else:
            self.open = False

    def send(self, fd: int) -> None:
        try:
            self.pending = self.pending[os.write(fd, self.pending):]
        except BlockingIOError:
            pass
        except OSError:  # EPIPE (the session closed its stdin), EIO: drop what is left
            self.pending, self.open = b"", False

    def wanted(self) -> bool:
        return self.open and not self.pending


class Pipes:
    """A session without a terminal: stdin, stdout and stderr as pipes through the monitor."""

    def __init__(self) -> None:
        stdin, self.stdin = os.pipe2(os.O_CLOEXEC)
        stdout_r, stdout = os.pipe2(os.O_CLOEXEC)
        stderr_r, stderr = os.pipe2(os.O_CLOEXEC)
        self.child_fds = (stdin, stdout, stderr)
        self.outputs = {stdout_r: 1, stderr_r: 2}  # our read end: where its bytes go

    def attach(self) -> None:
        """In the child: the pipes become its fds 0-2 (the monitor's ends close on exec)."""
        for target, fd in enumerate(self.child_fds):
            os.dup2(fd, target)

    def started(self) -> None:
        """The child (or the spare) has its ends: ours go, so EOFs come through."""
        for fd in self.child_fds:
            os.close(fd)

    def run(self, recording: Recording, child: int = 0) -> None:
        """Copy until the session's stdout and stderr both end (as sshd waits for them)."""
        del child  # the end is the outputs' EOF, whoever holds them
        stdin = Stdin(recording)
        nonblocking(self.stdin)
        while self.outputs:
            poller = select.poll()
            for fd in self.outputs:
                poller.register(fd, select.POLLIN)
            if stdin.pending:
                poller.register(self.stdin, select.POLLOUT)
            elif stdin.open:
                poller.register(0, select.POLLIN)
            for fd, _events in poller.poll():
                if fd == 0:
                    stdin.read()
                elif fd == self.stdin:
                    stdin.send(fd)
                else:
                    self.copy_out(fd, recording)
            if self.stdin >= 0 and not stdin.open and not stdin.pending:
                os.close(self.stdin)  # the command sees EOF on its stdin
                self.stdin = -1
        if self.stdin >= 0:
            os.close(self.stdin)

    def copy_out(self, fd: int, recording: Recording) -> None:
        data = os.read(fd, CHUNK)
        if data:
            try:
                write_all(self.outputs[fd], data)
            except OSError:  # the client's end is gone: the command gets EPIPE, as it would
                pass
            else:
                recording.output(data, self.outputs[fd])
                return
        os.close(fd)
        del self.outputs[fd]


class Terminal:
    """A session with a terminal: a pty of its own, set up like the SSH session's."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.child_fds = (self.slave,) * 3
        termios.tcsetattr(self.slave, termios.TCSANOW, termios.tcgetattr(0))
        self.copy_size()

    def copy_size(self) -> tuple[int, int]:
        """The SSH terminal's size onto ours (the session's foreground gets SIGWINCH)."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8))
        return window_size(self.master)

    def attach(self) -> None:
        """In the child: a session of its own, with our pty as its controlling terminal."""
        os.setsid()
        fcntl.ioctl(self.slave, termios.TIOCSCTTY, 0)
        for target in (0, 1, 2):
            os.dup2(self.slave, target)
        os.close(self.slave)
        os.close(self.master)

    def started(self) -> None:
        os.close(self.slave)

    def run(self, recording: Recording, child: int = 0) -> None:
        """Copy until the shell exits (then what it left in the pty), with the SSH terminal in
        raw mode and its resizes passed on and recorded."""
        import tty

        def resize(_signum: int, _frame: object) -> None:
            recording.resize(*self.copy_size())

        saved = termios.tcgetattr(0)
        tty.setraw(0)
        _signal.signal(_signal.SIGWINCH, resize)
        pidfd = os.pidfd_open(child)
        try:
            self.pump(recording, pidfd)
        finally:
            _signal.signal(_signal.SIGWINCH, _signal.SIG_DFL)
            os.close(pidfd)
            os.close(self.master)  # hangs up what is left on the pty, as sshd's close does
            try:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            except termios.error:  # the SSH terminal hung up: nothing to restore
                pass

    def pump(self, recording: Recording, pidfd: int) -> None:
        master = self.master
        nonblocking(master)
        stdin = Stdin(recording)
        while True:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(master, select.POLLIN | (select.POLLOUT if stdin.pending else 0))
            if stdin.wanted():
                poller.register(0, select.POLLIN)
            exited = False
            for fd, events in poller.poll():
                if fd == 0:
                    stdin.read()
                elif fd == pidfd:
                    exited = True
                else:
                    if events & select.POLLOUT and stdin.pending:
                        stdin.send(master)
                    if events & (select.POLLIN | select.POLLHUP | select.POLLERR) and \
                            self.copy_out(recording) is None:
                        return
            if exited:  # what the shell wrote before it ended, then done
                while self.copy_out(recording):
                    pass
                return

    def copy_out(self, recording: Recording) -> bool | None:
        """One read of the pty onto the SSH terminal: True when bytes moved, False when there
        were none to read yet, None when the pty or the SSH terminal is gone."""
        try:
            data = os.read(self.master, CHUNK)
        except BlockingIOError:
            return False
        except OSError:  # EIO: no process has the pty open any more
            return None
        if not data:
            return None
        try:
            write_all(1, data)
        except OSError:  # the SSH terminal is gone; the hangup reaches the shell
            return None
        recording.output(data)
        return True


def make(tty: bool) -> Pipes | Terminal:
    return Terminal() if tty else Pipes()
