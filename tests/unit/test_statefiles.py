"""statefiles.write in a directory someone else can write (a metrics textfile directory owned
by prometheus): what they plant there is neither followed nor waited on."""

import os
import threading
from pathlib import Path

import pytest

from dockersh import statefiles


def test_a_fifo_planted_at_the_old_temporary_name_does_not_hang_the_write(
        tmp_path: Path) -> None:
    planted = tmp_path / f".dockersh.prom.{os.getpid()}"  # the name it once used
    os.mkfifo(planted)
    writer = threading.Thread(target=statefiles.write,
                              args=(str(tmp_path / "dockersh.prom"), b"up 1\n", 0o644),
                              daemon=True)
    writer.start()
    writer.join(10)
    hung = writer.is_alive()
    if hung:  # let the thread go: open the FIFO's other end
        os.close(os.open(planted, os.O_RDONLY | os.O_NONBLOCK))
    assert not hung
    assert (tmp_path / "dockersh.prom").read_bytes() == b"up 1\n"
    assert os.stat(tmp_path / "dockersh.prom").st_mode & 0o777 == 0o644


def test_a_taken_temporary_name_is_skipped_for_another(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    names = iter([b"\0" * 6, b"\1" * 6])
    monkeypatch.setattr(os, "urandom", lambda n: next(names))
    taken = tmp_path / (".state." + "00" * 6)
    os.mkfifo(taken)
    statefiles.write(str(tmp_path / "state"), b"x", 0o600)
    assert (tmp_path / "state").read_bytes() == b"x"
    assert taken.exists() and sorted(p.name for p in tmp_path.iterdir()) == [taken.name, "state"]
