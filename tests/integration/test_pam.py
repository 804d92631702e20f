"""dockersh --user NAME by another user: NAME's password through PAM, as su does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest
from conftest import Dockersh, user_argv

pytestmark = pytest.mark.integration

AUDIT = Path("/var/log/dockersh/audit.jsonl")  # the installed config's


def spawn_as(user: Any, *args: str) -> pexpect.spawn:
    argv = user_argv(user, args)
    return pexpect.spawn(argv[0], argv[1:], timeout=30)


def test_right_password_opens_the_other_users_session(dockersh: Dockersh, make_user: Any) -> None:
    caller = make_user()
    target = make_user(password="correct horse")
    child = spawn_as(caller, "--user", target.name, "-c", "id -un")
    child.expect(f"Password for {target.name}: ")
    child.sendline("correct horse")
    child.expect(target.name)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_three_wrong_passwords_are_refused_with_delays(dockersh: Dockersh, make_user: Any) -> None:
    caller = make_user()
    target = make_user(password="correct horse")
    child = spawn_as(caller, "--user", target.name, "-c", "echo SHOULD-NOT-RUN")
    started = time.monotonic()
    for attempt in range(3):
        child.expect(f"Password for {target.name}: ")
        child.sendline(f"wrong {attempt}")
    child.expect(f"dockersh: authentication failed for {target.name}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 125
    assert b"SHOULD-NOT-RUN" not in (child.before or b"")
    assert time.monotonic() - started >= 3  # PAM delays each failure (about 2 s each)


def test_no_terminal_no_password_prompt(dockersh: Dockersh, make_user: Any) -> None:
    caller = make_user()
    target = make_user(password="x")
    proc = dockersh(caller, ["--user", target.name, "-c", "echo SHOULD-NOT-RUN"])
    assert proc.returncode == 125
    assert proc.stdout == b""
    assert (
        proc.stderr
        == (
            f"dockersh: a password for {target.name} is needed and there is no terminal to ask on\n"
        ).encode()
    )
    # The refusal is recorded against the target, with who asked (the kernel's, sudo's uid).
    records = [json.loads(line) for line in AUDIT.read_text().splitlines()]
    [refused] = [r for r in records if r.get("user") == target.name]
    assert (refused["event"], refused["uid"], refused["caller_uid"]) == (
        "login-refused", target.uid, caller.uid)


def test_a_user_may_name_themselves_without_a_password(dockersh: Dockersh, make_user: Any) -> None:
    user = make_user()
    proc = dockersh(user, ["--user", user.name, "-c", "id -un"])
    assert (proc.returncode, proc.stdout) == (0, f"{user.name}\n".encode())
