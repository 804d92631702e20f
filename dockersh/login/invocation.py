"""How dockersh was called: argv and the SSH session's variables turned into one Invocation.

Pure and cheap (it runs on every login). The rule that keeps it safe: options are read only up to
``-c``; the string after ``-c`` and everything behind it is data for the container's shell.
"""

from __future__ import annotations

from dockersh.errors import DockershError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

#: Admin verbs: the first argument, when it is one of these, names a root-only action.
VERBS = frozenset({
    "config", "ls", "start", "stop", "restart", "rm", "gc", "pull", "doctor", "enroll", "unenroll",
    "web", "sessions", "replay", "metrics",
    "netns",  # pam_dockersh.so's: ready the container, send its network namespace
})

#: Options with a value, and the Invocation field each sets.
OPTIONS = {"--user": "user", "--target": "target", "--config": "config_path"}

#: ``-c`` strings that mean "dockersh was set as the forced command" (sshd runs ForceCommand and
#: authorized_keys command= through the login shell as ``SHELL -c FORCED``).
SELF_NAMES = frozenset({"dockersh", "/usr/local/bin/dockersh"})


class Invocation:
    """What to do. ``command`` None means an interactive login shell."""

    __slots__ = ("args", "command", "config_path", "debug", "forced", "help", "target", "user",
                 "verb", "version")

    def __init__(
        self,
        *,
        verb: tuple[str, ...] = (),
        command: str | None = None,
        args: tuple[str, ...] = (),
        user: str | None = None,
        target: str | None = None,
        config_path: str | None = None,
        debug: bool = False,
        forced: bool = False,
        help: bool = False,
        version: bool = False,
    ) -> None:
        self.verb, self.command, self.args, self.user = verb, command, args, user
        self.target = target
        self.config_path, self.debug, self.forced = config_path, debug, forced
        self.help, self.version = help, version

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Invocation) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"Invocation({fields})"

    @property
    def privileged_options(self) -> list[str]:
        """Options only root may give: they change identity, config or what is revealed."""
        found = []
        if self.verb:
            found.append(self.verb[0])
        if self.config_path is not None:
            found.append("--config")
        if self.target is not None:
            found.append("--target")
        if self.debug:
            found.append("--debug")
        return found


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> Invocation:
    """Read argv (argv[0] included) the way a login shell must."""
    rest = list(argv[1:])
    opts: dict[str, Any] = {}
    command: str | None = None
    args: tuple[str, ...] = ()
    while rest:
        arg = rest.pop(0)
        if arg == "-c":
            if not rest:
                raise DockershError("-c needs a command string", status=2)
            command, args = rest[0], tuple(rest[1:])
            break
        if arg in ("-l", "--login"):
            continue
        if arg in ("-h", "--help"):
            opts["help"] = True
        elif arg == "--version":
            opts["version"] = True
        elif arg == "--debug":
            opts["debug"] = True
        elif arg in OPTIONS or arg.startswith(tuple(f"{o}=" for o in OPTIONS)):
            key, _, value = arg.partition("=")
            if not value:
                if not rest:
                    raise DockershError(f"{key} needs a value", status=2)
                value = rest.pop(0)
            opts[OPTIONS[key]] = value
        elif arg in VERBS and command is None and "user" not in opts:
            opts["verb"] = (arg, *rest)
            break
        else:
            raise DockershError(f"unknown option {arg!r} (see dockersh --help)", status=2)
    forced = False
    if command is not None and command.strip() in SELF_NAMES and not args:
        command, forced = None, True
    if command is None and not opts.get("verb"):
        original = environ.get("SSH_ORIGINAL_COMMAND")
        if original is not None:
            command, forced = original, True
    return Invocation(command=command, args=args, forced=forced, **opts)
