"""Real Linux users for the tests: made with useradd, removed with everything they left."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import docker
from .cmd import run

DOCKERSH_SHELL = "/usr/local/bin/dockersh"
DOCKERSH_GROUP = "dockersh"

#: Names of every user create_user made in this process (their containers are ours to remove).
MADE: set[str] = set()


@dataclass(frozen=True)
class LinuxUser:
    """A user made for one test. key is the private key whose public half is authorized."""

    name: str
    uid: int
    gid: int
    home: Path
    shell: str
    key: Path | None
    password: str | None


class UserFactory(Protocol):
    def __call__(
        self,
        *,
        name: str | None = None,
        prefix: str = "dt",
        shell: str = DOCKERSH_SHELL,
        in_dockersh: bool = True,
        groups: Sequence[str] = (),
        password: str | None = None,
        key: bool = True,
        key_options: str | None = None,
    ) -> LinuxUser: ...


def unique_name(prefix: str = "dt") -> str:
    """prefix + 6 random hex digits, not yet taken: short, valid for useradd and docker names."""
    while True:
        name = f"{prefix}{secrets.token_hex(3)}"
        try:
            pwd.getpwnam(name)
        except KeyError:
            try:
                grp.getgrnam(name)  # useradd makes a group of the same name
            except KeyError:
                return name


def ensure_dockersh_group() -> None:
    """install.sh makes the group; tests that run before (or without) it need it too."""
    try:
        grp.getgrnam(DOCKERSH_GROUP)
    except KeyError:
        run(["groupadd", "--system", "-f", DOCKERSH_GROUP])


def create_user(
    keydir: Path,
    *,
    name: str | None = None,
    prefix: str = "dt",
    shell: str = DOCKERSH_SHELL,
    in_dockersh: bool = True,
    groups: Sequence[str] = (),
    password: str | None = None,
    key: bool = True,
    key_options: str | None = None,
) -> LinuxUser:
    """useradd -m, optionally a password (chpasswd) and an ed25519 key in authorized_keys.

    key_options is put before the key in authorized_keys, e.g. 'command="id",no-pty'.
    """
    name = name or unique_name(prefix)
    all_groups = [*([DOCKERSH_GROUP] if in_dockersh else []), *groups]
    if in_dockersh:
        ensure_dockersh_group()
    argv = ["useradd", "-m", "-s", shell]
    if all_groups:
        argv += ["-G", ",".join(all_groups)]
    run([*argv, name])
    MADE.add(name)
    try:
        return _finish_user(name, keydir, shell, password, key, key_options)
    except BaseException:
        run(["userdel", "-r", "-f", name], check=False)
        raise


def _finish_user(
    name: str, keydir: Path, shell: str, password: str | None, key: bool, key_options: str | None
) -> LinuxUser:
    entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    if password is not None:
        run(["chpasswd"], input=f"{name}:{password}\n")
    private: Path | None = None
    if key:
        private = keydir / f"{name}_ed25519"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", private])
        public = private.with_name(private.name + ".pub").read_text().strip()
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        authorized = ssh_dir / "authorized_keys"
        authorized.write_text(f"{key_options} {public}\n" if key_options else f"{public}\n")
        authorized.chmod(0o600)
        for path in (ssh_dir, authorized):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return LinuxUser(name, entry.pw_uid, entry.pw_gid, home, shell, private, password)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        # A zombie is already dead: only its parent's wait() removes it.
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry.name))
    return pids


def kill_processes(uid: int, timeout: float = 10.0) -> None:
    """SIGKILL, by PID, every process whose real uid is uid, until there are none."""
    deadline = time.monotonic() + timeout
    while pids := _pids_of(uid):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of uid {uid} would not die: {pids}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


class UserMaker:
    """The make_user fixture: a UserFactory that remembers what it made, to remove it."""

    def __init__(self, keydir: Path) -> None:
        self.keydir = keydir
        self.made: list[LinuxUser] = []

    def __call__(self, **kwargs: Any) -> LinuxUser:
        user = create_user(self.keydir, **kwargs)
        self.made.append(user)
        return user

    def remove_all(self) -> None:
        errors = []
        for user in reversed(self.made):
            try:
                remove_user(user)
            except AssertionError as exc:
                errors.append(str(exc))
        assert not errors, "\n".join(errors)


def remove_user(user: LinuxUser) -> None:
    """Remove the user's containers (by label), kill their processes, then userdel -r."""
    if docker.answers():
        docker.remove_labelled(f"{docker.USER_LABEL}={user.name}")
    kill_processes(user.uid)
    run(["userdel", "-r", "-f", user.name], check=False)
    try:
        pwd.getpwnam(user.name)
    except KeyError:
        return
    raise AssertionError(f"userdel could not remove {user.name}")
