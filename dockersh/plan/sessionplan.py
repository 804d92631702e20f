"""The session plan: what a login needs besides the container spec, by name.

Made by the planner, cached between logins (plan/cache.py marshals ``values()``: builtins only,
and the cache key includes this file, so a cached tuple always has this layout), read by the
login path (session, handoff, audit, nsenter, lifecycle). A plain class with ``__slots__``: the
warm login path imports it and cannot afford typing or dataclasses.
"""

from __future__ import annotations

FIELDS = ("name", "hash", "image", "user", "uid", "gid", "groups", "home", "env", "env_pass",
          "exec", "spare", "forwarding", "forward_agent", "banner", "backend", "engine_host",
          "lock_timeout", "audit_file", "audit_syslog", "warnings", "target", "lifetime",
          "key_targets", "record")


class SessionPlan:
    __slots__ = FIELDS

    def __init__(self, *, name: str, hash: str, image: str, user: str, uid: int, gid: int,
                 groups: list[int], home: str, env: list[tuple[str, str]], env_pass: list[str],
                 exec: str, spare: bool, forwarding: bool, forward_agent: bool, banner: str,
                 backend: str, engine_host: str, lock_timeout: int, audit_file: str,
                 audit_syslog: bool,
                 warnings: list[str], target: dict[str, object] | None = None,
                 lifetime: str = "persistent",
                 key_targets: list[tuple[str, dict[str, object]]] | None = None,
                 record: dict[str, object] | None = None) -> None:
        self.name = name  # the container's
        self.hash = hash  # the container spec's config hash: another one means "recreate"
        self.image = image
        self.user = user
        self.uid = uid
        self.gid = gid
        self.groups = groups  # every gid of the user, the primary one included
        self.home = home
        self.env = env  # the session's fixed variables, in order
        self.env_pass = env_pass  # patterns of the client's variables let through
        self.exec = exec  # "docker" or "nsenter"
        self.spare = spare
        self.forwarding = forwarding  # sshd joins the container's network (pam_dockersh.so)
        self.forward_agent = forward_agent  # ssh -A relayed into the container
        self.banner = banner
        self.backend = backend  # [engine] backend
        self.engine_host = engine_host  # where that engine listens
        self.lock_timeout = lock_timeout  # seconds
        self.audit_file = audit_file
        self.audit_syslog = audit_syslog
        self.warnings = warnings  # about the user's own file: said at every login
        #: the [targets.NAME] the user lands in instead of their own container ({}: none), as
        #: planner.target_entry gives it; a target session's own plan carries its entry too
        self.target = target or {}
        self.lifetime = lifetime  # "session": a container of its own for each session
        #: (key fingerprint, target entry): a login with that key lands in that target
        self.key_targets = key_targets or []
        #: {} when the session is not recorded, else what login/recording.py needs: "dir",
        #: "input", "streams", "max_size" and "min_free" (bytes), "banner"
        self.record = record or {}

    def to_target(self) -> bool:
        """Sessions (all, or those of some keys) land in a target: an existing container."""
        return bool(self.target or self.key_targets)

    def in_own_container(self) -> bool:
        """Every session goes to the user's own persistent container (not to a target, not to
        a container of its own): the one forwarding joins and `dockersh start` readies."""
        return not self.to_target() and self.lifetime == "persistent"

    def values(self) -> tuple[object, ...]:
        """The plan as builtins, in FIELDS order (for marshal)."""
        return tuple(getattr(self, field) for field in FIELDS)

    @classmethod
    def from_values(cls, values: object) -> SessionPlan | None:
        """What ``values`` gave, or None when ``values`` has another shape."""
        if not isinstance(values, tuple) or len(values) != len(FIELDS):
            return None
        plan = cls.__new__(cls)
        for field, value in zip(FIELDS, values, strict=True):
            setattr(plan, field, value)
        return plan

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionPlan) and self.values() == other.values()

    __hash__ = None  # type: ignore[assignment]  # mutable (warnings are added): no hash

    def __repr__(self) -> str:
        return "SessionPlan(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in FIELDS) + ")"
