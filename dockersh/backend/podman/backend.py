"""The Podman back end: rootful Podman through its Docker-compatible API (``podman system
service``, or podman.socket under systemd), so it is the Docker back end with a few overrides.

Where Podman answers the same requests differently, and what is done about it:
- its default seccomp profile lets any process make namespaces and mount (``unshare -U``
  works); Docker's does not: containers get Docker's rules on top of Podman's profile
  (seccomp.py), and nsenter mode copies that filter from the init as it does under Docker;
- it gives a non-root container user the added capabilities as ambient ones, so the user's
  processes would hold ``[container] cap_add`` (under Docker they widen the bounding set only):
  refused rather than granted;
- a taken name is a 500 whose cause is "that name is already in use", not a 409: made the
  ``Conflict`` it is (a killed login's create that finished late is looked at again);
- an exec as ``uid:gid`` gets no supplementary groups (Docker adds the container's); as the uid
  alone it takes them from the container's /etc/group, which dockersh generates with the user's
  groups;
- it refuses the kernel's ``uid=``/``gid=`` tmpfs options (``home = "none"`` uses them): its own
  ``U`` (owned by the container's user) says the same when they name that user, and anything
  else is refused.
The rest (labels and their filters, ``Init`` with catatonit, the exec hijack, resize, the archive
endpoint of the image probe, inspect's State, stop/kill, the streamed pull, cgroup paths that
name the container id) is the same.
"""

from __future__ import annotations

from dockersh.backend.base import Conflict, EngineError
from dockersh.backend.docker.backend import DockerBackend
from dockersh.backend.docker.engine import Engine

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from typing import Any

    from dockersh.plan.planner import ContainerSpec


class PodmanEngine(Engine):
    # Podman's Docker-compatible API answers unversioned paths with its own (libpod) errors,
    # not JSON: ask for the compat API by version.
    api = "/v1.41"
    title = "Podman"
    daemon = "is its API service running (podman.socket, or podman system service)?"


class PodmanBackend(DockerBackend):
    name = "podman"
    can_nsenter = True  # rootful: its containers are processes of this host
    engine_class = PodmanEngine

    def create(self, spec: ContainerSpec, labels: dict[str, str]) -> str:
        try:
            return super().create(spec, labels)
        except EngineError as exc:
            if exc.http_status == 500 and "name is already in use" in exc.message:
                raise Conflict(exc.message, 409) from None
            raise

    def create_body(self, spec: ContainerSpec, labels: dict[str, str]) -> dict[str, Any]:
        if spec.cap_add:
            raise EngineError("[container] cap_add cannot be used with Podman: it gives added "
                              "capabilities to the container's non-root user, so every session "
                              "would hold them")
        body = super().create_body(spec, labels)
        uid, _, gid = spec.user.partition(":")
        owner = {f"uid={uid}", f"gid={gid}"}
        tmpfs = body["HostConfig"]["Tmpfs"]
        for path, options in tmpfs.items():
            words = options.split(",") if options else []
            ids = [word for word in words if word.startswith(("uid=", "gid="))]
            if ids and set(ids) != owner:
                raise EngineError(f"the tmpfs at {path} is owned by {','.join(ids)}: Podman can "
                                  "only give a tmpfs to the container's user")
            tmpfs[path] = ",".join([word for word in words if word not in ids] + ["U"] * bool(ids))
        if not spec.privileged:  # privileged is unconfined, as under Docker
            from dockersh.backend.podman import seccomp

            info = self.engine.get("/libpod/info") or {}
            source = ((info.get("host") or {}).get("security") or {}).get("seccompProfilePath")
            body["HostConfig"]["SecurityOpt"].append(f"seccomp={seccomp.profile(source)}")
        return body

    def exec_create(self, container_id: str, argv: list[str], user: str, workdir: str,
                    env: list[tuple[str, str]], tty: bool, attach: bool = True) -> str:
        return super().exec_create(container_id, argv, user.partition(":")[0], workdir, env, tty,
                                   attach)

    def version(self) -> str:
        answer = self.engine.get("/version") or {}
        return (f"Podman {answer.get('Version')} (Docker-compatible API "
                f"{answer.get('ApiVersion')})")
