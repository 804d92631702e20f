"""install.sh on this machine: idempotent re-install, --uninstall (keeps the admin's config),
install again, and the README's quick start (`./install.sh --demo`)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import docker, engine
from support.cmd import run
from support.install import (
    PAM_BEGIN,
    PAM_END,
    PAM_SSHD,
    REPO,
    USER_MANAGER_DROPIN,
    Installation,
)

pytestmark = pytest.mark.integration

FRONT = Path("/usr/local/bin/dockersh")


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return run(["./install.sh", *args], cwd=REPO, timeout=900)


def test_install_put_everything_in_place_with_safe_modes(installed: Installation) -> None:
    for path, mode in [
        (installed.shell, 0o755),
        (installed.entry, 0o755),
        (installed.exec_helper, 0o711),  # unreadable: non-dumpable from its execve on
        (installed.sudoers, 0o440),
        (installed.pam, 0o644),
    ]:
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, mode), path
    assert installed.entry.read_text().startswith("#!/opt/dockersh/venv/bin/python3 -IS\n")
    assert Path("/etc/shells").read_text().splitlines().count(str(FRONT)) == 1
    # The front is a static program: no program interpreter (the dynamic loader), no dynamic
    # section (LD_PRELOAD from ~/.pam_environment has nothing to act on).
    # So is docker mode's exec helper: container images have any libc or none.
    for program in (FRONT, installed.exec_helper):
        headers = run(["readelf", "-lW", program]).stdout
        assert "INTERP" not in headers and "DYNAMIC" not in headers, (program, headers)
    assert PAM_BEGIN in PAM_SSHD.read_text().splitlines()
    assert USER_MANAGER_DROPIN.is_file()
    run(["visudo", "-c"])
    assert stat.S_IMODE(os.stat("/run/dockersh").st_mode) == 0o700


def test_install_made_the_web_account_and_a_self_signed_certificate(
    installed: Installation,
) -> None:
    """dockersh web's unprivileged account, and a certificate whose fingerprint is printed."""
    account = pwd.getpwnam("dockersh-web")
    assert account.pw_uid != 0 and account.pw_shell == "/usr/sbin/nologin"
    assert os.getgrouplist(account.pw_name, account.pw_gid) == [account.pw_gid]
    cert, key = Path("/etc/dockersh/web/cert.pem"), Path("/etc/dockersh/web/key.pem")
    for path, mode in ((cert, 0o644), (key, 0o600)):
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, mode), path
    fingerprint = run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert])
    assert f"SHA-256 fingerprint {fingerprint.stdout.split('=', 1)[1].strip()}" in installed.output


def test_reinstall_is_idempotent_and_keeps_the_admins_config(installed: Installation) -> None:
    config = installed.config.read_bytes()
    proc = install()
    assert "kept /etc/dockersh/dockersh.toml" in proc.stdout
    assert "unchanged /etc/sudoers.d/dockersh" in proc.stdout
    assert installed.config.read_bytes() == config
    assert Path("/etc/shells").read_text().splitlines().count(str(FRONT)) == 1


def pam_block(text: str) -> str:
    """install.sh's block in sshd's PAM file: from its first line to its end line."""
    start = text.index(PAM_BEGIN)
    end = text.index(PAM_END, start)
    return text[start:text.index("\n", end) + 1]


def test_uninstall_then_install_again(installed: Installation) -> None:
    config = installed.config.read_bytes()
    pam_before = PAM_SSHD.read_text()
    try:
        proc = install("--uninstall")
        assert proc.returncode == 0
        for path in (
            FRONT,
            installed.entry,
            installed.sudoers,
            installed.pam,
            installed.sshd_dropin,
            installed.venv,
        ):
            assert not path.exists(), path
        assert str(FRONT) not in Path("/etc/shells").read_text().splitlines()
        assert installed.config.read_bytes() == config  # the admin's file is kept
        # sshd's PAM stack is as the package shipped it again (both blocks removed, nothing
        # else).
        assert PAM_BEGIN not in PAM_SSHD.read_text()
        forwarding = run(["bash", "-c", "source <(sed '$d' install.sh); pam_forwarding_block"],
                         cwd=REPO).stdout
        assert forwarding in pam_before
        assert PAM_SSHD.read_text() == pam_before.replace(pam_block(pam_before), "").replace(
            forwarding, "")
        assert not USER_MANAGER_DROPIN.exists()
    finally:
        install()
    assert FRONT.exists() and installed.entry.exists() and installed.config.exists()


def test_quick_start_demo_shows_a_command_running_in_the_demo_users_container(
    installed: Installation, session_image: str, docker_engine: Any
) -> None:
    """The README's first command, as written (the image is already built here)."""
    existed = run(["id", "dockersh-demo"], check=False).returncode == 0
    previous = installed.config.read_bytes()
    installed.config.write_text("")  # the shipped defaults: the session image, docker mode
    try:
        proc = install("--demo")
        assert "uid=" in proc.stdout and "(dockersh-demo)" in proc.stdout, proc.stdout
        assert "Debian GNU/Linux" in proc.stdout
    finally:
        installed.config.write_bytes(previous)
        docker.remove_labelled("dockersh.user=dockersh-demo")
        if not existed:
            run(["userdel", "-r", "dockersh-demo"], check=False)


@pytest.mark.integration
def test_without_sshd_install_puts_in_openssh_server_with_the_dropin_and_the_pam_block(
    docker_engine: Any,
) -> None:
    """Fail closed: on a host with no OpenSSH server yet, install.sh installs it, so an sshd is
    never there without the drop-in and the PAM block (a fresh Debian 12 in a container, whose
    install_sshd step runs from this repository)."""
    from support.images import ensure_debian_base

    # python3 as install.sh's first step (check_python) makes sure of: install_sshd reads
    # /etc/nsswitch.conf with it.
    script = ("cd /src && source <(sed '$d' install.sh) && test ! -e /usr/sbin/sshd && "
              "apt_install python3 && "
              "install_sshd && /usr/sbin/sshd -t && cat /etc/pam.d/sshd && "
              "cat /etc/ssh/sshd_config.d/dockersh.conf")
    proc = run(["docker", "run", "--rm", "-v", f"{REPO}:/src:ro", ensure_debian_base(),
                "bash", "-c", script], timeout=600)
    assert "install.sh: installed package(s): openssh-server" in proc.stdout
    assert PAM_BEGIN in proc.stdout.splitlines()
    assert "    PermitUserRC no" in proc.stdout.splitlines()


def test_engine_podman_starts_its_service_and_a_new_config_selects_it(
    installed: Installation, session_image: str
) -> None:
    """`install.sh --engine podman --demo` with no config yet: the written config selects
    Podman (the demo's container is Podman's), and its API service answers."""
    engine.load_into_podman(session_image)
    existed = run(["id", "dockersh-demo"], check=False).returncode == 0
    previous = installed.config.read_bytes()
    installed.config.unlink()
    podman = ["docker", "-H", engine.PODMAN_SOCKET]
    try:
        proc = install("--engine", "podman", "--demo")
        assert "Podman service" in proc.stdout, proc.stdout
        assert f"installed {installed.config}" in proc.stdout  # the demo ran on it:
        assert "(dockersh-demo)" in proc.stdout and "Debian GNU/Linux" in proc.stdout
        found = run([*podman, "ps", "-q", "--filter", "label=dockersh.user=dockersh-demo"])
        assert len(found.stdout.split()) == 1, found
    finally:
        installed.config.write_bytes(previous)
        ids = run([*podman, "ps", "-aq", "--filter", "label=dockersh.user=dockersh-demo"],
                  check=False).stdout.split()
        if ids:
            run([*podman, "rm", "-f", *ids], check=False)
        if not existed:
            run(["userdel", "-r", "dockersh-demo"], check=False)
