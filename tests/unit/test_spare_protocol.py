"""The spare's protocol (dockersh/enter/protocol.py), both ends of spare.py, without a container:
a spare server forked from the test, on a socket in a temporary directory, serving this
process's own ids; sessions run /bin/sh on the test's fds."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockersh.enter import protocol, spare

IDS = (os.getuid(), os.getgid(), os.getgroups())


def test_the_tags_are_distinct_single_bytes() -> None:
    tags = [protocol.READY, protocol.NOT_MINE, protocol.GO, protocol.STARTED,
            protocol.FORK_FAILED, protocol.KILL, protocol.EXITED]
    assert len(set(tags)) == len(tags) and all(len(t) == 1 for t in tags)
    assert protocol.number(protocol.kill(15)) == 15
    assert protocol.exited(256).startswith(protocol.EXITED)


def test_the_login_end_reads_the_exit_status_and_passes_hangups_on() -> None:
    login, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with server:
        session = spare.Session(login)
        session.forward(signal.SIGHUP)
        assert server.recv(64) == protocol.kill(signal.SIGHUP)
        server.send(protocol.exited(3 << 8))  # a wait status: exit code 3
        assert session.wait() == 3


def test_a_spare_that_dies_ends_the_session_as_killed() -> None:
    login, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.close()
    assert spare.Session(login).wait() == -signal.SIGKILL


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A spare server for container "c1" in a child process; its pid."""
    monkeypatch.setattr(spare, "SPARE_DIR", str(tmp_path))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(spare.path("c1"))
    listener.listen(8)
    lock = os.open(tmp_path / "c1.lock", os.O_RDONLY | os.O_CREAT, 0o600)
    pid = os.fork()
    if pid == 0:
        try:
            spare.Server(listener, lock, spare.ids(*IDS)).serve()
        finally:
            os._exit(1)
    listener.close()
    os.close(lock)
    try:
        yield pid
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def begin(argv: list[str], ids: tuple[int, int, list[int]] = IDS) -> spare.Session | None:
    return spare.begin("c1", *ids, argv, {"PATH": "/usr/bin:/bin"}, "/")


def test_a_session_runs_on_the_logins_fds_and_its_status_comes_back(
    server: int, capfd: pytest.CaptureFixture[str]
) -> None:
    session = begin(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert session is not None and session.failure == ""
    assert session.wait() == 3
    assert capfd.readouterr() == ("out\n", "err\n")


def test_a_hangup_reaches_the_session(server: int) -> None:
    session = begin(["/bin/sh", "-c", "exec sleep 30"])
    assert session is not None
    session.forward(signal.SIGTERM)
    assert session.wait() == -signal.SIGTERM


def test_a_spare_of_other_ids_says_so_and_retires(server: int) -> None:
    uid, gid, groups = IDS
    assert begin(["/bin/true"], (uid, gid + 1, groups)) is None  # NOT_MINE: enter directly
    assert os.waitpid(server, 0)[1] == 0  # served nobody, retired: exited cleanly
    assert begin(["/bin/true"]) is None  # nobody listens any more


def test_a_request_that_is_not_one_gets_no_session(server: int) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
        conn.connect(spare.path("c1"))
        conn.send(b"not marshal")
        assert conn.recv(64) == protocol.NOT_MINE
    session = begin(["/bin/sh", "-c", "exit 0"])  # garbage does not retire the spare
    assert session is not None and session.wait() == 0
