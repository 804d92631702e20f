"""The pure parts of `sessions`, `metrics`, `replay` and gc's keep: pairing records, latency
buckets, the exposition, session names, asciicast playing, which recordings are old."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dockersh.admin import auditlog, metrics, recordings, replay
from dockersh.config import schema
from dockersh.errors import DockershError

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def stamp(epoch: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def start(name: str, at: float = T0, **extra: Any) -> dict[str, Any]:
    return {"time": stamp(at), "session": name, "user": name.split("-")[1], "pid": 4242,
            "container": f"dockersh-{name.split('-')[1]}", "event": "session-start", **extra}


def end(name: str, code: int, duration: float) -> dict[str, Any]:
    return {"time": stamp(T0 + duration), "session": name, "user": name.split("-")[1],
            "event": "session-end", "exit": code, "duration": duration}


def test_sessions_pair_by_name_and_are_running_or_lost_without_an_end() -> None:
    a, b, c = "20270115T080000Z-alice-1", "20270115T080000Z-bob-2", "20270115T080000Z-carol-3"
    found = [start(a), start(b, target="web"), start(c, recording="/x/c.cast"), end(a, 3, 1.5),
             end("20270101T000000Z-dave-9", 0, 1),  # its start is in the rotated file
             {"event": "login-refused", "user": "eve"}, {"no": "session"}]
    running = {b}
    sessions = auditlog.pair(found, lambda s: s["session"] in running, T0 + 60)
    assert [(s.id, s.user, s.where, s.status, s.duration, s.recording) for s in sessions] == [
        (a, "alice", "dockersh-alice", "3", 1.5, ""),
        (b, "bob", "target web", "running", 60.0, ""),
        (c, "carol", "dockersh-carol", "lost", None, "/x/c.cast")]


def test_the_rotated_files_open_sessions_are_carried_over(tmp_path: Path) -> None:
    """FILE.1's starts without an end there: listed when they end in FILE or still run, left
    out when lost (they belong to the older file); the rest of FILE.1 is not kept."""
    over, done, lost, here = (f"20270115T080000Z-{u}-1" for u in ("ann", "ben", "cid", "dan"))
    audit = tmp_path / "audit.jsonl"
    rotated = [start(over), start(done), end(done, 0, 1), start(lost)]
    Path(f"{audit}.1").write_text("".join(json.dumps(r) + "\n" for r in rotated))
    audit.write_text("".join(json.dumps(r) + "\n" for r in (end(over, 1, 9), start(here))))
    carried = auditlog.carried_over(str(audit))
    assert set(carried) == {over, lost}
    found = auditlog.pair(auditlog.records(str(audit)), lambda s: False, T0 + 60, carried)
    assert [(s.id, s.status) for s in found] == [(over, "1"), (here, "lost")]
    assert auditlog.carried_over(str(tmp_path / "none.jsonl")) == {}


def test_metrics_read_the_audit_file_as_a_stream(tmp_path: Path) -> None:
    """A week of records is counted, not held: the peak memory of the exposition stays far
    below the file's records as dicts."""
    import tracemalloc

    from dockersh import records

    audit = tmp_path / "audit.jsonl"
    with audit.open("w") as f:
        for i in range(40000):
            name = f"20270115T080000Z-u{i}-{i}"
            f.write(json.dumps(start(name, latency=0.03, command="x" * 100)) + "\n")
            f.write(json.dumps(end(name, 0, 1.0)) + "\n")
    config = schema.Config()
    config = records.replace(
        config, audit=records.replace(config.audit, file=str(audit)),
        docker=records.replace(config.docker, host=f"unix://{tmp_path}/no-engine.sock"))
    tracemalloc.start()
    try:
        text = metrics.exposition(config).decode()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 'dockersh_logins_total{result="ok"} 40000.0' in text
    assert "dockersh_engine_up 0.0" in text
    assert peak < 8 * 2**20, peak  # the records as a list: 80 MB and more


def test_a_reused_pid_is_not_the_sessions_monitor() -> None:
    """A record names its monitor only while the process with its pid started before the
    record was written: one with this process's pid written before it started is another's."""
    booted = auditlog.boot_time()
    mine = {"pid": os.getpid(), "time": stamp(__import__("time").time() + 5)}
    assert auditlog.monitor_alive(mine, booted)
    long_ago = {"pid": os.getpid(), "time": stamp(booted - 100)}  # before this process started
    assert not auditlog.monitor_alive(long_ago, booted)
    assert not auditlog.monitor_alive({"pid": 2**22 + 1, "time": mine["time"]}, booted)
    assert not auditlog.monitor_alive({"pid": "1", "time": mine["time"]}, booted)


def test_latency_buckets_are_cumulative_with_inf_last() -> None:
    histogram = metrics.Histogram((0.05, 0.1, 5.0))
    for latency in (0.01, 0.05, 0.07, 3.0, 100.0):
        histogram.add(latency)
    assert histogram.buckets() == [("0.05", 2.0), ("0.1", 3.0), ("5.0", 4.0), ("+Inf", 5.0)]
    assert histogram.sum == pytest.approx(103.13)
    assert metrics.Histogram((1.0,)).buckets() == [("1.0", 0.0), ("+Inf", 0.0)]


def families(records: list[dict[str, Any]] | None, states: list[str] | None) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.AuditCollector(records, states))
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(family: Any, suffix: str = "", **labels: str) -> float:
    [found] = [s.value for s in family.samples
               if s.name == family.name + suffix and s.labels == labels]
    return float(found)


def test_the_exposition_counts_the_records() -> None:
    one, two = "20270115T080000Z-alice-1", "20270115T080000Z-alice-2"
    records = [start(one, latency=0.04), end(one, 0, 1), start(two, latency=2.0),
               {"event": "login-refused"}, {"event": "login-refused"}, {"event": "login-error"},
               {"event": "container-created"}, {"event": "container-started"},
               {"event": "container-recreated"}, {"event": "container-recreated"}]
    found = families(records, ["running", "running", "exited"])
    logins = found["dockersh_logins"]
    assert logins.type == "counter"
    assert [value(logins, "_total", result=r) for r in ("ok", "refused", "error")] == [2, 2, 1]
    assert value(found["dockersh_first_logins"], "_total") == 1
    assert value(found["dockersh_container_starts"], "_total") == 1
    assert value(found["dockersh_container_recreations"], "_total") == 2
    assert value(found["dockersh_sessions_active"]) == 0  # pid 4242's record is not ours: lost
    latency = found["dockersh_login_latency_seconds"]
    assert latency.type == "histogram"
    assert value(latency, "_bucket", le="0.05") == 1 and value(latency, "_count") == 2
    assert value(latency, "_sum") == pytest.approx(2.04)
    by_state = found["dockersh_containers"]
    assert value(by_state, state="running") == 2 and value(by_state, state="exited") == 1
    assert value(by_state, state="paused") == 0
    assert value(found["dockersh_engine_up"]) == 1


def test_without_the_engine_there_are_no_container_states() -> None:
    found = families([], None)
    assert value(found["dockersh_engine_up"]) == 0 and "dockersh_containers" not in found


def test_without_an_audit_file_there_are_the_engines_families_only() -> None:
    assert set(families(None, ["running"])) == {"dockersh_engine_up", "dockersh_containers"}


@pytest.mark.parametrize("bad", ["../../etc/shadow", "20270115T080000Z-alice-1/../x", "",
                                 ".cast", "20270115T080000Z-alice-1.cast", "alice",
                                 "20270115T080000Z-../-1", "20270115T080000Z-a/b-1"])
def test_replay_takes_a_session_name_never_a_path(bad: str) -> None:
    with pytest.raises(DockershError, match="is not a session name"):
        recordings.path_of(schema.Config(), bad)


def test_a_session_name_is_a_file_in_the_sessions_dir() -> None:
    assert recordings.path_of(schema.Config(), "20270115T080000Z-al.ice-1") == \
        "/var/log/dockersh/sessions/20270115T080000Z-al.ice-1.cast"


def cast(*events: list[Any], **header: Any) -> io.BytesIO:
    lines = [json.dumps({"version": 2, "width": 80, "height": 24, **header})]
    return io.BytesIO("\n".join([*lines, *map(json.dumps, events)]).encode() + b"\n")


def test_replay_writes_the_output_events_only(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(replay.time, "monotonic", lambda: 0.0)
    out = io.BytesIO()
    replay.play(cast([0.5, "o", "$ "], [1.0, "i", "secret\r"], [1.5, "r", "100x30"],
                     [31.5, "o", "h\u00e9\r\n"], [32.0, "m", ""]), "x", out.write,
                slept.append, 2.0, None, False)
    assert out.getvalue() == "$ h\u00e9\r\n".encode()
    assert slept == [0.25, 15.75]  # at half the times
    slept.clear()
    replay.play(cast([0.5, "o", "a"], [100.5, "o", "b"], idle_time_limit=2), "x",
                io.BytesIO().write, slept.append, 1.0, None, False)
    assert slept == [0.5, 2.5]  # the recording's idle limit
    slept.clear()
    replay.play(cast([0.5, "o", "a"], [100.5, "o", "b"], idle_time_limit=2), "x",
                io.BytesIO().write, slept.append, 1.0, 0.1, False)
    assert slept == [0.1, 0.2]  # --idle-limit wins


def test_replay_filters_the_output_unless_raw() -> None:
    events = ([0, "o", "a\x1b]5"], [0, "o", "2;c;cHduZWQ=\x07b\x1b[6"], [0, "o", "n\x1b[1mc"])
    for raw, expected in ((False, b"ab\x1b[1mc"),
                          (True, b"a\x1b]52;c;cHduZWQ=\x07b\x1b[6n\x1b[1mc")):
        out = io.BytesIO()
        replay.play(cast(*events), "x", out.write, lambda _: None, 1.0, None, raw)
        assert out.getvalue() == expected


@pytest.mark.parametrize("text", [b"", b"not json\n", b'{"version": 1}\n',
                                  b'{"version": 2}\n[1, "o"]\n', b'{"version": 2}\n{"a": 1}\n'])
def test_replay_refuses_what_is_not_asciicast_v2(text: bytes) -> None:
    with pytest.raises(DockershError, match="asciicast v2"):
        replay.play(io.BytesIO(text), "x", io.BytesIO().write, lambda _: None, 1.0, None, False)


def test_keep_picks_old_recordings_and_nothing_else(tmp_path: Path) -> None:
    old, new = "20260101T000000Z-alice-1.cast", "20261201T000000Z-alice-2.cast"
    others = ("notes.txt", "20260101T000000Z-alice-3.cast.part", "x.cast")
    for name in (old, new, *others):
        (tmp_path / name).write_text("{}\n")
        at = T0 + 20 * 86400 if name == new else T0
        os.utime(tmp_path / name, (at, at))
    (tmp_path / "20260101T000000Z-bob-4.cast").symlink_to("/etc/passwd")
    config = keeping("30d", tmp_path)
    assert recordings.expired(config, T0 + 31 * 86400) == [str(tmp_path / old)]
    assert recordings.expired(config, T0 + 29 * 86400) == []
    for forever in ("", "0"):
        assert recordings.expired(keeping(forever, tmp_path), T0 * 2) == []


def keeping(keep: str, sessions: Path = Path("/nonexistent")) -> schema.Config:
    audit = {"keep": keep, "sessions_dir": str(sessions)}
    base = schema.validate_global({"audit": audit}, "test")[0]
    return schema.build(schema.merge([base]))


def test_keep_is_a_duration_or_empty() -> None:
    with pytest.raises(DockershError, match="bad duration"):
        keeping("forever")
