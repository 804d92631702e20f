"""The test infrastructure itself: real dockerd, users, sshd and terminals, as the fixtures say."""

from __future__ import annotations

import contextlib
import grp
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from support.sshd import SshdFactory, render_config
from support.terminal import TmuxTerminal
from support.users import LinuxUser, UserFactory, create_user, remove_user


@pytest.mark.integration
def test_busybox_image_runs_with_init(docker_engine: Any, test_image: str) -> None:
    out = docker_engine.containers.run(
        test_image,
        ["sh", "-c", "cat /proc/1/comm; stat -c %a /tmp; echo $((6 * 7))"],
        init=True,
        remove=True,
        labels={"dockersh.test": "infra"},
    )
    assert out.decode().split() == ["docker-init", "1777", "42"]


@pytest.mark.integration
def test_test_image_is_labelled_with_its_builder(docker_engine: Any, test_image: str) -> None:
    from support.images import BUSYBOX_BUILDER, BUSYBOX_LABEL, sha256_file

    labels = docker_engine.images.get(test_image).labels
    assert labels[BUSYBOX_LABEL] == sha256_file(BUSYBOX_BUILDER)


def _groups_of(name: str) -> set[str]:
    return set(subprocess.run(["id", "-nG", name], capture_output=True, text=True,
                              check=True).stdout.split())


def test_made_user_is_in_dockersh_not_docker(make_user: UserFactory) -> None:
    user = make_user()
    assert user.uid > 0 and user.home.is_dir()
    assert user.shell == "/usr/local/bin/dockersh"
    groups = _groups_of(user.name)
    assert "dockersh" in groups
    assert "docker" not in groups
    authorized = user.home / ".ssh" / "authorized_keys"
    assert authorized.stat().st_uid == user.uid
    assert oct(authorized.stat().st_mode & 0o777) == "0o600"
    assert user.key is not None
    assert authorized.read_text().split()[:2] == Path(f"{user.key}.pub").read_text().split()[:2]


def test_user_options(make_user: UserFactory) -> None:
    user = make_user(in_dockersh=False, key_options='command="id",no-pty', password="pw-Test-1")
    assert "dockersh" not in _groups_of(user.name)
    assert user.name not in grp.getgrnam("dockersh").gr_mem
    assert (user.home / ".ssh" / "authorized_keys").read_text().startswith('command="id",no-pty ')
    shadow = next(line for line in Path("/etc/shadow").read_text().splitlines()
                  if line.startswith(f"{user.name}:"))
    assert shadow.split(":")[1].startswith("$")  # a real hash, not locked


@contextlib.contextmanager
def _own_user(tmp_path: Path, **kwargs: Any) -> Iterator[LinuxUser]:
    """A user for a test of remove_user itself: removed afterwards even when that failed."""
    user = create_user(tmp_path, **kwargs)
    try:
        yield user
    finally:
        subprocess.run(["userdel", "-r", "-f", user.name], capture_output=True, check=False)


def test_user_cleanup_removes_everything(tmp_path: Path) -> None:
    with _own_user(tmp_path, shell="/bin/sh") as user:
        sleeper = subprocess.Popen(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}",
                                    "--clear-groups", "sleep", "300"])
        remove_user(user)
        assert sleeper.wait(timeout=10) == -9
        assert not user.home.exists()
        assert subprocess.run(["id", user.name], capture_output=True).returncode != 0


def test_sshd_config_order() -> None:
    text = render_config(2222, Path("/w"), ["ForceCommand /bin/true"], {"LogLevel": "DEBUG"})
    lines = text.splitlines()
    assert lines.count("LogLevel DEBUG") == 1 and "LogLevel VERBOSE" not in lines
    include = lines.index("Include /etc/ssh/sshd_config.d/dockersh.conf")
    assert lines[include + 1 :] == ["Match all", "ForceCommand /bin/true"]
    assert "AcceptEnv LANG LC_*" in lines and "ListenAddress 127.0.0.1" in lines


@pytest.mark.e2e
def test_sshd_runs_commands_with_their_exit_status(
    sshd: SshdFactory, make_user: UserFactory
) -> None:
    user = make_user(shell="/bin/sh")
    server = sshd()
    assert server.ssh(user, "exit 7").returncode == 7
    done = server.ssh(user, "echo out; echo err >&2; cat; echo \"$LANG\"",
                      input=b"stdin\n", env={"LANG": "C.UTF-8"})
    assert (done.returncode, done.stdout, done.stderr) == (0, b"out\nstdin\nC.UTF-8\n", b"err\n")
    assert server.ssh(user, "tty").stdout == b"not a tty\n"
    assert server.ssh(user, "tty", tty=True).stdout.startswith(b"/dev/pts/")
    assert re.search(rf"Accepted publickey for {user.name} from 127\.0\.0\.1", server.log_tail())


@pytest.mark.e2e
def test_sshd_factory_with_extra_lines(sshd: SshdFactory, make_user: UserFactory) -> None:
    user = make_user(shell="/bin/sh")
    forced = sshd([f"Match User {user.name}", "    ForceCommand echo forced:$SSH_ORIGINAL_COMMAND"])
    assert forced.port != sshd().port
    assert forced is sshd([f"Match User {user.name}",
                           "    ForceCommand echo forced:$SSH_ORIGINAL_COMMAND"])
    done = forced.ssh(user, "id")
    assert (done.returncode, done.stdout) == (0, b"forced:id\n")


@pytest.mark.e2e
def test_sshd_rejects_unknown_keys(sshd: SshdFactory, make_user: UserFactory) -> None:
    user = make_user(shell="/bin/sh", key=False)
    other = make_user(shell="/bin/sh")
    server = sshd()
    argv = server.ssh_argv(other, "true")
    argv[argv.index(f"{other.name}@127.0.0.1")] = f"{user.name}@127.0.0.1"
    done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 255
    assert b"Permission denied" in done.stderr


def test_tmux_shows_echo(tmux_terminal: Callable[..., TmuxTerminal]) -> None:
    term = tmux_terminal(["sh", "-c", "echo hi; exec sh"])
    term.wait_for(re.compile(r"^hi$", re.M))
    term.type_line("echo $((40 + 2)); exit 3")
    assert term.wait_exit() == 3
    assert "\n42" in term.capture_pane()
    assert term.size() == (100, 30)


@pytest.mark.e2e
def test_tmux_terminal_over_ssh(
    tmux_terminal: Callable[..., TmuxTerminal], sshd: SshdFactory, make_user: UserFactory
) -> None:
    user = make_user(shell="/bin/sh")
    term = tmux_terminal(sshd().ssh_argv(user, tty=True))
    term.wait_for(re.compile(r"^\$ ?$", re.M), timeout=20)
    term.type_line("stty size")
    term.wait_for(re.compile(r"^30 100$", re.M))
    term.resize_window(80, 24)
    term.type_line("stty size")
    term.wait_for(re.compile(r"^24 80$", re.M))
    term.type_line("exit 4")
    assert term.wait_exit(timeout=20) == 4


def test_skipped_test_fails_the_run(pytester: pytest.Pytester, monkeypatch: Any) -> None:
    monkeypatch.setenv("DOCKERSH_NO_SKIP", "1")
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(
        "from support.noskip import install\n"
        "def pytest_configure(config):\n    install(config)\n"
    )
    pytester.makepyfile("import pytest\n"
                        "def test_ok(): pass\n"
                        "def test_skip(): pytest.skip('no docker')\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*SKIPPED test_skipped_test_fails_the_run.py::test_skip*"])
    monkeypatch.setenv("DOCKERSH_NO_SKIP", "0")
    assert pytester.runpytest("-p", "no:cacheprovider").ret == pytest.ExitCode.OK


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [REPO / ".ci" / "run", REPO / "tests" / "run", REPO / "tests" / "setup-host.sh",
               REPO / "tests" / "images" / "make-busybox.sh",
               REPO / "tests" / "support" / "user-manager-check.sh"]
    assert all(os.access(s, os.X_OK) for s in scripts)
    done = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
def test_user_cleanup_removes_their_containers(
    docker_engine: Any, test_image: str, tmp_path: Path
) -> None:
    from support import docker

    with _own_user(tmp_path, shell="/bin/sh", key=False) as user:
        container = docker_engine.containers.run(
            test_image, ["sh", "-c", "echo started-for-diagnostics; exec sleep 300"],
            detach=True, init=True, labels={docker.USER_LABEL: user.name},
        )
        try:
            assert docker.containers_by_user()[container.id] == user.name
            deadline = time.monotonic() + 10
            while b"started" not in container.logs() and time.monotonic() < deadline:
                time.sleep(0.05)
            report = docker.diagnostics([container.id])
            assert f"docker inspect {container.id[:12]}" in report
            assert "started-for-diagnostics" in report
        finally:
            remove_user(user)
        assert container.id not in docker.containers()


@pytest.mark.integration
def test_a_failing_test_reports_containers_and_logs(
    pytester: pytest.Pytester, docker_engine: Any, test_image: str, monkeypatch: Any
) -> None:
    pytester.makeconftest((REPO / "tests" / "conftest.py").read_text())
    pytester.makepyfile(f"""
        def test_fails(make_user, docker_engine):
            user = make_user(shell="/bin/sh", key=False)
            docker_engine.containers.run(
                "{test_image}", ["sh", "-c", "echo log-of-a-broken-container; sleep 60"],
                detach=True, labels={{"dockersh.user": user.name}})
            import time; time.sleep(0.5)
            assert False, "on purpose"
    """)
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*dockersh diagnostics*",
        "*--- docker inspect *",
        "*dockersh.user*",
        "*log-of-a-broken-container*",
    ])
