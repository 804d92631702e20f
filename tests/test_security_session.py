"""Adversarial tests from inside a real session, in both exec modes (docker exec and nsenter).

The container is what stands between a logged-in user and the host: no capabilities (the
bounding set as SECURITY.md documents), no-new-privileges (a setuid-root binary in the image
does not give root), no Docker socket, the container's own init and processes only, no other
user's home, no host file descriptors, and the pids and memory limits enforced (a bounded fork
bomb and an allocation past the limit).

One container serves both modes (the exec mode is not part of the container's spec), so the
module creates it once. The privileged part runs as root with --config (the sudo boundary is
tests/test_security_host.py's subject). The image is the busybox test image plus a setuid-root
copy of busybox that really gives root without no-new-privileges (checked by the fixture).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import engine
from support.cmd import run
from support.ops import pid_running, wait_until
from support.users import LinuxUser, create_user, remove_user

pytestmark = pytest.mark.integration

SUID_IMAGE = "dockersh-test/suid:latest"
SUID_LABEL = "dockersh.test.source-sha256"
#: busybox runs an applet listed here with the owner's uid when its binary is setuid root. The
#: file is root-only, so the ordinary busybox (running as the user) never reads it.
BUSYBOX_CONF = "[SUID]\nwhoami = s-x root.root\n"
SUID_DOCKERFILE = """\
FROM {base}
COPY busybox.conf /etc/busybox.conf
RUN mkdir -p /usr/local/suid && cp /bin/busybox /usr/local/suid/busybox \\
 && chmod 4755 /usr/local/suid/busybox && chmod 0600 /etc/busybox.conf
"""
SUID_BUSYBOX = "/usr/local/suid/busybox"
MEMORY = 96 * 2**20
PIDS = 48
CAP_CHOWN = 1 << 0
#: Podman would give cap_add to the user's own processes, so its back end refuses it
#: (tests/unit/test_podman.py): there the container has no capability at all.
CAP_ADD = "" if engine.PODMAN else 'cap_add = ["CHOWN"]'
MODES = ("docker", "nsenter")


def image_id(ref: str) -> str:
    return run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], timeout=30).stdout.strip()


@pytest.fixture(scope="session")
def suid_image(test_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The busybox test image with a setuid-root busybox; rebuilt when its recipe changes."""
    base = image_id(test_image)
    dockerfile = SUID_DOCKERFILE.format(base=test_image)
    sha = hashlib.sha256(f"{base}\n{dockerfile}\n{BUSYBOX_CONF}".encode()).hexdigest()
    have = run(engine.dockerd("image", "inspect", "-f",
                              f'{{{{index .Config.Labels "{SUID_LABEL}"}}}}', SUID_IMAGE),
               check=False, timeout=30)
    if have.returncode != 0 or have.stdout.strip() != sha:
        ctx = tmp_path_factory.mktemp("suid-image")
        (ctx / "Dockerfile").write_text(dockerfile)
        (ctx / "busybox.conf").write_text(BUSYBOX_CONF)
        run(engine.dockerd("build", "-q", "--label", f"{SUID_LABEL}={sha}", "-t", SUID_IMAGE,
                           str(ctx)), env={**os.environ, "DOCKER_BUILDKIT": "0"}, timeout=300)
    engine.copy_image(SUID_IMAGE)
    # The attack is real: without no-new-privileges this binary makes the user root, even
    # with every capability dropped.
    potent = run(["docker", "run", "--rm", "-u", "4242:4242", "--cap-drop", "ALL",
                  "--label", "dockersh.test=security", SUID_IMAGE, SUID_BUSYBOX, "whoami"],
                 check=False, timeout=60)
    assert potent.stdout.strip() == "root", potent
    return SUID_IMAGE


@dataclass
class Tenant:
    """A user with a container, a neighbour whose files must stay out of reach, and a runner."""

    user: LinuxUser
    neighbour: LinuxUser
    configs: dict[str, Path]
    host_marker: Path

    def run(self, mode: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The session command as the privileged part runs it (as root, --user NAME)."""
        return subprocess.run(
            [sys.executable, "-m", "dockersh", "--config", str(self.configs[mode]),
             "--user", self.user.name, "-c", command],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}, check=False,
        )

    def ok(self, mode: str, command: str, timeout: float = 60) -> str:
        done = self.run(mode, command, timeout)
        assert done.returncode == 0, done
        return done.stdout

    def container(self) -> dict[str, Any]:
        out = run(["docker", "inspect", f"dockersh-{self.user.name}"], timeout=30).stdout
        return dict(json.loads(out)[0])


@pytest.fixture(scope="module")
def tenant(suid_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    work = tmp_path_factory.mktemp("security-session")
    user = create_user(work, prefix="ds", key=False)
    neighbour = create_user(work, prefix="dn", key=False)
    secret = neighbour.home / "neighbour-secret"
    secret.write_text("NEIGHBOUR-SECRET\n")
    os.chown(secret, neighbour.uid, neighbour.gid)
    host_marker = Path(f"/tmp/dockersh-host-marker-{user.name}")
    host_marker.write_text("HOST-ONLY\n")
    host_marker.chmod(0o644)
    configs = {}
    for mode in MODES:
        configs[mode] = work / f"{mode}.toml"
        configs[mode].write_text(f"""\
{engine.CONFIG}[container]
image = "{suid_image}"
pull = "never"
shell = "/bin/sh"
memory = "{MEMORY}"
pids_limit = {PIDS}
{CAP_ADD}
[session]
exec = "{mode}"
""")
    t = Tenant(user, neighbour, configs, host_marker)
    try:
        t.ok("docker", "true")  # creates the container once for the whole module
        yield t
    finally:
        host_marker.unlink(missing_ok=True)
        errors = []
        for u in (user, neighbour):
            try:
                remove_user(u)
            except AssertionError as exc:
                errors.append(str(exc))
        assert not errors, errors


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def docker_has_seccomp() -> bool:
    out = run(["docker", "info", "-f", "{{json .SecurityOptions}}"], timeout=30).stdout
    return "seccomp" in out


def test_no_capabilities_and_no_new_privileges(tenant: Tenant, mode: str) -> None:
    status = status_fields(tenant.ok(mode, "cat /proc/self/status"))
    for field in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[field], 16) == 0, field
    # docker exec: the bounding set is the container's (ALL dropped, cap_add put back);
    # nsenter empties it: stricter than docker exec.
    bounding = CAP_CHOWN if mode == "docker" and CAP_ADD else 0
    assert int(status["CapBnd"], 16) == bounding
    assert status["NoNewPrivs"] == "1"
    assert status["Uid"].split() == [str(tenant.user.uid)] * 4
    assert status["Gid"].split() == [str(tenant.user.gid)] * 4
    # Both modes apply Docker's seccomp profile (nsenter copies the init's filter).
    assert status["Seccomp"] == ("2" if docker_has_seccomp() else "0")
    assert status["Seccomp_filters"] == ("1" if docker_has_seccomp() else "0")


def test_dockers_seccomp_profile_applies(tenant: Tenant, mode: str) -> None:
    """unshare is allowed only with CAP_SYS_ADMIN by Docker's profile; the host itself lets any
    user make a user namespace (the control below), so this fails without the filter."""
    assert docker_has_seccomp()
    assert tenant.ok(mode, "unshare -U true 2>/dev/null && echo made || echo refused") == \
        "refused\n"
    host = run(["setpriv", f"--reuid={tenant.user.uid}", f"--regid={tenant.user.gid}",
                "--clear-groups", "unshare", "-U", "true"], timeout=30, check=False)
    assert host.returncode == 0, host


def test_a_capability_in_the_bounding_set_is_not_usable(tenant: Tenant, mode: str) -> None:
    """cap_add CHOWN widens the bounding set only: the user's processes never hold it (under
    Podman, which refuses cap_add, the user holds no capability either)."""
    out = tenant.ok(mode, "touch ~/mine && chown 0:0 ~/mine 2>&1; ls -ln ~/mine; rm ~/mine")
    assert "Operation not permitted" in out, out
    assert out.splitlines()[1].split()[2:4] == [str(tenant.user.uid), str(tenant.user.gid)]


def test_setuid_root_binary_does_not_give_root(tenant: Tenant, mode: str) -> None:
    done = tenant.run(mode, f"{SUID_BUSYBOX} whoami; ls -ln {SUID_BUSYBOX}")
    lines = done.stdout.splitlines()
    assert lines[0] == tenant.user.name, done
    assert lines[1].startswith("-rwsr-xr-x") and " 0 " in lines[1]  # the bit is there


def test_no_docker_socket_anywhere(tenant: Tenant, mode: str) -> None:
    out = tenant.ok(mode, "find / -path /proc -prune -o -path /sys -prune -o -type s -print "
                          "2>/dev/null; grep -e docker -e containerd /proc/net/unix | "
                          "grep -vc ' @dockersh-exec-[0-9a-f]*$'; "
                          "ls /var/run/docker.sock /run/docker.sock 2>&1; echo end")
    lines = out.splitlines()
    # No unix socket file, and none of the engine's in /proc: docker mode's own socket to its
    # exec helper (backend/docker/handover.py), in the container's network, is the only one.
    assert lines[0] == "0", out
    assert all("No such file" in line for line in lines[1:3]), out
    assert lines[3:] == ["end"]


def test_the_exec_helper_is_execute_only(tenant: Tenant, mode: str) -> None:
    """docker mode's helper, bound into every container: unreadable, so the kernel makes its
    process non-dumpable at the execve, before the helper's own prctl could (readable, a
    process of the user's could ptrace it in between and forge what it reports)."""
    helper = "/usr/libexec/dockersh-exec"
    out = tenant.ok(mode, f"cat {helper} >/dev/null 2>&1; echo $?; [ -x {helper} ] && echo x; "
                          f"ls -ln {helper}")
    status, executable, listing = out.splitlines()
    assert status != "0" and executable == "x", out
    assert listing.startswith("-rwx--x--x") and listing.split()[2:4] == ["0", "0"], out


def test_pid_1_is_the_containers_init(tenant: Tenant, mode: str) -> None:
    out = tenant.ok(mode, "cat /proc/1/comm; for l in /proc/1/ns/pid /proc/self/ns/pid "
                          "/proc/1/ns/mnt /proc/self/ns/mnt; do readlink $l; done; "
                          "cat /proc/1/cgroup; echo --; cat /proc/self/cgroup")
    comm, pid1_ns, own_ns, pid1_mnt, own_mnt, rest = out.split("\n", 5)
    assert comm == engine.INIT
    assert pid1_ns == own_ns and pid1_mnt == own_mnt
    init_cgroups, own_cgroups = rest.split("--\n")
    assert own_cgroups == init_cgroups.rstrip("\n") + "\n"  # the session's limits are its
    host_pid = tenant.container()["State"]["Pid"]
    assert os.readlink(f"/proc/{host_pid}/ns/pid") == pid1_ns
    assert os.readlink("/proc/self/ns/pid") != pid1_ns


def test_no_host_process_is_visible(tenant: Tenant, mode: str) -> None:
    out = tenant.ok(mode, "for p in /proc/[0-9]*; do read -r c < $p/comm; echo $c; done")
    names = out.split()
    assert set(names) <= {engine.INIT, "sleep", "sh", "dockersh-spare", "dockersh-exec"}, names
    assert len(names) <= 7


def test_another_users_home_is_absent(tenant: Tenant, mode: str) -> None:
    n = tenant.neighbour
    out = tenant.ok(mode, f"ls -a /home; cat {n.home}/neighbour-secret 2>&1; "
                          f"ls -d {n.home} 2>&1; grep -c {n.name} /etc/passwd /etc/group; true")
    assert "NEIGHBOUR-SECRET" not in out
    lines = out.splitlines()
    assert n.name not in lines[:4]
    assert tenant.user.home.name in lines
    assert out.count("No such file or directory") == 2
    assert lines[-2:] == ["/etc/passwd:0", "/etc/group:0"]


def test_host_files_are_absent_and_identity_files_read_only(tenant: Tenant, mode: str) -> None:
    out = tenant.ok(mode, f"cat {tenant.host_marker} 2>&1; ls /var/lib/docker /etc/dockersh "
                          "2>&1; echo x >> /etc/passwd 2>&1 || echo passwd-ro; "
                          "echo x >> /etc/group 2>&1 || echo group-ro")
    assert "HOST-ONLY" not in out
    assert out.count("No such file or directory") == 3, out
    assert "passwd-ro" in out and "group-ro" in out


def test_no_host_file_descriptor_reaches_the_session(tenant: Tenant, mode: str) -> None:
    """Whatever the session's processes inherit: stdin, stdout, stderr, nothing of the host."""
    out = tenant.ok(mode, "ls -l /proc/self/fd")  # sh execs ls: it has what the shell had
    fds = {}
    for line in out.splitlines():
        if " -> " in line:
            left, target = line.split(" -> ", 1)
            fds[int(left.split()[-1])] = target
    extra = {fd: target for fd, target in fds.items() if fd > 2}
    # at most ls's own handle on the directory it reads
    assert all(re.fullmatch(r"/proc/\d+/fd", t) for t in extra.values()), fds
    assert set(fds) >= {0, 1, 2} and len(extra) <= 1, fds
    for fd in (0, 1, 2):
        assert not fds[fd].startswith(("/run/", "/var/", "/proc/", "/etc/", "socket:",
                                       "anon_inode:", "net:", "mnt:", "pid:")), fds


def test_fork_bomb_is_stopped_by_the_pids_limit(tenant: Tenant, mode: str) -> None:
    """At most 300 processes of 2 s each: bounded even where the limit did not hold."""
    limit = tenant.ok(mode, "cat /sys/fs/cgroup/pids.max 2>/dev/null || "
                            "cat /sys/fs/cgroup/pids/pids.max")
    assert limit.strip() == str(PIDS)
    done = tenant.run(mode, "( i=0; while [ $i -lt 300 ]; do sleep 2 & i=$((i+1)); done; "
                            "echo all-spawned ) 2>&1; echo survived", timeout=60)
    try:
        assert "can't fork" in done.stdout, done
        assert "all-spawned" not in done.stdout
        assert done.stdout.rstrip().endswith("survived")
    finally:
        wait_for_pids_to_drain(tenant, mode)


def wait_for_pids_to_drain(tenant: Tenant, mode: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.5)
        done = tenant.run(mode, "ls -d /proc/[0-9]* | wc -l")
        if done.returncode == 0 and int(done.stdout) < 8:
            return
    raise AssertionError("the fork bomb's processes did not end")


def test_memory_limit_is_enforced(tenant: Tenant, mode: str) -> None:
    limit = tenant.ok(mode, "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert int(limit) == MEMORY
    # tail keeps its whole input when there is no newline in it: 150 MB > 96 MB.
    out = tenant.ok(mode, "head -c 150m /dev/zero | tail >/dev/null; echo rc=$?")
    assert out.splitlines()[-1] == "rc=137", out  # SIGKILL from the OOM killer
    assert tenant.container()["State"]["Running"]  # the container itself lives on
    assert tenant.ok(mode, "echo alive") == "alive\n"


def test_the_user_file_cannot_reach_the_host(tenant: Tenant, mode: str) -> None:
    """~/.dockersh.toml as a symlink to /etc/shadow: one line, the session runs, no content."""
    path = tenant.user.home / ".dockersh.toml"
    path.symlink_to("/etc/shadow")
    os.chown(path, tenant.user.uid, tenant.user.gid, follow_symlinks=False)
    try:
        done = tenant.run(mode, "echo in-session")
    finally:
        path.unlink()
    assert done.returncode == 0 and done.stdout == "in-session\n"
    assert done.stderr == f"dockersh: {path}: ignored: it is a symbolic link\n"
    shadow = Path("/etc/shadow").read_text()
    assert not any(f and f in done.stderr for line in shadow.splitlines()
                   for f in line.split(":")[1:2] if len(f) > 3)


def test_exec_is_not_a_way_around_the_limits(tenant: Tenant) -> None:
    """Both modes land in the same cgroups as the container's init, namespaces included."""
    outs = {m: tenant.ok(m, "cat /proc/self/cgroup; for ns in net uts ipc mnt pid cgroup; do "
                            "readlink /proc/self/ns/$ns; done") for m in MODES}
    assert outs["docker"] == outs["nsenter"]
    assert re.search(r"\d+:", outs["docker"])


def test_nsenter_never_enters_a_process_that_is_not_the_containers(tenant: Tenant) -> None:
    """The inspect said Pid N; by the time nsenter opens /proc/N the container may have stopped
    (its user can end their own init) and N belong to another process: entering that one's
    namespaces and cgroups would be a session on the host."""
    from dockersh.backend.docker.backend import container_view
    from dockersh.config import schema
    from dockersh.enter import nsenter
    from dockersh.errors import DockershError
    from dockersh.login import identity
    from dockersh.plan import planner

    data = tenant.container()
    container = container_view(data)
    assert container is not None
    plan = planner.make(schema.Config(), identity.by_uid(tenant.user.uid), "host").session
    host = subprocess.Popen(["sleep", "30"])  # what a recycled pid would be: a host process
    try:
        stale = container_view({**data, "State": {**data["State"], "Pid": host.pid}})
        assert stale is not None
        with pytest.raises(DockershError, match="not the container's"):
            nsenter.Target(stale, plan, {}, ["/bin/cat", str(tenant.host_marker)])
    finally:
        host.kill()
        host.wait()
    nsenter.Target(container, plan, {}, ["/bin/true"])  # the real one is fine


def test_a_mount_source_the_user_can_redirect_is_refused(
    test_image: str, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Docker follows symlinks in a bind source at every start. An admin mount of a path in
    a directory the user can write (here their home) would let them swap it for a symlink to
    the host's /proc (or /) and get it mounted at the next start of their container."""
    work = tmp_path_factory.mktemp("bind-redirect")
    user = create_user(work, prefix="db", key=False)
    srv = Path(f"/srv/dockersh-test-{user.name}")
    try:
        config = work / "config.toml"
        run_as = [sys.executable, "-m", "dockersh", "--config", str(config), "--user",
                  user.name, "-c"]

        def login(command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*run_as, command], capture_output=True, text=True,
                                  timeout=60, stdin=subprocess.DEVNULL, check=False,
                                  env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})

        def mounts(source: Path) -> None:
            config.write_text(f'{engine.CONFIG}[container]\nimage = "{test_image}"\n'
                              f'pull = "never"\nshell = "/bin/sh"\n'
                              f'mounts = [{{ source = "{source}", '
                              f'target = "/data", read_only = true }}]\n')

        # 1. The source is in the user's home: made a symlink to /proc, as from a session.
        link = user.home / "data"
        link.symlink_to("/proc")
        os.chown(link, user.uid, user.gid, follow_symlinks=False)
        mounts(link)
        done = login("ls /data | grep -c '^[0-9]'")
        assert done.returncode != 0 and done.stdout == "", done  # no host pids counted
        # The config check resolves the link first (to /proc: a host path), before the bind
        # check would say the user can change it: refused either way, in one line.
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("dockersh: "), done
        assert (f"mount source {link} is not safe: {user.name} can change {link}" in done.stderr
                or f"[container] mounts source {link}: gives sessions root on the host"
                in done.stderr), done
        # 2. A source that was safe when the container was made, and no longer is: the next
        # start of the stopped container looks again.
        (srv / "data").mkdir(parents=True)
        mounts(srv / "data")
        first = login("ls -d /data")
        assert first.stdout == "/data\n", first
        os.chown(srv, user.uid, user.gid)
        (srv / "data").rmdir()
        (srv / "data").symlink_to("/proc")
        run(["docker", "stop", "-t", "1", f"dockersh-{user.name}"], timeout=60)
        done = login("ls /data | grep -c '^[0-9]'")
        assert done.returncode != 0 and done.stdout == "", done
        assert f"dockersh: mount source {srv}/data is not safe" in done.stderr
    finally:
        shutil.rmtree(srv, ignore_errors=True)
        remove_user(user)


class StaleEngine:
    """A back end whose exec inspect names a given pid as the running command."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def exec_inspect(self, exec_id: str) -> Any:
        from dockersh.backend.base import Exec

        return Exec(True, None, self.pid)


def test_hangup_signals_only_a_process_of_the_container(tenant: Tenant) -> None:
    """The monitor (root) signals the exec's command (a hangup, the client's signals) through
    a pidfd of the pid the engine reported; if that command has just ended, the number may
    belong to a host process: it is never pinned."""
    import signal

    from dockersh.backend.docker import attach

    container = tenant.container()
    host = subprocess.Popen(["sleep", "30"])  # what a recycled pid would be: a host process
    try:
        assert attach.pinned(StaleEngine(host.pid), "x",  # type: ignore[arg-type]
                             container["Id"], 0) is None, "a host process would get the signal"
    finally:
        host.kill()
        host.wait()
    # A process that is in the container does get it, when it is the session's user's.
    run(["docker", "exec", "-d", "-u", f"{tenant.user.uid}", container["Id"], "sleep", "301"])
    wait_until(lambda: pid_running(b"sleep\x00301\x00") is not None, 10, "the sleep 301")
    pid = pid_running(b"sleep\x00301\x00")
    assert pid is not None
    assert attach.pinned(StaleEngine(pid), "x",  # type: ignore[arg-type]
                         container["Id"], tenant.user.uid + 1) is None, "another user's process"
    pidfd = attach.pinned(StaleEngine(pid), "x",  # type: ignore[arg-type]
                          container["Id"], tenant.user.uid)
    assert pidfd is not None
    signal.pidfd_send_signal(pidfd, signal.SIGTERM)
    os.close(pidfd)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}/cmdline").exists() or \
        Path(f"/proc/{pid}/cmdline").read_bytes() != b"sleep\x00301\x00"
