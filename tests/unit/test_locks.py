"""A lock whose file gc's sweep removed while a process waited for it is taken again from the
file now at the path: two holders on two files would both think they hold the user's lock."""

from __future__ import annotations

import fcntl
import os
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
