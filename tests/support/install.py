"""The installed dockersh (install.sh) and its global config, put back as they were afterwards."""

from __future__ import annotations

import grp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import REPO, engine
from .cmd import run
from .images import BUSYBOX_IMAGE
from .users import DOCKERSH_GROUP, DOCKERSH_SHELL

NSSWITCH = Path("/etc/nsswitch.conf")
#: The host's own nsswitch.conf while a test has changed it (tests/e2e/test_ssh.py).
NSSWITCH_SAVED = Path("/var/tmp/dockersh-test-nsswitch.conf")


def restore_nsswitch() -> None:
    """A run killed while a test had changed /etc/nsswitch.conf left it so (and install.sh
    would keep sshd's jail off): put the saved one back."""
    if NSSWITCH_SAVED.exists():
        NSSWITCH.write_bytes(NSSWITCH_SAVED.read_bytes())
        NSSWITCH_SAVED.unlink()

INSTALL_SH = REPO / "install.sh"
#: sshd's PAM stack and install.sh's block in it (members of group dockersh skip user_readenv).
PAM_SSHD = Path("/etc/pam.d/sshd")
PAM_BEGIN = ("# BEGIN dockersh (install.sh): members of group dockersh never read "
             "~/.pam_environment")
PAM_END = "# END dockersh: ~/.pam_environment"
#: No systemd --user for members of group dockersh.
USER_MANAGER_DROPIN = Path("/etc/systemd/system/user@.service.d/dockersh.conf")
ETC = Path("/etc/dockersh")
CONFIG = ETC / "dockersh.toml"

#: What dockersh_config writes unless the test gives its own text: the engine under test, the
#: tiny image, never pulled (there is no registry), and a shell that image has. It ends in the
#: [container] table: tests append keys of that table to it.
DEFAULT_TEST_CONFIG = f"""\
{engine.CONFIG}# Written by the dockersh_config test fixture, for one test.
[container]
image = "{BUSYBOX_IMAGE}"
pull = "never"
shell = "/bin/sh"
"""


@dataclass(frozen=True)
class Installation:
    """Where install.sh put things (the path contract in docs/DESIGN.md)."""

    shell: Path = Path(DOCKERSH_SHELL)
    entry: Path = Path("/opt/dockersh/sbin/dockersh")
    exec_helper: Path = Path("/opt/dockersh/libexec/dockersh-exec")
    venv: Path = Path("/opt/dockersh/venv")
    config: Path = CONFIG
    sudoers: Path = Path("/etc/sudoers.d/dockersh")
    pam: Path = Path("/etc/pam.d/dockersh")
    sshd_dropin: Path = Path("/etc/ssh/sshd_config.d/dockersh.conf")
    output: str = ""


def backup_etc(dest: Path) -> Path | None:
    """Copy /etc/dockersh (as cp -a does) to dest; None when there was none."""
    if not ETC.exists():
        return None
    run(["cp", "-a", ETC, dest])
    return dest


def restore_etc(backup: Path | None) -> None:
    """Put /etc/dockersh back as backup_etc found it (absent when it was absent)."""
    shutil.rmtree(ETC, ignore_errors=True)
    if backup is not None:
        run(["cp", "-a", backup, ETC])


def run_install() -> Installation:
    """Run the repo's ./install.sh and check that the contract's paths are there."""
    if not INSTALL_SH.is_file():
        raise AssertionError(f"{INSTALL_SH} is missing")
    # install.sh looks after dockerd, whichever engine the tests' configs select.
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    proc = run(["./install.sh"], cwd=REPO, env=env, timeout=900)
    installation = Installation(output=proc.stdout + proc.stderr)
    missing = [
        str(p)
        for p in (installation.shell, installation.entry, installation.exec_helper,
                  installation.venv / "bin" / "python3",
                  installation.config, installation.sudoers, installation.pam,
                  installation.sshd_dropin)
        if not p.exists()
    ]
    try:
        grp.getgrnam(DOCKERSH_GROUP)
    except KeyError:
        missing.append(f"group {DOCKERSH_GROUP}")
    if missing:
        raise AssertionError(
            f"install.sh succeeded but left out: {', '.join(missing)}\n{installation.output}"
        )
    return installation


def write_config(text: str) -> Path:
    """Write the global config, root-owned 0644."""
    ETC.mkdir(mode=0o755, exist_ok=True)
    tmp = CONFIG.with_name(CONFIG.name + ".test-tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(CONFIG)
    return CONFIG


def pam_with_block(text: str, workdir: Path) -> str:
    """text (an sshd PAM file) as install.sh rewrites /etc/pam.d/sshd: its own shell function."""
    source = workdir / "pam-sshd"
    source.write_text(text)
    script = (f"source <(sed '$d' {INSTALL_SH}); pam_with_block \"$1\"; "
              "grep -q pam_dockersh.so \"$1\" || pam_forwarding_block")  # both blocks, as
    edited = run(["bash", "-c", script, "bash", source]).stdout        # install.sh writes them
    assert PAM_BEGIN in edited and PAM_END in edited, edited
    return edited
