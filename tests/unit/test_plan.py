"""The plan is data: config + user → container spec and session, asserted exactly."""

from dockersh.backend.docker import backend, create
from dockersh.config import schema
from dockersh.lifecycle import ensure
from dockersh.login import handoff
from dockersh.login.identity import User
from dockersh.plan import planner
from dockersh.plan.sessionplan import SessionPlan

ALICE = User(
    "alice",
    1001,
    1001,
    "/home/alice",
    "/usr/local/bin/dockersh",
    "Alice A",
    (("alice", 1001), ("dockersh", 995), ("staff", 50)),
)


def make(text: str = "") -> planner.Plan:
    data = schema.parse_toml(text, "g")
    layers, _ = schema.global_layers(data, "g", ALICE.name, ALICE.group_names)
    return planner.make(schema.build(schema.merge(layers)), ALICE, "host1")


def test_default_container_spec() -> None:
    assert make().spec == planner.ContainerSpec(
        name="dockersh-alice",
        image="dockersh-session:latest",
        hostname="host1",
        user="1001:1001",
        command=("sleep", "infinity"),
        working_dir="/home/alice",
        environment=(),
        mounts=(
            ("/home/alice", "/home/alice", False),
            ("/var/lib/dockersh/dockersh-alice/passwd", "/etc/passwd", True),
            ("/var/lib/dockersh/dockersh-alice/group", "/etc/group", True),
            ("/opt/dockersh/libexec/dockersh-exec", "/usr/libexec/dockersh-exec", True),
        ),
        tmpfs=(),
        group_add=(995, 50),
        memory=2 * 2**30,
        nano_cpus=1_000_000_000,
        pids_limit=512,
        log_size=10 * 1024**2,
        network="bridge",
        cap_add=(),
        read_only=False,
        runtime="",
        privileged=False,
        devices=(),
        pid="private",
        ipc="private",
        shell_candidates=("/bin/bash", "/bin/sh"),
        pull="if-missing",
    )


def test_placeholders_and_mounts() -> None:
    spec = make("""
    [container]
    name = "box-{uid}-{user}"
    hostname = "{user}-dev"
    env = { WORK = "{home}/work", ME = "{user}:{gid}", ODD = "{user.__class__}" }
    mounts = [{ source = "/srv/{user}", target = "/data", read_only = false }]
    tmpfs = ["/tmp:size=64m"]
    """).spec
    assert spec.name == "box-1001-alice"
    assert spec.hostname == "alice-dev"
    assert spec.environment == (
        ("ME", "alice:1001"),
        ("ODD", "{user.__class__}"),
        ("WORK", "/home/alice/work"),
    )
    assert spec.mounts[1] == ("/srv/alice", "/data", False)
    assert spec.tmpfs == (("/tmp", "size=64m"),)


def test_session_plan() -> None:
    session = make('[session]\nexec = "nsenter"\nbanner = "hi {user}"\n').session
    assert session == SessionPlan(
        name="dockersh-alice",
        hash=make().spec.config_hash(),
        image="dockersh-session:latest",
        user="alice",
        uid=1001,
        gid=1001,
        groups=[1001, 995, 50],
        home="/home/alice",
        env=[("HOME", "/home/alice"), ("USER", "alice"), ("LOGNAME", "alice")],
        env_pass=["TERM", "LANG", "LC_*", "TZ", "COLORTERM"],
        exec="nsenter",
        spare=True,
        forwarding=True,
        forward_agent=True,
        banner="hi alice",
        backend="docker",
        engine_host="unix:///var/run/docker.sock",
        lock_timeout=30,
        audit_file="/var/log/dockersh/audit.jsonl",
        audit_syslog=True,
        warnings=[],
    )


def test_session_plan_survives_marshal_as_builtins() -> None:
    """The plan cache stores ``values()`` with marshal: builtins only, read back equal."""
    import marshal

    session = make().session
    assert SessionPlan.from_values(marshal.loads(marshal.dumps(session.values()))) == session
    assert SessionPlan.from_values(session.values()[:-1]) is None
    assert SessionPlan.from_values({"name": "x"}) is None


def test_config_hash_changes_with_the_container_not_with_session_or_pull() -> None:
    base = make().spec.config_hash()
    assert make('[container]\nmemory = "3g"\n').spec.config_hash() != base
    assert make('[session]\nexec = "nsenter"\n').spec.config_hash() == base
    assert make('[container]\npull = "never"\n').spec.config_hash() == base
    assert len(base) == 16


def test_config_hash_is_the_one_every_release_gave() -> None:
    """The hash labels every container: a change recreates them all at the next upgrade, so
    it changes only on purpose. The last time: the exec helper's mount (bin/dockersh-exec.c),
    for the default spec and one with every kind of field (tuples of tuples, devices, caps)."""
    assert make().spec.config_hash() == "5f8b3417fda9a7b1"
    spec = make('[container]\nmounts = [{source = "/srv/{user}", target = "/srv"}]\n'
                'tmpfs = ["/run:size=1m"]\ndevices = ["/dev/fuse"]\n'
                'cap_add = ["NET_BIND_SERVICE"]\n').spec
    assert spec.config_hash() == "28b3d16263ef1c86"


def test_labels() -> None:
    spec = make().spec
    assert spec.labels(ALICE) == {
        "dockersh.user": "alice",
        "dockersh.uid": "1001",
        "dockersh.config-hash": spec.config_hash(),
        "dockersh.version": planner.__version__,
    }


def test_session_environment_passes_only_what_env_pass_names() -> None:
    env = handoff.session_env(
        make().session,
        "/bin/bash",
        {
            "TERM": "xterm-256color",
            "LC_ALL": "C.UTF-8",
            "LD_PRELOAD": "/x.so",
            "HOME": "/evil",
            "LANG": "a\0b",
        },
        True,
    )
    assert env == [
        ("HOME", "/home/alice"),
        ("USER", "alice"),
        ("LOGNAME", "alice"),
        ("SHELL", "/bin/bash"),
        ("TERM", "xterm-256color"),
        ("LC_ALL", "C.UTF-8"),
    ]


def test_exec_argv_and_config() -> None:
    assert handoff.shell_argv("/bin/bash", None, ()) == ["/bin/bash", "-l"]
    assert handoff.shell_argv("/bin/sh", "--user root; id", ("a0",)) == [
        "/bin/sh",
        "-c",
        "--user root; id",
        "a0",
    ]
    assert backend.exec_config(
        ["/bin/sh", "-l"], "1001:1001", "/home/alice", [("HOME", "/home/alice")], True
    ) == {
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": True,
        "DetachKeys": "ctrl-],ctrl-@",
        "Privileged": False,
        "User": "1001:1001",
        "WorkingDir": "/home/alice",
        "Env": ["HOME=/home/alice"],
        "Cmd": ["/bin/sh", "-l"],
    }


def test_tty_without_term_gets_a_default() -> None:
    env = dict(handoff.session_env(make().session, "/bin/sh", {}, True))
    assert env["TERM"] == "xterm"
    assert (
        dict(handoff.session_env(make().session, "/bin/sh", {"TERM": "unknown"}, True))["TERM"]
        == "xterm"
    )
    assert "TERM" not in dict(handoff.session_env(make().session, "/bin/sh", {}, False))


def test_glob_match() -> None:
    assert handoff.glob_match("LC_*", "LC_ALL")
    assert handoff.glob_match("LC_*", "LC_")
    assert not handoff.glob_match("LC_*", "XLC_ALL")
    assert handoff.glob_match("T?", "TZ") and not handoff.glob_match("T?", "TERM")


def test_engine_create_body_is_hardened() -> None:
    spec = make('[container]\ncap_add = ["NET_BIND_SERVICE"]\ntmpfs = ["/tmp:size=64m"]\n').spec
    labels = {**spec.labels(ALICE), "dockersh.shell": "/bin/bash"}
    assert create.create_body(spec, labels) == {
        "Image": "dockersh-session:latest",
        "Cmd": ["sleep", "infinity"],
        "Hostname": "host1",
        "User": "1001:1001",
        "WorkingDir": "/home/alice",
        "Env": [],
        "Labels": {**spec.labels(ALICE), "dockersh.shell": "/bin/bash"},
        "HostConfig": {
            "Init": True,
            "CapDrop": ["ALL"],
            "CapAdd": ["NET_BIND_SERVICE"],
            "SecurityOpt": ["no-new-privileges"],
            "Memory": 2 * 2**30,
            "MemorySwap": 2 * 2**30,
            "NanoCpus": 1_000_000_000,
            "PidsLimit": 512,
            "LogConfig": {"Type": "json-file",
                          "Config": {"max-size": str(10 * 1024**2), "max-file": "1"}},
            "NetworkMode": "bridge",
            "ReadonlyRootfs": False,
            "Tmpfs": {"/tmp": "size=64m"},
            "Mounts": [
                {
                    "Type": "bind",
                    "Source": "/home/alice",
                    "Target": "/home/alice",
                    "ReadOnly": False,
                },
                {
                    "Type": "bind",
                    "Source": "/var/lib/dockersh/dockersh-alice/passwd",
                    "Target": "/etc/passwd",
                    "ReadOnly": True,
                },
                {
                    "Type": "bind",
                    "Source": "/var/lib/dockersh/dockersh-alice/group",
                    "Target": "/etc/group",
                    "ReadOnly": True,
                },
                {
                    "Type": "bind",
                    "Source": "/opt/dockersh/libexec/dockersh-exec",
                    "Target": "/usr/libexec/dockersh-exec",
                    "ReadOnly": True,
                },
            ],
            "GroupAdd": ["995", "50"],
            "Privileged": False,
            "Devices": [],
            "PidMode": "",
            "IpcMode": "private",
        },
    }


def test_passwd_and_group_merge_keeps_the_image_accounts() -> None:
    image_passwd = "root:x:0:0:root:/root:/bin/sh\nalice:x:5:5::/x:/bin/false\nold:x:1001:1::/:/\n"
    assert ensure.merged_passwd(image_passwd, ALICE, "/bin/bash") == (
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001:Alice A:/home/alice:/bin/bash\n"
    )
    image_group = "root:x:0:\nstaff:x:50:bob\nusers:x:100:\ndockersh:x:7:\n"
    assert ensure.merged_group(image_group, ALICE) == (
        "root:x:0:\nstaff:x:50:bob,alice\nusers:x:100:\nalice:x:1001:alice\ndockersh:x:995:alice\n"
    )


def test_sshd_variables_pass_and_ssh_tty_is_never_taken() -> None:
    ssh = {"SSH_CONNECTION": "10.0.0.9 50000 10.0.0.1 22", "SSH_CLIENT": "10.0.0.9 50000 22",
           "GIT_PROTOCOL": "version=2", "SSH_TTY": "/dev/pts/7", "SSH_AUTH_SOCK": "/tmp/x"}
    env = dict(handoff.session_env(make().session, "/bin/sh", ssh, False))
    assert {k: env.get(k) for k in ssh} == {**ssh, "SSH_TTY": None, "SSH_AUTH_SOCK": None}
    # Not even when env_pass names it: the exec names the terminal inside the container.
    wide = make('[session]\nenv_pass = ["*"]\n').session
    assert "SSH_TTY" not in dict(handoff.session_env(wide, "/bin/sh", ssh, True))
