"""The entry point: who asked, for what, and one line on stderr when it can't be done."""

from __future__ import annotations

import os
import sys

from dockersh import __version__
from dockersh.errors import EXIT_ERROR, DockershError
from dockersh.login import identity, invocation, jail, rlimits
from dockersh.paths import GLOBAL_CONFIG, GROUP

USAGE = """\
usage: dockersh                      interactive login shell in your container
       dockersh -c COMMAND           run COMMAND with your container's shell
       dockersh --user NAME [-c CMD] NAME's session (root, or with NAME's password)
admin (root only):
       dockersh config check | config show USER
       dockersh ls [--json] | stop USER | restart USER | rm USER
       dockersh start USER... | start --group GROUP   their containers, ahead of logins
       dockersh gc [--idle DURATION] [--dry-run] [USER...] | pull [--all] | doctor
       dockersh sessions [USER] [--json] | replay SESSION [--speed N] | metrics
       dockersh enroll USER | unenroll USER
       dockersh web [--listen ADDR:PORT]  the HTTPS web terminal and API (foreground)
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
    login: dict[str, str] = {}  # run() fills it in as it learns whose login this is
    try:
        return run(argv, environ, login)
    except DockershError as exc:
        undisturbed()
        if debug:
            import traceback

            traceback.print_exc()
        print(f"dockersh: {exc.message}", file=sys.stderr, flush=True)
        log_error(f"uid={os.getuid()} sudo_uid={environ.get('SUDO_UID', '-')}: {exc.message}")
        audit_failure(login, exc, exc.message)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # fail closed: one line, a log record, never a host shell
        undisturbed()
        reason = f"internal error: {type(exc).__name__}: {exc}"
        if debug:
            audit_failure(login, exc, reason)
            raise
        print(f"dockersh: internal error ({type(exc).__name__}: {exc}); the administrator can "
              "see details with --debug", file=sys.stderr, flush=True)
        log_error(reason)
        audit_failure(login, exc, reason)
        return EXIT_ERROR


def undisturbed() -> None:
    """From here the failure is only reported: the terminal's Ctrl-C, Ctrl-\\ or Ctrl-Z (which
    the user may time to the line appearing) must not turn that into a traceback or lose the
    record."""
    import signal

    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)


def audit_failure(login: dict[str, str], exc: Exception, reason: str) -> None:
    """A login that did not reach its session leaves an audit record (for the metrics):
    "login-refused" when dockersh said no (DockershError), "login-error" when something failed
    (the engine's errors, internal errors). Only after the line on stderr, and never raising:
    a record that cannot be written must not hide why the login failed."""
    if "config" not in login:  # not a login (an admin verb, --help), or not as root
        return
    try:
        from dockersh.backend.base import EngineError
        from dockersh.login import audit

        refused = isinstance(exc, DockershError) and not isinstance(exc, EngineError)
        user = login.get("user") or None
        path, to_syslog = audit_settings(login["config"])
        # `--user NAME` by someone else: the record is NAME's, and says who asked.
        caller = {"caller_uid": int(login["caller"])} if login["caller"] != login["uid"] else {}
        audit.append(path, to_syslog, {
            "session": audit.session_id(user or "-", os.getpid()), "user": user,
            "uid": int(login["uid"]), **caller,
            "event": "login-refused" if refused else "login-error", "reason": reason})
    except Exception as failure:
        log_error(f"cannot write the audit record of a failed login: {failure}")


def audit_settings(config_path: str) -> tuple[str, bool]:
    """[audit] file and syslog of the global file (no other layer may set them); the defaults
    when it cannot be read, since its being broken may be why the login failed."""
    from dockersh.config import schema
    from dockersh.plan import pipeline

    try:
        audit = pipeline.global_config(config_path).audit
    except DockershError:
        audit = schema.AuditConfig()
    return audit.file, audit.syslog


def run(argv: list[str], environ: os._Environ[str], login: dict[str, str]) -> int:
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
    jail.leave()  # first: nothing of the host is in reach until then
    rlimits.reset()
    caller, _ = identity.caller_uid(environ)
    if caller != 0 and inv.privileged_options:
        raise DockershError(f"only root may use {inv.privileged_options[0]}")
    config_path = inv.config_path or GLOBAL_CONFIG
    if inv.verb:
        from dockersh.admin import verbs

        return verbs.run(inv.verb, config_path)
    login.update(config=config_path, uid=str(caller), caller=str(caller))
    if inv.user is not None:
        target = identity.by_name(inv.user)
        login.update(user=target.name, uid=str(target.uid))
        if caller not in (0, target.uid):
            from dockersh.login import auth

            auth.authenticate(target.name)
    elif caller == 0:
        raise DockershError("root has no dockersh container; use --user NAME")
    else:
        target = identity.by_uid(caller)
        login.update(user=target.name, uid=str(target.uid))
    if caller != 0 and GROUP not in target.group_names:
        raise DockershError(f"{target.name} is not in group {GROUP}; ask the administrator")
    from dockersh.login import session

    session.run(inv, target, environ, config_path)
