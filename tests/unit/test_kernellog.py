"""The kernel log's OOM records, read from a saved copy of /dev/kmsg (pure parsing)."""

from __future__ import annotations

import time
from pathlib import Path

from dockersh.backend import kernellog

ID = "4eef51eab0432ee4a8989aac744ddb67db86329a23fe1951f6b9851ca925c074"
OTHER = "493c0aea4bcce4190983d2a54553b269d64ef226e32f08c816ed6459faa0eca9"


def oom(container_id: str, task: str = "sh") -> str:
    return (f"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={container_id},"
            f"mems_allowed=0,oom_memcg=/docker/{container_id},"
            f"task_memcg=/docker/{container_id},task={task},pid=10044,uid=1001")


def saved_log(tmp_path: Path, *messages: tuple[float, str]) -> str:
    """A file as /dev/kmsg reads: records at monotonic seconds, a continuation line after each."""
    lines = [f"6,{seq},{int(at * 1e6)},-;{text}\n SUBSYSTEM=memory;x\n"
             for seq, (at, text) in enumerate(messages)]
    path = tmp_path / "kmsg"
    path.write_text("".join(lines))
    return str(path)


def test_a_kill_in_the_containers_cgroup_since_its_start_counts(tmp_path: Path) -> None:
    now, boot = time.time(), time.clock_gettime(time.CLOCK_MONOTONIC)
    log = saved_log(tmp_path, (boot - 100, oom(ID)), (boot - 10, oom(OTHER)),
                    (boot - 5, "Memory cgroup out of memory: Killed process 10044 (sh)"))
    assert kernellog.oom_killed_since(ID, now - 200, log)
    assert not kernellog.oom_killed_since(ID, now - 50, log)  # before this start
    assert kernellog.oom_killed_since(OTHER, now - 50, log)
    assert not kernellog.oom_killed_since("0" * 64, now - 200, log)


def test_only_the_kernels_oom_record_with_the_id_in_a_cgroup_field_counts() -> None:
    assert kernellog.killed_in(oom(ID), ID)
    assert kernellog.killed_in(oom(ID).replace("/docker/", "/system.slice/docker-"), ID)
    assert not kernellog.killed_in(oom(OTHER, task=ID[:15]), ID)  # a task name is 15 bytes
    assert not kernellog.killed_in(f"audit: cpuset={ID},oom_memcg=/docker/{ID}", ID)
    assert not kernellog.killed_in(oom(ID), "")  # no id: nothing matches everything


def test_only_the_kernels_records_count_whole(tmp_path: Path) -> None:
    """A record written through /dev/kmsg (facility user: prio 14) or a continuation line
    spelling one is not the kernel's; records across the reader's 8 KiB reads stay whole."""
    now, boot = time.time(), time.clock_gettime(time.CLOCK_MONOTONIC)
    usec = int((boot - 1) * 1e6)
    path = tmp_path / "forged"  # another file: kills() serves a path's read for 2 s
    path.write_text(f"14,0,{usec},-;{oom(ID)}\n 1,2,{usec};{oom(ID)}\n")
    assert not kernellog.oom_killed_since(ID, now - 10, str(path))
    filler = [(boot - 2, "x" * 1000)] * 20  # 20 KiB of other records first
    log = saved_log(tmp_path, *filler, (boot - 1, oom(OTHER)))
    assert [text[:9] for _, text in kernellog.records(log)] == ["x" * 9] * 20 + ["oom-kill:"]
    assert kernellog.oom_killed_since(OTHER, now - 10, log)


def test_an_unreadable_log_says_no(tmp_path: Path) -> None:
    assert list(kernellog.records(str(tmp_path / "none"))) == []
    assert not kernellog.oom_killed_since(ID, 0.0, str(tmp_path / "none"))
