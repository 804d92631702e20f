"""The Podman back end's overrides of the Docker one, without an engine: what it sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockersh.backend.base import Conflict, EngineError
from dockersh.backend.docker import create
from dockersh.backend.podman import backend, seccomp
from dockersh.config import schema
from tests.unit.test_plan import ALICE, make

PODMAN_RULES = [
    {"names": ["read", "unshare", "mount", "clone", "clone3"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["setns"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
]


class Recorder:
    """Stands in for the engine client: answers GETs from ``answers``, records calls."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    def get(self, path: str) -> Any:
        return self.answers.get(path)

    def call(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path, body))
        return {"Id": "new"}


def podman(answers: dict[str, Any] | None = None) -> tuple[backend.PodmanBackend, Recorder]:
    b = backend.PodmanBackend("unix:///run/podman/podman.sock")
    recorder = Recorder(answers or {})
    b.engine = recorder  # type: ignore[assignment]
    return b, recorder


def test_the_config_selects_podman_and_its_socket() -> None:
    config = schema.build(schema.parse_toml('[engine]\nbackend = "podman"\n', "g"))
    assert config.engine_host() == "unix:///run/podman/podman.sock"
    assert schema.build({}).engine_host() == "unix:///var/run/docker.sock"


def test_cap_add_is_refused_since_podman_gives_it_to_the_user() -> None:
    spec = make('[container]\ncap_add = ["CHOWN"]\n').spec
    b, recorder = podman()
    with pytest.raises(EngineError, match="cap_add cannot be used with Podman"):
        b.create(spec, spec.labels(ALICE))
    assert recorder.calls == []


def test_create_adds_dockers_seccomp_rules_to_podmans_profile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, written = tmp_path / "podman.json", tmp_path / "dockersh.json"
    source.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": PODMAN_RULES}))
    monkeypatch.setattr(seccomp, "PODMAN_SECCOMP", str(written))
    spec = make().spec
    b, recorder = podman({"/libpod/info": {"host": {"security": {
        "seccompProfilePath": str(source)}}}})
    b.create(spec, spec.labels(ALICE))
    [(method, path, body)] = recorder.calls
    expected = create.create_body(spec, spec.labels(ALICE))
    expected["HostConfig"]["SecurityOpt"] = ["no-new-privileges", f"seccomp={written}"]
    assert (method, path, body) == ("POST", "/containers/create?name=dockersh-alice", expected)
    mask = {"value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    assert json.loads(written.read_text()) == {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, **mask}],
         "excludes": {"arches": ["s390", "s390x"]}},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, **mask}],
         "includes": {"arches": ["s390", "s390x"]}},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": sorted(seccomp.RESTRICTED - {"clone", "clone3"}), "action": "SCMP_ACT_ERRNO",
         "errnoRet": 1},
    ]}


def test_a_tmpfs_owned_by_the_user_is_podmans_U_and_another_owner_is_refused() -> None:
    spec = make('[container]\nhome = "none"\ntmpfs = ["/scratch:size=1m"]\n').spec
    b, recorder = podman()
    b.create(spec, spec.labels(ALICE))
    assert recorder.calls[0][2]["HostConfig"]["Tmpfs"] == {
        "/scratch": "size=1m", "/home/alice": "mode=0700,exec,U"}
    spec = make('[container]\ntmpfs = ["/scratch:uid=0,gid=0"]\n').spec
    with pytest.raises(EngineError, match="only give a tmpfs to the container's user"):
        b.create(spec, spec.labels(ALICE))


def test_a_privileged_container_gets_no_profile_as_under_docker() -> None:
    spec = make('[container]\nprivileged = true\n[security]\n'
                'dangerously_allow_host_access = true\n').spec
    b, recorder = podman()
    b.create(spec, spec.labels(ALICE))
    assert recorder.calls[0][2]["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]


def test_exec_is_by_uid_so_podman_reads_the_groups_from_the_generated_group_file() -> None:
    b, recorder = podman()
    b.exec_create("c1", ["/bin/sh"], "1001:1001", "/home/alice", [], False)
    assert recorder.calls[0][2]["User"] == "1001"



def refusing(message: str) -> Any:
    """An engine call that fails as Podman's 500 does."""
    def call(*_: Any, **__: Any) -> Any:
        raise EngineError(message, 500)
    return call


def test_a_taken_name_is_a_conflict_though_podman_answers_500(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp, "PODMAN_SECCOMP", str(tmp_path / "dockersh.json"))
    monkeypatch.setattr(seccomp, "DEFAULT_SOURCE", str(tmp_path / "podman.json"))
    (tmp_path / "podman.json").write_text('{"syscalls": []}')
    spec = make().spec
    b, recorder = podman()
    recorder.call = refusing(  # type: ignore[method-assign]
        'cannot create container dockersh-alice: container create: the container name '
        '"dockersh-alice" is already in use by 23b5. You have to remove that container to be '
        'able to reuse that name: that name is already in use')
    with pytest.raises(Conflict):
        b.create(spec, spec.labels(ALICE))
    recorder.call = refusing("cannot create container dockersh-alice: no such image")  # type: ignore[method-assign]
    with pytest.raises(EngineError) as other:
        b.create(spec, spec.labels(ALICE))
    assert type(other.value) is EngineError
