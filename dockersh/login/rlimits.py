"""Resource limits of the privileged side, reset at entry.

sudo hands the root process the limits of whoever ran the front, and those are the user's to
set: ``ulimit -f 1`` before the login would make every audit write fail, ``ulimit -n 3`` or
``-v`` would break the monitor at a moment the user chooses. Before anything is written, each
limit goes back up: to unlimited (the engine's default for docker exec too), or where that is
not the right value, to a floor. A hard limit the user lowered can only be raised with
CAP_SYS_RESOURCE; without it the soft limit goes up to the hard one, and a file size limit that
stays is refused in one line (audit records and state files would be cut short).
"""

from __future__ import annotations

import resource

from dockersh.errors import DockershError

INFINITY = resource.RLIM_INFINITY

#: Each limit the monitor could trip over, and the value it needs (None: unlimited). Open
#: files and the stack get a floor: a session entered by nsenter inherits them, and a million
#: open files or an unlimited stack changes how programs behave. RLIMIT_CORE goes the other way:
#: see reset().
FLOORS: dict[int, int | None] = {
    resource.RLIMIT_CPU: None, resource.RLIMIT_FSIZE: None, resource.RLIMIT_DATA: None,
    resource.RLIMIT_AS: None, resource.RLIMIT_NPROC: None, resource.RLIMIT_MEMLOCK: None,
    resource.RLIMIT_SIGPENDING: None, resource.RLIMIT_MSGQUEUE: None,
    resource.RLIMIT_STACK: 8 << 20, resource.RLIMIT_NOFILE: 1024,
}


def reset() -> None:
    """The limits the monitor needs; and no core dump of it. With the user's `ulimit -c
    unlimited`, a SIGQUIT (Ctrl-\\ before the handoff) would have the kernel write root's
    memory as a root-owned file named ``core`` into the caller's working directory (replacing
    one that is there: the 2006 prctl/cron shape). The soft limit goes to 0, Linux's default;
    the hard one stays."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if soft != 0:
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    for limit, floor in FLOORS.items():
        soft, hard = resource.getrlimit(limit)
        want = INFINITY if floor is None else floor
        if soft == INFINITY or (want != INFINITY and soft >= want):
            continue
        try:
            resource.setrlimit(limit, (want, want if below(hard, want) else hard))
        except (OSError, ValueError):  # no CAP_SYS_RESOURCE: as far as the hard limit goes
            if limit == resource.RLIMIT_FSIZE:  # every file written would be cut short
                raise DockershError(f"the file size limit (ulimit -f) is {hard} bytes and "
                                    "cannot be raised here; log in without it") from None
            resource.setrlimit(limit, (hard, hard))


def below(limit: int, want: int) -> bool:
    return limit != INFINITY and (want == INFINITY or limit < want)
