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
            "banner": "", **changes}


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
