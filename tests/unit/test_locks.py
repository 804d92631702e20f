"""A lock whose file gc's sweep removed while a process waited for it is taken again from the
file now at the path: two holders on two files would both think they hold the user's lock."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import threading
import time
from pathlib import Path

from dockersh.login import locks


def test_a_lock_whose_file_went_while_waiting_is_taken_from_the_new_file(tmp_path: Path) -> None:
    path = str(tmp_path / "alice.lock")
    holder = locks.open_lock(path)
    fcntl.flock(holder, fcntl.LOCK_EX)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(locks.acquire(path, fcntl.LOCK_EX, 10)))
    waiter.start()
    time.sleep(0.2)  # it waits on the file that is about to go
    os.unlink(path)  # what the sweep does, holding the lock
    os.close(holder)
    waiter.join(10)
    assert got, "acquire did not return"
    try:
        assert os.fstat(got[0]).st_ino == os.stat(path).st_ino
    finally:
        os.close(got[0])


def test_held_output_reopens_only_a_writable_pipe_or_live_terminal(tmp_path: Path) -> None:
    """A root reopen for writing is safe only of what the caller can write and still owns."""
    def reopened(fd: int) -> bool:
        held = locks.HeldOutput(fd)
        try:
            return held.fd >= 0
        finally:
            held.release()
            os.close(fd)

    leader, follower = os.openpty()
    assert reopened(os.dup(follower))
    os.close(follower)
    os.close(leader)
    read_end, write_end = os.pipe()
    assert reopened(write_end)
    assert not reopened(read_end)
    assert not reopened(os.open("/dev/null", os.O_WRONLY))
    target = tmp_path / "file"
    target.write_bytes(b"")
    assert not reopened(os.open(target, os.O_WRONLY))
    assert not reopened(os.open(target, os.O_RDONLY))


def test_held_output_does_not_revive_a_hung_up_terminal() -> None:
    """vhangup() leaves the fd dead (isatty fails) while a fresh open of the device works."""
    leader, follower = os.openpty()
    name = os.ttyname(follower)
    pid = os.fork()
    if pid == 0:  # a session of its own, so the terminal becomes its controlling one
        try:
            os.setsid()
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            fd = os.open(name, os.O_RDWR)
            hung = ctypes.CDLL(None, use_errno=True).vhangup() == 0 and not os.isatty(fd)
            revivable = os.isatty(os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NOCTTY))
            os._exit(0 if hung and revivable and locks.HeldOutput(fd).fd < 0 else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    os.close(follower)
    os.close(leader)
    assert os.waitstatus_to_exitcode(status) == 0
