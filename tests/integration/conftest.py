"""Helpers for running the installed dockersh as a real user (through sudo) or as root."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import docker as docker_sdk
import pytest
from support.users import LinuxUser

DOCKERSH = "/usr/local/bin/dockersh"

Dockersh = Callable[..., subprocess.CompletedProcess[bytes]]


def user_argv(
    user: LinuxUser,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    argv0: str | None = None,
) -> list[str]:
    """argv running the installed dockersh as ``user`` (so through the real sudo boundary),
    with only ``env`` (and PATH) in its environment; ``argv0`` as sshd sets it for logins."""
    exec_env = {"PATH": "/usr/bin:/bin", **(env or {})}
    prog = (
        [
            "/usr/bin/python3",
            "-c",
            "import os,sys; os.execv(sys.argv[1], sys.argv[2:])",
            DOCKERSH,
            argv0,
        ]
        if argv0
        else [DOCKERSH]
    )
    return [
        "setpriv",
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--init-groups",
        "--",
        "/usr/bin/env",
        "-i",
        *(f"{k}={v}" for k, v in exec_env.items()),
        *prog,
        *args,
    ]


def as_user(
    user: LinuxUser,
    args: Sequence[str],
    *,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed dockersh as ``user`` and wait for it."""
    return subprocess.run(
        user_argv(user, args, env=env),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def dockersh(dockersh_config: Any) -> Dockersh:
    """dockersh(user, "-c", "cmd", input=..., env=...) as that user, through sudo."""
    return as_user


@pytest.fixture
def container_of(docker_engine: docker_sdk.DockerClient) -> Callable[[LinuxUser], Any]:
    """The user's managed container (found by label), or None."""

    def find(user: LinuxUser) -> Any:
        found = docker_engine.containers.list(
            all=True, filters={"label": f"dockersh.user={user.name}"}
        )
        assert len(found) <= 1, found
        return found[0] if found else None

    return find
