"""The Kubernetes back end's objects, asserted exactly (as KubeSpawner's tests/test_objects.py
does): the spec the Docker back end applies, said as a Pod, a claim, a ConfigMap, a policy."""

from __future__ import annotations

import pytest

from dockersh.backend.kubernetes import objects
from dockersh.config import schema
from dockersh.errors import DockershError
from dockersh.login.identity import User
from dockersh.plan import planner

ALICE = User("alice", 1001, 1001, "/home/alice", "/usr/local/bin/dockersh", "Alice A",
             (("alice", 1001), ("dockersh", 995), ("staff", 50)))


def spec(text: str = "", user: User = ALICE) -> planner.ContainerSpec:
    data = schema.parse_toml(text, "g")
    layers, _ = schema.global_layers(data, "g", user.name, user.group_names)
    return planner.make(schema.build(schema.merge(layers)), user, "host1").spec


def test_default_pod() -> None:
    s = spec()
    assert objects.make_pod(s, ALICE, namespace="dockersh", shell="/bin/bash") == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "dockersh-alice",
            "namespace": "dockersh",
            "labels": {"dockersh.user": "alice", "dockersh.uid": "1001",
                       "dockersh.config-hash": s.config_hash(), "dockersh.version": "0.1.0"},
            "annotations": {"dockersh/user": "alice", "dockersh/shell": "/bin/bash"},
        },
        "spec": {
            "hostname": "host1",
            "containers": [{
                "name": "session",
                "image": "dockersh-session:latest",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"],
                "workingDir": "/home/alice",
                "env": [],
                "resources": {"limits": {"memory": str(2 * 1024**3), "cpu": "1000m"},
                              "requests": {"memory": str(2 * 1024**3), "cpu": "1000m"}},
                "securityContext": {
                    "runAsUser": 1001, "runAsGroup": 1001, "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False, "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": False,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": [
                    {"name": "home", "mountPath": "/home/alice"},
                    {"name": "identity", "mountPath": "/etc/passwd", "readOnly": True,
                     "subPath": "passwd"},
                    {"name": "identity", "mountPath": "/etc/group", "readOnly": True,
                     "subPath": "group"},
                ],
            }],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
                {"name": "identity", "configMap": {"name": "dockersh-identity-alice"}},
            ],
            "securityContext": {"supplementalGroups": [995, 50], "fsGroup": 1001},
            "shareProcessNamespace": True,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostNetwork": False, "hostPID": False, "hostIPC": False,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 10,
        },
    }


def test_pod_with_limits_tmpfs_runtime_caps_and_a_bound_node() -> None:
    s = spec('[container]\nmemory = "512m"\ncpus = 0.5\ntmpfs = ["/tmp:size=64m", "/run"]\n'
             'runtime = "gvisor"\ncap_add = ["NET_BIND_SERVICE"]\npull = "always"\n'
             'read_only = true\nenv = { EDITOR = "vi" }\n')
    pod = objects.make_pod(s, ALICE, namespace="ns", shell="/bin/sh", node="node-7")
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"memory": str(512 * 1024**2), "cpu": "500m"}
    assert container["imagePullPolicy"] == "Always"
    assert container["env"] == [{"name": "EDITOR", "value": "vi"}]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"],
                                                            "add": ["NET_BIND_SERVICE"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["volumeMounts"][-2:] == [{"name": "tmpfs-0", "mountPath": "/tmp"},
                                              {"name": "tmpfs-1", "mountPath": "/run"}]
    assert pod["spec"]["volumes"][-2:] == [
        {"name": "tmpfs-0", "emptyDir": {"medium": "Memory", "sizeLimit": "64m"}},
        {"name": "tmpfs-1", "emptyDir": {"medium": "Memory"}},
    ]
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert pod["spec"]["nodeName"] == "node-7"


def test_claim() -> None:
    assert objects.make_claim(ALICE, namespace="ns", size="10Gi", storage_class="fast") == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "claim-alice", "namespace": "ns",
                     "labels": {"dockersh.user": "alice", "dockersh.uid": "1001"},
                     "annotations": {"dockersh/user": "alice"}},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "10Gi"}},
                 "storageClassName": "fast"},
    }
    assert "storageClassName" not in objects.make_claim(ALICE, namespace="ns",
                                                        size="1Gi")["spec"]


def test_identity_config_map_and_isolation_policy() -> None:
    assert objects.make_identity(ALICE, namespace="ns", passwd="p\n", group="g\n") == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dockersh-identity-alice", "namespace": "ns",
                     "annotations": {"dockersh/user": "alice"}},
        "data": {"passwd": "p\n", "group": "g\n"},
        "immutable": False,
    }
    assert objects.make_isolation(ALICE, namespace="ns") == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "dockersh-none-alice", "namespace": "ns"},
        "spec": {"podSelector": {"matchLabels": {"dockersh.user": "alice",
                                                 "dockersh.uid": "1001"}},
                 "policyTypes": ["Ingress", "Egress"]},
    }


def test_names_are_valid_and_never_shared() -> None:
    names = ["Alice", "alice", "a-b", "a_b", "a.b", "ä", "x" * 80, "x" * 81]
    built = [objects.object_name("claim", n) for n in names]
    assert len(set(built)) == len(names)
    for name in built:
        assert len(name) <= objects.NAME_LIMIT
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
        assert name[0].isalnum() and name[-1].isalnum()
    assert objects.object_name("claim", "a-b") == "claim-a-2db"


def test_host_access_and_host_mounts_are_refused() -> None:
    with pytest.raises(DockershError, match="privileged"):
        objects.make_pod(spec("[container]\nprivileged = true\n[security]\n"
                              "dangerously_allow_host_access = true\n"), ALICE,
                         namespace="ns", shell="/bin/sh")
    with pytest.raises(DockershError, match="/srv/data is a host path"):
        objects.make_pod(spec('[container]\nmounts = [{ source = "/srv/data", target = "/d" }]\n'),
                         ALICE, namespace="ns", shell="/bin/sh")


def test_exec_query_resize_and_status() -> None:
    assert objects.exec_query(["/bin/sh", "-c", "id"], tty=False) == [
        ("container", "session"), ("command", "/bin/sh"), ("command", "-c"), ("command", "id"),
        ("stdin", "true"), ("stdout", "true"), ("stderr", "true"), ("tty", "false")]
    assert ("stderr", "false") in objects.exec_query(["/bin/sh", "-l"], tty=True)
    assert objects.resize_message(30, 100) == b'\x04{"Width":100,"Height":30}'
    assert objects.exit_status({"status": "Success"}) == 0
    assert objects.exit_status({"status": "Failure", "reason": "NonZeroExitCode",
                                "details": {"causes": [{"reason": "ExitCode",
                                                        "message": "42"}]}}) == 42
    with pytest.raises(DockershError, match="container not found"):
        objects.exit_status({"status": "Failure", "message": "container not found"})
