"""Which back end runs the containers: ``[engine] backend`` picks one by name.

The warm login path opens one from the session plan (``open_backend``: the name and where the
engine is, both in the plan); admin verbs and the cold path from the config (``get_backend``).
A back end's module is imported only when it is chosen.
"""

from __future__ import annotations

from dockersh.errors import DockershError

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from dockersh.backend.base import Backend
    from dockersh.config.schema import Config


def open_backend(name: str, host: str, timeout: float | None = None) -> Backend:
    """``timeout``: seconds a request may take before the engine counts as unreachable (None:
    the back end's default)."""
    if name == "docker":
        from dockersh.backend.docker.backend import DockerBackend

        return DockerBackend(host, timeout)
    if name == "podman":
        from dockersh.backend.podman.backend import PodmanBackend

        return PodmanBackend(host, timeout)
    raise DockershError(f"unknown [engine] backend {name!r}")


def get_backend(config: Config, timeout: float | None = None) -> Backend:
    return open_backend(config.engine.backend, config.engine_host(), timeout)
