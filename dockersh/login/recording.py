"""A recorded session's file: asciicast v2, ``SESSIONS_DIR/SESSION.cast``, root-only.

asciicast v2 is JSON lines (a header object, then ``[seconds, code, text]`` events), so it is
written here with jsontext rather than a library: there is no maintained Python asciicast writer
(asciinema itself writes its files in Rust), and json would cost the monitor 10 ms. Imported
only for recorded sessions. Whatever happens to the file once the session runs, the session
goes on unchanged: a file that cannot be made refuses the session before it starts, one that
fills up (``max_size``), finds the disk short of ``min_free`` or fails ends with a marker event
saying so, and the end record says it too.

The monitor writes as root, which may use the blocks a filesystem reserves for root: a user
producing output as fast as it can would fill them, and then every login's start record fails.
So the space left to non-root users (``f_bavail``) is looked at when the recording starts and
after each ``CHECK_EVERY`` bytes of it, and the recording is cut while it is below ``min_free``.

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
import time

from dockersh import winsize
from dockersh.errors import DockershError
from dockersh.jsontext import dumps
from dockersh.login.audit import command_fields

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping

#: Bytes written between two looks at the filesystem's free space (one fstatvfs call).
CHECK_EVERY = 1 << 20
MAX_SIZE, MIN_FREE = "max_size", "min_free"


class Recording:
    """One session's cast, open for appending; counts the bytes each way."""

    def __init__(self, path: str, fd: int, settings: Mapping[str, object], tty: bool) -> None:
        self.path, self.fd = path, fd
        self.max_size = int(str(settings["max_size"]))
        self.min_free = int(str(settings["min_free"]))
        self.next_check = CHECK_EVERY
        self.keep_output = tty or bool(settings["streams"])
        self.keep_input = bool(settings["input"] if tty else settings["streams"])
        self.started = time.monotonic()
        self.size = 0
        self.bytes_in = self.bytes_out = 0
        self.cut = -1  # where the file was cut (max_size or min_free reached), else -1
        self.cut_by = ""  # which of the two
        self.error = ""
        self.decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in (0, 1, 2)}

    def header(self, width: int, height: int, env: Mapping[str, str], command: str | None,
               timestamp: int) -> None:
        head: dict[str, object] = {"version": 2, "width": width, "height": height,
                                   "timestamp": timestamp, "env": dict(env)}
        if command is not None:
            head.update(command_fields(command))
        self.write(dumps(head))
        if self.disk_short():
            self.stop(0.0, MIN_FREE)

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
        if self.size >= self.next_check:
            self.next_check = self.size + CHECK_EVERY
            if self.disk_short():
                self.stop(at, MIN_FREE)
                return
        line = dumps([at, code, text])
        room = self.max_size - self.size - 1
        if len(line) > room:
            # Cut here: what fits of this event, a marker saying where, then nothing more.
            kept = fitting(at, code, text, room)
            if kept:
                self.write(dumps([at, code, text[:kept]]))
            self.stop(at, MAX_SIZE)
            return
        self.write(line)

    def stop(self, at: float, why: str) -> None:
        """Cut the file here, with a marker event saying where and why."""
        self.cut, self.cut_by = self.size, why
        self.write(dumps([at, "m", f"dockersh: recording cut at {self.cut} bytes ({why})"]))

    def disk_short(self) -> bool:
        """Whether the space non-root users have left on the file's filesystem is below
        ``min_free`` (root's reserve is never counted: it is what keeps logins going)."""
        if self.min_free <= 0:
            return False
        try:
            fs = os.fstatvfs(self.fd)
        except OSError:
            return False  # a write that fails says so itself
        return fs.f_bavail * fs.f_frsize < self.min_free

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
            end["recording_cut"], end["recording_cut_by"] = self.cut, self.cut_by
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


def fitting(at: float, code: str, text: str, room: int) -> int:
    """How many characters of ``text`` the event's line keeps within ``room`` bytes: the
    longest prefix, found by halving (one encoding per step: a 64 KiB event of control
    characters, 6 bytes each, takes 17, however little room is left)."""
    low, high = 0, len(text)  # the answer is in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if len(dumps([at, code, text[:middle]])) <= room:
            low = middle
        else:
            high = middle - 1
    return low


def window_size(fd: int = 1) -> tuple[int, int]:
    """The terminal's (columns, rows); (80, 24) when it says 0 or is none."""
    try:
        rows, cols = winsize.rows_cols(fd)
    except OSError:
        return 80, 24
    return cols or 80, rows or 24
