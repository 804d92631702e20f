"""The host chain's parsers (dockersh.admin.hostchain), on text and file headers: what doctor
and enroll decide from sshd's PAM stack, sshd -T, authorized_keys, sudoers and ELF headers."""

from __future__ import annotations

import os
import pwd
import stat
import threading
from pathlib import Path

import pytest
from support.install import pam_with_block

from dockersh.admin import hostchain
from dockersh.admin.findings import FAIL, Findings
from dockersh.paths import FRONT

REPO = Path(__file__).resolve().parents[2]

#: The session part of Debian 12's /etc/pam.d/sshd (openssh-server 9.2p1), which Ubuntu 24.04's
#: packaging shares: pam_env with user_readenv=1 reads ~/.pam_environment.
DEBIAN_SSHD = """\
@include common-auth
account    required     pam_nologin.so
@include common-account
session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so close
session    required     pam_loginuid.so
session    optional     pam_keyinit.so force revoke
@include common-session
session    optional     pam_motd.so  motd=/run/motd.dynamic
session    optional     pam_motd.so noupdate
session    optional     pam_mail.so standard noenv # [1]
session    required     pam_limits.so
session    required     pam_env.so # [1]
session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale
session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so open
@include common-password
"""
COMMON = {
    "common-auth": "auth [success=1 default=ignore] pam_unix.so nullok\n"
                   "auth requisite pam_deny.so\n",
    "common-account": "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n",
    "common-session": "session required pam_unix.so\nsession optional pam_systemd.so\n",
    "common-password": "password [success=1 default=ignore] pam_unix.so obscure yescrypt\n",
}


def stack(text: str) -> list[hostchain.PamEntry]:
    files = {"/etc/pam.d/sshd": text, **{f"/etc/pam.d/{k}": v for k, v in COMMON.items()}}
    return hostchain.pam_stack("/etc/pam.d/sshd", files.__getitem__)


def test_debians_stock_stack_reads_pam_environment_and_the_block_stops_it(tmp_path: Path) -> None:
    stock = stack(DEBIAN_SSHD)
    assert [e.module for e in stock if e.type == "session"][-4:] == [
        "pam_limits.so", "pam_env.so", "pam_env.so", "pam_selinux.so"]
    assert "pam_systemd.so" in [e.module for e in stock]  # through @include common-session
    [open_read] = hostchain.unguarded_user_env(stock)
    assert open_read.where == "/etc/pam.d/sshd:13"
    edited = pam_with_block(DEBIAN_SSHD, tmp_path)
    assert hostchain.unguarded_user_env(stack(edited)) == []
    rules = stack(edited)
    at = next(i for i, e in enumerate(rules) if hostchain.reads_user_env(e))
    assert [(e.control, e.module, e.args) for e in rules[at - 2:at + 1]] == [
        ("[success=1 default=ignore]", "pam_succeed_if.so", ("quiet", "user", "notingroup",
                                                            "dockersh")),
        ("[success=1 ignore=1 default=die]", "pam_env.so", ("envfile=/etc/default/locale",)),
        ("required", "pam_env.so", ("user_readenv=1", "envfile=/etc/default/locale"))]
    assert pam_with_block(edited, tmp_path) == edited  # idempotent


def test_a_guard_elsewhere_or_a_read_in_an_included_file_is_found(tmp_path: Path) -> None:
    edited = pam_with_block(DEBIAN_SSHD, tmp_path).splitlines(keepends=True)
    at = next(i for i, line in enumerate(edited) if "user_readenv=1" in line)
    moved = "".join([*edited[:at], "session required pam_permit.so\n", *edited[at:]])
    assert len(hostchain.unguarded_user_env(stack(moved))) == 1  # not right after the guard
    text = pam_with_block(DEBIAN_SSHD, tmp_path)
    files = {"/etc/pam.d/sshd": text + "session include extra\n",
             "/etc/pam.d/extra": "-session optional pam_env.so user_readenv=1\n",
             **{f"/etc/pam.d/{k}": v for k, v in COMMON.items()}}
    [found] = hostchain.unguarded_user_env(hostchain.pam_stack("/etc/pam.d/sshd",
                                                                files.__getitem__))
    assert found.where == "/etc/pam.d/extra:1"


def test_pam_split_keeps_bracketed_controls_and_joins_continuations() -> None:
    assert hostchain.pam_split("a [x=1  y=2] m.so  p # c\n#\nb required \\\n  n.so q\n") == [
        (1, ["a", "[x=1 y=2]", "m.so", "p"]), (3, ["b", "required", "n.so", "q"])]


def test_the_front_must_be_static() -> None:
    assert hostchain.elf_is_static(Path("/bin/busybox").read_bytes()[:65536])
    assert not hostchain.elf_is_static(Path("/bin/dash").read_bytes()[:65536])
    assert not hostchain.elf_is_static(b"#!/bin/sh\nexec /usr/bin/sudo\n")


def test_login_shells() -> None:
    forced = {"forcecommand": [FRONT]}
    resolve = {"/bin/sh": "/usr/bin/dash", "/bin/bash": "/usr/bin/bash"}.__getitem__
    assert hostchain.shell_problem("a", FRONT, {}, resolve) is None
    assert hostchain.shell_problem("a", "/bin/sh", forced, resolve) is None
    for shell, settings in (("/bin/sh", {}), ("/bin/sh", {"forcecommand": ["/bin/true"]}),
                            ("/bin/bash", forced)):
        found = hostchain.shell_problem("a", shell, settings, resolve)
        assert found is not None and found[0] == FAIL and found[1].startswith(
            f"a's login shell {shell} runs on the host before dockersh")


SAFE = {"disableforwarding": ["yes"], "permittunnel": ["no"], "permituserenvironment": ["no"],
        "permituserrc": ["no"], "subsystem": ["sftp /usr/lib/openssh/sftp-server"],
        "usepam": ["yes"]}


@pytest.mark.parametrize(("key", "value", "said"), [
    ("permituserrc", "yes", "permituserrc is yes"),
    ("permituserenvironment", "yes", "permituserenvironment is yes"),
    ("permituserenvironment", "LD_*", "permituserenvironment is LD_*"),
    ("permittunnel", "yes", "permittunnel is yes"),
    ("subsystem", "sftp internal-sftp", "subsystem sftp internal-sftp runs on the host"),
    ("usepam", "no", "usepam is no, so pam_dockersh.so never runs"),
])
def test_sshd_settings(key: str, value: str, said: str) -> None:
    assert hostchain.sshd_problems(SAFE) == []
    assert hostchain.sshd_problems({**SAFE, key: [value]}) == [said]


def test_keys_files_expand_as_sshd_does() -> None:
    settings = {"authorizedkeysfile": [".ssh/authorized_keys /etc/ssh/keys/%u %%h ~/k none"]}
    assert hostchain.keys_files(settings, "al", 1001, "/home/al") == [
        "/home/al/.ssh/authorized_keys", "/etc/ssh/keys/al", "/home/al/%h", "/home/al/k"]


@pytest.mark.parametrize(("line", "has"), [
    ('command="/usr/local/bin/dockersh" ssh-ed25519 AAAA c', True),
    ('no-pty,COMMAND="x,y" ssh-ed25519 AAAA c', True),
    ('from="10.0.0.1,command=x" ssh-ed25519 AAAA c', False),
    ("ssh-ed25519 AAAA command=x", False),
    ('# command="x" ssh-ed25519 AAAA', False),
    ("", False),
])
def test_command_option(line: str, has: bool) -> None:
    assert hostchain.has_command_option(line) is has


def fake_stat(owners: dict[str, tuple[int, int]]) -> object:
    def lstat(path: str) -> os.stat_result:
        if path not in owners:
            raise FileNotFoundError(path)
        uid, mode = owners[path]
        return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))
    return lstat


def test_keys_through_a_link_to_a_fifo_are_not_opened(tmp_path: Path) -> None:
    """doctor reads users' keys files as root, through their links: a link to a FIFO is not
    opened (which would free a writer that waits for a reader), to a file it is."""
    fifo, keys = tmp_path / "fifo", tmp_path / "authorized_keys"
    os.mkfifo(fifo)
    keys.symlink_to(fifo)
    writer = threading.Thread(target=lambda: os.close(os.open(fifo, os.O_WRONLY)), daemon=True)
    writer.start()
    try:
        assert hostchain.read_keys(str(keys)) is None
        writer.join(0.5)
        assert writer.is_alive(), "the FIFO was opened"
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # frees the writer
        writer.join(10)
    (tmp_path / "real").write_text("ssh-ed25519 AAAA x\n")
    keys.unlink()
    keys.symlink_to(tmp_path / "real")
    assert hostchain.read_keys(str(keys)) == "ssh-ed25519 AAAA x\n"


def test_user_writable_walks_up_to_the_root() -> None:
    d, f = stat.S_IFDIR, stat.S_IFREG
    tree = {"/": (0, d | 0o755), "/etc": (0, d | 0o755), "/etc/ssh": (0, d | 0o755),
            "/etc/ssh/k": (0, f | 0o644), "/home": (0, d | 0o755), "/home/u": (7, d | 0o700),
            "/tmp": (0, d | 0o1777), "/srv": (0, d | 0o775)}
    lstat = fake_stat(tree)
    assert not hostchain.user_writable("/etc/ssh/k", 7, lstat)  # type: ignore[arg-type]
    assert not hostchain.user_writable("/etc/ssh/missing", 7, lstat)  # type: ignore[arg-type]
    for path in ("/home/u/.ssh/authorized_keys", "/srv/keys"):
        assert hostchain.user_writable(path, 7, lstat)  # type: ignore[arg-type]
    assert not hostchain.user_writable("/tmp", 7, lstat)  # type: ignore[arg-type]


def test_sudoers_env_keep() -> None:
    text = (REPO / "etc" / "sudoers.d" / "dockersh").read_text()
    assert hostchain.env_keep(text) == set(hostchain.ENV_KEEP)
    assert hostchain.env_keep(text.replace("GIT_PROTOCOL", "GIT_PROTOCOL LD_PRELOAD")) == {
        *hostchain.ENV_KEEP, "LD_PRELOAD"}
    assert hostchain.env_keep(text.replace("env_reset, ", "")) is None


def test_user_managers_are_found_by_uid_and_argv(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid()).pw_uid
    for pid, argv in (("10", b"/lib/systemd/systemd\0--user\0"), ("11", b"systemd\0--system\0"),
                      ("12", b"/usr/bin/sleep\0--user\0"), ("self", b"x\0")):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(argv)
    assert hostchain.user_managers([me], str(tmp_path)) == [(10, me)]
    assert hostchain.user_managers([me + 1], str(tmp_path)) == []


# --- the live checks, each piece broken (paths pointed elsewhere) -------------------------------


def fails(findings: Findings) -> list[str]:
    return [line for level, line in findings if level == FAIL]


def test_check_front_fails_for_a_dynamic_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostchain, "FRONT", "/bin/busybox")
    assert fails(hostchain.check_front()) == []
    monkeypatch.setattr(hostchain, "FRONT", "/bin/dash")
    [line] = fails(hostchain.check_front())
    assert line.startswith("/bin/dash is not a statically linked program: the dynamic loader")


def test_check_pam_stack_fails_without_the_block(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    stock = tmp_path / "sshd"
    stock.write_text(DEBIAN_SSHD)
    monkeypatch.setattr(hostchain, "PAM_SSHD", str(stock))
    [line] = fails(hostchain.check_pam_stack())
    assert line.startswith(f"{stock}:13: pam_env user_readenv=1 reads ~/.pam_environment for "
                           "members of group dockersh")
    assert line.endswith("fix: run install.sh from the dockersh source (it puts its guard "
                         "before that line), or drop user_readenv=1")
    stock.write_text(pam_with_block(DEBIAN_SSHD, tmp_path))
    assert fails(hostchain.check_pam_stack()) == []


def test_check_user_manager_fails_without_the_dropin(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(hostchain, "systemd_booted", lambda: False)
    monkeypatch.setattr(hostchain, "USER_MANAGER_DROPIN", str(tmp_path / "missing.conf"))
    [line] = fails(hostchain.check_user_manager([]))
    assert "pam_systemd would start `systemd --user` for group dockersh" in line
    dropin = tmp_path / "dockersh.conf"
    dropin.write_text((REPO / "etc/systemd/user@.service.d/dockersh.conf").read_text())
    monkeypatch.setattr(hostchain, "USER_MANAGER_DROPIN", str(dropin))
    assert fails(hostchain.check_user_manager([])) == []
    member = pwd.getpwuid(os.getuid())
    monkeypatch.setattr(hostchain, "user_managers", lambda uids: [(4242, member.pw_uid)])
    assert fails(hostchain.check_user_manager([member])) == [
        f"`systemd --user` (pid 4242) runs on the host for {member.pw_name}; fix: systemctl "
        f"stop user@{member.pw_uid}.service; loginctl disable-linger {member.pw_name}"]


def test_check_sudo_env_fails_when_more_passes(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    sudoers = tmp_path / "dockersh"
    text = (REPO / "etc" / "sudoers.d" / "dockersh").read_text()
    sudoers.write_text(text)
    monkeypatch.setattr(hostchain, "SUDOERS", str(sudoers))
    assert fails(hostchain.check_sudo_env()) == []
    sudoers.write_text(text.replace("SSH_TTY", "SSH_TTY LD_PRELOAD PYTHONPATH"))
    assert fails(hostchain.check_sudo_env()) == [
        f"{sudoers} passes LD_PRELOAD PYTHONPATH to the privileged side; fix: run install.sh "
        "from the dockersh source"]
