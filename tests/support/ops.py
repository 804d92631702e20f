"""Helpers and fixtures for the operating tests (admin verbs, gc, recovery).

dockersh runs here as root from this checkout (``python -m dockersh --config PATH``), with a
config file of the test's own, so these tests never touch /etc/dockersh. Import the fixtures
into a test module to use them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from . import docker, engine
from .cmd import run
from .images import BUSYBOX_IMAGE
from .users import LinuxUser

STATE_DIR = Path("/var/lib/dockersh")
LOCK_DIR = Path("/run/dockersh/locks")
DOCKERD_PIDFILE = Path("/var/run/docker.pid")
REGISTRY = "/usr/bin/docker-registry"

#: The [container] table of every test config: the tiny image, never pulled, its shell.
CONTAINER = {"image": BUSYBOX_IMAGE, "pull": "never", "shell": "/bin/sh"}

#: A clean environment for dockersh: no SUDO_UID (root acting for itself), no SSH variables.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


class Dockersh:
    """dockersh from this checkout, as root, with the test's own config and audit file."""

    def __init__(self, workdir: Path) -> None:
        self.config = workdir / "dockersh.toml"
        self.audit = workdir / "audit.jsonl"
        self.write()

    def write(self, extra: str = "", **container: str | int | list[str]) -> None:
        """The config: the engine under test, [container] (CONTAINER, updated with
        ``container``), [audit] with the test's own file, then ``extra`` (TOML text)."""
        table = "".join(f"{k} = {json.dumps(v)}\n" for k, v in {**CONTAINER, **container}.items())
        self.config.write_text(f'{engine.CONFIG}[container]\n{table}\n'
                               f'[audit]\nfile = "{self.audit}"\n\n' + extra)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dockersh", "--config", str(self.config), *args]

    def __call__(self, *args: str, input: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run an admin verb or a session to completion; never raises on a non-zero status."""
        return subprocess.run(self.argv(*args), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={**CLEAN_ENV, **(env or {})})

    def login(self, user: LinuxUser, command: str = "true",
              **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self("--user", user.name, "-c", command, **kwargs)

    def spawn(self, user: LinuxUser, command: str,
              env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """A session left running (its own process group); stdout and stderr are pipes."""
        return subprocess.Popen(self.argv("--user", user.name, "-c", command),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**CLEAN_ENV, **(env or {})})

    def end(self, session: subprocess.Popen[str]) -> tuple[str, str]:
        """Kill a spawned session's process group (monitor and docker exec); its output."""
        try:
            os.killpg(session.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return session.communicate(timeout=30)

    def ls(self) -> dict[str, dict[str, Any]]:
        """``dockersh ls --json``, by user."""
        proc = self("ls", "--json")
        assert proc.returncode == 0, proc.stderr
        return {row["user"]: row for row in json.loads(proc.stdout)}

    def audit_records(self, user: LinuxUser, events: str = "session-") -> list[dict[str, Any]]:
        """The user's records whose event starts with ``events`` ("": all of them)."""
        if not self.audit.exists():
            return []
        records = [json.loads(line) for line in self.audit.read_text().splitlines()]
        return [r for r in records if r["user"] == user.name and r["event"].startswith(events)]


@pytest.fixture
def dsh(tmp_path: Path, test_image: str) -> Iterator[Dockersh]:
    """dockersh with a config of the test's own; removes the state its users' containers left."""
    runner = Dockersh(tmp_path)
    yield runner
    for row in _ls_quiet(runner):
        if row["user"].startswith("dt"):
            shutil.rmtree(STATE_DIR / row["container"], ignore_errors=True)


def _ls_quiet(runner: Dockersh) -> list[dict[str, Any]]:
    proc = runner("ls", "--json")
    return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout else []


# --- the engine --------------------------------------------------------------------------------


def inspect(name: str) -> dict[str, Any] | None:
    proc = run(["docker", "inspect", name], check=False, timeout=30)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def state(name: str) -> dict[str, Any]:
    found = inspect(name)
    assert found is not None, f"no container {name}"
    return dict(found["State"])


def container_name(user: LinuxUser) -> str:
    return f"dockersh-{user.name}"


def pid_running(cmdline: bytes, uid: int | None = None) -> int | None:
    """A process (of ``uid``, when given) running ``cmdline`` (NUL-separated, seen from the
    host's /proc), or None."""
    for entry in os.listdir("/proc"):
        try:
            if (entry.isdigit() and (uid is None or os.stat(f"/proc/{entry}").st_uid == uid)
                    and Path(f"/proc/{entry}/cmdline").read_bytes() == cmdline):
                return int(entry)
        except OSError:
            continue
    return None


def runs(user: LinuxUser, cmdline: bytes) -> bool:
    """A process of the user's runs ``cmdline``: a session's command started (a session
    counts from its monitor's lock on)."""
    return pid_running(cmdline, user.uid) is not None


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def dockerd_pid() -> int:
    return int(DOCKERD_PIDFILE.read_text().strip())


def stop_dockerd(timeout: float = 60) -> None:
    """SIGTERM the running dockerd (by the pid in its pidfile) and wait until it is gone."""
    pid = dockerd_pid()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout, f"dockerd {pid} exits")


def start_dockerd() -> None:
    docker.ensure_running()


@pytest.fixture
def dockerd_restartable(docker_engine: Any) -> Iterator[None]:
    """For tests that stop dockerd: it answers again afterwards, whatever happened."""
    yield
    if not docker.answers():
        start_dockerd()


# --- a local registry, for `dockersh pull` --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path, test_image: str) -> Iterator[str]:
    """A Docker registry (Debian's docker-registry) on 127.0.0.1; yields its host:port.

    The engine trusts registries on 127.0.0.0/8 without TLS.
    """
    if not os.access(REGISTRY, os.X_OK):
        install_registry()
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
                      f"{tmp_path / 'registry'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=(tmp_path / "registry.log").open("w"),
                               start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: _listening(port) or process.poll() is not None, 20,
                   "the registry listens")
        assert process.poll() is None, (tmp_path / "registry.log").read_text()
        yield address
    finally:
        process.terminate()
        process.wait(timeout=20)


def install_registry() -> None:
    """Debian's docker-registry (tests/setup-host.sh does not list it yet)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-registry"]
    if run(argv, env=env, timeout=600, check=False).returncode != 0:
        run(["apt-get", "update", "-qq"], env=env, timeout=600)
        run(argv, env=env, timeout=600)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def push(address: str, name: str, layer_bytes: int = 0) -> str:
    """Push the test image (with an extra layer of random bytes) as address/name; then drop the
    local copy, so that a pull has something to do."""
    ref = f"{address}/{name}"
    context = Path(run(["mktemp", "-d"]).stdout.strip())
    try:
        (context / "blob").write_bytes(os.urandom(layer_bytes))
        (context / "Dockerfile").write_text(f"FROM {BUSYBOX_IMAGE}\nCOPY blob /blob\n")
        run(["docker", "build", "-q", "-t", ref, str(context)], timeout=120)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    run(["docker", "push", ref], timeout=120)
    run(["docker", "rmi", ref], timeout=60)
    return ref
