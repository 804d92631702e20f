"""The engine the real-engine tests run against: Docker, or Podman with DOCKERSH_TEST_ENGINE=podman.

tests/run runs the lifecycle, modes, security-session and e2e tests a second time on Podman.
In that pass DOCKER_HOST points the docker CLI and the Docker SDK at Podman's Docker-compatible
socket, so the tests look at containers the same way on both engines, and every test config
selects the Podman back end. Images are still built by dockerd (Podman cannot pull here either)
and copied into Podman (``docker save | podman load``).
"""

from __future__ import annotations

import os
import subprocess

from .cmd import CommandFailed

DOCKERD = "unix:///var/run/docker.sock"
PODMAN_SOCKET = "unix:///run/podman/podman.sock"

NAME = os.environ.get("DOCKERSH_TEST_ENGINE") or "docker"
if NAME not in ("docker", "podman"):
    raise SystemExit(f"DOCKERSH_TEST_ENGINE must be docker or podman, not {NAME!r}")
PODMAN = NAME == "podman"
HOST = PODMAN_SOCKET if PODMAN else DOCKERD

#: Where the engine logs (as tests/setup-host.sh starts it): failure reports quote its errors.
LOG = "/var/log/podman-service.log" if PODMAN else "/var/log/dockerd.log"
#: The name of the engine's init, PID 1 of every container (Podman's is catatonit).
INIT = "podman-init" if PODMAN else "docker-init"
#: What every test config starts with: the back end to use (nothing for the default, Docker).
CONFIG = '[engine]\nbackend = "podman"\n\n' if PODMAN else ""


def use() -> None:
    """Point the docker CLI and the Docker SDK of this test process at the engine under test."""
    if PODMAN:
        os.environ["DOCKER_HOST"] = PODMAN_SOCKET


def dockerd(*args: str) -> list[str]:
    """argv of a docker CLI command for dockerd itself, whichever engine is under test."""
    return ["docker", "-H", DOCKERD, *args]


def image_id(ref: str, host: str) -> str | None:
    proc = subprocess.run(["docker", "-H", host, "image", "inspect", "-f", "{{.Id}}", ref],
                          capture_output=True, text=True, timeout=30, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def copy_image(ref: str) -> None:
    """Under Podman: give it dockerd's ``ref`` (same ID) when it has another one or none."""
    if PODMAN:
        load_into_podman(ref)


def load_into_podman(ref: str) -> None:
    """Give Podman dockerd's ``ref`` (same ID) when it has another one or none."""
    want = image_id(ref, DOCKERD)
    if want is None or image_id(ref, PODMAN_SOCKET) == want:
        return
    save = subprocess.Popen(dockerd("save", ref), stdout=subprocess.PIPE)
    load = subprocess.run(["podman", "load", "-q"], stdin=save.stdout, capture_output=True,
                          text=True, timeout=600, check=False)
    assert save.stdout is not None
    save.stdout.close()
    if save.wait(timeout=600) != 0 or load.returncode != 0:
        raise CommandFailed(f"docker save {ref} | podman load failed\n{load.stdout}{load.stderr}")
