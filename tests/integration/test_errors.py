"""Failures a user or admin meets first: one `dockersh:` line, exit 125, nothing run anywhere."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from conftest import DOCKERSH, Dockersh
from support.install import CONFIG, DEFAULT_TEST_CONFIG

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (DEFAULT_TEST_CONFIG + 'memroy = "1g"\n', "[container] memroy: unknown key"),
        (DEFAULT_TEST_CONFIG + 'memory = "lots"\n', "[container] memory: bad size 'lots'"),
        (DEFAULT_TEST_CONFIG + "[session\n", "not valid TOML: "),
    ],
)
def test_a_broken_global_config_refuses_the_login_in_one_line(
    dockersh: Dockersh, dockersh_config: Any, make_user: Any, container_of: Any, text: str,
    line: str,
) -> None:
    user = make_user()
    dockersh_config(text)
    for args in (["-c", "echo SHOULD-NOT-RUN"], []):  # a command, and an interactive login
        proc = dockersh(user, args)
        assert proc.returncode == 125
        assert proc.stdout == b""
        err = proc.stderr.decode()
        assert err.startswith(f"dockersh: {CONFIG}: ") and line in err, err
        assert err.count("\n") == 1
    if "TOML" in line:
        assert "(at line 6, column 9)" in err  # where TOML reports it
    assert container_of(user) is None


def test_an_unknown_user_is_one_line(dockersh_config: Any) -> None:
    proc = subprocess.run([DOCKERSH, "--user", "no-such-user-here", "-c", "id"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    assert (proc.returncode, proc.stdout) == (125, "")
    assert proc.stderr == "dockersh: no such user: 'no-such-user-here'\n"


def test_a_user_outside_group_dockersh_gets_no_session(dockersh: Dockersh, make_user: Any,
                                                       container_of: Any) -> None:
    user = make_user(in_dockersh=False)
    proc = dockersh(user, ["-c", "echo SHOULD-NOT-RUN"])
    assert proc.returncode != 0 and b"SHOULD-NOT-RUN" not in proc.stdout
    assert container_of(user) is None
