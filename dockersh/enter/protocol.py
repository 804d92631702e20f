"""The spare's protocol: what a login and a container's spare say to each other (spare.py holds
both ends). No imports: the login path reads it.

SOCK_SEQPACKET, one message each:
1. login → spare: the request, ``marshal.dumps(((VERSION, uid, gid, sorted groups), argv, env,
   home))``
2. spare → login: ``READY``, or ``NOT_MINE`` (the spare was built for other ids: it retires)
3. login → spare: ``GO``, with the login's fds 0-2 (SCM_RIGHTS); from here the command may run
4. spare → login: ``STARTED`` (it forked the session), or ``FORK_FAILED`` (nothing runs)
5. login → spare, any number of times: ``KILL`` + the signal number (a hangup to pass on)
6. spare → login: ``EXITED`` + the session's wait status, in decimal
A login that goes away leaves its session a SIGHUP, as a closed SSH channel would.
"""

#: 2: a terminal login's fds are the container's pty, which the session takes as its terminal.
VERSION = 2
READY = b"R"
NOT_MINE = b"N"
GO = b"G"
STARTED = b"S"
FORK_FAILED = b"E"
KILL = b"K"
EXITED = b"X"
#: The longest request a spare reads (argv and environment included).
MAX_REQUEST = 1 << 20
#: The longest of the other messages.
MAX_MESSAGE = 64


def kill(signum: int) -> bytes:
    return KILL + b"%d" % signum


def exited(wait_status: int) -> bytes:
    return EXITED + b"%d" % wait_status


def number(message: bytes) -> int:
    """The number after a ``KILL`` or ``EXITED`` tag (ValueError when there is none)."""
    return int(message[1:])
