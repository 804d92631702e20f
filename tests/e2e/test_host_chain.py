"""The host login chain (issue 11): no file a user writes in their home runs code on the host
before the session is inside the container, through the real sshd with Debian's stock PAM
stack (/etc/pam.d/sshd as the package ships it, plus install.sh's block), in both exec modes.

The attacker's files: ~/.pam_environment (LD_PRELOAD and LD_AUDIT of a real library that
leaves a marker wherever the loader runs it, locale and time zone paths, a forged
SSH_CONNECTION), ~/.ssh/rc, ~/.ssh/environment and an authorized_keys environment= option.
The entry points: the front as login shell, and dash as login shell with sshd's ForceCommand.
Then what `dockersh doctor` and `enroll` refuse: other login shells, command= keys the user can
rewrite.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import REPO, hostfiles
from support.cmd import run
from support.hostfiles import Markers
from support.install import (
    DEFAULT_TEST_CONFIG,
    PAM_SSHD,
    USER_MANAGER_DROPIN,
    pam_with_block,
)
from support.ops import Dockersh
from support.sshd import SshdFactory, SshServer, start_sshd
from support.systemdhost import systemd_host, systemd_is_pid1
from support.users import LinuxUser, UserFactory

pytestmark = pytest.mark.e2e
pytest_plugins = ["support.ops"]  # the dsh fixture: dockersh from this checkout, as root

FRONT = "/usr/local/bin/dockersh"
AUDIT = Path("/var/log/dockersh/audit.jsonl")
#: The command every login runs in the container.
PROBE = "echo in-$((6*7))"


@pytest.fixture(params=["docker", "nsenter"])
def mode(request: pytest.FixtureRequest, dockersh_config: Callable[..., Path]) -> str:
    dockersh_config(f'[session]\nexec = "{request.param}"\n' + DEFAULT_TEST_CONFIG)
    return str(request.param)


@pytest.fixture
def markers() -> Iterator[Markers]:
    m = Markers()
    yield m
    m.close()


def stock_pam_text() -> str:
    """/etc/pam.d/sshd without any block an install.sh put there: exactly the file
    openssh-server ships (checked against dpkg's record of it)."""
    kept, inside = [], False
    for line in PAM_SSHD.read_text().splitlines(keepends=True):
        inside = inside or line.startswith("# BEGIN dockersh")
        if not inside:
            kept.append(line)
        inside = inside and not line.startswith("# END dockersh")
    text = "".join(kept)
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "openssh-server"]).stdout
    shipped = next(line.split()[1] for line in conffiles.splitlines()
                   if line.split()[:1] == [str(PAM_SSHD)])
    assert hashlib.md5(text.encode()).hexdigest() == shipped, "/etc/pam.d/sshd is not Debian's"
    return text


@pytest.fixture
def pam_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SshServer]]:
    """pam_sshd(extra, block=True): a real sshd whose PAM stack is Debian's stock sshd stack,
    with install.sh's block (block=True) or without it. sshd names its PAM service after its
    program: a link sshd-X to /usr/sbin/sshd uses /etc/pam.d/sshd-X. A service of its own keeps
    the test to Debian's stack and this branch's block, whatever else is in /etc/pam.d/sshd."""
    workdir = tmp_path_factory.mktemp("pam-sshd")
    stock = stock_pam_text()
    made: list[tuple[SshServer, Path]] = []

    def start(extra: tuple[str, ...] = (), block: bool = True) -> SshServer:
        service = f"sshd-dockersh-test-{secrets.token_hex(3)}"
        pam = Path("/etc/pam.d") / service
        pam.write_text(pam_with_block(stock, workdir) if block else stock)
        link = workdir / service
        link.symlink_to("/usr/sbin/sshd")
        made.append((start_sshd(workdir, extra, program=str(link)), pam))
        return made[-1][0]

    try:
        yield start
    finally:
        for server, pam in made:
            server.stop()
            pam.unlink()


def forced(user: LinuxUser) -> tuple[str, ...]:
    """sshd lines that force the front for this user (the ForceCommand entry point)."""
    return (f"Match User {user.name}", f"    ForceCommand {FRONT}")


def plant(user: LinuxUser, markers: Markers) -> Path:
    """Every file of the attack in the user's home; returns the library."""
    library = hostfiles.build_library(user, markers)
    hostfiles.put(user, ".pam_environment", hostfiles.pam_environment(library, user.home))
    hostfiles.put(user, ".ssh/rc", hostfiles.rc_script(markers))
    hostfiles.put(user, ".ssh/environment", f"LD_PRELOAD={library}\n", mode=0o600)
    keys = user.home / ".ssh/authorized_keys"
    keys.write_text(f'environment="LD_PRELOAD={library}" {keys.read_text()}')
    return library


def login(server: SshServer, user: LinuxUser) -> None:
    proc = server.ssh(user, PROBE, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, b"in-42\n"), (
        f"{user.name} ({user.shell}): exit {proc.returncode}, stdout {proc.stdout[-500:]!r}, "
        f"stderr {proc.stderr[-500:]!r}\n{server.log_tail(15)}")


def last_remote(user: LinuxUser) -> str:
    records = [json.loads(line) for line in AUDIT.read_text().splitlines()]
    return str([r for r in records if r.get("user") == user.name][-1]["remote"])


def test_no_file_in_the_home_runs_code_on_the_host(
    mode: str, pam_sshd: Callable[..., SshServer], make_user: UserFactory, markers: Markers
) -> None:
    """Both entry points through the installed chain: the front as login shell, and dash (which
    the loader would preload into) with ForceCommand. Defences: install.sh's PAM block,
    PermitUserRC no, PermitUserEnvironment no."""
    front_user = make_user()
    dash_user = make_user(shell="/bin/sh")
    for user in (front_user, dash_user):
        plant(user, markers)
    server = pam_sshd(forced(dash_user))
    for user in (front_user, dash_user):
        login(server, user)
        assert last_remote(user).startswith("127.0.0.1:")
        assert not (user.home / hostfiles.RC_RAN).exists()  # not even in the container
    assert markers.left() == []


def test_without_the_pam_block_a_members_login_runs_nothing_under_debians_stock_pam(
    mode: str, pam_sshd: Callable[..., SshServer], make_user: UserFactory, markers: Markers
) -> None:
    """Without install.sh's PAM blocks, ~/.pam_environment's LD_PRELOAD and LD_AUDIT reach the
    login shell: dash runs the library for a user outside the group (the control). A member's
    login, the static front's or dash's under ForceCommand, runs nothing at all: without the
    forwarding block no jail is built, and sshd's chroot into the empty directory finds no
    program to run (fail closed)."""
    front_user = make_user()
    dash_user = make_user(shell="/bin/sh")
    control = make_user(shell="/bin/sh", in_dockersh=False)
    for user in (front_user, dash_user, control):
        library = hostfiles.build_library(user, markers)
        hostfiles.put(user, ".pam_environment", hostfiles.pam_environment(library, user.home))
    server = pam_sshd(forced(dash_user), block=False)
    for user in (front_user, dash_user):
        proc = server.ssh(user, PROBE, timeout=120)
        assert proc.returncode == 1 and proc.stdout == b"", proc
        assert b"No such file or directory" in proc.stderr, proc.stderr
    assert markers.left() == []
    server.ssh(control, PROBE, timeout=120)
    assert f"ran-uid-{control.uid}-_usr_bin_dash" in markers.left()


# --- what doctor and enroll refuse -------------------------------------------------------------


def doctor(dsh: Dockersh) -> list[str]:
    """`dockersh doctor` from this checkout, as root."""
    proc = dsh("doctor")
    assert proc.stdout.endswith(("healthy\n", "found\n")), proc
    return proc.stdout.splitlines()


def fails_about(lines: list[str], user: LinuxUser) -> list[str]:
    return [line for line in lines if line.startswith("FAIL") and user.name in line]


@pytest.fixture
def sshd_match(tmp_path: Path) -> Iterator[Callable[[LinuxUser, str], None]]:
    """sshd_match(user, line): a `Match User` block for that user in the host's own sshd config
    (what doctor asks `sshd -T` about), removed afterwards."""
    made: list[Path] = []

    def add(user: LinuxUser, line: str) -> None:
        path = Path(f"/etc/ssh/sshd_config.d/zz-dockersh-test-{user.name}.conf")
        path.write_text(f"Match User {user.name}\n    {line}\nMatch all\n")
        made.append(path)

    yield add
    for path in made:
        path.unlink(missing_ok=True)


def test_doctor_refuses_login_shells_that_read_the_users_files(
    installed: object, dsh: Dockersh, make_user: UserFactory,
    sshd_match: Callable[[LinuxUser, str], None],
) -> None:
    front = make_user()
    bash = make_user(shell="/bin/bash")
    dash_forced = make_user(shell="/bin/sh")
    dash_alone = make_user(shell="/bin/sh")
    sshd_match(bash, f"ForceCommand {FRONT}")
    sshd_match(dash_forced, f"ForceCommand {FRONT}")
    lines = doctor(dsh)
    assert fails_about(lines, front) == []
    assert fails_about(lines, dash_forced) == []
    for user, shell in ((bash, "/bin/bash"), (dash_alone, "/bin/sh")):
        assert fails_about(lines, user) == [
            f"FAIL  {user.name}'s login shell {shell} runs on the host before dockersh and "
            "reads files the user writes (bash: ~/.bashrc, zsh: ~/.zshenv); fix: dockersh "
            f"enroll {user.name} (login shell {FRONT}), or dash as login shell with "
            f"`ForceCommand {FRONT}` in a `Match User {user.name}` block"]


def test_command_keys_the_user_can_rewrite_are_refused(
    installed: object, dsh: Dockersh, make_user: UserFactory,
    sshd_match: Callable[[LinuxUser, str], None],
) -> None:
    member = make_user(key_options=f'no-pty,command="{FRONT}"')
    lines = doctor(dsh)
    keys = member.home / ".ssh/authorized_keys"
    assert fails_about(lines, member) == [
        f"FAIL  {member.name}: a command= key in {keys}, which the user can rewrite from "
        "inside the container (dropping the restriction); fix: keep such keys in a root-owned "
        "file: `AuthorizedKeysFile /etc/ssh/authorized_keys/%u` in a `Match Group dockersh` "
        "block"]
    # enroll refuses such an account and leaves it as it was.
    outsider = make_user(shell="/bin/sh", in_dockersh=False, key_options=f'command="{FRONT}"')
    proc = dsh("enroll", outsider.name)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.startswith(f"dockersh: did not enroll {outsider.name}: "
                                  f"{outsider.name}: a command= key in "), proc.stderr
    assert proc.stderr.count("\n") == 1
    entry = run(["getent", "passwd", outsider.name]).stdout.strip()
    assert entry.endswith(":/bin/sh")
    assert "dockersh" not in run(["id", "-nG", outsider.name]).stdout.split()
    # A root-owned keys file is safe: the user cannot drop the restriction.
    root_keys = Path(f"/etc/ssh/dockersh-test-keys-{member.name}")
    root_keys.write_text(keys.read_text())
    try:
        sshd_match(member, f"AuthorizedKeysFile {root_keys}")
        assert fails_about(doctor(dsh), member) == []
    finally:
        root_keys.unlink()


# --- systemd's user manager --------------------------------------------------------------------

USER_MANAGER_CHECK = REPO / "tests" / "support" / "user-manager-check.sh"


def test_members_get_no_systemd_user_manager(installed: object, sshd: SshdFactory) -> None:
    """pam_systemd starts `systemd --user` at login, which runs the user's own units on the host:
    install.sh's drop-in skips it for members. On a systemd-booted machine (the hosts harness)
    through the test sshd and the installed drop-in; elsewhere in a systemd-booted container
    with the repository's drop-in. The script's control shows an outsider's unit does run."""
    if systemd_is_pid1():
        print(run([USER_MANAGER_CHECK, str(sshd().port)]).stdout)
        return
    with systemd_host() as host:
        host.put(REPO / "etc" / "systemd" / "user@.service.d" / "dockersh.conf",
                 str(USER_MANAGER_DROPIN))
        host.exec("systemctl", "daemon-reload")
        host.exec("groupadd", "--system", "dockersh")
        host.put(USER_MANAGER_CHECK, "/usr/local/bin/user-manager-check")
        print(host.exec("/usr/local/bin/user-manager-check", "22"))
