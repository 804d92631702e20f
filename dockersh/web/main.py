"""``dockersh web [--listen ADDR:PORT]``: start the root broker and the unprivileged server.

Root reads the config, binds the port, loads the certificate and key (both may be root-only),
then forks: the child drops to the ``[web] user`` account (no groups, no-new-privileges) and
serves HTTPS with what it inherited; the parent stays as the broker. Either ending ends both.
"""

from __future__ import annotations

import ctypes
import ipaddress
import math
import os
import pwd
import signal
import socket
import ssl

from dockersh.config import schema
from dockersh.errors import DockershError
from dockersh.plan import pipeline
from dockersh.web import channel
from dockersh.web.broker import Broker
from dockersh.web.durations import seconds
from dockersh.web.limiter import Limiter

PR_SET_NO_NEW_PRIVS = 38


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not sep or not 0 < number < 65536:
        raise DockershError(f"bad listen address {text!r} (write e.g. 127.0.0.1:8022 or "
                            "[::]:8022)", status=2)
    return host, number


def tls_context(certificate: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise DockershError(f"[web] cannot load the certificate {certificate} and key {key}: "
                            f"{exc} (install.sh makes a self-signed pair there)") from None
    return context


def drop_privileges(account: pwd.struct_passwd) -> None:
    os.setgroups([])
    os.setresgid(account.pw_gid, account.pw_gid, account.pw_gid)
    os.setresuid(account.pw_uid, account.pw_uid, account.pw_uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise OSError("could not drop root")


def run(config_path: str, listen: str | None) -> int:
    try:
        from dockersh.web import server
    except ImportError as exc:  # aiohttp is the optional extra "web"
        raise DockershError(f"dockersh web needs aiohttp ({exc}); run install.sh") from None
    base, _, _ = schema.validate_global(pipeline.read_global(config_path), config_path)
    web = schema.build(schema.merge([base])).web
    host, port = parse_listen(listen or web.listen)
    try:
        account = pwd.getpwnam(web.user)
    except KeyError:
        raise DockershError(f"[web] user {web.user!r} does not exist; run install.sh") from None
    if account.pw_uid == 0:
        raise DockershError(f"[web] user {web.user!r} is root; it must be an unprivileged account")
    context = tls_context(web.certificate, web.key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise DockershError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    ours, theirs = channel.pair()
    pid = os.fork()
    if pid == 0:  # the server
        ours.close()
        status = 0
        try:
            drop_privileges(account)
            server.serve(listener, context, theirs, web)
        except BaseException as exc:
            print(f"dockersh: web server: {exc}", flush=True)
            status = 1
        os._exit(status)
    theirs.close()
    listener.close()
    # Stopping the broker stops the server; the server's end closing stops the broker.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: os.kill(pid, signal.SIGTERM))
    print(f"dockersh web: https://{host}:{port}/ (server uid {account.pw_uid}, broker pid "
          f"{os.getpid()})", flush=True)
    limiter = Limiter(web.max_failures, seconds(web.failure_window), seconds(web.lockout))
    Broker(ours, limiter, seconds(web.session_timeout, math.inf), (host, port),
           config_path).serve()
    _, status = os.waitpid(pid, 0)
    return 0 if os.waitstatus_to_exitcode(status) in (0, -signal.SIGTERM) else 1
