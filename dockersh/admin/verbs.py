"""Root-only admin verbs: argument parsing and dispatch (the work is in ops, pulling, doctor).

cli.py lets only root reach this module (invocation makes a verb a privileged option).
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import subprocess
from collections.abc import Callable
from typing import NoReturn

from dockersh.config import units
from dockersh.errors import DockershError
from dockersh.login import identity
from dockersh.paths import FRONT, GPASSWD, GROUP, NOLOGIN, USERMOD


class Parser(argparse.ArgumentParser):
    """argparse, failing the dockersh way: one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        usage = self.format_usage().strip().removeprefix("usage: ")
        raise DockershError(f"{message} (usage: {usage})", status=2)


def duration(text: str) -> int:
    seconds = units.parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (write e.g. 30m, 12h, 7d)")
    return seconds


Handler = Callable[[argparse.Namespace, str], int]


def verb_ls(p: Parser) -> Handler:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    from dockersh.admin import ops

    return lambda a, path: ops.ls(path, a.json)


def verb_stop(p: Parser) -> Handler:
    p.add_argument("user")
    from dockersh.admin import ops

    return lambda a, path: ops.stop(path, a.user)


def verb_start(p: Parser) -> Handler:
    p.add_argument("users", nargs="*", metavar="user")
    p.add_argument("--group", help="also every account whose groups include GROUP")
    from dockersh.admin import ops

    def handle(a: argparse.Namespace, path: str) -> int:
        names = list(a.users) + (accounts_in(a.group) if a.group else [])
        if not names:
            p.error("name a user or --group")
        return ops.start(path, names)

    return handle


def accounts_in(group: str) -> list[str]:
    """The group's members and the accounts whose primary group it is."""
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        raise DockershError(f"no such group: {group!r}") from None
    primary = {p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid}
    return sorted(set(entry.gr_mem) | primary)


def verb_restart(p: Parser) -> Handler:
    p.add_argument("user")
    from dockersh.admin import ops

    return lambda a, path: ops.restart(path, a.user)


def verb_rm(p: Parser) -> Handler:
    p.add_argument("user")
    from dockersh.admin import ops

    return lambda a, path: ops.rm(path, a.user)


def verb_gc(p: Parser) -> Handler:
    p.add_argument("--idle", type=duration, metavar="DURATION",
                   help="idle longer than this (0: any idle container); default: each "
                        "user's [session] idle_timeout")
    p.add_argument("--dry-run", action="store_true", help="say what would be done")
    p.add_argument("users", nargs="*", metavar="USER", help="only these users' containers")
    from dockersh.admin import ops

    return lambda a, path: ops.gc(path, a.idle, a.dry_run, a.users)


def verb_pull(p: Parser) -> Handler:
    p.add_argument("--all", action="store_true",
                   help="also the images of [groups], [users] and [user_config] images")
    from dockersh.admin import ops

    return lambda a, path: ops.pull(path, a.all)


def verb_doctor(p: Parser) -> Handler:
    from dockersh.admin import doctor

    return lambda a, path: doctor.run(path)


def verb_enroll(p: Parser) -> Handler:
    p.add_argument("user")
    return lambda a, path: enroll(a.user)


def verb_unenroll(p: Parser) -> Handler:
    p.add_argument("user")
    p.add_argument("--shell", default=NOLOGIN,
                   help=f"the login shell to set (default {NOLOGIN})")
    return lambda a, path: unenroll(a.user, a.shell)


def verb_web(p: Parser) -> Handler:
    p.add_argument("--listen", metavar="ADDR:PORT", help="instead of [web] listen")

    from dockersh.web import main

    return lambda a, path: main.run(path, a.listen)


def verb_sessions(p: Parser) -> Handler:
    p.add_argument("user", nargs="?", help="only this user's sessions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    from dockersh.admin import sessions

    return lambda a, path: sessions.run(path, a.user, a.json)


def verb_replay(p: Parser) -> Handler:
    p.add_argument("session", help="a session's name, as `dockersh sessions` lists it")
    p.add_argument("--speed", type=float, default=1.0, metavar="N",
                   help="play N times as fast (default 1)")
    p.add_argument("--idle-limit", type=float, metavar="SECONDS",
                   help="no pause longer than this (default: the recording's idle_time_limit)")
    p.add_argument("--raw", action="store_true",
                   help="write the output unfiltered, its terminal queries, clipboard writes "
                        "and mouse modes included: dangerous, the terminal's answers can reach "
                        "your shell")
    from dockersh.admin import replay

    return lambda a, path: replay.run(path, a.session, a.speed, a.idle_limit, a.raw)


def verb_metrics(p: Parser) -> Handler:
    from dockersh.admin import metrics

    return lambda a, path: metrics.run(path)


def verb_netns(p: Parser) -> Handler:
    p.add_argument("user")
    from dockersh.login import forwarding

    return lambda a, path: forwarding.run(a.user, path)


VERBS: dict[str, Callable[[Parser], Handler]] = {
    "ls": verb_ls, "start": verb_start, "stop": verb_stop, "restart": verb_restart, "rm": verb_rm,
    "gc": verb_gc, "pull": verb_pull, "doctor": verb_doctor, "enroll": verb_enroll,
    "unenroll": verb_unenroll,
    "web": verb_web, "sessions": verb_sessions, "replay": verb_replay, "metrics": verb_metrics,
    "netns": verb_netns,
}


def run(verb: tuple[str, ...], config_path: str) -> int:
    name, args = verb[0], list(verb[1:])
    if name == "config":
        from dockersh.admin import configverb

        return configverb.run(args, config_path)
    if name not in VERBS:
        raise DockershError(f"unknown admin verb {name!r} (see dockersh --help)", status=2)
    parser = Parser(prog=f"dockersh {name}")
    handler = VERBS[name](parser)
    return handler(parser.parse_args(args), config_path)


# --- enroll, unenroll -----------------------------------------------------------------------------


def tool(argv: list[str]) -> None:
    """Run an account tool (usermod, gpasswd); its complaint becomes the error."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise DockershError(f"{os.path.basename(argv[0])} failed: {said}")


def group_members() -> list[str]:
    try:
        return list(grp.getgrnam(GROUP).gr_mem)
    except KeyError:
        raise DockershError(f"there is no group {GROUP}; run install.sh (or "
                            f"groupadd --system {GROUP})") from None


def enroll(name: str) -> int:
    """Make dockersh the user's login shell and put them in the group."""
    user = identity.by_name(name)
    if user.uid == 0:
        raise DockershError("root cannot be enrolled: root has no dockersh container")
    was_member = GROUP in user.group_names
    group_members()
    tool([USERMOD, "--shell", FRONT, "--append", "--groups", GROUP, user.name])
    # sshd's Match Group blocks apply only once the account is in the group: ask it now, and
    # take the enrollment back when the account's chain lets the host be reached.
    from dockersh.admin import hostchain

    found = hostchain.member_problems(pwd.getpwnam(user.name))
    if found:
        tool([USERMOD, "--shell", user.shell, user.name])
        if not was_member:
            tool([GPASSWD, "--delete", user.name, GROUP])
        raise DockershError(f"did not enroll {user.name}: {found[0][1]}")
    print(f"enrolled {user.name}: login shell {FRONT}, group {GROUP}")
    return 0


def unenroll(name: str, shell: str) -> int:
    """Leave the group; the login shell becomes ``shell`` (nologin unless told otherwise: an
    account that only ever had a container should not get a host shell by accident)."""
    user = identity.by_name(name)
    if not shell.startswith("/") or not os.access(shell, os.X_OK):
        raise DockershError(f"--shell {shell!r} is not an executable absolute path")
    if user.name in group_members() or GROUP in user.group_names:
        tool([GPASSWD, "--delete", user.name, GROUP])
    tool([USERMOD, "--shell", shell, user.name])
    print(f"unenrolled {user.name}: login shell {shell}, not in group {GROUP}; their container "
          f"is kept (`dockersh rm {user.name}` removes it)")
    return 0
