"""Every lifecycle branch against the real engine, through the installed dockersh."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker as docker_sdk
import pytest
from conftest import DOCKERSH, Dockersh
from support import engine
from support.install import DEFAULT_TEST_CONFIG
from support.users import LinuxUser

pytestmark = pytest.mark.integration

DOCKER_DEFAULT_CAPS = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                       "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
                       "SYS_CHROOT"]


def login(
    dockersh: Dockersh, user: LinuxUser, cmd: str = "true"
) -> subprocess.CompletedProcess[bytes]:
    proc = dockersh(user, ["-c", cmd])
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def test_first_login_creates_a_hardened_labelled_container(
    dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    user = make_user()
    proc = login(dockersh, user, "id -un; whoami; echo ~; pwd; id -G; ps -o pid,comm | head -2")
    lines = proc.stdout.decode().split("\n")
    assert lines[:4] == [user.name, user.name, str(user.home), str(user.home)]
    assert "995" in lines[4] or len(lines[4].split()) >= 2  # the dockersh group is there too
    assert "init" in lines[6]  # PID 1 is docker-init, which reaps zombies
    ctr = container_of(user)
    labels = ctr.labels
    assert labels["dockersh.user"] == user.name
    assert labels["dockersh.uid"] == str(user.uid)
    assert len(labels["dockersh.config-hash"]) == 16
    assert labels["dockersh.shell"] == "/bin/sh"
    host = ctr.attrs["HostConfig"]
    # Podman names each capability it dropped (Docker's default set, the same as ALL here) and
    # the seccomp profile it was given (Docker's rules on top of its own).
    assert host["CapDrop"] == (DOCKER_DEFAULT_CAPS if engine.PODMAN else ["ALL"])
    assert not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges", *(
        ["seccomp=/var/lib/dockersh/podman-seccomp.json"] if engine.PODMAN else [])]
    with open(f"/proc/{ctr.attrs['State']['Pid']}/status") as f:
        assert "\nCapBnd:\t0000000000000000\n" in f.read()  # its init holds nothing
    assert host["Init"] is True and host["Privileged"] is False
    assert host["PidsLimit"] == 512 and host["Memory"] == 2 * 2**30
    assert ctr.attrs["Config"]["User"] == f"{user.uid}:{user.gid}"
    sources = {m["Source"] for m in ctr.attrs["Mounts"]}
    assert str(user.home) in sources
    assert not any("docker.sock" in s for s in sources)


def test_second_login_reuses_the_running_container(
    dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    user = make_user()
    login(dockersh, user, "echo hello > ~/note; touch /tmp/in-container")
    first = container_of(user)
    proc = login(dockersh, user, "cat ~/note; ls /tmp/in-container")
    assert proc.stdout == b"hello\n/tmp/in-container\n"
    assert proc.stderr == b""
    again = container_of(user)
    assert again.id == first.id
    assert again.attrs["State"]["StartedAt"] == first.attrs["State"]["StartedAt"]
    assert (user.home / "note").read_text() == "hello\n"  # the home is the host's


def test_a_stopped_container_is_started_again_with_a_notice(
    dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    user = make_user()
    login(dockersh, user, "touch /tmp/kept")
    first = container_of(user)
    first.kill()
    proc = login(dockersh, user, "ls /tmp/kept")
    assert (
        b"dockersh: your container had stopped (exit status 137); starting it again" in proc.stderr
    )
    assert proc.stdout == b"/tmp/kept\n"
    assert container_of(user).id == first.id


def test_config_change_recreates_the_container_when_no_session_is_live(
    dockersh: Dockersh, dockersh_config: Any, make_user: Any, container_of: Any
) -> None:
    user = make_user()
    login(dockersh, user, "echo kept > ~/file")
    first = container_of(user)
    dockersh_config(DEFAULT_TEST_CONFIG + 'memory = "256m"\n')
    proc = login(dockersh, user, "cat ~/file")
    assert b"configuration changed; recreating it" in proc.stderr
    assert proc.stdout == b"kept\n"
    second = container_of(user)
    assert second.id != first.id
    assert second.attrs["HostConfig"]["Memory"] == 256 * 2**20


def test_config_change_waits_for_the_last_live_session(
    dockersh: Dockersh, dockersh_config: Any, make_user: Any, container_of: Any
) -> None:
    user = make_user()
    login(dockersh, user)
    first = container_of(user)
    live = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={user.uid}",
            f"--regid={user.gid}",
            "--init-groups",
            "--",
            DOCKERSH,
            "-c",
            "sleep 4",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            b"sleep 4"
            not in subprocess.run(
                ["docker", "top", first.id], capture_output=True, check=False
            ).stdout
        ):
            assert time.monotonic() < deadline, "the live session never started"
            time.sleep(0.1)
        dockersh_config(DEFAULT_TEST_CONFIG + "pids_limit = 100\n")
        proc = login(dockersh, user, "echo in-old")
        assert b"it applies after your last session ends" in proc.stderr
        assert container_of(user).id == first.id
    finally:
        assert live.wait(timeout=20) == 0
    proc = login(dockersh, user, "echo in-new")
    assert b"recreating it" in proc.stderr
    assert container_of(user).attrs["HostConfig"]["PidsLimit"] == 100


def test_a_changed_image_recreates_the_container(
    dockersh: Dockersh,
    dockersh_config: Any,
    make_user: Any,
    container_of: Any,
    docker_engine: docker_sdk.DockerClient,
    test_image: str,
) -> None:
    user = make_user()
    tag = f"dockersh-test/retag:{user.name}"
    image = docker_engine.images.get(test_image)
    image.tag(*tag.split(":"))  # repository and tag apart: Podman takes no "repo:tag"
    try:
        dockersh_config(DEFAULT_TEST_CONFIG.replace(test_image, tag))
        login(dockersh, user)
        first = container_of(user)
        changed = docker_engine.containers.create(tag, "true")  # a new image under the same tag
        changed.commit(*tag.split(":"), changes=["LABEL rebuilt=1"])
        changed.remove()
        proc = login(dockersh, user)
        assert b"recreating it" in proc.stderr
        assert container_of(user).id != first.id
    finally:
        c = container_of(user)
        if c is not None:
            c.remove(force=True)
        docker_engine.images.remove(tag, force=True)


def test_a_foreign_container_with_the_name_is_never_touched(
    dockersh: Dockersh, make_user: Any, docker_engine: docker_sdk.DockerClient, test_image: str
) -> None:
    user = make_user()
    foreign = docker_engine.containers.run(
        test_image, ["sleep", "60"], name=f"dockersh-{user.name}", detach=True
    )
    try:
        proc = dockersh(user, ["-c", "echo SHOULD-NOT-RUN"])
        assert proc.returncode == 125
        assert proc.stdout == b""
        err = proc.stderr.decode()
        assert err.startswith("dockersh: a container named dockersh-") and err.count("\n") == 1
        assert "not dockersh's container" in err
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)


def test_missing_shell_falls_back_and_says_so_once(
    dockersh: Dockersh, dockersh_config: Any, make_user: Any, container_of: Any
) -> None:
    user = make_user()
    dockersh_config(DEFAULT_TEST_CONFIG.replace('shell = "/bin/sh"', 'shell = "/bin/zsh"'))
    proc = login(dockersh, user, 'echo "$SHELL"')
    assert proc.stdout == b"/bin/sh\n"
    assert b"dockersh: /bin/zsh is not in image" in proc.stderr
    assert b"not in image" not in login(dockersh, user).stderr


def test_twenty_concurrent_first_logins_make_one_container(
    dockersh: Dockersh, make_user: Any, docker_engine: docker_sdk.DockerClient
) -> None:
    user = make_user()
    with ThreadPoolExecutor(20) as pool:
        results = list(
            pool.map(lambda i: dockersh(user, ["-c", f"echo {i}"], timeout=120), range(20))
        )
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results]
    assert sorted(int(r.stdout) for r in results) == list(range(20))
    found = docker_engine.containers.list(all=True, filters={"label": f"dockersh.user={user.name}"})
    assert len(found) == 1


def test_root_runs_any_users_session_without_a_password(dockersh: Dockersh, make_user: Any) -> None:
    user = make_user()
    proc = subprocess.run(
        [DOCKERSH, "--user", user.name, "-c", "id -un"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == user.name


def test_a_missing_image_is_pulled_per_policy_and_a_failed_pull_is_one_clear_line(
    dockersh: Dockersh, dockersh_config: Any, make_user: Any, container_of: Any, test_image: str
) -> None:
    user = make_user()
    absent = "dockersh-test/absent:1"
    config = DEFAULT_TEST_CONFIG.replace(test_image, absent)
    dockersh_config(config.replace('pull = "never"', 'pull = "if-missing"'))
    proc = dockersh(user, ["-c", "echo SHOULD-NOT-RUN"])
    assert proc.returncode == 125 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert lines[0] == f"dockersh: pulling {absent} ..."
    assert lines[-1].startswith(f"dockersh: image {absent} is missing and cannot be pulled")
    dockersh_config(config)  # pull = "never": no pull at all, one line
    proc = dockersh(user, ["-c", "echo SHOULD-NOT-RUN"])
    assert proc.returncode == 125 and proc.stdout == b""
    assert proc.stderr.decode() == (
        f'dockersh: image {absent} is not on this host and [container] pull = "never"; '
        "build or load it, or run `dockersh pull`\n"
    )
    assert container_of(user) is None
