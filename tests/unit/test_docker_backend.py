"""The Docker back end on canned Engine API answers (tests/support/fakebackend.py): the JSON
becomes base's views, an error status becomes an error of its kind, the warm login's two GETs
go out before either answer is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.fakebackend import CONFLICT, INSPECT_OOM_KILLED, INSPECT_RUNNING, NO_SUCH_CONTAINER

from dockersh.backend import base
from dockersh.backend.base import epoch
from dockersh.backend.docker.backend import DockerBackend, container_view
from dockersh.backend.docker.engine import Engine
from dockersh.config import schema
from dockersh.login.identity import User
from dockersh.plan import planner

ALICE = User("alice", 1001, 1001, "/home/alice", "/bin/sh", "", (("alice", 1001),))


class CannedEngine(Engine):
    """An Engine whose answers are canned by (method, path); records what happened, in order."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]) -> None:
        super().__init__("unix:///nonexistent.sock")
        self.answers = answers
        self.log: list[tuple[str, ...]] = []

    def send(self, method: str, path: str, body: Any = None) -> Any:
        self.log.append(("send", method, path))
        return self.answers.get((method, path), (404, NO_SUCH_CONTAINER))

    def receive(self, sock: Any, raw: bool = False) -> tuple[int, Any]:  # type: ignore[override]
        self.log.append(("receive",))
        return sock  # type: ignore[no-any-return]


def backend(answers: dict[tuple[str, str], tuple[int, Any]]) -> tuple[DockerBackend, CannedEngine]:
    b = DockerBackend("unix:///nonexistent.sock")
    b.engine = CannedEngine(answers)
    return b, b.engine


def test_the_inspect_json_becomes_a_container() -> None:
    c = container_view(INSPECT_RUNNING)
    assert c is not None
    assert (c.id, c.name, c.image, c.image_id) == (INSPECT_RUNNING["Id"], "dockersh-alice",
                                                   "dockersh-session:latest", "sha256:" + "a" * 64)
    assert c.labels["dockersh.user"] == "alice"
    assert (c.status, c.running, c.paused, c.pid) == ("running", True, False, 4242)
    assert (c.started_at, c.finished_at) == ("2026-12-01T09:00:01.5Z", "")  # zero time: never
    assert [(m.kind, m.source, m.target) for m in c.mounts] == [
        ("bind", "/home/alice", "/home/alice")]
    assert c.env == ["HOME=/home/alice", "PATH=/usr/bin:/bin"]
    assert c.group_add == ["995"]
    oom = container_view(INSPECT_OOM_KILLED)
    assert oom is not None and not oom.running and oom.exit_code == 137
    assert oom.describe_exit() == "killed for using too much memory"
    assert container_view(None) is None


def test_engine_times_in_epoch_seconds() -> None:
    assert epoch("2026-12-02T15:53:42.43844121Z") == 1796226822.438441
    assert epoch("2026-12-02T16:53:42.438441214+01:00") == 1796226822.438441
    assert epoch("2026-12-02T15:53:42Z") == 1796226822.0
    assert epoch("2026-12-02T17:53:42+02:00") == 1796226822.0
    assert epoch("") is None and epoch("yesterday") is None


def test_the_warm_login_sends_both_gets_before_reading_either() -> None:
    b, engine = backend({
        ("GET", "/containers/dockersh-alice/json"): (200, INSPECT_RUNNING),
        ("GET", "/images/dockersh-session%3Alatest/json"): (200, {"Id": "sha256:bbb"}),
    })
    c, image = b.inspect_with_image("dockersh-alice", "dockersh-session:latest")
    assert c is not None and c.name == "dockersh-alice" and image == "sha256:bbb"
    assert [e[0] for e in engine.log] == ["send", "send", "receive", "receive"]


def test_a_missing_container_or_image_is_none() -> None:
    b, _ = backend({})
    assert b.inspect_with_image("x", "y") == (None, None)
    assert b.inspect("x") is None


def test_a_409_on_create_is_a_conflict() -> None:
    b, _ = backend({("POST", "/containers/create?name=dockersh-alice"): (409, CONFLICT)})
    spec = planner.make(schema.Config(), ALICE, "host1").spec
    with pytest.raises(base.Conflict, match=r"^cannot create container dockersh-alice: Conflict"):
        b.create(spec, {})


def test_error_statuses_become_errors_of_their_kind() -> None:
    b, _ = backend({("POST", "/containers/x/start"): (500, {"message": "oops"}),
                    ("POST", "/containers/y/start"): (404, NO_SUCH_CONTAINER),
                    ("GET", "/containers/z/json"): (500, {"message": "boom"})})
    with pytest.raises(base.EngineError, match=r"^cannot start container x: oops$") as err:
        b.start("x")
    assert type(err.value) is base.EngineError and err.value.http_status == 500
    with pytest.raises(base.NotFound):
        b.start("y")
    with pytest.raises(base.EngineError, match="boom"):
        b.inspect("z")
    assert isinstance(base.error_for(409, "m"), base.Conflict)
    assert issubclass(base.EngineError, base.DockershError)  # one line, status 125


def test_removing_what_is_gone_is_fine() -> None:
    b, engine = backend({})
    b.remove("gone")
    assert engine.log[0] == ("send", "DELETE", "/containers/gone?force=1")


def test_no_engine_is_unreachable(tmp_path: Path) -> None:
    b = DockerBackend(f"unix://{tmp_path}/docker.sock")
    with pytest.raises(base.Unreachable, match=r"cannot reach the Docker engine at .* is dockerd"):
        b.inspect("x")
