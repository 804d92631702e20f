"""nsenter mode's own fds for a session: the container side gets them, the monitor copies.

A session with a terminal gets a pty of the container's own devpts (``Terminal``), as docker exec
gives one: the SSH session's pty lives on the host's devpts, which the container does not mount,
so on it ``tty`` says "not a tty" and ttyname() (GPG_TTY, mesg, write) fails. The SSH terminal
is set raw (TCSANOW: typed-ahead input stays queued) while the inner pty, given its modes and
size before the shell starts, does the line discipline. A recorded session without one gets
three pipes (``Pipes``). An unrecorded session without a terminal keeps the SSH session's fds
(nothing is copied, nothing costs). The monitor moves the bytes both ways, unchanged, with
backpressure (stdin is read only when what was read before reached the session), telling the
recording when there is one.

Where the pty comes from (``container_pty``): the root monitor, on the host, opens the
container's ``/dev/pts/ptmx`` through its init's ``/proc/PID/root``, one path component at a
time without following symlinks, and takes the slave with TIOCGPTPEER. Both are then of the
container's devpts instance (checked: the slave is on the filesystem mounted at the container's
/dev/pts and not on the host's), so the slave's name resolves inside the container. The master
never leaves the monitor (close-on-exec, closed in the child): only the slave reaches the
container, owned by the session's uid with mode 0620 and the group the container's devpts gives
(runc mounts it gid=5, tty), as docker exec's is. Opening it from the host, rather than in a
child after setns(mnt) with the master passed back, costs no socket round trip and works the
same for the direct entry and for the spare, which gets the slave over its socket.
"""

from __future__ import annotations

import fcntl
import os
import select
import termios

from dockersh.backend.docker.attach import CHUNK, write_all
from dockersh.enter.initproc import open_init
from dockersh.errors import DockershError
from dockersh.login.recording import window_size

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    import signal as _signal

    from dockersh.login.recording import Recording
else:
    import _signal  # signal without the enum import (8 ms)

#: asm-generic ioctls (x86-64 and arm64): the slave of a master as an fd, unlocking it.
TIOCGPTPEER = 0x5441
TIOCSPTLCK = 0x40045431
PTY_MODE = 0o620


def container_pty(pid: int, container_id: str, uid: int) -> tuple[int, int]:
    """A master and slave of the container's devpts, the slave owned by ``uid`` (the module's
    docstring says why from here)."""
    try:
        proc, _ = open_init(pid, container_id)
        try:
            at = os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
        finally:
            os.close(proc)
        for name in ("dev", "pts"):
            at, parent = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 dir_fd=at), at
            os.close(parent)
        try:
            master = os.open("ptmx", os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=at)
            devpts = os.fstat(at).st_dev
        finally:
            os.close(at)
        try:
            fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            dev = os.fstat(slave).st_dev
            if dev != devpts or dev == os.stat("/dev/pts").st_dev:
                os.close(slave)
                raise DockershError("the container's /dev/pts is not a devpts of its own")
            os.fchown(slave, uid, -1)
            os.fchmod(slave, PTY_MODE)
        except BaseException:
            os.close(master)
            raise
    except OSError as exc:
        raise DockershError(f"cannot open a terminal in the container ({exc.strerror})") from None
    return master, slave


class Unrecorded:
    """What a session nobody records tells its recording: nothing."""

    def input(self, data: bytes) -> None:
        del data

    def output(self, data: bytes, fd: int = 1) -> None:
        del data, fd

    def resize(self, cols: int, rows: int) -> None:
        del cols, rows


UNRECORDED = Unrecorded()


def nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Stdin:
    """The client's bytes on their way to the session: read fd 0 only when the last read is
    delivered; None once fd 0 ended or the session no longer takes them."""

    def __init__(self, recording: Recording | Unrecorded) -> None:
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

    def run(self, recording: Recording | Unrecorded, ended: int) -> None:
        """Copy until the session has ended (``ended``, a pidfd or the spare's socket, is
        readable) and its stdout and stderr both have, whoever holds them: as sshd does, a
        command that closed its outputs still gets all of its stdin (`dd of=f 2>/dev/null`)."""
        stdin = Stdin(recording)
        nonblocking(self.stdin)
        exited = False
        while self.outputs or not exited:
            poller = select.poll()
            for fd in self.outputs:
                poller.register(fd, select.POLLIN)
            if not exited:
                poller.register(ended, select.POLLIN)
            if stdin.pending:
                poller.register(self.stdin, select.POLLOUT)
            elif stdin.open:
                poller.register(0, select.POLLIN)
            for fd, _events in poller.poll():
                if fd == 0:
                    stdin.read()
                elif fd == self.stdin:
                    stdin.send(fd)
                elif fd == ended:
                    exited = True
                else:
                    self.copy_out(fd, recording)
            if self.stdin >= 0 and not stdin.open and not stdin.pending:
                os.close(self.stdin)  # the command sees EOF on its stdin
                self.stdin = -1
        if self.stdin >= 0:
            os.close(self.stdin)

    def copy_out(self, fd: int, recording: Recording | Unrecorded) -> None:
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
    """A session with a terminal: a pty of the container's (``container_pty``), set up like the
    SSH session's."""

    def __init__(self, pty: tuple[int, int]) -> None:
        self.master, self.slave = pty
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

    def run(self, recording: Recording | Unrecorded, ended: int) -> None:
        """Copy until the session has ended (``ended``, a pidfd or the spare's socket, is
        readable; then what it left in the pty), with the SSH terminal in raw mode (TCSANOW:
        what was typed ahead is kept) and its resizes passed on and recorded."""
        import tty

        def resize(_signum: int, _frame: object) -> None:
            try:
                recording.resize(*self.copy_size())
            except OSError:  # the SSH terminal hung up with the resize: the hangup ends it
                pass

        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)
        _signal.signal(_signal.SIGWINCH, resize)
        try:
            self.copy_size()  # a resize since the pty was made
            self.pump(recording, ended)
        finally:
            _signal.signal(_signal.SIGWINCH, _signal.SIG_DFL)
            os.close(self.master)  # hangs up what is left on the pty, as sshd's close does
            try:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            except termios.error:  # the SSH terminal hung up: nothing to restore
                pass

    def pump(self, recording: Recording | Unrecorded, ended: int) -> None:
        master = self.master
        nonblocking(master)
        stdin = Stdin(recording)
        while True:
            poller = select.poll()
            poller.register(ended, select.POLLIN)
            poller.register(master, select.POLLIN | (select.POLLOUT if stdin.pending else 0))
            if stdin.wanted():
                poller.register(0, select.POLLIN)
            exited = False
            for fd, events in poller.poll():
                if fd == 0:
                    stdin.read()
                elif fd == ended:
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

    def copy_out(self, recording: Recording | Unrecorded) -> bool | None:
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


def make(tty: bool, pid: int, container_id: str, uid: int) -> Pipes | Terminal:
    """A session's own fds: a terminal of the container's (``pid``: its init) or pipes."""
    return Terminal(container_pty(pid, container_id, uid)) if tty else Pipes()
