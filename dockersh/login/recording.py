"""A recorded session's file: asciicast v2, ``SESSIONS_DIR/SESSION.cast``, root-only.

asciicast v2 is JSON lines (a header object, then ``[seconds, code, text]`` events), so it is
written here with jsontext rather than a library: there is no maintained Python asciicast writer
(asciinema itself writes its files in Rust), and json would cost the monitor 10 ms. Imported
only for recorded sessions. Whatever happens to the file once the session runs, the session
goes on unchanged: a file that cannot be made refuses the session before it starts, one that
fills up (``max_size``) or fails ends with a marker event saying so, and the end record says it
too.

What is kept: terminal sessions their output ("o") and resizes ("r", "COLSxROWS"), their input
("i") only with ``record_input`` (it holds passwords typed at prompts); command sessions (no
terminal: scp, sftp, rsync, ssh host cmd) their command in the header and their byte counts,
their stdin ("i") and stdout/stderr ("o") only with ``record_streams``. Text is UTF-8 with
undecodable bytes replaced (as asciinema does): the counts, not the text, are exact.
"""

from __future__ import annotations

import codecs
import os
import stat
import sys
import time

from dockersh.errors import DockershError
from dockersh.jsontext import dumps

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping


class Recording:
    """One session's cast, open for appending; counts the bytes each way."""

    def __init__(self, path: str, fd: int, settings: Mapping[str, object], tty: bool) -> None:
        self.path, self.fd = path, fd
        self.max_size = int(str(settings["max_size"]))
        self.keep_output = tty or bool(settings["streams"])
        self.keep_input = bool(settings["input"] if tty else settings["streams"])
        self.started = time.monotonic()
        self.size = 0
        self.bytes_in = self.bytes_out = 0
        self.cut = -1  # where the file was cut (max_size reached), else -1
        self.error = ""
        self.decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in (0, 1, 2)}

    def header(self, width: int, height: int, env: Mapping[str, str], command: str | None,
               timestamp: int) -> None:
        head: dict[str, object] = {"version": 2, "width": width, "height": height,
                                   "timestamp": timestamp, "env": dict(env)}
        if command is not None:
            head["command"] = command
        self.write(dumps(head))

    def output(self, data: bytes, fd: int = 1) -> None:
        """What the session wrote to the client (``fd``: 1 stdout, 2 stderr)."""
        self.bytes_out += len(data)
        if self.keep_output and self.cut < 0:
            self.event("o", self.decoders[fd].decode(data))

    def input(self, data: bytes) -> None:
        """What the client sent the session."""
        self.bytes_in += len(data)
        if self.keep_input and self.cut < 0:
            self.event("i", self.decoders[0].decode(data))

    def resize(self, cols: int, rows: int) -> None:
        self.event("r", f"{cols}x{rows}")

    def event(self, code: str, text: str) -> None:
        if not text or self.cut >= 0:
            return
        at = round(time.monotonic() - self.started, 6)
        line = dumps([at, code, text])
        room = self.max_size - self.size - 1
        if len(line) > room:
            # Cut here: what fits of this event, a marker saying where, then nothing more.
            while text and len(line) > room:
                text = text[:len(text) * room // len(line) - 1]
                line = dumps([at, code, text])
            if text:
                self.write(line)
            self.cut = self.size
            line = dumps([at, "m", f"dockersh: recording cut at {self.cut} bytes (max_size)"])
        self.write(line)

    def write(self, line: str) -> None:
        data = (line + "\n").encode()
        try:
            while data:
                written = os.write(self.fd, data)
                self.size += written
                data = data[written:]
        except OSError as exc:  # the session goes on; the end record says why the file stops
            self.error = exc.strerror or str(exc)
            self.cut = self.size

    def close(self) -> dict[str, object]:
        """The end record's part: the file, the byte counts, where it was cut or why it failed."""
        os.close(self.fd)
        end: dict[str, object] = {"recording": self.path, "bytes_in": self.bytes_in,
                                  "bytes_out": self.bytes_out}
        if self.error:
            end["recording_error"] = self.error
        elif self.cut >= 0:
            end["recording_cut"] = self.cut
        return end


def create(settings: Mapping[str, object], session: str, tty: bool, command: str | None,
           env: Mapping[str, str]) -> Recording:
    """The session's new cast with its header, in the root-only sessions directory; a
    DockershError (the session is refused) when it cannot be made."""
    directory = str(settings["dir"])
    path = f"{directory}/{session}.cast"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
            raise OSError(0, "not a directory of root's")
        if info.st_mode & 0o077:
            os.chmod(directory, 0o700)  # recordings are root's alone
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError as exc:
        raise DockershError(f"cannot create the session recording {path} "
                            f"({exc.strerror or exc}); refusing to start the session") from None
    recording = Recording(path, fd, settings, tty)
    width, height = window_size() if tty else (80, 24)
    recording.header(width, height, env, command, int(time.time()))
    if recording.error:
        os.close(fd)
        raise DockershError(f"cannot write the session recording {path} ({recording.error}); "
                            "refusing to start the session")
    return recording


def window_size(fd: int = 1) -> tuple[int, int]:
    """The terminal's (columns, rows); (80, 24) when it says 0 or is none."""
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return 80, 24
    rows, cols = (int.from_bytes(size[i:i + 2], sys.byteorder) for i in (0, 2))
    return cols or 80, rows or 24
