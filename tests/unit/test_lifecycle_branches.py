"""Every lifecycle branch (lifecycle/ensure.py, login/session.py's warm check, handoff's "why
did it end") against the fake back end: fast, no engine. tests/integration/test_lifecycle.py
runs the same branches against the real one."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fakebackend import IMAGE, FakeBackend, container

from dockersh.backend import registry
from dockersh.backend.base import Conflict, Container, EngineError, Unreachable
from dockersh.errors import DockershError
from dockersh.lifecycle import ensure
from dockersh.login import handoff, locks, session
from dockersh.login.identity import User
from dockersh.plan import cache, pipeline, planner
from dockersh.plan.sessionplan import SessionPlan

NAME = "dockersh-alice"


class World:
    """A user, a config file, state directories in a temporary place, and the fake engine."""

    def __init__(self, tmp: Path) -> None:
        home = tmp / "home"
        home.mkdir()
        self.user = User("alice", 1001, 1001, str(home), "/usr/local/bin/dockersh", "Alice",
                         (("alice", 1001),))
        self.config = tmp / "dockersh.toml"
        self.audit = tmp / "audit.jsonl"
        self.configure("")
        self.backend = FakeBackend()
        self.sessions_file = tmp / "alice.sessions"
        self.sessions_fd = locks.open_lock(str(self.sessions_file))

    def configure(self, extra: str) -> None:
        self.config.write_text(f'[audit]\nfile = "{self.audit}"\nsyslog = false\n'
                               f'[container]\nimage = "{IMAGE}"\npull = "never"\n'
                               f'shell = "/bin/sh"\n{extra}')

    def events(self) -> list[str]:
        """The events of the audit records the logins so far wrote."""
        if not self.audit.exists():
            return []
        return [json.loads(line)["event"] for line in self.audit.read_text().splitlines()]

    def plan(self) -> SessionPlan:
        return pipeline.full_plan(self.user, str(self.config))[1].session

    def labels(self, **changes: str) -> dict[str, str]:
        """The labels of a container made from the current config."""
        spec = pipeline.full_plan(self.user, str(self.config))[1].spec
        return {**spec.labels(self.user), "dockersh.shell": "/bin/sh", **changes}

    def ensure(self) -> Container:
        found = self.backend.containers.get(NAME)
        return ensure.ensure(self.backend, self.user, self.plan(), str(self.config), found,
                             self.sessions_fd)

    def live_session(self) -> int:
        """Another login's monitor holding the sessions lock shared."""
        fd = os.open(self.sessions_file, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    state = tmp_path / "state"
    for module in (ensure, planner):
        monkeypatch.setattr(module, "STATE_DIR", str(state))
    monkeypatch.setattr(ensure, "PROBE_DIR", str(tmp_path / "probes"))
    (tmp_path / "locks").mkdir()
    monkeypatch.setattr(ensure, "LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(cache, "PLAN_DIR", str(tmp_path / "plans"))
    monkeypatch.setattr(cache, "RUN_DIR", str(tmp_path))
    w = World(tmp_path)
    yield w
    os.close(w.sessions_fd)


def said(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err


def test_running_and_current_is_the_warm_path(world: World) -> None:
    ours = world.backend.add(container(NAME, world.labels()))
    plan = world.plan()
    assert session.is_current(ours, "sha256:1111", plan, world.user)
    assert session.is_current(ours, None, plan, world.user)  # image gone: keep the container
    assert not session.is_current(ours, "sha256:2222", plan, world.user)  # a newer image
    assert not session.is_current(None, None, plan, world.user)
    stopped = container(NAME, world.labels(), running=False)
    assert not session.is_current(stopped, "sha256:1111", plan, world.user)
    other_uid = container(NAME, world.labels(**{"dockersh.uid": "1002"}))
    assert not session.is_current(other_uid, "sha256:1111", plan, world.user)


def test_an_image_is_probed_once_and_its_answer_read_without_the_lock(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A class's first logins onto one image: one probe; a login finding the answer cached does
    not wait for the probe lock another login holds (a crowd would queue on it)."""
    monkeypatch.setattr(ensure, "PROBE_TIMEOUT", 0.2)
    spec = pipeline.full_plan(world.user, str(world.config))[1].spec
    first = ensure.probe(world.backend, spec)
    assert len(world.backend.called("read_image")) == 1
    held = [locks.open_lock(str(p)) for p in (tmp_path / "locks").glob("probe-*.lock")]
    assert held
    try:
        for fd in held:
            fcntl.flock(fd, fcntl.LOCK_EX)
        assert ensure.probe(world.backend, spec) == first
    finally:
        for fd in held:
            os.close(fd)
    assert len(world.backend.called("read_image")) == 1


def test_running_is_reused(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.backend.add(container(NAME, world.labels()))
    assert world.ensure() is world.backend.containers[NAME]
    assert world.backend.called("create", "start", "remove", "unpause") == []
    assert said(capsys) == ""


def test_paused_is_unpaused(world: World) -> None:
    world.backend.add(container(NAME, world.labels(), paused=True))
    world.ensure()
    assert world.backend.called("unpause", "start") == [("unpause", NAME)]


def test_stopped_is_started_with_a_notice(world: World,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    world.backend.add(container(NAME, world.labels(), running=False, exit_code=137))
    assert world.ensure().running
    assert world.backend.called("start", "create") == [("start", NAME)]
    assert said(capsys) == ("dockersh: your container had stopped (exit status 137); starting "
                            "it again\n")


def test_oom_killed_says_so(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.backend.add(container(NAME, world.labels(), running=False, oom_killed=True))
    world.ensure()
    assert "(killed for using too much memory)" in said(capsys)


def test_missing_is_created_from_the_plan_and_started(world: World) -> None:
    made = world.ensure()
    assert world.backend.called("read_image", "create", "start") == [
        ("read_image", IMAGE), ("create", NAME), ("start", NAME)]
    assert made is world.backend.containers[NAME]
    assert world.backend.containers[NAME].labels == world.labels()
    passwd = Path(ensure.STATE_DIR, NAME, "passwd").read_text()
    assert passwd.endswith(f"alice:x:1001:1001:Alice:{world.user.home}:/bin/sh\n")


def test_an_image_without_the_shells_is_refused(world: World) -> None:
    world.backend.image_shells = ()
    with pytest.raises(DockershError, match="has none of the shells /bin/sh"):
        world.ensure()
    assert world.backend.called("create") == []


def test_a_changed_config_recreates_when_no_session_is_live(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.backend.add(container(NAME, world.labels(**{"dockersh.config-hash": "old"})))
    world.ensure()
    assert world.backend.called("remove", "create", "start") == [
        ("remove", NAME), ("create", NAME), ("start", NAME)]
    assert world.backend.containers[NAME].labels == world.labels()
    assert "recreating it (your home is kept)" in said(capsys)


def test_a_changed_image_recreates_too(world: World) -> None:
    world.backend.add(container(NAME, world.labels(), image_id="sha256:0000"))
    world.ensure()
    assert world.backend.called("remove", "create") == [("remove", NAME), ("create", NAME)]


def test_a_change_waits_for_the_last_session(world: World,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    old = world.backend.add(container(NAME, world.labels(**{"dockersh.config-hash": "old"})))
    other = world.live_session()
    try:
        assert world.ensure() is old
    finally:
        os.close(other)
    assert world.backend.called("remove", "create") == []
    assert "it applies after your last session ends" in said(capsys)


def test_a_foreign_container_of_that_name_is_refused(world: World) -> None:
    world.backend.add(container(NAME, {"com.example": "theirs"}))
    with pytest.raises(DockershError, match="is not dockersh's container for alice; refusing"):
        world.ensure()
    assert world.backend.called("remove", "create", "start", "stop") == []


def test_an_earlier_accounts_container_is_refused(world: World) -> None:
    world.backend.add(container(NAME, world.labels(**{"dockersh.uid": "999"})))
    with pytest.raises(DockershError, match=r"earlier account named alice \(uid 999\)"):
        world.ensure()


def test_a_409_on_create_looks_again(world: World) -> None:
    """A killed login's create, finished by the engine after this login looked."""
    late = container(NAME, world.labels(), running=False, status="created")
    world.backend.appears_on_create = late
    assert world.ensure() is late
    assert world.backend.called("create", "start") == [("create", NAME), ("start", NAME)]


def test_a_409_for_a_foreign_container_is_refused(world: World) -> None:
    world.backend.appears_on_create = container(NAME, {})
    with pytest.raises(DockershError, match="not dockersh's container"):
        world.ensure()


def test_a_409_with_nothing_there_is_the_engines_error(world: World) -> None:
    world.backend.failures["create"] = Conflict("cannot create container: in use", 409)
    with pytest.raises(Conflict):
        world.ensure()


def test_only_a_conflict_makes_create_look_again(world: World) -> None:
    world.backend.failures["create"] = EngineError("cannot create container: bad", 500)
    with pytest.raises(EngineError, match="bad"):
        world.ensure()
    assert world.backend.called("inspect") == []


def test_a_container_that_does_not_stay_running_is_an_error(world: World) -> None:
    world.backend.add(container(NAME, world.labels(), running=False))
    world.backend.failures["start"] = EngineError("cannot start container dockersh-alice: x")
    with pytest.raises(EngineError, match="cannot start container"):
        world.ensure()


def test_an_unreachable_engine_fails_the_login(world: World) -> None:
    world.backend.failures["image_id"] = Unreachable("cannot reach the fake engine")
    world.backend.add(container(NAME, world.labels(), running=False))
    with pytest.raises(Unreachable, match="cannot reach"):
        world.ensure()


# --- why a session ended (handoff.why_ended) --------------------------------------------------


def why(world: World, monkeypatch: pytest.MonkeyPatch) -> str | None:
    monkeypatch.setattr(registry, "open_backend", lambda *_a, **_k: world.backend)
    was = container(NAME, world.labels())
    return handoff.why_ended(world.plan(), was)


def test_why_ended_tells_an_unreachable_engine(world: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    world.backend.failures["inspect"] = Unreachable("gone")
    assert why(world, monkeypatch) == ("the Fake engine is not reachable (restarted?); log in "
                                       "again once it is back")


def test_why_ended_tells_other_engine_errors_apart(world: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    world.backend.failures["inspect"] = EngineError("the engine answered 500: oops", 500)
    assert why(world, monkeypatch) == ("the Fake engine cannot tell what became of your "
                                       "container (the engine answered 500: oops)")


def test_why_ended_tells_removed_stopped_restarted(world: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert why(world, monkeypatch) == ("your container was removed; the next login creates it "
                                       "again")
    world.backend.add(container(NAME, world.labels(), running=False, exit_code=137))
    assert why(world, monkeypatch) == ("your container stopped (exit status 137); the next "
                                       "login starts it again")
    world.backend.add(container(NAME, world.labels(), started_at="2026-12-01T12:00:00Z"))
    assert why(world, monkeypatch) == "your container was restarted"


def test_nsenter_mode_needs_a_back_end_whose_containers_are_on_this_host(world: World) -> None:
    world.configure('[session]\nexec = "nsenter"\n')
    world.backend.can_nsenter = False
    ours = world.backend.add(container(NAME, world.labels()))
    with pytest.raises(DockershError, match='exec = "nsenter" cannot enter fake containers'):
        handoff.run(world.backend, world.plan(), world.user, ours, "true", (), {},
                    world.sessions_fd)


def test_a_group_the_account_lost_is_refused_while_sessions_keep_the_container(
    world: World,
) -> None:
    old = container(NAME, world.labels(**{"dockersh.config-hash": "old"}))
    old.group_add = ["1001", "4242"]  # 4242: a group the account no longer has
    world.backend.add(old)
    other = world.live_session()
    try:
        with pytest.raises(DockershError, match=r"a group you were removed from \(4242\)"):
            world.ensure()
    finally:
        os.close(other)


@pytest.mark.parametrize(("found", "event"), [
    ({}, "container-created"),
    ({"running": False}, "container-started"),
    ({"paused": True}, "container-started"),
    ({"labels": {"dockersh.config-hash": "old"}}, "container-recreated"),
    ({"running": True}, None),
])
def test_each_change_to_the_container_is_an_audit_record(world: World, found: dict[str, Any],
                                                        event: str | None) -> None:
    """For `dockersh metrics` (first logins, starts, recreations); a reused one writes none."""
    if found:
        labels = world.labels(**found.pop("labels", {}))
        world.backend.add(container(NAME, labels, **found))
    world.ensure()
    assert world.events() == ([event] if event else [])
    if event:
        record = json.loads(world.audit.read_text())
        assert (record["user"], record["uid"], record["container"]) == ("alice", 1001, NAME)
        assert record["session"].endswith(f"-alice-{os.getpid()}")


def test_a_failed_ensure_leaves_no_sessions_lock_held(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`dockersh start` goes on to the next user after a failure: that user's sessions lock
    must not stay held by it (exclusive after a recreate: their next login would wait for
    ever), as a login's does when the login exits."""
    monkeypatch.setattr(session, "open_backend", lambda *_a, **_k: world.backend)
    monkeypatch.setattr(locks, "LOCK_DIR", str(tmp_path / "locks"))

    def failing(*args: Any) -> Container:
        assert locks.try_exclusive(args[5])  # as a recreate takes it
        raise DockershError("the create failed")

    monkeypatch.setattr(ensure, "ensure", failing)
    with pytest.raises(DockershError, match="the create failed"):
        session.own_container(world.user, world.plan(), str(world.config))
    fd = locks.open_lock(locks.paths(world.user.name)[1])
    try:
        assert locks.try_exclusive(fd)
    finally:
        os.close(fd)
