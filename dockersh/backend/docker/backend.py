"""The Docker back end: every Engine API path dockersh uses, and the engine's JSON turned into
base's views, in this one module.

On the warm login path (``inspect_with_image``, the exec calls): no typing, no json. Creating a
container (create.py) and pulling (pull.py, the Docker SDK) are imported when used.
"""

from __future__ import annotations

from dockersh.backend.base import Container, Exec, Mount, Summary, epoch
from dockersh.backend.docker.engine import TIMEOUT, Engine, quote
from dockersh.jsontext import dumps
from dockersh.labels import LABEL_PROBE

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Callable
    from typing import Any

    from dockersh.plan.planner import ContainerSpec

#: The daemon holds back the first key of the detach sequence (ctrl-p,ctrl-q by default, and
#: bash uses ctrl-p). It cannot be turned off; ctrl-] then ctrl-@ is practically never typed.
DETACH_KEYS = "ctrl-],ctrl-@"
#: A probe container is created, never started: this entrypoint need not exist in the image.
PROBE_ENTRYPOINT = ["/dockersh-probe-never-started"]


#: Requests in flight at once (each is a connection: a bound on descriptors).
BATCH = 64


class DockerBackend:
    """``base.Backend`` on the Docker Engine API (1.41) over its unix socket."""

    name = "docker"
    can_nsenter = True
    #: The client for this engine's socket (a back end on the same API may say who it is).
    engine_class = Engine

    def __init__(self, host: str, timeout: float | None = None) -> None:
        self.engine = self.engine_class(host, TIMEOUT if timeout is None else timeout)
        self.where = self.engine.path

    # --- containers ---

    def inspect(self, name: str) -> Container | None:
        return container_view(self.engine.get(container_path(name)))

    def inspect_many(self, names: list[str]) -> list[Container | None]:
        """Sent BATCH at a time before any answer is read: the engine works on them together
        (ls and gc of hundreds of containers)."""
        found: list[Container | None] = []
        for start in range(0, len(names), BATCH):
            answers = self.engine.gets(*map(container_path, names[start:start + BATCH]))
            found += map(container_view, answers)
        return found

    def inspect_with_image(self, name: str, image: str) -> tuple[Container | None, str | None]:
        container, found = self.engine.gets(container_path(name), image_path(image))
        return container_view(container), image_id(found)

    def create(self, spec: ContainerSpec, labels: dict[str, str]) -> str:
        created = self.engine.call("POST", f"/containers/create?name={quote(spec.name)}",
                                   self.create_body(spec, labels),
                                   what=f"cannot create container {spec.name}")
        return str(created["Id"])

    def create_body(self, spec: ContainerSpec, labels: dict[str, str]) -> dict[str, Any]:
        """The create request (create.py: where the hardening is written down)."""
        from dockersh.backend.docker.create import create_body

        return create_body(spec, labels)

    def start(self, name: str) -> None:
        self.engine.call("POST", f"/containers/{quote(name)}/start",
                         what=f"cannot start container {name}")

    def unpause(self, name: str) -> None:
        self.engine.call("POST", f"/containers/{quote(name)}/unpause",
                         what=f"cannot unpause {name}")

    def stop(self, name: str, timeout: int) -> None:
        self.engine.call("POST", f"/containers/{quote(name)}/stop?t={timeout}",
                         what=f"cannot stop container {name}")

    def restart(self, name: str, timeout: int) -> None:
        self.engine.call("POST", f"/containers/{quote(name)}/restart?t={timeout}",
                         what=f"cannot restart container {name}")

    def remove(self, name: str) -> None:
        self.engine.call("DELETE", f"/containers/{quote(name)}?force=1",
                         what=f"cannot remove container {name}", missing_ok=True)

    def list_by_label(self, label: str) -> list[Summary]:
        filters = quote(dumps({"label": [label]}))
        found = self.engine.get(f"/containers/json?all=1&filters={filters}") or []
        return [Summary(str(item["Id"]), float(item.get("Created") or 0),
                        dict(item.get("Labels") or {}),
                        tuple(str(n).lstrip("/") for n in item.get("Names") or ()),
                        str(item.get("State") or ""))
                for item in found]

    # --- images ---

    def image_id(self, ref: str) -> str | None:
        return image_id(self.engine.get(image_path(ref)))

    def pull(self, ref: str, progress: Callable[[float, str], None]) -> str:
        from dockersh.backend.docker import pull

        return pull.pull(self.engine.host, ref, progress)

    def read_image(self, image: str, files: tuple[str, ...],
                   candidates: tuple[str, ...]) -> tuple[list[str], str]:
        """From a container created (never started) for the purpose, then removed."""
        created = self.engine.call("POST", "/containers/create",
                                   {"Image": image, "Entrypoint": PROBE_ENTRYPOINT,
                                    "NetworkDisabled": True, "Labels": {LABEL_PROBE: "1"}},
                                   what=f"cannot read image {image}")
        probe_id = str(created["Id"])
        try:
            texts = [self.read_file(probe_id, path) for path in files]
            found = next((c for c in candidates if self.path_exists(probe_id, c)), "")
        finally:
            self.remove(probe_id)
        return texts, found

    def path_exists(self, container_id: str, path: str) -> bool:
        status, _ = self.engine.request("HEAD", archive_path(container_id, path))
        return status == 200

    def read_file(self, container_id: str, path: str) -> str:
        """A text file of a container (through the archive endpoint: a tar of one file)."""
        status, data = self.engine.request("GET", archive_path(container_id, path), raw=True)
        if status != 200:
            return ""
        import io
        import tarfile  # 5 ms: only when an image is probed, not at every first login

        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            return extracted.read().decode("utf-8", "replace") if extracted else ""

    # --- docker mode's exec ---

    def exec_create(self, container_id: str, argv: list[str], user: str, workdir: str,
                    env: list[tuple[str, str]], tty: bool, attach: bool = True) -> str:
        created = self.engine.call("POST", f"/containers/{quote(container_id)}/exec",
                                   exec_config(argv, user, workdir, env, tty, attach),
                                   what="cannot start the session")
        return str(created["Id"])

    def exec_start(self, exec_id: str, tty: bool) -> tuple[socket, bytes]:
        return self.engine.hijack(f"/exec/{exec_id}/start", {"Detach": False, "Tty": tty})

    def exec_start_detached(self, exec_id: str) -> None:
        self.engine.call("POST", f"/exec/{exec_id}/start", {"Detach": True, "Tty": False},
                         what="cannot start the session")

    def exec_resize(self, exec_id: str, rows: int, cols: int) -> None:
        self.engine.request("POST", f"/exec/{exec_id}/resize?h={rows}&w={cols}")

    def exec_inspect(self, exec_id: str) -> Exec | None:
        info = self.engine.get(f"/exec/{exec_id}/json")
        if info is None:
            return None
        code = info.get("ExitCode")
        return Exec(bool(info.get("Running")), None if code is None else int(code),
                    int(info.get("Pid") or 0))

    # --- the engine ---

    def version(self) -> str:
        answer = self.engine.get("/version") or {}
        return f"Docker engine {answer.get('Version')} (API {answer.get('ApiVersion')})"


def container_path(name: str) -> str:
    return f"/containers/{quote(name)}/json"


def image_path(ref: str) -> str:
    return f"/images/{quote(ref)}/json"


def archive_path(container_id: str, path: str) -> str:
    return f"/containers/{quote(container_id)}/archive?path={quote(path)}"


def image_id(image: dict[str, Any] | None) -> str | None:
    return None if image is None else str(image["Id"])


def engine_time(text: object) -> str:
    """The engine's time as it wrote it; "" for its zero time (never happened)."""
    return "" if not text or str(text).startswith("0001-") else str(text)


def container_view(data: dict[str, Any] | None) -> Container | None:
    """The inspect JSON as base.Container; None for None (no such container)."""
    if data is None:
        return None
    state = data.get("State") or {}
    config = data.get("Config") or {}
    host = data.get("HostConfig") or {}
    return Container(
        id=str(data["Id"]),
        name=str(data.get("Name") or "").lstrip("/"),
        image=str(config.get("Image") or ""),
        image_id=str(data.get("Image") or ""),
        labels=dict(config.get("Labels") or {}),
        status=str(state.get("Status") or ""),
        running=bool(state.get("Running")),
        paused=bool(state.get("Paused")),
        pid=int(state.get("Pid") or 0),
        created=engine_time(data.get("Created")),
        started_at=engine_time(state.get("StartedAt")),
        finished_at=engine_time(state.get("FinishedAt")),
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=oom_killed(str(data["Id"]), state),
        mounts=[Mount(str(m.get("Type") or ""), str(m.get("Source") or ""),
                      str(m.get("Destination") or "")) for m in data.get("Mounts") or []],
        env=[str(v) for v in config.get("Env") or []],
        group_add=[str(g) for g in host.get("GroupAdd") or []],
    )


def oom_killed(container_id: str, state: dict[str, Any]) -> bool:
    """The engine's flag, or for a container that ended with status 137 (SIGKILL) without it,
    the kernel's log (kernellog: the engine can miss the event)."""
    if state.get("OOMKilled"):
        return True
    if state.get("Running") or state.get("ExitCode") != 137:
        return False  # first: the warm path (a running container) parses no time
    started = epoch(engine_time(state.get("StartedAt")))
    if started is None:
        return False
    from dockersh.backend import kernellog

    return kernellog.oom_killed_since(container_id, started)


def exec_config(argv: list[str], user: str, workdir: str, env: list[tuple[str, str]],
                tty: bool, attach: bool = True) -> dict[str, Any]:
    return {
        "AttachStdin": attach, "AttachStdout": attach, "AttachStderr": attach, "Tty": tty,
        "DetachKeys": DETACH_KEYS, "Privileged": False, "User": user, "WorkingDir": workdir,
        "Env": [f"{name}={value}" for name, value in env], "Cmd": argv,
    }
