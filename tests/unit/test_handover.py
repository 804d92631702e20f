"""docker mode's socket to its exec helper takes a connection only from the exec's own process
(backend/docker/handover.accept): a real abstract socket, real peers, the engine's word faked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from dockersh.backend.base import Exec
from dockersh.backend.docker import handover
from dockersh.enter import spare
from dockersh.enter.initproc import in_container  # the real one: the fixture replaces it there
from dockersh.errors import DockershError

#: The container's id in these tests: this process and its children count as in it (the pid
#: accept() kills on a failed start must be in the container's cgroups; the real check,
#: initproc.in_container, has its own test below and is used in tests/test_security_session.py).
HERE = "the-containers-id"


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch) -> None:
    from dockersh.enter import initproc

    monkeypatch.setattr(initproc, "in_container", lambda cgroups, cid: cid == HERE)


class Engine:
    """What the engine says of the exec: running as ``pid``, or ended with ``code``."""

    def __init__(self, pid: int, code: int | None = None) -> None:
        self.pid, self.code = pid, code

    def exec_inspect(self, exec_id: str) -> Exec:
        return Exec(self.code is None, self.code, self.pid)


def connect(name: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(f"\0{name}")
    sock.settimeout(5)
    return sock


def impostor(name: str, linger: bool = False) -> tuple[int, int]:
    """A child process that connects, then reports what it got back (b"" for EOF) on a pipe;
    ``linger``: and then waits to be killed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            sock = connect(name)
            os.write(w, b"C")  # connected: in the listener's queue, ahead of any later one
            os.write(w, b"EOF" if sock.recv(16) == b"" else b"DATA")
            if linger:
                signal.pause()
        finally:
            os._exit(0)
    os.close(w)
    return pid, r


def killed(pid: int) -> bool:
    """``pid`` (a child) ended by SIGKILL within 5 s: a failed start kills the exec's helper
    (a child still there is ended, and that is False)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        time.sleep(0.05)
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    return False


@pytest.fixture
def name() -> str:
    return f"dockersh-exec-test-{os.urandom(8).hex()}"


def test_the_execs_own_process_is_taken(name: str) -> None:
    listener = handover.bound(name)
    mine = connect(name)
    conn = handover.accept(listener, Engine(os.getpid()), "exec-1", os.getuid(), HERE)  # type: ignore[arg-type]
    conn.send(b"G")
    assert mine.recv(16) == b"G"


def test_another_process_of_the_network_is_turned_away(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An impostor connects first; it gets nothing, and the exec's process is still served.
    Without the peer check, accept() would hand the impostor the session's fds."""
    listener = handover.bound(name)
    child, report = impostor(name)
    assert os.read(report, 1) == b"C"
    mine = connect(name)
    conn = handover.accept(listener, Engine(os.getpid()), "exec-1", os.getuid(), HERE)  # type: ignore[arg-type]
    conn.send(b"G")
    assert mine.recv(16) == b"G"
    assert os.read(report, 16) == b"EOF"
    os.waitpid(child, 0)

    monkeypatch.setattr(handover, "CONNECT_TIMEOUT", 1.0)
    child, report = impostor(name)
    assert os.read(report, 1) == b"C"
    helper = subprocess.Popen(["sleep", "60"])  # the exec's process, which never connects
    with pytest.raises(DockershError, match="never answered"):
        handover.accept(listener, Engine(helper.pid), "exec-1", os.getuid(), HERE)  # type: ignore[arg-type]
    assert os.read(report, 16) == b"EOF"
    os.waitpid(child, 0)
    assert helper.wait(5) == -signal.SIGKILL  # the start failed: its command never runs


def test_an_exec_that_ended_before_connecting_fails_the_start(name: str) -> None:
    listener = handover.bound(name)
    with pytest.raises(DockershError, match="ended with status 127"):
        handover.accept(listener, Engine(0, 127), "exec-1", 0, HERE)  # type: ignore[arg-type]


def test_the_execs_pid_with_another_uid_is_turned_away(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pid the exec had when the engine was asked, connected from another user's process (the
    number was reused since): turned away too. And when the process the engine names has
    another uid already, the start fails at once, and that process gets no signal."""
    monkeypatch.setattr(handover, "CONNECT_TIMEOUT", 1.0)
    listener = handover.bound(name)
    child, report = impostor(name, linger=True)
    assert os.read(report, 1) == b"C"
    try:
        with pytest.raises(DockershError, match="never answered"):
            handover.accepted(listener, Engine(child), "exec-1",  # type: ignore[arg-type]
                              (child, os.getuid() + 1))
        assert os.read(report, 16) == b"EOF"
        with pytest.raises(DockershError, match="did not start"):
            handover.accept(listener, Engine(child), "exec-1",  # type: ignore[arg-type]
                            os.getuid() + 1, HERE)
        time.sleep(0.3)
        assert os.waitpid(child, os.WNOHANG) == (0, 0)  # not killed
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_a_failed_start_kills_no_process_outside_the_container(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pid the engine named is a host process's by now (the exec ended, the number was
    reused): the start fails without a signal to it."""
    monkeypatch.setattr(handover, "CONNECT_TIMEOUT", 0.5)
    listener = handover.bound(name)
    host = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(DockershError, match="did not start"):
            handover.accept(listener, Engine(host.pid), "exec-1",  # type: ignore[arg-type]
                            os.getuid(), "0123456789abcdef-not-these-cgroups")
        with pytest.raises(subprocess.TimeoutExpired):  # not killed: still there in a while
            host.wait(0.5)
    finally:
        host.kill()
        host.wait()


@pytest.mark.parametrize(("message", "code"), [
    (b"X0", 0), (b"X1792", 7), (b"X15", -signal.SIGTERM), (b"X9", -signal.SIGKILL),
    # what no ended process reports: stopped, "killed" by a signal that does not kill, junk
    (b"X4991", -signal.SIGKILL), (b"X20", -signal.SIGKILL), (b"X17", -signal.SIGKILL),
    (b"X", -signal.SIGKILL), (b"Xabc", -signal.SIGKILL), (b"X" + b"9" * 40, -signal.SIGKILL),
])
def test_an_exit_status_from_the_container_is_taken_only_when_it_is_one(
    message: bytes, code: int
) -> None:
    assert spare.exit_code(message) == code


ID = "0123456789abcdef" * 4


@pytest.mark.parametrize(("cgroups", "inside"), [
    (f"12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n", True),  # cgroupfs, v1
    (f"0::/system.slice/docker-{ID}.scope\n", True),  # systemd driver, v2
    (f"0::/machine.slice/libpod-{ID}.scope/container\n", True),  # Podman, a sub-cgroup
    (f"3:cpu:/libpod_parent/libpod-{ID}\n", True),  # Podman, cgroupfs
    # the engine's own root processes beside the container: never "in" it
    (f"0::/machine.slice/libpod-conmon-{ID}.scope\n", False),
    (f"0::/system.slice/{ID}-1a2b3c.service\n", False),  # a Podman healthcheck
    (f"0::/user.slice/x{ID}\n", False),
    ("0::/\n", False),
])
def test_a_process_is_the_containers_by_its_own_cgroup_not_a_mention(
    cgroups: str, inside: bool
) -> None:
    assert in_container(cgroups, ID) is inside
    assert not in_container(cgroups, "")
