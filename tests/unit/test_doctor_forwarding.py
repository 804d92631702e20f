"""doctor's view of forwarding: allowed only when sshd joins the user's container first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dockersh.admin import hostchain
from dockersh.paths import JAIL

REPO = Path(__file__).resolve().parents[2]

OPEN = {"disableforwarding": ["no"], "allowtcpforwarding": ["yes"],
        "allowagentforwarding": ["yes"], "allowstreamlocalforwarding": ["no"],
        "x11forwarding": ["no"], "permittunnel": ["no"], "permituserenvironment": ["no"],
        "permituserrc": ["no"], "usepam": ["yes"]}

BLOCK = ("# BEGIN dockersh: forwarding\n"
         "session [success=1 default=ignore] pam_succeed_if.so quiet user notingroup dockersh\n"
         "session required pam_dockersh.so\n# END dockersh: forwarding\n")


def test_tcp_and_agent_forwarding_are_problems_unless_sshd_joins_the_container() -> None:
    assert hostchain.sshd_problems(OPEN, joined=True) == []
    tail = " and /etc/pam.d/sshd does not end with the pam_dockersh.so block, so it happens " \
           "on the host"
    assert hostchain.sshd_problems(OPEN, joined=False) == [
        f"allowtcpforwarding is yes{tail}", f"allowagentforwarding is yes{tail}"]
    assert hostchain.sshd_problems({**OPEN, "x11forwarding": ["yes"]}, joined=True) == [
        "x11forwarding is yes"]


def test_unix_socket_forwards_are_problems_unless_sshd_also_chroots_into_the_jail() -> None:
    local = {**OPEN, "allowstreamlocalforwarding": ["local"]}
    assert hostchain.sshd_problems({**local, "chrootdirectory": ["/run/dockersh/jail"]},
                                   joined=True) == []
    assert hostchain.sshd_problems({**local, "chrootdirectory": ["none"]}, joined=True) == [
        "allowstreamlocalforwarding is local and chrootdirectory is none, not "
        "/run/dockersh/jail, so unix-socket forwards reach the host's sockets"]
    assert hostchain.sshd_problems({**local, "allowstreamlocalforwarding": ["yes"],
                                    "chrootdirectory": ["/run/dockersh/jail"]}, joined=True) == [
        "allowstreamlocalforwarding is yes, not local"]
    assert hostchain.sshd_problems({**local, "chrootdirectory": ["/run/dockersh/jail"]},
                                   joined=False)[-1] == (
        "allowstreamlocalforwarding is local and /etc/pam.d/sshd does not end with the "
        "pam_dockersh.so block, so it happens on the host")


@pytest.mark.parametrize(("text", "joined"), [
    ("session required pam_unix.so\n" + BLOCK, True),
    ("session required pam_unix.so\n" + BLOCK + "session required pam_env.so\n", False),
    ("session sufficient pam_permit.so\n" + BLOCK, False),  # the stack may end before it
    ("session [success=done default=ignore] pam_x.so\n" + BLOCK, False),
    ("session required pam_dockersh.so\n", False),  # no guard: every user would join
    ("", False),
])
def test_the_pam_stack_must_end_with_the_block(tmp_path: Path, text: str, joined: bool) -> None:
    (tmp_path / "sshd").write_text(text)
    (tmp_path / "security").mkdir()
    (tmp_path / "security" / "pam_dockersh.so").write_bytes(b"")
    stack = hostchain.pam_stack(str(tmp_path / "sshd"), hostchain.read_text)
    assert hostchain.pam_joins_container(stack, [str(tmp_path / "security")]) is joined
    (tmp_path / "security" / "pam_dockersh.so").unlink()
    assert hostchain.pam_joins_container(stack, [str(tmp_path / "security")]) is False


def test_nss_sources_behind_daemons_are_named_for_the_jail() -> None:
    assert hostchain.jail_nss_problems(
        "# comment: ldap\npasswd:         files systemd\ngroup: files [SUCCESS=merge] sss\n"
        "hosts: files dns\nsudoers: files ldap # sudo-ldap\n") == ["group: sss",
                                                                   "sudoers: ldap"]


def test_directory_nss_is_what_install_turns_the_jail_off_for(tmp_path: Path) -> None:
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("passwd: files sss\ngroup: files [NOTFOUND=return] sss\nhosts: dns\n")
    assert hostchain.directory_nss(str(nsswitch)) == "passwd: sss; group: sss"
    nsswitch.write_text("passwd: files systemd\ngroup: compat\n")
    assert hostchain.directory_nss(str(nsswitch)) == ""
    assert hostchain.directory_nss(str(tmp_path / "none")) == ""


def test_the_dropin_install_writes_without_the_jail_has_none_and_no_unix_forwards() -> None:
    """install.sh's edit of the shipped drop-in, as doctor reads it back."""
    shipped = (REPO / "etc/sshd_config.d/dockersh.conf").read_text()
    assert hostchain.dropin_chroot(shipped) == JAIL
    edited = subprocess.run(
        ["bash", "-c", "source <(sed '$d' install.sh); dropin_without_jail 'passwd: sss'"],
        cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert hostchain.dropin_chroot(edited) == "none"
    assert edited.startswith("# install.sh: sshd's jail is off on this host (passwd: sss ")
    changed = [(a, b) for a, b in zip(shipped.splitlines(), edited.splitlines()[1:],
                                      strict=True) if a != b]
    assert changed == [(f"    ChrootDirectory {JAIL}", "    ChrootDirectory none"),
                       ("    AllowStreamLocalForwarding local",
                        "    AllowStreamLocalForwarding no")]


@pytest.mark.parametrize(("chroot", "args", "nss", "level", "says"), [
    (JAIL, "nojail", "", "FAIL", "nothing builds the jail"),
    (JAIL, "", "passwd: sss", "warn", "turns the jail off"),
    (JAIL, "", "", "ok", "NSS works in sshd's jail"),
    ("none", "nojail", "passwd: sss", "ok", "sshd's jail is off"),
])
def test_doctor_on_the_jail_and_the_hosts_nss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chroot: str, args: str, nss: str,
    level: str, says: str,
) -> None:
    (tmp_path / "dockersh.conf").write_text(f"Match Group dockersh\n    ChrootDirectory {chroot}\n")
    (tmp_path / "sshd").write_text(BLOCK.replace("pam_dockersh.so\n", f"pam_dockersh.so {args}\n"))
    monkeypatch.setattr(hostchain, "SSHD_DROPIN", str(tmp_path / "dockersh.conf"))
    monkeypatch.setattr(hostchain, "PAM_SSHD", str(tmp_path / "sshd"))
    monkeypatch.setattr(hostchain, "directory_nss", lambda: nss)
    [(found, text)] = hostchain.check_jail_nss()
    assert (found, says in text) == (level, True), text
