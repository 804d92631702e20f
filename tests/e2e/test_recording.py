"""Session recording through the real sshd, in both exec modes (and through the spare): the cast
a recorded session leaves (asciicast v2), what it keeps and what only when asked, the banner,
the cut at max_size and at min_free (on a tmpfs), the refusal when no recording can be made,
and that the client receives exactly the same bytes and exit status whether its session is
recorded or not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import engine
from support.cmd import run
from support.install import Installation
from support.sshd import SshdFactory, SshServer
from support.terminal import TmuxTerminal
from support.users import LinuxUser, UserFactory
from test_ssh import CLIENT_TERM, CONFIG, check_file_transfer, terminal_login, wait_processes

pytestmark = pytest.mark.e2e

BANNER = "dockersh: this session is recorded"


class Recorded:
    """The test's config: ``users`` recorded (with ``settings``), audit and casts in tmp_path."""

    def __init__(self, write: Callable[[str], Path], tmp_path: Path, mode: str,
                 users: list[LinuxUser], host: str = "", **settings: object) -> None:
        self.audit, self.sessions = tmp_path / "audit.jsonl", tmp_path / "sessions"
        self.mode = mode
        layers = "".join(f"[users.{u.name}.audit]\nrecord = true\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in settings.items()) for u in users)
        write(engine.CONFIG + CONFIG.format(mode=mode) + f'\n[audit]\nfile = "{self.audit}"\n'
              f'sessions_dir = "{self.sessions}"\n{host}\n' + layers)

    def records(self, user: LinuxUser, event: str) -> list[dict[str, Any]]:
        lines = self.audit.read_text().splitlines() if self.audit.exists() else []
        return [r for r in map(json.loads, lines)
                if r["user"] == user.name and r["event"] == event]

    def cast(self, user: LinuxUser) -> tuple[dict[str, Any], list[list[Any]], dict[str, Any]]:
        """The last session's header, events and end record; the file checked as root's."""
        end = self.records(user, "session-end")[-1]
        start = next(r for r in self.records(user, "session-start")
                     if r["session"] == end["session"])
        path = Path(end["recording"])
        assert end["mode"] == self.mode
        assert start["recording"] == str(path) == f"{self.sessions}/{end['session']}.cast"
        for where, mode in ((path, 0o600), (self.sessions, 0o700)):
            info = where.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, mode), where
        header, *events = map(json.loads, path.read_text().splitlines())
        assert header["version"] == 2 and isinstance(header["timestamp"], int), header
        times = [e[0] for e in events]
        assert times == sorted(times) and all(len(e) == 3 for e in events), events
        return header, events, end


def text(events: list[list[Any]], code: str) -> str:
    return "".join(e[2] for e in events if e[1] == code)


@pytest.fixture(params=["docker", "nsenter"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def recorded(mode: str, dockersh_config: Callable[[str], Path], session_image: str,
             tmp_path: Path) -> Callable[..., Recorded]:
    """recorded(users, **[audit] settings of theirs) writes the config in this test's mode."""
    return lambda users, **settings: Recorded(dockersh_config, tmp_path, mode, users, **settings)


def session(term: TmuxTerminal, user: LinuxUser) -> None:
    """Output, a resize, the exit status: through a terminal at the prompt."""
    term.type_line('echo "REC-$((6 * 7)) S1=$(stty size)"')
    term.wait_for("REC-42 S1=30 100")
    term.resize_window(120, 40)
    term.type_line('echo "S2=$(stty size)"')
    term.wait_for("S2=40 120")
    term.type_line("exit 3")
    assert term.wait_exit(timeout=30) == 3


def test_a_recorded_terminal_session_is_asciicast_v2_and_an_unrecorded_one_leaves_nothing(
    recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    server = sshd()
    user, other = make_user(), make_user()
    config = recorded([user])
    term = terminal_login(tmux_terminal, server, user, width=100, height=30)
    assert BANNER in term.capture_pane(history=True).splitlines()
    session(term, user)
    header, events, end = config.cast(user)
    assert (header["width"], header["height"]) == (100, 30)
    assert header["env"] == {"TERM": CLIENT_TERM, "SHELL": "/bin/bash"}
    output = text(events, "o")
    assert "REC-42" in output and "S2=40 120" in output
    resizes = [e for e in events if e[1] == "r"]
    said = next(e[0] for e in events if e[1] == "o" and "REC-42" in e[2])
    assert resizes and resizes[-1][2] == "120x40" and resizes[-1][0] >= said, resizes
    assert not [e for e in events if e[1] == "i"], "input recorded without record_input"
    assert end["exit"] == 3 and end["bytes_out"] >= len(output.encode())
    # A command session: its command and byte counts, its content only with record_streams.
    assert server.ssh(user, "echo hidden-$((1 + 1))").stdout == b"hidden-2\n"
    header, events, end = config.cast(user)
    assert header["command"] == "echo hidden-$((1 + 1))" and events == []
    assert (end["bytes_in"], end["bytes_out"]) == (0, len(b"hidden-2\n"))

    term = terminal_login(tmux_terminal, server, other)
    assert BANNER not in term.capture_pane(history=True)
    session(term, other)
    assert server.ssh(other, "true").returncode == 0
    assert all("recording" not in r for r in config.records(other, "session-end"))
    assert len(config.records(other, "session-end")) == 2
    names = [p.name for p in config.sessions.iterdir()]
    assert len(names) == 2 and all(f"-{user.name}-" in n for n in names), names


def test_the_admin_lists_replays_and_counts_a_recorded_session(
    recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    """What root sees of a real recorded session through sshd: `dockersh sessions` lists it with
    its exit status and its recording, `dockersh replay` plays what it printed, `dockersh
    metrics` counts its login."""
    user = make_user()
    config = recorded([user])
    server = sshd()
    term = terminal_login(tmux_terminal, server, user, width=100, height=30)
    session(term, user)
    _, _, end = config.cast(user)
    assert server.ssh(user, "exit 4").returncode == 4

    def admin(*args: str) -> str:
        return run([Installation.entry, *args], env={"PATH": "/usr/bin:/bin"}).stdout

    listed = {s["session"]: s for s in json.loads(admin("sessions", user.name, "--json"))}
    interactive = listed[end["session"]]
    assert (interactive["exit"], interactive["state"], interactive["recording"]) == (
        3, "ended", end["recording"])
    assert sorted(s["exit"] for s in listed.values()) == [3, 4]
    assert "REC-42 S1=30 100" in admin("replay", end["session"], "--speed", "1000")
    samples = {(s.name, tuple(s.labels.items())): s.value
               for family in text_string_to_metric_families(admin("metrics"))
               for s in family.samples}
    assert samples[("dockersh_logins_total", (("result", "ok"),))] == 2
    assert samples[("dockersh_login_latency_seconds_count", ())] == 2


def test_input_is_recorded_only_with_record_input(
    recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    user = make_user()
    config = recorded([user], record_input=True)
    term = terminal_login(tmux_terminal, sshd(), user)
    term.type_line("echo typed-$((2 + 2))")
    term.wait_for("typed-4")
    term.type_line("exit")
    assert term.wait_exit(timeout=30) == 0
    _, events, _ = config.cast(user)
    assert "echo typed-$((2 + 2))\r" in text(events, "i")


def test_ctrl_c_and_hangups_reach_a_recorded_session(
    recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    user = make_user()
    config = recorded([user])
    term = terminal_login(tmux_terminal, sshd(), user)
    term.type_line("sleep 1000")
    wait_processes(user.uid, b"sleep\x001000\x00", present=True)
    term.send_keys("C-c")
    wait_processes(user.uid, b"sleep\x001000\x00", present=False, timeout=10)
    term.type_line('echo "rc=$?"')
    term.wait_for(re.compile(r"^rc=130$", re.M))
    term.type_line("sleep 1001")
    wait_processes(user.uid, b"sleep\x001001\x00", present=True)
    term.close()  # the client goes away: sshd hangs up, the monitor passes it on
    wait_processes(user.uid, b"sleep\x001001\x00", present=False, timeout=15)
    deadline = time.monotonic() + 15
    while not config.records(user, "session-end") and time.monotonic() < deadline:
        time.sleep(0.1)
    _, events, end = config.cast(user)
    assert end["exit"] != 0 and "rc=130" in text(events, "o"), end


def digest(seen: tuple[int, bytes, bytes]) -> tuple[int, int, str, bytes]:
    """A session's status, output length and hash, and stderr: a difference that can be read."""
    status, out, err = seen
    return status, len(out), hashlib.sha256(out).hexdigest()[:12], err[-300:]


def client_sees(server: SshServer, user: LinuxUser, data: bytes) -> list[tuple[int, bytes, bytes]]:
    """What the client gets from a few sessions: commands with stdin, a terminal, binary."""
    seen = []
    for command, stdin, tty in (
        ("cat; echo err >&2; exit 3", data, False),
        ("seq 1 100000; exit 5", None, False),
        ("head -c 1000000 /dev/zero | tr '\\0' z; stty size; exit 4", None, True),
        ("cat ~/blob", None, False),
        # Its outputs closed at once, the command still gets all of its input.
        ("exec >/dev/null 2>&1; sleep 1; cat > ~/in", data, False),
    ):
        proc = server.ssh(user, command, input=stdin, tty=tty, timeout=90)
        seen.append((proc.returncode, proc.stdout, proc.stderr))
    return seen


def test_the_client_receives_the_same_bytes_and_status_recorded_or_not(
    mode: str, recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
) -> None:
    server = sshd()
    user, other = make_user(), make_user()
    config = recorded([user], record_streams=True)
    blob = os.urandom(3 * 2**20)
    for u in (user, other):
        (u.home / "blob").write_bytes(blob)
    data = b"".join(b"line %d\n" % i for i in range(200000))
    mine, theirs = client_sees(server, user, data), client_sees(server, other, data)
    assert mine == theirs, [(i, digest(a), digest(b))
                            for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b]
    assert mine[0] == (3, data, b"err\n") and mine[3] == (0, blob, b"")
    assert mine[2][0] == 4 and b"z" * 1000 in mine[2][1]
    assert not [r for r in config.records(other, "session-end") if "recording" in r]
    assert mine[4] == (0, b"", b"")
    assert (user.home / "in").read_bytes() == data == (other.home / "in").read_bytes()

    ends = config.records(user, "session-end")
    assert [e["exit"] for e in ends] == [3, 5, 4, 0, 0]
    assert ends[4]["bytes_in"] == len(data)
    assert (ends[3]["bytes_in"], ends[3]["bytes_out"]) == (0, len(blob))
    first = next(r for r in ends if r["exit"] == 3)
    assert (first["bytes_in"], first["bytes_out"]) == (len(data), len(data) + 4)
    path = Path(first["recording"])
    header, *events = map(json.loads, path.read_text().splitlines())
    assert header["command"] == "cat; echo err >&2; exit 3"
    assert text(events, "i") == data.decode() and text(events, "o") == data.decode() + "err\n"
    if mode == "nsenter":  # by now the spare forks command sessions: recorded all the same
        parent = server.ssh(user, "grep PPid /proc/$$/status")
        assert parent.returncode == 0 and parent.stdout.split() != [b"PPid:", b"0"], parent
        _, events, end = config.cast(user)
        assert text(events, "o").encode() == parent.stdout
        assert end["bytes_out"] == len(parent.stdout)


def test_scp_sftp_rsync_are_recorded_and_byte_exact(
    recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
    tmp_path: Path,
) -> None:
    user = make_user()
    config = recorded([user], record_streams=True)
    (tmp_path / "transfer").mkdir()
    check_file_transfer(sshd(), user, tmp_path / "transfer")
    ends = config.records(user, "session-end")
    assert len(ends) >= 8 and all(Path(e["recording"]).is_file() for e in ends), ends
    sftp = [e for e in ends if e["command"].endswith("sftp-server")]
    assert sftp and all(e["bytes_in"] > 2**20 for e in sftp[:1]), sftp


def test_a_full_recording_is_cut_and_the_session_goes_on(
    recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
) -> None:
    server = sshd()
    user = make_user()
    config = recorded([user], record_streams=True, max_size="16k")
    # The user's own file cannot turn the recording off (the login says why it is ignored).
    (user.home / ".dockersh.toml").write_text("[audit]\nrecord = false\n")
    proc = server.ssh(user, "seq 1 200000", timeout=90)
    assert (proc.returncode, proc.stdout) == (0, b"".join(b"%d\n" % i
                                                          for i in range(1, 200001)))
    _, events, end = config.cast(user)
    cut = end["recording_cut"]
    assert 0 < cut <= 16 * 1024 and end["bytes_out"] == len(proc.stdout)
    assert events[-1][1:] == ["m", f"dockersh: recording cut at {cut} bytes (max_size)"]
    kept = text(events, "o").encode()  # what fitted: the start of the output
    assert len(kept) > 12 * 1024 and proc.stdout.startswith(kept)
    assert Path(end["recording"]).stat().st_size < 16 * 1024 + 200


def test_a_disk_short_of_min_free_cuts_the_recording_and_the_session_goes_on(
    recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
    tmp_path: Path,
) -> None:
    """sessions_dir on a 16 MiB tmpfs, min_free 8m: 4 MB of NULs (24 MB as JSON, the attack of
    `cat /dev/zero`) stop being recorded once 8 MiB are left; the client gets every byte."""
    server = sshd()
    user = make_user()
    config = recorded([user], host='min_free = "8m"\n', record_streams=True)
    config.sessions.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs",
                    str(config.sessions)], check=True)
    try:
        proc = server.ssh(user, "head -c 4000000 /dev/zero", timeout=90)
        assert (proc.returncode, proc.stdout) == (0, b"\0" * 4000000)
        _, events, end = config.cast(user)
        cut = end["recording_cut"]
        assert (end["recording_cut_by"], end["bytes_out"]) == ("min_free", 4000000)
        assert events[-1][1:] == ["m", f"dockersh: recording cut at {cut} bytes (min_free)"]
        assert 7 * 2**20 <= cut <= 10 * 2**20  # within a check (1 MiB) and an event
        fs = os.statvfs(config.sessions)
        assert fs.f_bavail * fs.f_frsize >= 6 * 2**20
    finally:
        subprocess.run(["umount", str(config.sessions)], check=True)


def test_no_recording_no_session(
    recorded: Callable[..., Recorded], sshd: SshdFactory, make_user: UserFactory,
    tmp_path: Path,
) -> None:
    user = make_user()
    config = recorded([user])
    config.sessions.write_text("a file where the sessions directory should be\n")
    proc = sshd().ssh(user, "touch ~/ran")
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 125 and len(lines) == 1, proc
    assert lines[0].startswith("dockersh: cannot create the session recording "), lines
    assert not (user.home / "ran").exists()
    assert config.records(user, "session-start") == []
