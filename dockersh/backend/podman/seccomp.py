"""The seccomp profile of Podman containers: Podman's own, with Docker's rules for namespaces,
mounts and the kernel keyring.

Podman's default profile allows ``unshare``, ``setns``, ``mount`` and friends to every process
and leaves it to capabilities to refuse them; but making a user namespace needs no capability,
and inside one a user holds them all (the kernel's largest attack surface for an unprivileged
user). Docker's profile allows these only with CAP_SYS_ADMIN, which a dockersh container never
has (it needs the danger switch). So does this one: they fail with EPERM, ``clone`` only with
namespace flags, ``clone3`` with ENOSYS (so that libc falls back to ``clone``), as under Docker.
"""

from __future__ import annotations

import json

from dockersh import statefiles
from dockersh.errors import DockershError
from dockersh.paths import PODMAN_SECCOMP

#: Podman's default profile, where ``podman info`` does not say.
DEFAULT_SOURCE = "/usr/share/containers/seccomp.json"
#: Allowed by Podman to everyone; by Docker only with CAP_SYS_ADMIN (or never: keyctl).
RESTRICTED = frozenset({
    "clone", "clone3", "fsconfig", "fsmount", "fsopen", "fspick", "keyctl", "mount",
    "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "pivot_root", "setns",
    "syslog", "umount", "umount2", "unshare",
})
#: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: Docker's mask for clone's flags.
CLONE_NAMESPACES = 0x7E020000
EPERM, ENOSYS = 1, 38


def restricted(profile: dict[str, object]) -> dict[str, object]:
    """``profile`` (Podman's JSON format) without RESTRICTED in its rules, and Docker's rules
    for them."""
    rules = []
    for rule in profile.get("syscalls") or []:  # type: ignore[attr-defined]
        names = [n for n in rule.get("names") or [] if n not in RESTRICTED]
        if names:
            rules.append({**rule, "names": names})
    mask = {"value": CLONE_NAMESPACES, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    rules += [
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, **mask}],
         "excludes": {"arches": ["s390", "s390x"]}},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, **mask}],
         "includes": {"arches": ["s390", "s390x"]}},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
        {"names": sorted(RESTRICTED - {"clone", "clone3"}), "action": "SCMP_ACT_ERRNO",
         "errnoRet": EPERM},
    ]
    return {**profile, "syscalls": rules}


def profile(source: str | None) -> str:
    """Write the profile made from Podman's at ``source`` (root's file, which Podman reads when
    it creates a container); its path."""
    path = source or DEFAULT_SOURCE
    try:
        with open(path) as f:
            podman = json.load(f)
    except (OSError, ValueError) as exc:
        raise DockershError(f"cannot read Podman's seccomp profile {path}: {exc}") from None
    statefiles.write(PODMAN_SECCOMP, json.dumps(restricted(podman)).encode(), 0o600)
    return PODMAN_SECCOMP
