"""Which key a session used, from sshd's ExposeAuthInfo file, read as root like a user's file."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockersh.login import target
from dockersh.login.identity import User

BLOB = b"\x00\x00\x00\x0bssh-ed25519" + bytes(36)
FINGERPRINT = "SHA256:" + base64.b64encode(hashlib.sha256(BLOB).digest()).decode().rstrip("=")
ME = User("me", os.getuid(), os.getgid(), "/home/me", "/bin/sh")


@pytest.fixture
def auth_file() -> Iterator[Path]:
    path = Path(f"/tmp/sshauth.test{os.getpid()}")
    path.write_text(f"publickey ssh-ed25519 {base64.b64encode(BLOB).decode()}\npassword\n")
    yield path
    path.unlink(missing_ok=True)


def test_the_key_fingerprint_is_read(auth_file: Path) -> None:
    assert target.keys_used({"SSH_USER_AUTH": str(auth_file)}, ME) == [FINGERPRINT]


def test_files_that_are_not_sshds_are_ignored(auth_file: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "sshauth.x"
    elsewhere.write_text(auth_file.read_text())
    link = Path(f"/tmp/sshauth.link{os.getpid()}")
    link.symlink_to(auth_file)
    try:
        for path in (str(elsewhere), str(link), "/tmp/sshauth./etc/passwd", ""):
            assert target.keys_used({"SSH_USER_AUTH": path}, ME) == []
    finally:
        link.unlink()
    other = User("other", os.getuid() + 1, 0, "/", "/bin/sh")
    assert target.keys_used({"SSH_USER_AUTH": str(auth_file)}, other) == []
