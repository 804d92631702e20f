"""A systemd-booted Debian 12 in a container (what production hosts are), for the tests that need
systemd as PID 1 on a machine where it is not: ENVIRONMENT.md's flags, removed afterwards."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from .cmd import run
from .images import ensure_systemd_host_image

#: Full capabilities but CAP_SYS_RESOURCE (this machine's root lacks it), no seccomp/AppArmor
#: confinement, and the host's cgroup tree for systemd.
RUN_FLAGS = ("--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
             "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
             "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
             "--cgroupns=host")


def systemd_is_pid1() -> bool:
    return Path("/run/systemd/system").is_dir()


class SystemdHost:
    """A running container whose PID 1 is systemd; exec() runs a command in it as root."""

    def __init__(self, container: str) -> None:
        self.container = container

    def exec(self, *argv: str, timeout: float = 120) -> str:
        return run(["docker", "exec", self.container, *argv], timeout=timeout).stdout

    def put(self, source: Path, dest: str) -> None:
        self.exec("mkdir", "-p", str(Path(dest).parent))
        run(["docker", "cp", source, f"{self.container}:{dest}"])


@contextlib.contextmanager
def systemd_host() -> Iterator[SystemdHost]:
    """Boot dockersh-test/systemd-host:latest and wait until systemd says it is up."""
    image = ensure_systemd_host_image()
    container = run(["docker", "run", "-d", *RUN_FLAGS, image]).stdout.strip()
    try:
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = run(["docker", "exec", container, "systemctl", "is-system-running"],
                        check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"systemd in {container} did not come up: {state!r}")
        yield SystemdHost(container)
    finally:
        run(["docker", "rm", "-f", container], check=False)
