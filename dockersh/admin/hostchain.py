"""The host login chain, checked on the live host: everything that runs before a session is in
its container (sshd, PAM, systemd's user manager, the login shell and the front, sudo).

Each of them may read files in the user's home, which the user writes from inside the
container; SECURITY.md has the table. `dockersh doctor` runs every check here; `dockersh
enroll` refuses an account whose own part of the chain (shell, sshd settings, authorized keys)
is unsafe. The parsers are pure functions, unit-tested on text.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NamedTuple

from dockersh.admin.findings import INSTALL, OK, WARN, Finding, Findings, problem, root_file
from dockersh.errors import DockershError
from dockersh.paths import (
    FRONT,
    GROUP,
    JAIL,
    PAM_DIR,
    PAM_SSHD,
    SESSION_VARIABLES,
    SSHD,
    SSHD_DROPIN,
    SUDOERS,
    USER_MANAGER_DROPIN,
)

#: dash reads no file for `dash -c CMD` (only an interactive dash reads $ENV); /bin/dash where
#: /bin is not merged into /usr.
DASH = ("/usr/bin/dash", "/bin/dash")
#: What sudo may pass to the privileged side (etc/sudoers.d/dockersh); anything more is a hole.
ENV_KEEP = frozenset(SESSION_VARIABLES)
#: install.sh's guard before each pam_env line with user_readenv=1 (see install.sh).
GUARD = (("pam_succeed_if.so", "[success=1 default=ignore]",
          ("quiet", "user", "notingroup", GROUP)),
         ("pam_env.so", "[success=1 ignore=1 default=die]", None))
#: Where Debian's and Ubuntu's PAM modules are (pam_dockersh.so goes beside pam_unix.so).
PAM_MODULE_DIRS = ("/lib/x86_64-linux-gnu/security", "/lib/aarch64-linux-gnu/security",
                   "/usr/lib/x86_64-linux-gnu/security", "/usr/lib/aarch64-linux-gnu/security",
                   "/lib/security", "/usr/lib/security")
FORWARDING = ("allowtcpforwarding", "allowagentforwarding", "allowstreamlocalforwarding",
              "x11forwarding", "permittunnel")
KEYS_LIMIT = 1 << 20
Settings = Mapping[str, list[str]]


# --- the front: a static program ----------------------------------------------------------------


def elf_is_static(head: bytes) -> bool:
    """Whether an ELF file (its first bytes, program headers included) has neither a program
    interpreter (PT_INTERP: the dynamic loader) nor a dynamic section (PT_DYNAMIC)."""
    if head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return False
    wide = head[4] == 2
    order: Literal["little", "big"] = "little" if head[5] == 1 else "big"

    def number(at: int, size: int) -> int:
        return int.from_bytes(head[at:at + size], order)

    phoff = number(32, 8) if wide else number(28, 4)
    entsize, count = (number(54, 2), number(56, 2)) if wide else (number(42, 2), number(44, 2))
    if count == 0 or phoff + entsize * count > len(head):
        return False
    types = {number(phoff + i * entsize, 4) for i in range(count)}
    return not types & {2, 3}  # PT_DYNAMIC, PT_INTERP


def check_front() -> Findings:
    wrong = root_file(FRONT, executable=True)
    if wrong is not None:
        yield problem(wrong, INSTALL)
        return
    with open(FRONT, "rb") as f:
        head = f.read(65536)
    if elf_is_static(head):
        yield OK, f"{FRONT} is a statically linked program (no dynamic loader to preload into)"
    else:
        yield problem(f"{FRONT} is not a statically linked program: the dynamic loader would "
                      "honour LD_PRELOAD from ~/.pam_environment", INSTALL)


# --- PAM: sshd's stack --------------------------------------------------------------------------


class PamEntry(NamedTuple):
    where: str  # FILE:LINE
    type: str
    control: str
    module: str
    args: tuple[str, ...]


def pam_split(text: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each rule: comments dropped, `\\` continuations joined, a
    bracketed control (`[success=1 default=ignore]`) kept as one field."""
    rules: list[tuple[int, list[str]]] = []
    pending, first = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0]
        if not pending:
            first = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        fields = re.findall(r"\[[^\]]*\]|\S+", line)
        if fields:
            rules.append((first, [" ".join(f.split()) for f in fields]))
    return rules


def pam_stack(path: str, read: Callable[[str], str], depth: int = 0) -> list[PamEntry]:
    """Every rule of a PAM service file in order, `@include`, `include` and `substack` expanded."""
    if depth > 10:
        raise DockershError(f"PAM includes nest deeper than 10 at {path}")
    entries: list[PamEntry] = []
    for number, fields in pam_split(read(path)):
        where = f"{path}:{number}"
        if fields[0] == "@include" and len(fields) > 1:
            entries += pam_stack(os.path.join(PAM_DIR, fields[1]), read, depth + 1)
        elif len(fields) >= 3 and fields[1] in ("include", "substack"):
            entries += pam_stack(os.path.join(PAM_DIR, fields[2]), read, depth + 1)
        elif len(fields) >= 3:
            entries.append(PamEntry(where, fields[0].lstrip("-"), fields[1],
                                    os.path.basename(fields[2]), tuple(fields[3:])))
    return entries


def reads_user_env(entry: PamEntry) -> bool:
    return entry.module == "pam_env.so" and "user_readenv=1" in entry.args


def guards(rule: PamEntry, guarded: PamEntry, module: str, control: str,
           args: tuple[str, ...] | None) -> bool:
    """Whether rule is that part of install.sh's guard (args None: any but user_readenv=1)."""
    if (rule.type, rule.module, rule.control) != (guarded.type, module, control):
        return False
    return not reads_user_env(rule) if args is None else rule.args == args


def unguarded_user_env(stack: list[PamEntry]) -> list[PamEntry]:
    """The pam_env rules that read ~/.pam_environment for members of the group: those not
    right after install.sh's guard (which sends members to a copy without user_readenv)."""
    found = []
    for i, entry in enumerate(stack):
        if not reads_user_env(entry):
            continue
        before = stack[max(i - 2, 0):i]
        pairs = zip(before, GUARD, strict=False)
        if len(before) != 2 or not all(guards(e, entry, *g) for e, g in pairs):
            found.append(entry)
    return found


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def sshd_pam_stack() -> list[PamEntry]:
    try:
        return pam_stack(PAM_SSHD, read_text)
    except (OSError, DockershError):
        return []


def check_pam_stack() -> Findings:
    try:
        stack = pam_stack(PAM_SSHD, read_text)
    except (OSError, DockershError) as exc:
        yield problem(f"cannot read sshd's PAM stack ({exc})", INSTALL)
        return
    open_reads = unguarded_user_env(stack)
    for entry in open_reads:
        yield problem(f"{entry.where}: pam_env user_readenv=1 reads ~/.pam_environment for "
                      f"members of group {GROUP} (LD_PRELOAD, SSH_CONNECTION)",
                      f"{INSTALL} (it puts its guard before that line), or drop user_readenv=1")
    if not open_reads:
        yield OK, f"sshd's PAM stack ({PAM_SSHD}) reads no ~/.pam_environment for group {GROUP}"


# --- systemd's user manager ---------------------------------------------------------------------


def systemd_booted() -> bool:
    return os.path.isdir("/run/systemd/system")


def user_managers(uids: Iterable[int], proc: str = "/proc") -> list[tuple[int, int]]:
    """(pid, uid) of each running `systemd --user` of one of these uids."""
    wanted, found = set(uids), []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            uid = os.stat(f"{proc}/{name}").st_uid
            if uid not in wanted:
                continue
            with open(f"{proc}/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"systemd" and b"--user" in argv[1:]:
            found.append((int(name), uid))
    return found


def check_user_manager(members: list[pwd.struct_passwd]) -> Findings:
    wrong = root_file(USER_MANAGER_DROPIN, executable=False)
    if wrong is not None:
        yield problem(f"{wrong}: pam_systemd would start `systemd --user` for group {GROUP}, "
                      "which runs the units in ~/.config/systemd/user on the host", INSTALL)
    elif systemd_booted():
        proc = subprocess.run(["systemctl", "show", "-P", "DropInPaths", "user@0.service"],
                              capture_output=True, text=True, check=False)
        if USER_MANAGER_DROPIN not in proc.stdout.split():
            yield problem(f"systemd does not apply {USER_MANAGER_DROPIN}",
                          "systemctl daemon-reload")
        else:
            yield OK, f"no systemd user manager for group {GROUP} ({USER_MANAGER_DROPIN})"
    else:
        yield OK, f"{USER_MANAGER_DROPIN} is in place (systemd is not PID 1 here)"
    names = {m.pw_uid: m.pw_name for m in members}
    for pid, uid in user_managers(names):
        yield problem(f"`systemd --user` (pid {pid}) runs on the host for {names[uid]}",
                      f"systemctl stop user@{uid}.service; loginctl disable-linger {names[uid]}")


# --- each member: login shell, sshd's settings, authorized keys ---------------------------------


def members() -> list[pwd.struct_passwd]:
    """Every account in the group, by its primary group or a supplementary one."""
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return []
    return [e for e in pwd.getpwall()
            if e.pw_uid != 0 and gid in os.getgrouplist(e.pw_name, e.pw_gid)]


def is_front_command(command: str) -> bool:
    return command == FRONT or command.startswith(FRONT + " ")


def shell_problem(name: str, shell: str, settings: Settings,
                  resolve: Callable[[str], str] = os.path.realpath) -> Finding | None:
    """A login shell other than the front runs on the host first, with the user's files: bash
    reads ~/.bashrc for sshd's commands, zsh ~/.zshenv. dash reads nothing for `-c`, so it may
    stay, but only when sshd forces the front as the command."""
    if shell == FRONT:
        return None
    forced = (settings.get("forcecommand") or ["none"])[0]
    if resolve(shell) in DASH and is_front_command(forced):
        return None
    return problem(f"{name}'s login shell {shell} runs on the host before dockersh and reads "
                   "files the user writes (bash: ~/.bashrc, zsh: ~/.zshenv)",
                   f"dockersh enroll {name} (login shell {FRONT}), or dash as login shell "
                   f"with `ForceCommand {FRONT}` in a `Match User {name}` block")


def sshd_effective(user: str) -> dict[str, list[str]]:
    proc = subprocess.run([SSHD, "-T", "-C", f"user={user},host=localhost,addr=127.0.0.1"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DockershError(f"sshd -T failed: {' '.join(proc.stderr.split())}")
    settings: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)
    return settings


def pam_joins_container(stack: list[PamEntry], module_dirs: Iterable[str] = ()) -> bool:
    """sshd's session stack ends with install.sh's forwarding block (pam_dockersh.so for
    members of group dockersh: sshd joins their container's network before it forwards), no
    rule before it can end the stack early, and the module is installed."""
    session = [e for e in stack if e.type == "session"]
    if len(session) < 2 or (session[-1].module, session[-1].control) != ("pam_dockersh.so",
                                                                        "required"):
        return False
    guard = session[-2]
    if (guard.module, guard.control, guard.args) != (
            "pam_succeed_if.so", "[success=1 default=ignore]",
            ("quiet", "user", "notingroup", GROUP)):
        return False
    if any(e.control == "sufficient" or "done" in e.control for e in session[:-2]):
        return False
    return any(os.path.exists(f"{d}/pam_dockersh.so") for d in module_dirs or PAM_MODULE_DIRS)


def sshd_problems(settings: Settings, joined: bool = False) -> list[str]:
    """What sshd would do on the host for this user: forwarding, internal-sftp, ~/.ssh/rc,
    ~/.ssh/environment and authorized_keys environment=. TCP and agent forwarding are fine when
    sshd joins the user's container's network first (``joined``): they happen in there; unix-
    socket forwards when sshd also chroots into the jail that module builds."""
    def value(key: str) -> str:
        return (settings.get(key) or [""])[0]

    found = []
    if value("usepam") != "yes":
        found.append(f"usepam is {value('usepam') or 'unset'}, so pam_dockersh.so never runs")
    if value("disableforwarding") != "yes":
        jailed = value("chrootdirectory") == JAIL
        for key in FORWARDING:
            if value(key) == "no" or (joined and key in ("allowtcpforwarding",
                                                        "allowagentforwarding")):
                continue
            if not joined and key != "x11forwarding":
                found.append(f"{key} is {value(key)} and {PAM_SSHD} does not end with the "
                             "pam_dockersh.so block, so it happens on the host")
            elif key != "allowstreamlocalforwarding":
                found.append(f"{key} is {value(key)}")
            elif value(key) != "local":  # -R to a path: a socket in the jail's /tmp or home
                found.append(f"{key} is {value(key)}, not local")
            elif not jailed:
                found.append(f"{key} is {value(key)} and chrootdirectory is "
                             f"{value('chrootdirectory') or 'none'}, not {JAIL}, so unix-socket "
                             "forwards reach the host's sockets")
    elif value("permittunnel") != "no":
        found.append(f"permittunnel is {value('permittunnel')}")
    found += [f"subsystem {line} runs on the host" for line in settings.get("subsystem", [])
              if "internal-sftp" in line]
    for key in ("permituserenvironment", "permituserrc"):
        if value(key) != "no":
            found.append(f"{key} is {value(key)}")
    return found


def keys_files(settings: Settings, name: str, uid: int, home: str) -> list[str]:
    """The AuthorizedKeysFile paths sshd reads for this user, expanded as sshd does."""
    tokens = {"%%": "%", "%h": home, "%u": name, "%U": str(uid)}
    paths = []
    for word in " ".join(settings.get("authorizedkeysfile", [])).split():
        if word == "none":
            continue
        path = re.sub(r"%[%hUu]", lambda m: tokens[m.group()], word)
        path = home + path[1:] if path.startswith("~/") else path
        paths.append(path if path.startswith("/") else os.path.join(home, path))
    return paths


def user_writable(path: str, uid: int, lstat: Callable[[str], os.stat_result] = os.lstat) -> bool:
    """Whether the user could change or replace the file: it or a directory above it is theirs,
    or writable by a group or everyone (a directory with the sticky bit only by its owner)."""
    while True:
        try:
            st = lstat(path)
        except FileNotFoundError:
            pass
        else:
            sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
            if st.st_uid == uid or (not sticky and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
                return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


KEY_TYPE = re.compile(r"(ssh-|ecdsa-|sk-|rsa-sha2-)")


def has_command_option(line: str) -> bool:
    """Whether an authorized_keys line has a command="..." option."""
    line = line.strip()
    if not line or line.startswith("#") or KEY_TYPE.match(line):
        return False
    options = re.match(r'(?:[^\s"]|"(?:[^"\\]|\\.)*")*', line)
    return any(opt.lower().startswith("command=")
               for opt in re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', options.group() if options
                                     else ""))


def read_keys(path: str) -> str | None:
    """A keys file's text (at most 1 MiB), or None when it is not a readable regular file.

    The user's links are followed, as sshd does, but to an O_PATH descriptor first: root's open
    of a device (a watchdog) or a FIFO (which frees a writer waiting for a reader) acts on it,
    so only a regular file is opened for reading."""
    try:
        found = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(found).st_mode):
            return None
        fd = os.open(f"/proc/self/fd/{found}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    finally:
        os.close(found)
    with os.fdopen(fd, "rb") as f:
        return f.read(KEYS_LIMIT).decode("utf-8", "replace")


def keys_problems(settings: Settings, entry: pwd.struct_passwd) -> list[Finding]:
    found = []
    for path in keys_files(settings, entry.pw_name, entry.pw_uid, entry.pw_dir):
        text = read_keys(path)
        if text is None or not user_writable(path, entry.pw_uid):
            continue
        if any(has_command_option(line) for line in text.splitlines()):
            found.append(problem(
                f"{entry.pw_name}: a command= key in {path}, which the user can rewrite from "
                "inside the container (dropping the restriction)",
                f"keep such keys in a root-owned file: `AuthorizedKeysFile "
                f"/etc/ssh/authorized_keys/%u` in a `Match Group {GROUP}` block"))
    return found


def member_problems(entry: pwd.struct_passwd) -> list[Finding]:
    """Everything unsafe in this member's own part of the chain."""
    try:
        settings = sshd_effective(entry.pw_name)
    except DockershError as exc:
        return [problem(exc.message, "fix the sshd config (sshd -t says where)")]
    found = [problem(f"sshd for {entry.pw_name}: {what}",
                     f"make /etc/ssh/sshd_config Include {SSHD_DROPIN} "
                     "before any setting it changes, and keep `Subsystem sftp "
                     "/usr/lib/openssh/sftp-server`")
             for what in sshd_problems(settings, pam_joins_container(sshd_pam_stack()))]
    shell = shell_problem(entry.pw_name, entry.pw_shell, settings)
    found += [shell] if shell else []
    return found + keys_problems(settings, entry)


def check_members(group: list[pwd.struct_passwd]) -> Findings:
    if not os.access(SSHD, os.X_OK):
        yield problem(f"{SSHD} is not installed", f"apt-get install openssh-server, then {INSTALL}")
        return
    wrong = root_file(SSHD_DROPIN, executable=False)
    if wrong is not None:
        yield problem(wrong, INSTALL)
    found = [finding for entry in group for finding in member_problems(entry)]
    yield from found
    if not found:
        yield OK, (f"{len(group)} member(s) of group {GROUP}: login shells, sshd's settings and "
                   "authorized keys keep the host out of reach")


# --- sudo ---------------------------------------------------------------------------------------


def env_keep(text: str) -> set[str] | None:
    """The names of the entry's env_keep list in the sudoers text, or None without env_reset."""
    rule = re.search(r"^Defaults!/opt/dockersh/sbin/dockersh\s+(.*)$", text, re.MULTILINE)
    if rule is None or not re.search(r"(^|[\s,])env_reset\b", rule.group(1)):
        return None
    keep = re.search(r'env_keep\s*=\s*"([^"]*)"', text)
    return set(keep.group(1).split()) if keep else set()


def check_sudo_env() -> Findings:
    try:
        names = env_keep(read_text(SUDOERS))
    except OSError as exc:
        yield problem(f"cannot read {SUDOERS} ({exc.strerror})", INSTALL)
        return
    if names is None:
        yield problem(f"{SUDOERS} does not reset the environment for the entry", INSTALL)
    elif names - ENV_KEEP:
        yield problem(f"{SUDOERS} passes {' '.join(sorted(names - ENV_KEEP))} to the "
                      "privileged side", INSTALL)
    else:
        yield OK, f"{SUDOERS} passes only the session's own variables"


#: NSS sources that work in sshd's jail: files, and systemd's (which falls back at once).
JAIL_NSS = {"files", "compat", "systemd"}


def jail_nss_problems(nsswitch: str) -> list[str]:
    """The databases sudo needs whose sources (sss, ldap, winbind: daemons behind sockets of
    /var or /run) are out of reach in sshd's jail, where SSH logins run sudo."""
    found = []
    for line in nsswitch.splitlines():
        database, _, sources = line.partition("#")[0].partition(":")
        names = {word for word in sources.split() if not word.startswith("[")}
        if (database.strip() in ("passwd", "group", "shadow", "initgroups", "sudoers")
                and names - JAIL_NSS):
            found.append(f"{database.strip()}: {' '.join(sorted(names - JAIL_NSS))}")
    return found


def directory_nss(path: str = "/etc/nsswitch.conf") -> str:
    """jail_nss_problems of the host's NSS config, joined ("" for none, or no such file): what
    makes install.sh turn sshd's jail off."""
    try:
        return "; ".join(jail_nss_problems(read_text(path)))
    except FileNotFoundError:
        return ""


def dropin_chroot(text: str) -> str:
    """The drop-in's ChrootDirectory ("none" without one)."""
    found = re.search(r"^\s*ChrootDirectory\s+(\S+)", text, re.MULTILINE | re.IGNORECASE)
    return found.group(1) if found else "none"


def check_jail_nss() -> Findings:
    try:
        found = directory_nss()
        jailed = dropin_chroot(read_text(SSHD_DROPIN)) == JAIL
    except OSError:
        return
    nojail = any(e.type == "session" and e.module == "pam_dockersh.so" and "nojail" in e.args
                 for e in sshd_pam_stack())
    if jailed and nojail:
        yield problem(f"{SSHD_DROPIN} chroots into {JAIL} but pam_dockersh.so in {PAM_SSHD} has "
                      "nojail: nothing builds the jail, so no login of group "
                      f"{GROUP} can run", INSTALL)
    elif jailed and found:
        yield WARN, (f"/etc/nsswitch.conf uses {found}: SSH logins of group {GROUP} run sudo "
                     f"in sshd's jail ({JAIL}), which has no sockets of those services, so "
                     "users known only there cannot log in; ./install.sh turns the jail off "
                     "on such a host (SECURITY.md, \"Forwarding\")")
    elif jailed:
        yield OK, "the users, groups and sudoers sudo needs are local (NSS works in sshd's jail)"
    else:
        yield OK, (f"sshd's jail is off ({SSHD_DROPIN}: no ChrootDirectory {JAIL}); unix-socket "
                   "forwards are off with it (checked with sshd's settings)")


def check_chain() -> Findings:
    """Every check of the host chain, in the order a login meets them."""
    group = members()
    yield from check_members(group)
    yield from check_pam_stack()
    yield from check_user_manager(group)
    yield from check_front()
    yield from check_sudo_env()
    yield from check_jail_nss()
