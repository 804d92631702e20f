"""The entry point: who asked, for what, and one line on stderr when it can't be done."""

from __future__ import annotations

import os
import sys

from dockersh import __version__
from dockersh.errors import EXIT_ERROR, DockershError
from dockersh.login import identity, invocation, rlimits
from dockersh.paths import GLOBAL_CONFIG, GROUP

USAGE = """\
usage: dockersh                      interactive login shell in your container
       dockersh -c COMMAND           run COMMAND with your container's shell
       dockersh --user NAME [-c CMD] NAME's session (root, or with NAME's password)
admin (root only):
       dockersh config check | config show USER
       dockersh ls [--json] | stop USER | restart USER | rm USER
       dockersh gc [--idle DURATION] [--dry-run] [USER...] | pull [--all] | doctor
       dockersh enroll USER | unenroll USER
options (root only): --config PATH, --debug (tracebacks)
"""


def log_error(message: str) -> None:
    import syslog

    syslog.openlog("dockersh", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
    syslog.syslog(syslog.LOG_ERR, message)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    environ = os.environ
    debug = "--debug" in argv[1:] and os.getuid() == 0 and "SUDO_UID" not in environ
    try:
        return run(argv, environ)
    except DockershError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"dockersh: {exc.message}", file=sys.stderr, flush=True)
        log_error(f"uid={os.getuid()} sudo_uid={environ.get('SUDO_UID', '-')}: {exc.message}")
        return exc.status
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # fail closed: one line, a log record, never a host shell
        if debug:
            raise
        print(f"dockersh: internal error ({type(exc).__name__}: {exc}); the administrator can "
              "see details with --debug", file=sys.stderr, flush=True)
        log_error(f"internal error: {type(exc).__name__}: {exc}")
        return EXIT_ERROR


def run(argv: list[str], environ: os._Environ[str]) -> int:
    inv = invocation.parse(argv, environ)
    if inv.help:
        print(USAGE, end="")
        return 0
    if inv.version:
        print(f"dockersh {__version__}")
        return 0
    if os.geteuid() != 0:
        raise DockershError("the privileged part must run as root; log in or run "
                            "/usr/local/bin/dockersh, which goes through sudo")
    rlimits.reset()
    caller, _ = identity.caller_uid(environ)
    if caller != 0 and inv.privileged_options:
        raise DockershError(f"only root may use {inv.privileged_options[0]}")
    config_path = inv.config_path or GLOBAL_CONFIG
    if inv.verb:
        from dockersh.admin import verbs

        return verbs.run(inv.verb, config_path)
    if inv.user is not None:
        target = identity.by_name(inv.user)
        if caller not in (0, target.uid):
            from dockersh.login import auth

            auth.authenticate(target.name)
    elif caller == 0:
        raise DockershError("root has no dockersh container; use --user NAME")
    else:
        target = identity.by_uid(caller)
    if caller != 0 and GROUP not in target.group_names:
        raise DockershError(f"{target.name} is not in group {GROUP}; ask the administrator")
    from dockersh.login import session

    session.run(inv, target, environ, config_path)
