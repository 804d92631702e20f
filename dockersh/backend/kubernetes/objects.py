"""Kubernetes objects for a user's session: a pod and a claim for their home, as pure data.

The Kubernetes back end is written on paper (docs/KUBERNETES.md) and in these builders only: no
API server runs on the machines dockersh is tested on, so what can be checked without one is
checked here, the way KubeSpawner's ``objects.py`` is: the same ``ContainerSpec`` that the Docker
and Podman back ends apply becomes a Pod, a PersistentVolumeClaim, a ConfigMap (the generated
passwd and group) and, for ``network = "none"``, a NetworkPolicy, each asserted as an exact dict
in tests/unit/test_kubernetes_objects.py. What is left is the client calls (create, get, delete,
the exec subresource), mapped in docs/KUBERNETES.md.

Hardening is the same as with Docker, said in Kubernetes' words: the user's uid:gid and groups,
every capability dropped, no privilege escalation (no-new-privileges), the runtime's default
seccomp profile, no service account token, no host namespaces; ``shareProcessNamespace`` makes
the pod's pause container PID 1, which reaps orphans as Docker's ``--init`` does.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dockersh import __version__
from dockersh.errors import DockershError
from dockersh.labels import LABEL_HASH, LABEL_UID, LABEL_USER, LABEL_VERSION
from dockersh.login.identity import User
from dockersh.paths import EXEC_HELPER, STATE_DIR
from dockersh.plan.planner import ContainerSpec

#: Object names and label values: DNS-1123 labels (lower-case letters, digits and '-', at most
#: 63 characters, starting and ending with a letter or digit).
NAME_LIMIT = 63
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
#: The session container's name in the pod (``kubectl exec -c session``).
CONTAINER = "session"
PULL_POLICY = {"if-missing": "IfNotPresent", "always": "Always", "never": "Never"}
#: The annotation that keeps the user name exactly (label values cannot hold every name).
ANNOTATION_USER = "dockersh/user"


def escape(text: str) -> str:
    """Injective and valid inside a Kubernetes name: a-z and 0-9 as they are, every other byte
    (``-`` included) as ``-xx``. Two user names never give one object name."""
    return "".join(c if c in _SAFE else "".join(f"-{b:02x}" for b in c.encode()) for c in text)


def object_name(prefix: str, user: str) -> str:
    """``PREFIX-ESCAPED``, shortened with a hash of the whole when too long (the hash follows
    ``-h``, which ``escape`` never writes: its ``-`` is always followed by two hex digits)."""
    name = f"{prefix}-{escape(user)}"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[:NAME_LIMIT - 12].rstrip('-')}-h{digest}"


def pod_name(user: User) -> str:
    return object_name("dockersh", user.name)


def claim_name(user: User) -> str:
    """KubeSpawner's ``claim-{user}``: the home outlives every pod of the user."""
    return object_name("claim", user.name)


def identity_name(user: User) -> str:
    return object_name("dockersh-identity", user.name)


def labels(spec: ContainerSpec, user: User) -> dict[str, str]:
    """The same labels as on a Docker container, with the name escaped (a label value);
    ``ANNOTATION_USER`` keeps it exactly."""
    return {
        LABEL_USER: escape(user.name)[:NAME_LIMIT],
        LABEL_UID: str(user.uid),
        LABEL_HASH: spec.config_hash(),
        LABEL_VERSION: __version__,
    }


def cpu(nano_cpus: int) -> str:
    return f"{nano_cpus // 1_000_000}m"


def make_claim(user: User, *, namespace: str, size: str, storage_class: str = "") -> dict[str, Any]:
    """The home: ReadWriteOnce (one node at a time: the user's pod is where their home is)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim_name(user), "namespace": namespace,
                     "labels": {LABEL_USER: escape(user.name)[:NAME_LIMIT],
                                LABEL_UID: str(user.uid)},
                     "annotations": {ANNOTATION_USER: user.name}},
        "spec": spec,
    }


def make_identity(user: User, *, namespace: str, passwd: str, group: str) -> dict[str, Any]:
    """The generated passwd and group (lifecycle.ensure's merge of the image's files with the
    user), which Docker binds from /var/lib/dockersh: here a ConfigMap, mounted read-only."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": identity_name(user), "namespace": namespace,
                     "annotations": {ANNOTATION_USER: user.name}},
        "data": {"passwd": passwd, "group": group},
        "immutable": False,
    }


def _mounts(spec: ContainerSpec, user: User) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts): the home claim, the identity files, the tmpfs mounts. A host
    bind mount has no safe equivalent on a cluster (hostPath is the node's file system)."""
    state = f"{STATE_DIR}/{spec.name}/"
    volumes: list[dict[str, Any]] = [
        {"name": "home", "persistentVolumeClaim": {"claimName": claim_name(user)}},
        {"name": "identity", "configMap": {"name": identity_name(user)}},
    ]
    mounts: list[dict[str, Any]] = []
    for source, target, _ in spec.mounts:
        if source == user.home and target == user.home:
            mounts.append({"name": "home", "mountPath": target})
        elif source == EXEC_HELPER:  # docker mode's (handover.py): a pod's exec is the API's
            continue
        elif source.startswith(state):
            mounts.append({"name": "identity", "mountPath": target, "readOnly": True,
                           "subPath": source.removeprefix(state)})
        else:
            raise DockershError(f"[container] mounts: {source} is a host path; the Kubernetes "
                                "back end mounts only the home claim (use a claim of your own)")
    for index, (path, options) in enumerate(spec.tmpfs):
        volume: dict[str, Any] = {"medium": "Memory"}
        size = dict(o.split("=", 1) for o in options.split(",") if "=" in o).get("size")
        if size:
            volume["sizeLimit"] = size
        volumes.append({"name": f"tmpfs-{index}", "emptyDir": volume})
        mounts.append({"name": f"tmpfs-{index}", "mountPath": path})
    return volumes, mounts


def refuse_host_access(spec: ContainerSpec) -> None:
    """What the danger switch allows with Docker has no place in a pod built by dockersh."""
    asked = [what for what, on in (
        ("privileged", spec.privileged), ("devices", bool(spec.devices)),
        ('pid = "host"', spec.pid == "host"), ('ipc = "host"', spec.ipc == "host"),
        ('network = "host"', spec.network == "host"),
    ) if on]
    if asked:
        raise DockershError(f"[container] {asked[0]}: not supported by the Kubernetes back end")


def make_pod(spec: ContainerSpec, user: User, *, namespace: str, shell: str,
             node: str = "") -> dict[str, Any]:
    """The user's pod. ``node``: the node their home claim is bound to, once it is (sticky
    placement: a ReadWriteOnce volume can only be mounted there)."""
    refuse_host_access(spec)
    volumes, mounts = _mounts(spec, user)
    uid, gid = (int(part) for part in spec.user.split(":"))
    capabilities: dict[str, list[str]] = {"drop": ["ALL"]}
    if spec.cap_add:  # Docker's default set only, without the danger switch: the bounding set
        capabilities["add"] = list(spec.cap_add)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": PULL_POLICY[spec.pull],
        "command": list(spec.command),
        "workingDir": spec.working_dir,
        "env": [{"name": k, "value": v} for k, v in spec.environment],
        "resources": {"limits": {"memory": str(spec.memory), "cpu": cpu(spec.nano_cpus)},
                      "requests": {"memory": str(spec.memory), "cpu": cpu(spec.nano_cpus)}},
        "securityContext": {
            "runAsUser": uid, "runAsGroup": gid, "runAsNonRoot": True,
            "allowPrivilegeEscalation": False, "privileged": False,
            "capabilities": capabilities,
            "readOnlyRootFilesystem": spec.read_only,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        "hostname": spec.hostname,
        "containers": [container],
        "volumes": volumes,
        "securityContext": {"supplementalGroups": list(spec.group_add), "fsGroup": gid},
        "shareProcessNamespace": True,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False, "hostPID": False, "hostIPC": False,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 10,
    }
    if spec.runtime:
        pod_spec["runtimeClassName"] = spec.runtime
    if node:
        pod_spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name(user), "namespace": namespace,
                     "labels": labels(spec, user),
                     "annotations": {ANNOTATION_USER: user.name, "dockersh/shell": shell}},
        "spec": pod_spec,
    }


def make_isolation(user: User, *, namespace: str) -> dict[str, Any]:
    """``network = "none"``: a NetworkPolicy that lets nothing in or out of the user's pod
    (the pod keeps its loopback)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": object_name("dockersh-none", user.name), "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {LABEL_USER: escape(user.name)[:NAME_LIMIT],
                                                 LABEL_UID: str(user.uid)}},
                 "policyTypes": ["Ingress", "Egress"]},
    }


def exec_query(argv: list[str], tty: bool) -> list[tuple[str, str]]:
    """The query of ``POST /api/v1/namespaces/NS/pods/NAME/exec`` (websocket,
    ``v4.channel.k8s.io``: 0 stdin, 1 stdout, 2 stderr, 3 the status, 4 resizes)."""
    return [("container", CONTAINER), *(("command", arg) for arg in argv),
            ("stdin", "true"), ("stdout", "true"), ("stderr", str(not tty).lower()),
            ("tty", str(tty).lower())]


def resize_message(rows: int, cols: int) -> bytes:
    """A window size on channel 4: its channel byte, then JSON."""
    return b"\x04" + f'{{"Width":{cols},"Height":{rows}}}'.encode()


def exit_status(status: dict[str, Any]) -> int:
    """The command's exit code from the channel-3 Status that ends an exec."""
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    raise DockershError(f"the session ended: {status.get('message') or 'the exec failed'}")
