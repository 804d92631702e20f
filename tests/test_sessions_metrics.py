"""`dockersh sessions`, `replay`, `metrics` and gc's [audit] keep and metrics textfile, against
real logins (`dockersh --user` through the real engine) and the audit file they write.

dockersh runs as root from this checkout with the test's own config (support/ops.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.ops import CLEAN_ENV, Dockersh, container_name, wait_until
from support.users import UserFactory, unique_name

pytest_plugins = ["support.ops"]  # the dsh fixture
pytestmark = pytest.mark.integration

SESSIONS_DIR = Path("/var/log/dockersh/sessions")


def scrape(dsh: Dockersh) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`dockersh metrics`, parsed by prometheus_client's own parser: sample → value."""
    proc = dsh("metrics")
    assert proc.returncode == 0, proc.stderr
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(proc.stdout) for s in family.samples}


def delta(before: dict[Any, float], after: dict[Any, float]) -> dict[str, float]:
    """What moved, by sample name with its labels, e.g. 'dockersh_logins_total{result=ok}'."""
    moved = {}
    for key, value in after.items():
        if value != before.get(key, 0):
            name, labels = key
            moved[name + "".join(f"{{{k}={v}}}" for k, v in labels)] = value - before.get(key, 0)
    return moved


def test_metrics_counters_move_with_real_logins_and_refusals(dsh: Dockersh,
                                                             make_user: UserFactory) -> None:
    user = make_user()
    start = scrape(dsh)
    assert start[("dockersh_engine_up", ())] == 1
    first = dsh.login(user, "true")
    assert first.returncode == 0, first.stderr
    after_first = scrape(dsh)
    moved = delta(start, after_first)
    assert moved["dockersh_logins_total{result=ok}"] == 1
    assert moved["dockersh_first_logins_total"] == 1
    assert moved["dockersh_login_latency_seconds_count"] == 1
    assert "dockersh_logins_total{result=refused}" not in moved
    # The engine's list: the user's container is one more running one.
    assert moved.get("dockersh_containers{state=running}", 0) >= 1

    # A warm login: one more ok, no container change; its latency is in the histogram.
    assert dsh.login(user, "true").returncode == 0
    moved = delta(after_first, scrape(dsh))
    assert moved["dockersh_logins_total{result=ok}"] == 1
    assert not {"dockersh_first_logins_total", "dockersh_container_starts_total",
                "dockersh_container_recreations_total"} & moved.keys()
    [latency] = [r["latency"] for r in dsh.audit_records(user)[-2:] if "latency" in r]
    assert 0 < latency < 60

    # A stopped container started again, and a changed config recreating it.
    assert dsh("stop", user.name).returncode == 0
    before = scrape(dsh)
    assert dsh.login(user, "true").returncode == 0
    assert delta(before, scrape(dsh))["dockersh_container_starts_total"] == 1
    dsh.write(memory="300m")
    before = scrape(dsh)
    assert dsh.login(user, "true").returncode == 0
    assert delta(before, scrape(dsh))["dockersh_container_recreations_total"] == 1
    assert [r["event"] for r in dsh.audit_records(user, "container-")] == [
        "container-created", "container-started", "container-recreated"]

    # A refusal: the admin gives a new user an image that is not there (and is never pulled).
    newcomer = make_user()
    dsh.write(f'[users.{newcomer.name}.container]\nimage = "dockersh-test/absent:1"\n')
    before = scrape(dsh)
    refused = dsh.login(newcomer, "touch ~/ran")
    assert refused.returncode == 125 and not (newcomer.home / "ran").exists()
    [line] = refused.stderr.splitlines()
    assert line.startswith("dockersh: image dockersh-test/absent:1 is not on this host")
    moved = delta(before, scrape(dsh))
    assert moved == {"dockersh_logins_total{result=refused}": 1}
    [record] = dsh.audit_records(newcomer, "login-")
    assert (record["event"], record["user"], record["uid"]) == ("login-refused", newcomer.name,
                                                                newcomer.uid)
    assert record["reason"] == line.removeprefix("dockersh: ")


def test_a_refusal_before_the_user_is_known_is_recorded_without_one(dsh: Dockersh) -> None:
    before = scrape(dsh)
    name = unique_name()
    proc = dsh("--user", name, "-c", "true")
    assert proc.returncode == 125, proc.stderr
    assert delta(before, scrape(dsh)) == {"dockersh_logins_total{result=refused}": 1}
    [record] = [json.loads(line) for line in dsh.audit.read_text().splitlines()
                if '"login-refused"' in line and name in line]
    assert record["user"] is None and record["uid"] == 0 and name in record["reason"]


def test_an_audit_file_that_cannot_take_a_refusal_does_not_hide_it(
        dsh: Dockersh, make_user: UserFactory) -> None:
    """Fail closed and honest: the refusal's one line is the refusal's, whatever the audit file
    does (a directory in its place: the record goes to syslog instead)."""
    user = make_user()
    dsh.audit.mkdir()
    dsh.write(f'[users.{user.name}.container]\nimage = "dockersh-test/absent:1"\n')
    proc = dsh.login(user, "true")
    assert proc.returncode == 125
    assert proc.stderr.startswith("dockersh: image dockersh-test/absent:1 is not on this host")
    assert len(proc.stderr.splitlines()) == 1


def test_sessions_lists_a_finished_a_running_and_a_lost_session(
        dsh: Dockersh, make_user: UserFactory) -> None:
    user, other = make_user(), make_user()
    assert dsh.login(user, "exit 3").returncode == 3
    assert dsh.login(other, "true").returncode == 0
    running = dsh.spawn(user, "sleep 300")
    try:
        wait_until(lambda: len(dsh.audit_records(user)) == 3, 30, "the session started")
        proc = dsh("sessions", user.name, "--json")
        assert proc.returncode == 0, proc.stderr
        finished, live = json.loads(proc.stdout)
        assert (finished["user"], finished["exit"], finished["state"], finished["command"]) == (
            user.name, 3, "ended", "exit 3")
        assert finished["container"] == container_name(user) and finished["recording"] is None
        assert 0 <= finished["duration"] < 60
        assert (live["exit"], live["state"], live["command"]) == (None, "running", "sleep 300")
        table = dsh("sessions").stdout.splitlines()
        assert table[0].split() == ["SESSION", "USER", "CONTAINER", "START", "DURATION", "EXIT",
                                    "RECORDED"]
        rows = {line.split()[0]: line.split() for line in table[1:]}
        assert rows[finished["session"]][1:3] == [user.name, container_name(user)]
        assert rows[finished["session"]][5:] == ["3", "no"]
        assert rows[live["session"]][5:] == ["running", "no"]
        assert any(row[1] == other.name for row in rows.values())  # everyone's, without USER
    finally:
        dsh.end(running)  # SIGKILL: the monitor writes no end record
    [_, lost] = json.loads(dsh("sessions", user.name, "--json").stdout)
    assert (lost["session"], lost["state"], lost["duration"]) == (live["session"], "lost", None)


def test_a_session_started_before_the_rotation_is_still_found(dsh: Dockersh,
                                                               make_user: UserFactory) -> None:
    """logrotate renames the audit file to FILE.1 (delaycompress: plain text) while sessions
    run: `sessions` and dockersh_sessions_active read their starts there."""
    user = make_user()
    running, ending = dsh.spawn(user, "sleep 300"), dsh.spawn(user, "sleep 5")
    try:
        wait_until(lambda: len(dsh.audit_records(user)) == 2, 30, "the sessions started")
        dsh.audit.rename(f"{dsh.audit}.1")  # logrotate's rename; a new file is made
        assert {s["state"] for s in json.loads(dsh("sessions", "--json").stdout)} == {"running"}
        assert len(json.loads(dsh("sessions", "--json").stdout)) == 2
        assert scrape(dsh)[("dockersh_sessions_active", ())] == 2
        assert ending.wait(60) == 0
        ended, live = sorted(json.loads(dsh("sessions", "--json").stdout),
                             key=lambda s: s["state"])
        assert (ended["state"], ended["exit"], live["state"]) == ("ended", 0, "running")
        assert ended["command"] == "sleep 5"
        assert scrape(dsh)[("dockersh_sessions_active", ())] == 1
    finally:
        dsh.end(running)
    # Lost before the current file began: that is the rotated file's story, not this one's.
    assert [s["command"] for s in json.loads(dsh("sessions", "--json").stdout)] == ["sleep 5"]


@pytest.fixture
def sessions_dir() -> Iterator[Path]:
    """The recordings directory (made root-only when missing, and then removed again)."""
    made = not SESSIONS_DIR.exists()
    SESSIONS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    yield SESSIONS_DIR
    if made:
        for leftover in SESSIONS_DIR.iterdir():
            leftover.unlink()
        SESSIONS_DIR.rmdir()


def session_name(days_ago: float = 0) -> str:
    at = time.gmtime(time.time() - days_ago * 86400)
    return f"{time.strftime('%Y%m%dT%H%M%SZ', at)}-{unique_name()}-{os.getpid()}"


def test_replay_plays_a_recording_and_only_a_recording(dsh: Dockersh,
                                                       sessions_dir: Path) -> None:
    name = session_name()
    recording = sessions_dir / f"{name}.cast"
    events = [[0.1, "o", "$ "], [0.2, "i", "echo hi\r"], [0.7, "o", "echo hi\r\nhi\r\n"],
              [0.8, "r", "100x30"], [0.9, "o", "$ \u00e9"]]
    recording.write_text("\n".join([json.dumps({"version": 2, "width": 80, "height": 24}),
                                    *map(json.dumps, events)]) + "\n")
    secret = sessions_dir / f"{session_name()}.cast"
    secret.symlink_to("/etc/shadow")
    try:
        began = time.monotonic()
        proc = subprocess.run(dsh.argv("replay", name), capture_output=True, env=CLEAN_ENV,
                              stdin=subprocess.DEVNULL, timeout=60, check=False)
        took = time.monotonic() - began
        assert (proc.returncode, proc.stderr) == (0, b"")
        # The output exactly (bytes: no newline translation), not the input.
        assert proc.stdout == "$ echo hi\r\nhi\r\n$ \u00e9".encode()
        assert took >= 0.9  # with the recording's timing
        fast = dsh("replay", name, "--speed", "1000")
        assert fast.stdout == proc.stdout.decode().replace("\r\n", "\n")
        for bad in ("../../../etc/shadow", f"{name}/../{name}", f"{name}.cast", "/etc/shadow"):
            refused = dsh("replay", bad)
            assert (refused.returncode, refused.stdout) == (2, ""), bad
            assert refused.stderr.startswith(f"dockersh: {bad!r} is not a session name")
        linked = dsh("replay", secret.name.removesuffix(".cast"))
        assert (linked.returncode, linked.stdout) == (125, "")
        assert "Too many levels of symbolic links" in linked.stderr
        missing = dsh("replay", session_name())
        assert missing.returncode == 125 and "there is no recording" in missing.stderr
        recording.write_text("not a recording\n")
        assert "is not an asciicast v2 recording" in dsh("replay", name).stderr
    finally:
        recording.unlink()
        secret.unlink()


def test_gc_applies_keep_to_recordings_and_writes_the_textfile(
        dsh: Dockersh, make_user: UserFactory, sessions_dir: Path, tmp_path: Path) -> None:
    user = make_user()
    assert dsh.login(user, "true").returncode == 0
    textfile = tmp_path / "node-exporter" / "dockersh.prom"
    dsh.write(f'keep = "30d"\nmetrics_textfile = "{textfile}"\n')  # into [audit]
    old, new = (sessions_dir / f"{session_name(days)}.cast" for days in (40, 20))
    unrelated = sessions_dir / f"{unique_name()}.txt"
    for path, days in ((old, 40), (new, 20), (unrelated, 40)):
        path.write_text('{"version": 2, "width": 80, "height": 24}\n')
        at = time.time() - days * 86400
        os.utime(path, (at, at))
    try:
        dry = dsh("gc", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"would remove {old} (a recording older than [audit] keep = '30d')" in dry.stdout
        assert str(new) not in dry.stdout and old.exists()
        # The textfile's directory is missing: gc writes none, and that is no failure.
        proc = dsh("gc")
        assert proc.returncode == 0, proc.stderr
        assert not old.exists() and new.exists() and unrelated.exists()
        assert not textfile.exists()
        textfile.parent.mkdir()
        assert dsh("gc").returncode == 0
        assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
        names = {f.name for f in text_string_to_metric_families(textfile.read_text())}
        assert {"dockersh_logins", "dockersh_sessions_active", "dockersh_containers",
                "dockersh_login_latency_seconds"} <= names
        assert [p.name for p in textfile.parent.iterdir()] == ["dockersh.prom"]  # no temp left
    finally:
        for path in (old, new, unrelated):
            path.unlink(missing_ok=True)


def test_without_an_audit_file_metrics_and_gc_report_the_engine(dsh: Dockersh,
                                                                  tmp_path: Path) -> None:
    """[audit] file = "": no session or login families, the engine's still (gc once failed)."""
    from support import engine

    textfile = tmp_path / "dockersh.prom"
    dsh.config.write_text(f'{engine.CONFIG}[audit]\nfile = ""\n'
                          f'metrics_textfile = "{textfile}"\n')
    proc = dsh("metrics")
    assert proc.returncode == 0, proc.stderr
    gc = dsh("gc")
    assert gc.returncode == 0, gc.stderr
    for text in (proc.stdout, textfile.read_text()):
        names = {f.name for f in text_string_to_metric_families(text)}
        assert names == {"dockersh_engine_up", "dockersh_containers"}
    assert "dockersh_engine_up 1.0" in proc.stdout


# After replay, in the same terminal: what the terminal sent since, read without waiting for a
# newline, and printed as od shows it; then a wait, as a dead pane has no modes to show.
LEFT = ('stty -icanon -echo min 0 time 10; left=$(dd bs=64 count=1 2>/dev/null | od -An -c '
        '| tr -s " "); echo "left:[$left]"; sleep 60')
# The pane's modes after replay: mouse reporting (4 flags), the alternate screen, the cursor.
MODES = "#{mouse_any_flag}#{mouse_button_flag}#{mouse_standard_flag}#{mouse_sgr_flag}" \
    "#{alternate_on}#{cursor_flag}"
BIG = "".join(f"line {n} {'x' * 90}\r\n" for n in range(3000))  # 300 kB for tmux to draw
PWNED = "\x1b]5", "2;c;cHduZWQ=\x07"  # OSC 52, split: tmux's clipboard := "pwned"
QUERIES = ["\x1b[c\x1b[>c\x1b]10;?\x07\x1b]11;?\x1b\\\x1b]4;1;?\x07\x1b[21t\x1b[14t\x05"
           "\x1bP$qm\x1b\\\x1bP+q544e\x1b\\\x1b[5n\x1b[?1$p\x1b[", "6n"]  # the last split too


SHOWN = re.compile(r"left:\[.*\]")


@contextlib.contextmanager
def recording_of(sessions_dir: Path, events: list[list[Any]]) -> Iterator[str]:
    """A recording of these events, by its session's name (removed at the end)."""
    name = session_name()
    recording = sessions_dir / f"{name}.cast"
    recording.write_text("\n".join([json.dumps({"version": 2, "width": 80, "height": 24}),
                                    *map(json.dumps, events)]) + "\n")
    try:
        yield name
    finally:
        recording.unlink()


def replay_in_tmux(dsh: Dockersh, tmux_terminal: Any, name: str, *args: str) -> Any:
    """A tmux pane (an OSC 52 sets a tmux buffer) running replay, its status, then LEFT."""
    return tmux_terminal(["env", "-i", *(f"{k}={v}" for k, v in CLEAN_ENV.items()), "sh", "-c",
                          f"{shlex.join(dsh.argv('replay', name, *args))}; echo status:$?; "
                          f"{LEFT}"], options=["set -g set-clipboard on"])


def test_replay_leaves_no_terminal_answers_for_the_admins_shell(
        dsh: Dockersh, sessions_dir: Path, tmux_terminal: Any) -> None:
    """A recording is what the user's session printed: one that asks the terminal where its
    cursor is (CSI 6 n), its colours, title, settings... gets answers on the terminal's input,
    which the admin's shell would read as typed once replay exits; one that turns mouse
    reporting on or writes the clipboard (OSC 52) would leave that behind. replay drops the
    queries and the clipboard write, resets the modes, and reads the terminal's input until
    the answer to its own query arrived."""
    events = [[0.1, "o", "played\r\n"], [0.2, "o", BIG],
              [0.3, "o", "\x1b[?1000h\x1b[?1002h\x1b[?1003h\x1b[?1006h\x1b[?1049h\x1b[?25l"],
              *([0.3, "o", part] for part in (*PWNED, *QUERIES)), [0.4, "o", "done"]]
    with recording_of(sessions_dir, events) as name:
        terminal = replay_in_tmux(dsh, tmux_terminal, name)
        screen = terminal.wait_for(SHOWN, timeout=30)
    assert "played" in screen and "line 2999" in screen
    assert "left:[]" in screen, screen
    assert "^[" not in screen, screen  # nor echoed onto the admin's screen
    assert terminal.tmux("display-message", "-p", MODES).strip() == "000001"
    assert terminal.tmux("list-buffers", "-F", "#{buffer_sample}") == ""  # no OSC 52 came


def test_replay_raw_writes_all_and_still_resets_and_drains(
        dsh: Dockersh, sessions_dir: Path, tmux_terminal: Any) -> None:
    """--raw writes the recording as it was: the OSC 52 reaches tmux (so the test above can
    see one). The end is the same: the modes reset, the answers to the queries (no cursor
    report among them, it would pass for replay's) read before the shell gets the terminal."""
    events = [[0.1, "o", "played\r\n"], [0.2, "o", BIG], [0.3, "o", "\x1b[?1000h\x1b[?1006h"],
              *([0.3, "o", part] for part in (*PWNED, "\x1b[c\x1b[>c\x1b]11;?\x07"))]
    with recording_of(sessions_dir, events) as name:
        terminal = replay_in_tmux(dsh, tmux_terminal, name, "--raw")
        screen = terminal.wait_for(SHOWN, timeout=30)
    assert "left:[]" in screen, screen
    assert terminal.tmux("display-message", "-p", MODES).strip() == "000001"
    assert terminal.tmux("list-buffers", "-F", "#{buffer_sample}").strip() == "pwned"


def test_replay_reads_the_keyboard_and_q_stops_it(
        dsh: Dockersh, sessions_dir: Path, tmux_terminal: Any) -> None:
    """While replay plays, what is typed is read and dropped: Ctrl-Z stops nothing (no ISIG),
    text typed is not left for the shell; 'q' stops the replay."""
    with recording_of(sessions_dir, [[0.1, "o", "played\r\n"], [100.0, "o", "never"]]) as name:
        terminal = replay_in_tmux(dsh, tmux_terminal, name)
        terminal.wait_for("played")
        terminal.send_keys("C-z")
        terminal.send_keys("echo typed", literal=True)
        time.sleep(1)  # let replay read them (no output to wait for: it drops them)
        assert "status:" not in terminal.capture_pane()  # ^Z did not stop it
        terminal.send_keys("q")
        screen = terminal.wait_for(SHOWN)
    assert "status:0" in screen and "left:[]" in screen, screen
    assert "never" not in screen and "typed" not in screen
