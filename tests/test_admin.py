"""The admin verbs against the real engine: ls, stop, restart, rm, gc, pull, doctor, enroll.

dockersh runs as root from this checkout with the test's own config (support/ops.py).
"""

from __future__ import annotations

import calendar
import grp
import os
import pwd
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.cmd import run
from support.ops import (
    STATE_DIR,
    Dockersh,
    container_name,
    inspect,
    push,
    runs,
    state,
    wait_until,
)
from support.terminal import TmuxTerminal
from support.users import LinuxUser, UserFactory

pytest_plugins = ["support.ops"]  # the dsh and registry fixtures
pytestmark = pytest.mark.integration


def logged_in(dsh: Dockersh, user: LinuxUser) -> None:
    proc = dsh.login(user)
    assert proc.returncode == 0, proc.stderr


def wait_sessions(dsh: Dockersh, user: LinuxUser, count: int) -> None:
    wait_until(lambda: dsh.ls().get(user.name, {}).get("sessions") == count, 20,
               f"{user.name} has {count} live sessions")


def busy_and_idle(
    dsh: Dockersh, make_user: UserFactory
) -> tuple[LinuxUser, LinuxUser, subprocess.Popen[str]]:
    """Two users with containers: one with a live session (returned, to be ended), one idle."""
    busy, idle = make_user(), make_user()
    logged_in(dsh, idle)
    session = dsh.spawn(busy, "sleep 60")
    try:
        wait_sessions(dsh, busy, 1)
    except BaseException:
        session.kill()
        session.wait()
        raise
    return busy, idle, session


# --- ls -------------------------------------------------------------------------------------------


def test_ls_shows_every_container_with_sessions_idle_age_and_config(
    dsh: Dockersh, make_user: UserFactory
) -> None:
    busy, idle, session = busy_and_idle(dsh, make_user)
    try:
        proc = dsh("ls")
        assert proc.returncode == 0, proc.stderr
        header, *lines = proc.stdout.splitlines()
        assert header.split() == ["USER", "CONTAINER", "IMAGE", "STATE", "SESSIONS", "IDLE",
                                  "AGE", "CONFIG"]
        rows = {line.split()[0]: line.split() for line in lines}
        image = "dockersh-test/busybox:latest"
        assert rows[busy.name][1:6] == [container_name(busy), image, "running", "1", "-"]
        assert rows[idle.name][1:5] == [container_name(idle), image, "running", "0"]
        assert re.fullmatch(r"\d+s", rows[idle.name][5]), rows[idle.name]
        assert rows[busy.name][7] == rows[idle.name][7] == "current"

        data = dsh.ls()
        assert data[busy.name]["sessions"] == 1 and data[busy.name]["idle_since"] is None
        assert data[idle.name]["sessions"] == 0 and data[idle.name]["idle_seconds"] >= 0
        assert data[idle.name]["uid"] == idle.uid
        assert data[idle.name]["idle_timeout"] == 12 * 3600
        assert data[idle.name]["idle_action"] == "stop"
        assert data[idle.name]["age_seconds"] >= 0 and data[idle.name]["created"]

        dsh.write(memory="1g")
        data = dsh.ls()
        assert data[idle.name]["config"] == "stale"
        assert data[idle.name]["why"]
    finally:
        dsh.end(session)


def test_ls_counts_a_session_whose_monitor_was_killed(
    dsh: Dockersh, make_user: UserFactory
) -> None:
    """Live sessions are seen in the processes, not only in the monitors' locks. (A monitor
    that goes away leaves its command a SIGHUP, as a closed SSH channel would: this one
    ignores it.)"""
    user = make_user()
    session = dsh.spawn(user, "trap '' HUP; echo $$ > /tmp/session.pid; exec sleep 60")
    wait_sessions(dsh, user, 1)
    wait_until(lambda: runs(user, b"sleep\x0060\x00"), 30, "the session's sleep 60 runs")
    os.kill(session.pid, signal.SIGKILL)  # the monitor; the exec goes on, orphaned
    session.wait(timeout=10)
    assert dsh.ls()[user.name]["sessions"] == 1
    proc = dsh("gc", "--idle", "0", user.name)
    assert proc.returncode == 0, proc.stderr
    assert state(container_name(user))["Running"]
    run(["docker", "exec", container_name(user), "sh", "-c", "kill $(cat /tmp/session.pid)"])
    wait_sessions(dsh, user, 0)
    session.communicate(timeout=10)


def test_admin_verbs_are_root_only_and_fail_in_one_line(dsh: Dockersh) -> None:
    proc = dsh("ls", env={"SUDO_UID": "12345"})
    assert proc.returncode == 125
    assert proc.stderr == "dockersh: only root may use ls\n"
    proc = dsh("gc", "--idle", "soon")
    assert proc.returncode == 2
    assert proc.stderr.startswith("dockersh: argument --idle: bad duration 'soon'")
    assert len(proc.stderr.splitlines()) == 1


# --- stop, restart, rm ----------------------------------------------------------------------------


def test_stop_then_the_next_login_starts_it_again(dsh: Dockersh, make_user: UserFactory) -> None:
    user = make_user()
    session = dsh.spawn(user, "sleep 60")
    wait_sessions(dsh, user, 1)
    proc = dsh("stop", user.name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"stopped {container_name(user)}, ending 1 live session\n"
    assert not state(container_name(user))["Running"]
    session.communicate(timeout=30)
    assert dsh("stop", user.name).stdout == f"{container_name(user)} is not running\n"
    proc = dsh.login(user, "echo back")
    assert (proc.returncode, proc.stdout) == (0, "back\n"), proc.stderr
    assert "starting it again" in proc.stderr


def test_restart_starts_a_fresh_container_process(dsh: Dockersh, make_user: UserFactory) -> None:
    user = make_user()
    logged_in(dsh, user)
    before = state(container_name(user))["StartedAt"]
    proc = dsh("restart", user.name)
    assert (proc.returncode, proc.stdout) == (0, f"restarted {container_name(user)}\n")
    after = state(container_name(user))
    assert after["Running"] and after["StartedAt"] != before


def test_rm_removes_the_container_and_its_state_but_never_the_home(
    dsh: Dockersh, make_user: UserFactory
) -> None:
    user = make_user()
    proc = dsh.login(user, "echo kept > ~/work.txt")
    assert proc.returncode == 0, proc.stderr
    name = container_name(user)
    assert (STATE_DIR / name / "passwd").exists()
    proc = dsh("rm", user.name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"removed {name} (the home directory is kept)\n"
    assert inspect(name) is None
    assert not (STATE_DIR / name).exists()
    assert (user.home / "work.txt").read_text() == "kept\n"
    proc = dsh.login(user, "cat ~/work.txt")
    assert (proc.returncode, proc.stdout) == (0, "kept\n"), proc.stderr


def test_start_readies_containers_ahead_of_logins(dsh: Dockersh, make_user: UserFactory) -> None:
    """`dockersh start`: the users named and a group's accounts get their containers before
    they log in (a class's logins are then warm ones); an account outside group dockersh is
    one line, and the others go on; a stopped container is started again."""
    group = f"dtg{os.getpid() % 100000}"
    run(["groupadd", group])
    try:
        named, in_group = make_user(), make_user(groups=[group])
        outsider = make_user(in_dockersh=False)
        proc = dsh("start", named.name, outsider.name, "--group", group)
        assert proc.returncode == 1
        assert proc.stdout == "".join(f"{container_name(u)} running\n" for u in (named, in_group))
        assert proc.stderr == f"dockersh: {outsider.name}: not in group dockersh\n"
        for user in (named, in_group):
            assert state(container_name(user))["Running"]
            assert [r["event"] for r in dsh.audit_records(user, "container-")] == [
                "container-created"]
        proc = dsh.login(named, "echo warm")
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "warm\n", "")
        assert len(dsh.audit_records(named, "container-")) == 1  # the login made nothing
        assert dsh("stop", in_group.name).returncode == 0
        proc = dsh("start", in_group.name)
        assert (proc.returncode, proc.stdout) == (0, f"{container_name(in_group)} running\n")
        assert state(container_name(in_group))["Running"]
        assert dsh("start").returncode == 2
        proc = dsh("start", "root")
        assert (proc.returncode, proc.stderr) == (1, "dockersh: root: root has no dockersh "
                                                     "container\n")
    finally:
        run(["groupdel", group], check=False)


def test_verbs_on_a_user_without_container(dsh: Dockersh, make_user: UserFactory) -> None:
    user = make_user()
    for verb in ("stop", "restart", "rm"):
        proc = dsh(verb, user.name)
        assert proc.returncode == 125
        assert proc.stderr == f"dockersh: {user.name} has no dockersh container\n"
    proc = dsh("stop")
    assert proc.returncode == 2 and "usage: dockersh stop" in proc.stderr


# --- gc -------------------------------------------------------------------------------------------


def test_gc_stops_idle_containers_and_leaves_live_sessions_alone(
    dsh: Dockersh, make_user: UserFactory
) -> None:
    busy, idle, session = busy_and_idle(dsh, make_user)
    try:
        time.sleep(1.2)
        proc = dsh("gc", "--idle", "1s", "--dry-run", busy.name, idle.name)
        assert proc.returncode == 0, proc.stderr
        assert re.search(rf"^would stop {container_name(idle)} \({idle.name}\): idle for \d+s, "
                         r"over 1s$", proc.stdout, re.M), proc.stdout
        assert busy.name not in proc.stdout
        assert state(container_name(idle))["Running"]

        proc = dsh("gc", "--idle", "1s", busy.name, idle.name)
        assert proc.returncode == 0, proc.stderr
        assert re.search(rf"^stopped {container_name(idle)} \({idle.name}\)", proc.stdout, re.M)
        assert busy.name not in proc.stdout
        assert not state(container_name(idle))["Running"]
        assert state(container_name(busy))["Running"]
        assert session.poll() is None
    finally:
        dsh.end(session)


def test_gc_follows_each_users_idle_timeout_and_action(
    dsh: Dockersh, make_user: UserFactory
) -> None:
    keep, stop, remove = make_user(), make_user(), make_user()
    for user in (keep, stop, remove):
        logged_in(dsh, user)
    # The global default (12h) keeps `keep`; 0 means never.
    dsh.write(f'[users.{stop.name}.session]\nidle_timeout = "1s"\n'
              f'[users.{remove.name}.session]\nidle_timeout = "1s"\nidle_action = "remove"\n')
    time.sleep(1.2)
    proc = dsh("gc", keep.name, stop.name, remove.name)
    assert proc.returncode == 0, proc.stderr
    assert keep.name not in proc.stdout
    assert f"stopped {container_name(stop)} ({stop.name})" in proc.stdout
    assert f"removed {container_name(remove)} ({remove.name})" in proc.stdout
    assert state(container_name(keep))["Running"]
    assert not state(container_name(stop))["Running"]
    assert inspect(container_name(remove)) is None
    assert not (STATE_DIR / container_name(remove)).exists()

    dsh.write('[session]\nidle_timeout = "0"\n')
    time.sleep(1.1)
    assert dsh("gc", keep.name, stop.name).stdout == ""


def test_gc_removes_containers_of_users_who_no_longer_exist(
    dsh: Dockersh, make_user: UserFactory
) -> None:
    gone, renumbered = make_user(), make_user()
    for user in (gone, renumbered):
        logged_in(dsh, user)
    run(["userdel", "-r", gone.name])
    # Same name, another uid: the old container is not the new account's.
    run(["userdel", renumbered.name])
    run(["useradd", "-M", "-d", str(renumbered.home), "-u", str(renumbered.uid + 1000), "-G",
         "dockersh", "-s", "/usr/local/bin/dockersh", renumbered.name])
    assert dsh.ls()[gone.name]["config"] == "orphan"
    proc = dsh("gc", gone.name, renumbered.name)  # no --idle: orphans go whatever the timeout
    assert proc.returncode == 0, proc.stderr
    for user in (gone, renumbered):
        assert (f"removed {container_name(user)} ({user.name}): the user no longer exists"
                in proc.stdout), proc.stdout
        assert inspect(container_name(user)) is None
    os.chown(renumbered.home, renumbered.uid + 1000, renumbered.gid)
    proc = dsh("--user", renumbered.name, "-c", "id -u")
    assert (proc.returncode, proc.stdout) == (0, f"{renumbered.uid + 1000}\n"), proc.stderr
    run(["userdel", "-r", renumbered.name], check=False)
    run(["docker", "rm", "-f", container_name(renumbered)], check=False)


def test_gc_removes_the_state_of_containers_and_users_removed_outside_dockersh(
    dsh: Dockersh, make_user: UserFactory
) -> None:
    """`docker rm` and `userdel` leave the generated passwd/group, the user's locks and cached
    plan behind; gc's sweep removes them, but never a lock someone holds nor a live user's."""
    import fcntl

    from dockersh import paths
    from dockersh.admin import inventory, leftovers, ops
    from dockersh.login import locks

    gone, held, live = make_user(), make_user(), make_user()
    for user in (gone, held, live):
        logged_in(dsh, user)
    files = {user.name: [STATE_DIR / container_name(user), *map(Path, locks.paths(user.name)),
                         Path(paths.PLAN_DIR) / user.name] for user in (gone, held, live)}
    assert all(path.exists() for paths in files.values() for path in paths), files
    for user in (gone, held):
        run(["docker", "rm", "-f", container_name(user)])
        run(["userdel", "-r", user.name])
    old = time.time() - leftovers.STATE_MAX_AGE - 60
    for user in (gone, held, live):
        os.utime(STATE_DIR / container_name(user), (old, old))
    holder = os.open(locks.paths(held.name)[0], os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # a login of the user is busy right now
        ops.sweep(inventory.backend_for("/nonexistent.toml"))
        assert not any(path.exists() for path in files[gone.name]), files[gone.name]
        assert all(path.exists() for path in files[held.name][1:]), files[held.name]
        assert all(path.exists() for path in files[live.name]), files[live.name]
    finally:
        os.close(holder)
    ops.sweep(inventory.backend_for("/nonexistent.toml"))
    assert not any(path.exists() for path in files[held.name]), files[held.name]
    assert all(path.exists() for path in files[live.name]), files[live.name]
    logged_in(dsh, live)


def test_gc_racing_logins_never_fails_a_login(dsh: Dockersh, make_user: UserFactory) -> None:
    """gc takes the user's lock before it looks for sessions: a login either got its session in
    first (gc leaves it) or waits for gc and starts the container again."""
    user = make_user()
    logged_in(dsh, user)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(6):
            gcs = [pool.submit(dsh, "gc", "--idle", "0", user.name) for _ in range(2)]
            logins = [pool.submit(dsh.login, user, "echo in") for _ in range(2)]
            for future in logins:
                proc = future.result()
                assert (proc.returncode, proc.stdout) == (0, "in\n"), proc.stderr
            for future in gcs:
                assert future.result().returncode == 0, future.result().stderr


# --- pull -----------------------------------------------------------------------------------------


def test_pull_shows_a_progress_bar_and_fetches_every_configured_image(
    dsh: Dockersh, registry: str, tmux_terminal: Callable[..., TmuxTerminal]
) -> None:
    main = push(registry, "dockersh-test/pull-main:1", layer_bytes=8_000_000)
    group = push(registry, "dockersh-test/pull-group:1", layer_bytes=1000)
    alias = push(registry, "dockersh-test/pull-alias:1", layer_bytes=1000)
    dsh.write(f'[groups.staff.container]\nimage = "{group}"\n'
              f'[user_config]\nimages = {{ small = "{alias}" }}\n', image=main)
    terminal = tmux_terminal(dsh.argv("pull"), width=120)
    assert terminal.wait_exit(120) == 0, terminal.capture_pane(history=True)
    screen = terminal.capture_pane(history=True)
    assert re.search(rf"^{re.escape(main)} \[#{{30}}\] 100%  .*downloaded newer image", screen,
                     re.M), screen
    assert group not in screen  # without --all, only the global image
    assert inspect(group) is None and run(["docker", "image", "inspect", main]).returncode == 0

    proc = dsh("pull", "--all")
    assert proc.returncode == 0, proc.stderr
    assert f"{main} [{'#' * 30}] 100%  image is up to date" in proc.stderr
    for ref in (group, alias):
        assert f"{ref} [{'#' * 30}] 100%" in proc.stderr
        assert run(["docker", "image", "inspect", ref], check=False).returncode == 0

    missing = f"{registry}/dockersh-test/missing:1"
    dsh.write(image=missing)
    proc = dsh("pull")
    assert proc.returncode == 1
    assert re.search(rf"^dockersh: cannot pull {re.escape(missing)}: ", proc.stderr, re.M)
    for ref in (main, group, alias):
        run(["docker", "rmi", ref], check=False)


# --- doctor ---------------------------------------------------------------------------------------


def doctor_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return proc.stdout.splitlines()


def test_doctor_is_healthy_on_an_installed_host(
    installed: Any, dsh: Dockersh, make_user: UserFactory
) -> None:
    make_user()  # a dockersh user, so that sshd's effective config is checked
    proc = dsh("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = doctor_lines(proc)
    assert lines[-1] == "healthy"
    assert all(line.split()[0] in ("ok", "note", "warn") for line in lines[:-1]), proc.stdout
    assert any(line.startswith("ok    Docker engine ") for line in lines)
    assert any(re.match(r"ok    \d+ member\(s\) of group dockersh: login shells, sshd's "
                        r"settings and authorized keys keep the host out of reach", line)
               for line in lines), proc.stdout


def test_doctor_names_each_problem_with_its_fix(
    installed: Any, dsh: Dockersh, make_user: UserFactory
) -> None:
    outsider = make_user(in_dockersh=False)  # login shell dockersh, not in the group
    dsh.write(memroy="1g")
    helper = installed.exec_helper
    helper.chmod(0o755)  # readable: ptrace-able until its own prctl
    try:
        proc = dsh("doctor")
    finally:
        helper.chmod(0o711)
    assert proc.returncode == 1, proc.stdout
    lines = doctor_lines(proc)
    assert f"FAIL  {helper} is readable by users (it must be 0711); fix: " in "\n".join(lines)
    assert f"FAIL  {outsider.name} has the login shell /usr/local/bin/dockersh but is not in " \
           f"group dockersh, so cannot log in; fix: dockersh enroll {outsider.name}" in lines
    config_line = next(line for line in lines if "memroy" in line)
    assert config_line.startswith(f"FAIL  {dsh.config}: [container] memroy: unknown key; fix: ")
    assert re.fullmatch(r"\d+ problems? found", lines[-1])

    assert dsh("enroll", outsider.name).returncode == 0
    dsh.write("")
    proc = dsh("doctor")
    # Its name may still appear in an ok line (sshd is asked as the first member of the group).
    assert not [line for line in doctor_lines(proc) if outsider.name in line
                and not line.startswith("ok ")], proc.stdout
    assert "memroy" not in proc.stdout


# --- enroll, unenroll -----------------------------------------------------------------------------


def test_enroll_and_unenroll(dsh: Dockersh, make_user: UserFactory) -> None:
    user = make_user(shell="/bin/sh", in_dockersh=False)
    proc = dsh("enroll", user.name)
    assert proc.returncode == 0, proc.stderr
    assert pwd.getpwnam(user.name).pw_shell == "/usr/local/bin/dockersh"
    assert user.name in grp.getgrnam("dockersh").gr_mem
    proc = dsh("unenroll", user.name)
    assert proc.returncode == 0, proc.stderr
    assert pwd.getpwnam(user.name).pw_shell == "/usr/sbin/nologin"
    assert user.name not in grp.getgrnam("dockersh").gr_mem
    dsh("enroll", user.name)
    proc = dsh("unenroll", user.name, "--shell", "/bin/bash")
    assert proc.returncode == 0, proc.stderr
    assert pwd.getpwnam(user.name).pw_shell == "/bin/bash"
    proc = dsh("enroll", "root")
    assert (proc.returncode, proc.stderr) == (
        125, "dockersh: root cannot be enrolled: root has no dockersh container\n")


# --- audit ----------------------------------------------------------------------------------------


def test_audit_records_every_session_start_and_end(dsh: Dockersh, make_user: UserFactory) -> None:
    user = make_user()
    ssh = {"SSH_CONNECTION": "127.0.0.9 50123 127.0.0.1 22"}
    assert dsh.login(user, "exit 3", env=ssh).returncode == 3
    proc = dsh("--user", user.name, input="exit 4\n", env=ssh)  # no -c: interactive
    assert proc.returncode == 4, proc.stderr
    records = dsh.audit_records(user)
    assert [(r["event"], r["command"]) for r in records] == [
        ("session-start", "exit 3"), ("session-end", "exit 3"),
        ("session-start", "interactive"), ("session-end", "interactive")]
    end = records[1]
    assert end["exit"] == 3 and 0 < end["duration"] < 60
    assert records[3]["exit"] == 4
    assert dsh.login(user, "true", env={"SSH_CONNECTION": "::1 50124 ::1 22"}).returncode == 0
    assert dsh.audit_records(user)[-1]["remote"] == "[::1]:50124"
    for record in records:
        assert record["uid"] == user.uid
        assert record["remote"] == "127.0.0.9:50123"
        assert record["container"] == container_name(user)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"])
        assert re.fullmatch(rf"\d{{8}}T\d{{6}}Z-{user.name}-{record['pid']}", record["session"])
    assert records[0]["session"] == records[1]["session"] != records[2]["session"]


def test_audit_time_is_utc_whatever_tz_the_session_brings(dsh: Dockersh,
                                                         make_user: UserFactory) -> None:
    user = make_user()
    assert dsh.login(user, "true", env={"TZ": "EST5"}).returncode == 0
    for record in dsh.audit_records(user):
        stamp = time.strptime(record["time"], "%Y-%m-%dT%H:%M:%SZ")
        assert abs(calendar.timegm(stamp) - time.time()) < 120, record  # UTC, not 5 h off


@pytest.mark.parametrize("mode", ["docker", "nsenter"])
def test_a_session_whose_start_cannot_be_audited_does_not_start(
        dsh: Dockersh, make_user: UserFactory, mode: str) -> None:
    """Fail closed: the audit file unwritable (a directory in its place) refuses the session
    before its command runs, in one line."""
    dsh.write(f'[session]\nexec = "{mode}"\n')
    dsh.audit.mkdir()
    user = make_user()
    proc = dsh.login(user, "touch ~/ran")
    assert (proc.returncode, proc.stdout) == (125, ""), proc.stderr
    assert proc.stderr == (f"dockersh: cannot write the audit file {dsh.audit} (Is a directory); "
                           "refusing to start the session\n")
    assert not (user.home / "ran").exists()


def test_the_containers_log_on_the_host_is_bounded(dsh: Dockersh, make_user: UserFactory) -> None:
    """The init's stdout is the user's to write (/proc/1/fd/1), and the engine keeps it on the
    host's disk: 40 MB written leave at most [container] log_size there."""
    dsh.write(log_size="1m")
    user = make_user()
    proc = dsh.login(user, "yes 0123456789abcdef | head -c 40000000 > /proc/1/fd/1")
    assert proc.returncode == 0, proc.stderr
    info = inspect(container_name(user))
    assert info is not None
    assert info["HostConfig"]["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": str(2**20), "max-file": "1"}}
    # The engine copies the output behind the session and rotates the file as it goes (it is
    # gone for a moment at each rotation): every size seen until two readings agree is bounded.
    sizes: list[int] = []

    def settled() -> bool:
        try:
            sizes.append(os.stat(info["LogPath"]).st_size)
        except FileNotFoundError:
            return False
        return len(sizes) > 1 and sizes[-1] == sizes[-2]

    wait_until(settled, 30, "the engine's log stops growing")
    assert max(sizes) <= 2**20 + 64 * 1024, sizes


@pytest.fixture
def extra_group() -> Iterator[tuple[str, int]]:
    name = f"dg{os.urandom(3).hex()}"
    run(["groupadd", name])
    yield name, grp.getgrnam(name).gr_gid
    run(["groupdel", name])


def test_a_revoked_group_never_reaches_a_new_session(dsh: Dockersh, make_user: UserFactory,
                                                     extra_group: tuple[str, int]) -> None:
    """docker mode: an exec gets the container's GroupAdd, fixed when it was created. While a
    session keeps that container (it cannot be recreated), a new docker-mode session is refused
    rather than handed a group the admin took away; nsenter mode sets the current groups."""
    name, gid = extra_group
    user = make_user(groups=[name])
    assert str(gid) in dsh.login(user, "id -G").stdout.split()
    live = dsh.spawn(user, "sleep 60")
    try:
        wait_until(lambda: bool(dsh.ls().get(user.name, {}).get("sessions")), 20, "a session")
        run(["gpasswd", "-d", user.name, name])
        proc = dsh.login(user, "id -G")
        assert (proc.returncode, proc.stdout) == (125, ""), proc.stdout
        assert proc.stderr.startswith("dockersh: your container still has a group you were "
                                      f"removed from ({gid})"), proc.stderr
        dsh.write('[session]\nexec = "nsenter"\n')
        proc = dsh.login(user, "id -G")
        assert proc.returncode == 0, proc.stderr
        assert str(gid) not in proc.stdout.split()
    finally:
        dsh.end(live)


def test_a_login_never_blocks_on_its_stderr_while_it_holds_the_lock(
        dsh: Dockersh, make_user: UserFactory) -> None:
    """The session's stderr full (a client that never reads): a login whose container must be
    recreated says so with the user's lock held, and blocked there, so `dockersh stop` timed
    out. Now it finishes its work and releases the lock first (through sshd: test_security_host)."""
    dsh.write('[docker]\nlock_timeout = "3s"\n')
    user = make_user()
    assert dsh.login(user).returncode == 0
    before = inspect(container_name(user))
    dsh.write('[docker]\nlock_timeout = "3s"\n', memory="512m")  # stale: recreated, with a notice
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    login = subprocess.Popen(dsh.argv("--user", user.name, "-c", "true"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=w, start_new_session=True,
                             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    os.close(w)
    try:
        wait_until(lambda: "pipe_write" in Path(f"/proc/{login.pid}/wchan").read_text(), 30,
                   "the login blocked writing")  # anon_pipe_write on newer kernels
        stop = dsh("stop", user.name)
        assert stop.returncode == 0, stop.stderr
        after = inspect(container_name(user))
        assert before is not None and after is not None and after["Id"] != before["Id"]
    finally:
        os.close(r)  # the login gets EPIPE and ends
        login.wait(timeout=60)


@pytest.mark.parametrize("mode", ["docker", "nsenter"])
def test_command_bytes_that_are_not_utf8_pass_exactly_or_are_refused(
        dsh: Dockersh, make_user: UserFactory, mode: str) -> None:
    dsh.write(f'[session]\nexec = "{mode}"\n')
    user = make_user()
    proc = dsh.login(user, "printf '\udcff' | od -An -tx1")  # surrogateescape: the byte 0xff
    if mode == "nsenter":
        assert (proc.returncode, proc.stdout.split()) == (0, ["ff"]), proc.stderr
    else:
        assert (proc.returncode, proc.stdout) == (125, ""), proc.stdout
        assert proc.stderr.startswith("dockersh: the command is not valid UTF-8")


def test_gc_removes_image_probes_left_by_a_killed_login(
    docker_engine: Any, test_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login SIGKILLed while probing an image leaves a never-started container behind."""
    from dockersh.admin import inventory, ops

    left = docker_engine.containers.create(test_image, "true", labels={"dockersh.probe": "1"})
    try:
        monkeypatch.setattr(ops, "PROBE_MAX_AGE", 0)
        backend = inventory.backend_for("/nonexistent.toml")  # the defaults: the local engine
        ops.remove_stale_probes(backend, dry_run=True)
        docker_engine.containers.get(left.id)  # a dry run removes nothing
        ops.remove_stale_probes(backend, dry_run=False)
        assert not docker_engine.containers.list(all=True, filters={"id": left.id})
    finally:
        subprocess.run(["docker", "rm", "-f", left.id], capture_output=True, check=False)
