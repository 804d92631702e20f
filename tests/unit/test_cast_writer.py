"""The cast writer (login/recording.py) on real files: asciicast v2 lines, what is kept, the cut,
and the refusals. Through sshd in both modes: tests/e2e/test_recording.py."""

import json
import os
from pathlib import Path

import pytest

from dockersh.errors import DockershError
from dockersh.login import recording


def settings(directory: Path, **changes: object) -> dict[str, object]:
    return {"dir": str(directory), "input": False, "streams": False, "max_size": 10**6,
            "min_free": 0, "banner": "", **changes}


def lines(path: str) -> list[object]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_a_terminal_session_keeps_output_and_resizes_and_input_only_when_asked(
        tmp_path: Path) -> None:
    for keep_input in (False, True):
        cast = recording.create(settings(tmp_path / "s", input=keep_input), f"id{keep_input}",
                                True, None, {"TERM": "xterm", "SHELL": "/bin/bash"})
        cast.output("é".encode()[:1])  # a character split across two reads
        cast.output("é".encode()[1:] + b"!\xff")
        cast.input(b"secret\r")
        cast.resize(120, 40)
        end = cast.close()
        header, *events = lines(cast.path)
        assert header == {"version": 2, "width": 80, "height": 24,
                          "timestamp": header["timestamp"],  # type: ignore[index]
                          "env": {"TERM": "xterm", "SHELL": "/bin/bash"}}
        kinds = [e[1] for e in events]  # type: ignore[index]
        assert "".join(e[2] for e in events if e[1] == "o") == "é!\ufffd"  # type: ignore[index]
        assert ("i" in kinds) is keep_input and "r" in kinds
        assert next(e for e in events if e[1] == "r")[2] == "120x40"  # type: ignore[index]
        assert end == {"recording": cast.path, "bytes_in": 7, "bytes_out": 4}
        assert os.stat(cast.path).st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "s").st_mode & 0o777 == 0o700


def test_a_command_session_keeps_its_command_and_counts_its_streams_only_when_asked(
        tmp_path: Path) -> None:
    for streams in (False, True):
        cast = recording.create(settings(tmp_path, streams=streams), f"c{streams}", False,
                                "scp -t x", {})
        cast.input(b"up")
        cast.output(b"out", 1)
        cast.output(b"err", 2)
        end = cast.close()
        header, *events = lines(cast.path)
        assert header["command"] == "scp -t x"  # type: ignore[index]
        assert [e[1:] for e in events] == (  # type: ignore[index]
            [["i", "up"], ["o", "out"], ["o", "err"]] if streams else [])
        assert (end["bytes_in"], end["bytes_out"]) == (2, 6)


def test_a_full_recording_ends_with_where_it_was_cut(tmp_path: Path) -> None:
    cast = recording.create(settings(tmp_path, max_size=400), "cut", True, None, {})
    for _ in range(100):
        cast.output(b"x" * 50)
    end = cast.close()
    *_, last = lines(cast.path)
    assert end["bytes_out"] == 5000 and 0 < int(end["recording_cut"]) <= 400  # type: ignore
    assert last[1:] == ["m", f"dockersh: recording cut at {end['recording_cut']} bytes "  # type: ignore
                        "(max_size)"]
    assert os.path.getsize(cast.path) < 400 + 100
    kept = "".join(e[2] for e in lines(cast.path)[1:] if e[1] == "o")  # type: ignore[index]
    assert kept == "x" * len(kept) and len(kept) > 200  # what fitted of the last event too


def test_a_cut_with_almost_no_room_left_encodes_the_event_a_few_times_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 KiB of control characters (6 bytes each in JSON) with 0-5 bytes of room: the event is
    dropped, after a handful of encodings (it was once one per character: 12 s of root CPU)."""
    encodings = []

    def counted(value: object) -> str:
        encodings.append(1)
        return real(value)

    real = recording.dumps
    monkeypatch.setattr(recording, "dumps", counted)
    for room in range(6):
        cast = recording.create(settings(tmp_path, max_size=10**6), f"r{room}", True, None, {})
        header_size = cast.size
        cast.max_size = header_size + 1 + room
        encodings.clear()
        cast.output(b"\x01" * 65536)
        assert len(encodings) <= 20
        end = cast.close()
        _, *events = lines(cast.path)
        assert [e[1] for e in events] == ["m"]  # type: ignore[index]
        assert (end["recording_cut"], end["recording_cut_by"]) == (header_size, "max_size")


def test_a_cut_keeps_the_longest_part_of_the_event_that_fits(tmp_path: Path) -> None:
    for room in (30, 64, 100, 1000):
        cast = recording.create(settings(tmp_path), f"f{room}", True, None, {})
        before = cast.size
        cast.max_size = before + 1 + room
        cast.output(b"\x01a" * 30000)
        cast.close()
        _, first, marker = Path(cast.path).read_text().splitlines()[:3]
        assert len(first) <= room and marker.startswith("[")
        at, _, text = json.loads(first)
        longer = recording.dumps([at, "o", ("\x01a" * 30000)[:len(text) + 1]])
        assert len(longer) > room and text == ("\x01a" * 30000)[:len(text)]


def test_a_disk_short_of_min_free_cuts_the_recording_not_the_session(tmp_path: Path) -> None:
    """f_bavail (what is left for non-root users) below min_free: at the start, the recording
    is only its header and a marker; later, it stops within CHECK_EVERY of the disk's filling."""
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    cast = recording.create(settings(tmp_path, min_free=free * 2), "full", True, None, {})
    cast.output(b"x" * 1000)
    end = cast.close()
    assert end["recording_cut_by"] == "min_free" and end["bytes_out"] == 1000
    assert [e[1:] for e in lines(cast.path)[1:]] == [  # type: ignore[index]
        ["m", f"dockersh: recording cut at {end['recording_cut']} bytes (min_free)"]]

    cast = recording.create(settings(tmp_path, min_free=1, max_size=10**8), "later", True,
                            None, {})
    for _ in range(100):
        cast.output(b"x" * 4096)
    cast.min_free = free * 2  # the disk filled meanwhile
    for _ in range(1000):
        cast.output(b"x" * 4096)
    end = cast.close()
    assert end["recording_cut_by"] == "min_free"
    assert recording.CHECK_EVERY <= int(end["recording_cut"]) < 2 * recording.CHECK_EVERY  # type: ignore


def test_a_long_command_is_kept_as_its_start_length_and_hash(tmp_path: Path) -> None:
    import hashlib

    from dockersh.login import audit

    command = "echo " + "é" * 65536
    kept = audit.command_fields(command)
    assert kept == {"command": command.encode()[:4096].decode(errors="replace"),
                    "command_length": len(command.encode()),
                    "command_sha256": hashlib.sha256(command.encode()).hexdigest()}
    assert audit.command_fields("scp -t x") == {"command": "scp -t x"}
    cast = recording.create(settings(tmp_path), "long", False, command, {})
    cast.close()
    header = lines(cast.path)[0]
    assert header["command_length"] == kept["command_length"]  # type: ignore[index]
    assert os.path.getsize(cast.path) < 6 * audit.COMMAND_KEPT + 1000  # not 390 KB


def test_no_file_no_session(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir(mode=0o755)
    recording.create(settings(tmp_path / "open"), "x", False, "true", {}).close()
    assert os.stat(tmp_path / "open").st_mode & 0o777 == 0o700  # made root's alone
    (tmp_path / "file").write_text("")
    with pytest.raises(DockershError, match="refusing to start the session"):
        recording.create(settings(tmp_path / "file"), "x", False, "true", {})
    os.chown(tmp_path, 65534, 65534)  # a directory someone else could write to
    with pytest.raises(DockershError, match="not a directory of root's"):
        recording.create(settings(tmp_path), "x", False, "true", {})
