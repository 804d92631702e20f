"""The images the tests run: built locally (there is no registry), and only when stale."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from . import REPO
from .cmd import run
from .docker import image_labels

BUSYBOX_IMAGE = "dockersh-test/busybox:latest"
SESSION_IMAGE = "dockersh-session:latest"
DEBIAN_BASE = "debian:bookworm-slim"

BUSYBOX_BUILDER = REPO / "tests" / "images" / "make-busybox.sh"
DEBIAN_BUILDER = REPO / "tests" / "images" / "make-debian-base.sh"
DOCKERFILE = REPO / "Dockerfile"

#: Set by make-busybox.sh to its own sha256.
BUSYBOX_LABEL = "dockersh.test.source-sha256"
#: Set on the session image to the sha256 of the Dockerfile it was built from.
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
    labels = image_labels(image)
    return labels is not None and labels.get(label) == sha


def ensure_busybox_image() -> str:
    """dockersh-test/busybox:latest, rebuilt when make-busybox.sh changed."""
    sha = sha256_file(BUSYBOX_BUILDER)
    with _build_lock():
        if not _is_current(BUSYBOX_IMAGE, BUSYBOX_LABEL, sha):
            run([BUSYBOX_BUILDER, BUSYBOX_IMAGE], timeout=120)
    if not _is_current(BUSYBOX_IMAGE, BUSYBOX_LABEL, sha):
        raise AssertionError(f"{BUSYBOX_BUILDER} did not label {BUSYBOX_IMAGE} with {sha}")
    return BUSYBOX_IMAGE


def ensure_debian_base() -> str:
    """debian:bookworm-slim, made by make-debian-base.sh (debootstrap) when missing."""
    if image_labels(DEBIAN_BASE) is None:
        if not DEBIAN_BUILDER.is_file():
            raise AssertionError(f"{DEBIAN_BUILDER} is missing: cannot make {DEBIAN_BASE}")
        with _build_lock():
            if image_labels(DEBIAN_BASE) is None:
                run([DEBIAN_BUILDER], cwd=REPO, timeout=1200)
    if image_labels(DEBIAN_BASE) is None:
        raise AssertionError(f"{DEBIAN_BUILDER} ran but there is no {DEBIAN_BASE}")
    return DEBIAN_BASE


def ensure_session_image() -> str:
    """dockersh-session:latest from the repo's Dockerfile, rebuilt when the Dockerfile changed.

    Its base, debian:bookworm-slim, is made by make-debian-base.sh (debootstrap) when missing.
    """
    if not DOCKERFILE.is_file():
        raise AssertionError(f"{DOCKERFILE} is missing: the session image cannot be built")
    sha = sha256_file(DOCKERFILE)
    ensure_debian_base()
    with _build_lock():
        if not _is_current(SESSION_IMAGE, DOCKERFILE_LABEL, sha):
            # The classic builder: what Debian's docker.io client uses, whichever client is first
            # on PATH here, so the build behaves the same on every machine.
            env = {**os.environ, "DOCKER_BUILDKIT": "0"}
            run(
                ["docker", "build", "-q", "--label", f"{DOCKERFILE_LABEL}={sha}",
                 "-t", SESSION_IMAGE, "-f", DOCKERFILE, REPO],
                cwd=REPO, env=env, timeout=1800,
            )
    if not _is_current(SESSION_IMAGE, DOCKERFILE_LABEL, sha):
        raise AssertionError(f"docker build did not produce {SESSION_IMAGE} labelled {sha}")
    return SESSION_IMAGE
