"""A back end in memory, for unit tests of everything above the back end (lifecycle, the
handoff's "why did it end"), and canned Engine API answers for the Docker back end's own unit
tests (as docker-py's tests/unit/fake_api.py has them).

``FakeBackend`` keeps containers as base.Container views and records every call; a test puts
the engine in a state (``add``), makes calls fail (``failures``), or has a container appear
just before a create (``appears_on_create``: a killed login's create, finished late).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockersh.backend.base import Conflict, Container, EngineError, Exec, Mount, Summary

if TYPE_CHECKING:
    from _socket import socket

    from dockersh.backend.base import Backend
    from dockersh.plan.planner import ContainerSpec

IMAGE = "img:1"
IMAGE_ID = "sha256:1111"
PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
GROUP = "root:x:0:\n"


def container(name: str, labels: dict[str, str], *, running: bool = True, paused: bool = False,
              status: str = "", image_id: str = IMAGE_ID, exit_code: int = 0,
              oom_killed: bool = False, started_at: str = "2026-12-01T10:00:00.000000001Z",
              mounts: list[Mount] | None = None) -> Container:
    """A container as a back end reports it, with the fields a test does not care about set."""
    return Container(
        id=f"id-{name}", name=name, image=IMAGE, image_id=image_id, labels=labels,
        status=status or ("paused" if paused else "running" if running else "exited"),
        running=running, paused=paused, pid=0, created="2026-12-01T09:00:00Z",
        started_at=started_at, finished_at="", exit_code=exit_code, oom_killed=oom_killed,
        mounts=mounts or [], env=["PATH=/usr/bin:/bin"], group_add=[],
    )


class FakeBackend:
    """base.Backend in memory."""

    name = "fake"
    where = "/run/fake.sock"
    can_nsenter = True

    def __init__(self) -> None:
        self.containers: dict[str, Container] = {}
        self.images: dict[str, str] = {IMAGE: IMAGE_ID}
        self.image_files = {"/etc/passwd": PASSWD, "/etc/group": GROUP}
        self.image_shells = ("/bin/sh",)
        self.calls: list[tuple[str, ...]] = []
        #: Method name → the error each call of it raises.
        self.failures: dict[str, EngineError] = {}
        #: Put in place when create is called (so the create finds its name taken).
        self.appears_on_create: Container | None = None
        self.starts = 0

    def called(self, *names: str) -> list[tuple[str, ...]]:
        """The recorded calls of these methods (all calls without names)."""
        return [c for c in self.calls if not names or c[0] in names]

    def _call(self, method: str, *args: str) -> None:
        self.calls.append((method, *args))
        if method in self.failures:
            raise self.failures[method]

    def add(self, c: Container) -> Container:
        self.containers[c.name] = c
        return c

    def _find(self, name: str) -> Container | None:
        return self.containers.get(name) or next(
            (c for c in self.containers.values() if c.id == name), None)

    def _must(self, name: str) -> Container:
        found = self._find(name)
        if found is None:
            raise EngineError(f"no such container: {name}", 404)
        return found

    # --- containers ---

    def inspect(self, name: str) -> Container | None:
        self._call("inspect", name)
        return self._find(name)

    def inspect_many(self, names: list[str]) -> list[Container | None]:
        self._call("inspect_many", *names)
        return [self._find(name) for name in names]

    def inspect_with_image(self, name: str, image: str) -> tuple[Container | None, str | None]:
        self._call("inspect_with_image", name, image)
        return self._find(name), self.images.get(image)

    def create(self, spec: ContainerSpec, labels: dict[str, str]) -> str:
        self._call("create", spec.name)
        if self.appears_on_create is not None:
            self.add(self.appears_on_create)
            self.appears_on_create = None
        if spec.name in self.containers:
            raise Conflict(f"cannot create container {spec.name}: the name is in use", 409)
        made = self.add(container(spec.name, labels, running=False, status="created",
                                  image_id=self.images[spec.image], started_at="",
                                  mounts=[Mount("bind", s, t) for s, t, _ in spec.mounts]))
        return made.id

    def start(self, name: str) -> None:
        self._call("start", name)
        c = self._must(name)
        self.starts += 1
        c.running, c.status = True, "running"
        c.started_at = f"2026-12-01T11:00:00.{self.starts:09d}Z"

    def unpause(self, name: str) -> None:
        self._call("unpause", name)
        c = self._must(name)
        c.paused, c.status = False, "running"

    def stop(self, name: str, timeout: int) -> None:
        self._call("stop", name)
        c = self._must(name)
        c.running, c.status, c.exit_code = False, "exited", 143

    def restart(self, name: str, timeout: int) -> None:
        self._call("restart", name)
        self.start(name)

    def remove(self, name: str) -> None:
        self._call("remove", name)
        found = self._find(name)
        if found is not None:
            del self.containers[found.name]

    def list_by_label(self, label: str) -> list[Summary]:
        self._call("list_by_label", label)
        key, _, value = label.partition("=")
        return [Summary(c.id, 0.0, c.labels, (c.name,), c.status) for c in self.containers.values()
                if key in c.labels and (not value or c.labels[key] == value)]

    # --- images ---

    def image_id(self, ref: str) -> str | None:
        self._call("image_id", ref)
        return self.images.get(ref)

    def pull(self, ref: str, progress: Callable[[float, str], None]) -> str:
        self._call("pull", ref)
        progress(1.0, "1 layers")
        return "downloaded newer image"

    def read_image(self, image: str, files: tuple[str, ...],
                   candidates: tuple[str, ...]) -> tuple[list[str], str]:
        self._call("read_image", image)
        return ([self.image_files.get(f, "") for f in files],
                next((c for c in candidates if c in self.image_shells), ""))

    # --- exec (docker mode) ---

    def exec_create(self, container_id: str, argv: list[str], user: str, workdir: str,
                    env: list[tuple[str, str]], tty: bool, attach: bool = True) -> str:
        self._call("exec_create", container_id)
        return "exec-1"

    def exec_start_detached(self, exec_id: str) -> None:
        self._call("exec_start_detached", exec_id)
        raise EngineError("the fake back end runs no commands")

    def exec_start(self, exec_id: str, tty: bool) -> tuple[socket, bytes]:
        self._call("exec_start", exec_id)
        raise EngineError("the fake back end runs no commands")

    def exec_resize(self, exec_id: str, rows: int, cols: int) -> None:
        self._call("exec_resize", exec_id)

    def exec_inspect(self, exec_id: str) -> Exec | None:
        self._call("exec_inspect", exec_id)
        return Exec(False, 0, 0)

    def version(self) -> str:
        self._call("version")
        return "Fake engine 1.0"


if TYPE_CHECKING:

    def _is_a_backend(fake: FakeBackend) -> Backend:
        """mypy checks here that the fake keeps up with the protocol."""
        return fake


# --- canned Engine API answers (the Docker back end's unit tests) ------------------------------

#: GET /containers/NAME/json of a running dockersh container, as dockerd 20.10 answers it
#: (the fields dockersh reads, and a few it does not).
INSPECT_RUNNING: dict[str, Any] = {
    "Id": "4f0c9d2ab7e1" + "0" * 52,
    "Created": "2026-12-01T09:00:00.123456789Z",
    "Name": "/dockersh-alice",
    "Image": "sha256:" + "a" * 64,
    "State": {
        "Status": "running", "Running": True, "Paused": False, "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": 4242, "ExitCode": 0, "Error": "",
        "StartedAt": "2026-12-01T09:00:01.5Z", "FinishedAt": "0001-01-01T00:00:00Z",
    },
    "Config": {
        "Hostname": "host1", "User": "1001:1001", "Image": "dockersh-session:latest",
        "Env": ["HOME=/home/alice", "PATH=/usr/bin:/bin"],
        "Labels": {"dockersh.user": "alice", "dockersh.uid": "1001",
                   "dockersh.config-hash": "0123456789abcdef", "dockersh.shell": "/bin/bash"},
    },
    "HostConfig": {"GroupAdd": ["995"], "CapDrop": ["ALL"], "Init": True},
    "Mounts": [{"Type": "bind", "Source": "/home/alice", "Destination": "/home/alice",
                "Mode": "", "RW": True, "Propagation": "rprivate"}],
}

#: GET /containers/NAME/json of one that was OOM-killed.
INSPECT_OOM_KILLED: dict[str, Any] = {
    **INSPECT_RUNNING,
    "State": {**INSPECT_RUNNING["State"], "Status": "exited", "Running": False, "Pid": 0,
              "OOMKilled": True, "ExitCode": 137, "FinishedAt": "2026-12-01T10:00:00Z"},
}

#: The engine's error bodies.
CONFLICT = {"message": 'Conflict. The container name "/dockersh-alice" is already in use by '
                       'container "4f0c9d2ab7e1". You have to remove (or rename) that container '
                       'to be able to reuse that name.'}
NO_SUCH_CONTAINER = {"message": "No such container: dockersh-alice"}
