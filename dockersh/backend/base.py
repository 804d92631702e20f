"""What dockersh needs from a container engine: the ``Backend`` protocol, a typed view of a
container, and the engine's errors by kind.

Everything outside ``dockersh/backend/`` talks to an engine through these names only: no Engine
API path, no raw inspect JSON. The warm login path imports this module, so nothing here imports
``typing`` at run time: the protocol exists for mypy (``TYPE_CHECKING``), the views are plain
classes with ``__slots__``.
"""

from __future__ import annotations

from dockersh.errors import DockershError

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Callable
    from typing import Protocol

    from dockersh.plan.planner import ContainerSpec


# --- errors -----------------------------------------------------------------------------------


class EngineError(DockershError):
    """The engine refused or failed a request. ``http_status`` is its answer's status (0 when
    there was no answer); the message is one line for the user."""

    def __init__(self, message: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status


class Unreachable(EngineError):
    """No answer: the engine is not running, its socket is missing, or it did not answer in
    time. A login cannot go on; a running session's monitor says "the engine went away"."""


class NotFound(EngineError):
    """404: no such container, image or exec."""


class Conflict(EngineError):
    """409: the name is taken (a racing create), or the container is in the wrong state."""


#: The HTTP statuses with a kind of their own; any other error status is an ``EngineError``.
ERRORS: dict[int, type[EngineError]] = {404: NotFound, 409: Conflict}


def error_for(http_status: int, message: str) -> EngineError:
    """The one place an engine's error status becomes a kind of error."""
    return ERRORS.get(http_status, EngineError)(message, http_status)


# --- views ------------------------------------------------------------------------------------


class Mount:
    """One mount of a container, as the engine reports it."""

    __slots__ = ("kind", "source", "target")

    def __init__(self, kind: str, source: str, target: str) -> None:
        self.kind = kind  # "bind", "volume", "tmpfs"
        self.source = source
        self.target = target


class Container:
    """A container as dockersh reads it, built once from the engine's answer by the back end.

    Times are the engine's RFC 3339 text ("" when it never happened): compared as they are
    (a restart changes ``started_at``) and parsed only by the admin verbs.
    """

    __slots__ = ("created", "env", "exit_code", "finished_at", "group_add", "id", "image",
                 "image_id", "labels", "mounts", "name", "oom_killed", "paused", "pid", "running",
                 "started_at", "status")

    def __init__(self, *, id: str, name: str, image: str, image_id: str,
                 labels: dict[str, str], status: str, running: bool, paused: bool, pid: int,
                 created: str, started_at: str, finished_at: str, exit_code: int,
                 oom_killed: bool, mounts: list[Mount], env: list[str],
                 group_add: list[str]) -> None:
        self.id = id
        self.name = name  # without Docker's leading "/"
        self.image = image  # the reference it was created from
        self.image_id = image_id
        self.labels = labels
        self.status = status  # created, running, paused, restarting, exited, dead
        self.running = running  # true while paused too, as the engine says
        self.paused = paused
        self.pid = pid  # its init's host pid, 0 when not running
        self.created = created
        self.started_at = started_at
        self.finished_at = finished_at
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.mounts = mounts
        self.env = env  # "NAME=value", the image's and the create's
        self.group_add = group_add  # the supplementary gids given at create, as text

    def describe_exit(self) -> str:
        """Why it is not running, for one line to a user or an admin."""
        if self.oom_killed:
            return "killed for using too much memory"
        if self.status == "created":
            return "never started"
        return f"exit status {self.exit_code}"


def epoch(text: str) -> float | None:
    """An engine's RFC 3339 time (nanoseconds; ``Z`` or an offset) in epoch seconds; None for
    "" (never) or what is not such a time."""
    if not text:
        return None
    from datetime import datetime  # not on the warm path: admin verbs and stopped containers

    body, zone = text, "+00:00"
    if text[-1:] in ("Z", "z"):
        body = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        body, zone = text[:-6], text[-6:]
    head, _, frac = body.partition(".")
    try:  # Python 3.11 takes at most 6 digits of fraction
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}{zone}").timestamp()
    except ValueError:
        return None


class Summary:
    """A container as a list by label reports it: enough to sweep and to inspect."""

    __slots__ = ("created", "id", "labels", "names", "state")

    def __init__(self, id: str, created: float, labels: dict[str, str],
                 names: tuple[str, ...] = (), state: str = "") -> None:
        self.id = id
        self.created = created  # epoch seconds
        self.labels = labels
        self.names = names  # without Docker's leading "/"
        self.state = state  # the engine's: running, exited, paused, created, ...


class Exec:
    """A docker-mode session's command, as the engine reports it."""

    __slots__ = ("exit_code", "pid", "running")

    def __init__(self, running: bool, exit_code: int | None, pid: int) -> None:
        self.running = running
        self.exit_code = exit_code  # None until the engine has recorded it
        self.pid = pid  # host pid, 0 when unknown


# --- the protocol -----------------------------------------------------------------------------

if TYPE_CHECKING:

    class Backend(Protocol):
        """One container engine. Names are container names or ids; every method raises an
        ``EngineError`` (``Unreachable`` when the engine cannot be asked)."""

        #: "docker": for messages and ``doctor``.
        name: str
        #: Where the engine is (its socket), for messages.
        where: str
        #: Containers are processes of this host: ``[session] exec = "nsenter"`` can enter them.
        can_nsenter: bool

        def inspect(self, name: str) -> Container | None:
            """The container, or None when there is none by that name."""

        def inspect_many(self, names: list[str]) -> list[Container | None]:
            """``inspect`` of each, asked together."""

        def inspect_with_image(self, name: str,
                               image: str) -> tuple[Container | None, str | None]:
            """The container and the id of ``image`` (None: missing), asked at once: the warm
            login's only engine round trip."""

        def create(self, spec: ContainerSpec, labels: dict[str, str]) -> str:
            """Create the container ``spec`` describes (hardened), with ``labels``; its id.
            ``Conflict`` when the name is taken."""

        def start(self, name: str) -> None: ...

        def unpause(self, name: str) -> None: ...

        def stop(self, name: str, timeout: int) -> None:
            """SIGTERM, then SIGKILL after ``timeout`` seconds."""

        def restart(self, name: str, timeout: int) -> None: ...

        def remove(self, name: str) -> None:
            """Remove it, running or not; gone already is fine."""

        def list_by_label(self, label: str) -> list[Summary]:
            """Every container, running or not, with ``label`` ("key" or "key=value")."""

        def image_id(self, ref: str) -> str | None:
            """The id of the image ``ref`` names on this host, None when it is not here."""

        def pull(self, ref: str, progress: Callable[[float, str], None]) -> str:
            """Pull ``ref``, calling ``progress(fraction, detail)`` as it goes; the outcome
            in a few words ("downloaded newer image", "image is up to date")."""

        def read_image(self, image: str, files: tuple[str, ...],
                       candidates: tuple[str, ...]) -> tuple[list[str], str]:
            """The text of each of ``files`` in ``image`` ("" when absent) and the first of
            ``candidates`` it has ("" when none), without running anything from it."""

        def exec_create(self, container_id: str, argv: list[str], user: str, workdir: str,
                        env: list[tuple[str, str]], tty: bool, attach: bool = True) -> str:
            """docker mode: an exec of ``argv`` in the container, not yet started; its id.
            ``attach``: its stdio are the stream's (else nothing: handover.py)."""

        def exec_start(self, exec_id: str, tty: bool) -> tuple[socket, bytes]:
            """Start it on a connection that becomes its stream; the socket and any stream
            bytes that came with the answer."""

        def exec_start_detached(self, exec_id: str) -> None:
            """Start an exec made without ``attach``; it runs once this returns."""

        def exec_resize(self, exec_id: str, rows: int, cols: int) -> None: ...

        def exec_inspect(self, exec_id: str) -> Exec | None: ...

        def version(self) -> str:
            """The engine and its API version in a few words; ``Unreachable`` when down."""
