"""The images the tests run: built locally (there is no registry), and only when stale."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from . import REPO, engine
from .cmd import run
from .docker import image_labels

BUSYBOX_IMAGE = "dockersh-test/busybox:latest"
SESSION_IMAGE = "dockersh-session:latest"
DEBIAN_BASE = "debian:bookworm-slim"

BUSYBOX_BUILDER = REPO / "tests" / "images" / "make-busybox.sh"
DEBIAN_BUILDER = REPO / "tests" / "images" / "make-debian-base.sh"
DOCKERFILE = REPO / "Dockerfile"
SYSTEMD_HOST_IMAGE = "dockersh-test/systemd-host:latest"
SYSTEMD_HOST_DOCKERFILE = REPO / "tests" / "images" / "systemd-host.Dockerfile"

#: Set by make-busybox.sh to its own sha256.
BUSYBOX_LABEL = "dockersh.test.source-sha256"
#: Set on an image built here to the sha256 of the Dockerfile it was built from.
DOCKERFILE_LABEL = "dockersh.test.dockerfile-sha256"

_LOCK = Path("/run/lock/dockersh-test-images.lock")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One builder at a time across concurrent test runs on this machine."""
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_current(image: str, label: str, sha: str) -> bool:
    labels = image_labels(image, engine.DOCKERD)
    return labels is not None and labels.get(label) == sha


def _dockerd_env() -> dict[str, str]:
    """The environment of the image builders: they talk to dockerd, whatever is under test."""
    return {**os.environ, "DOCKER_HOST": engine.DOCKERD}


def ensure_busybox_image() -> str:
    """dockersh-test/busybox:latest, rebuilt when make-busybox.sh changed."""
    sha = sha256_file(BUSYBOX_BUILDER)
    with _build_lock():
        if not _is_current(BUSYBOX_IMAGE, BUSYBOX_LABEL, sha):
            run([BUSYBOX_BUILDER, BUSYBOX_IMAGE], env=_dockerd_env(), timeout=120)
        if not _is_current(BUSYBOX_IMAGE, BUSYBOX_LABEL, sha):
            raise AssertionError(f"{BUSYBOX_BUILDER} did not label {BUSYBOX_IMAGE} with {sha}")
        engine.copy_image(BUSYBOX_IMAGE)
    return BUSYBOX_IMAGE


def ensure_debian_base() -> str:
    """debian:bookworm-slim, made by make-debian-base.sh (debootstrap) when missing."""
    if image_labels(DEBIAN_BASE, engine.DOCKERD) is None:
        if not DEBIAN_BUILDER.is_file():
            raise AssertionError(f"{DEBIAN_BUILDER} is missing: cannot make {DEBIAN_BASE}")
        with _build_lock():
            if image_labels(DEBIAN_BASE, engine.DOCKERD) is None:
                run([DEBIAN_BUILDER], cwd=REPO, env=_dockerd_env(), timeout=1200)
    if image_labels(DEBIAN_BASE, engine.DOCKERD) is None:
        raise AssertionError(f"{DEBIAN_BUILDER} ran but there is no {DEBIAN_BASE}")
    return DEBIAN_BASE


def ensure_session_image() -> str:
    """dockersh-session:latest from the repo's Dockerfile, rebuilt when the Dockerfile changed.

    Its base, debian:bookworm-slim, is made by make-debian-base.sh (debootstrap) when missing.
    """
    return _ensure_built(SESSION_IMAGE, DOCKERFILE)


def ensure_systemd_host_image() -> str:
    """dockersh-test/systemd-host:latest: a systemd-booted Debian 12 with sshd and pam_systemd."""
    return _ensure_built(SYSTEMD_HOST_IMAGE, SYSTEMD_HOST_DOCKERFILE)


def _ensure_built(image: str, dockerfile: Path) -> str:
    """image built from dockerfile (FROM debian:bookworm-slim, no build context), rebuilt when
    the Dockerfile changed."""
    if not dockerfile.is_file():
        raise AssertionError(f"{dockerfile} is missing: {image} cannot be built")
    sha = sha256_file(dockerfile)
    ensure_debian_base()
    with _build_lock():
        if not _is_current(image, DOCKERFILE_LABEL, sha):
            # The classic builder: what Debian's docker.io client uses, whichever client is first
            # on PATH here, so the build behaves the same on every machine.
            env = {**_dockerd_env(), "DOCKER_BUILDKIT": "0"}
            run(["docker", "build", "-q", "--label", f"{DOCKERFILE_LABEL}={sha}", "-t", image, "-"],
                input=dockerfile.read_text(), cwd=REPO, env=env, timeout=1800)
        if not _is_current(image, DOCKERFILE_LABEL, sha):
            raise AssertionError(f"docker build did not produce {image} labelled {sha}")
        engine.copy_image(image)
    return image
