"""A real terminal for tests: a detached tmux session on a tmux server of the test's own."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .cmd import run

_serial = itertools.count()


class TmuxTerminal:
    """One command running in a tmux pane of width x height; the pane stays after it exits."""

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        confdir: Path,
        width: int = 100,
        height: int = 30,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.socket = f"dockersh-test-{os.getpid()}-{next(_serial)}"
        conf = confdir / f"{self.socket}.conf"
        # Read when this server starts, so it applies before the command can exit.
        conf.write_text("".join(f"{line}\n" for line in ("set -g remain-on-exit on",
                                                          "set -g history-limit 10000",
                                                          *options)))
        shell_command = command if isinstance(command, str) else shlex.join(command)
        env_args = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
        self.tmux(
            "-f", str(conf), "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
            *env_args, shell_command,
        )
        self.pane_pid = int(self.tmux("display-message", "-p", "-t", "t", "#{pane_pid}"))

    def tmux(self, *args: str) -> str:
        """A tmux command on this terminal's server (show-buffer, display-message...)."""
        environ = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        return run(["tmux", "-L", self.socket, *args], env=environ, timeout=30).stdout

    def send_keys(self, *keys: str, literal: bool = False) -> None:
        """tmux send-keys: key names like 'Enter', 'C-c', or, with literal, text as typed."""
        self.tmux("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    def type_line(self, text: str) -> None:
        """Type text literally, then Enter."""
        self.send_keys(text, literal=True)
        self.send_keys("Enter")

    def capture_pane(self, *, history: bool = False) -> str:
        """The screen as text (with history: the scrollback too).

        The empty lines below the last one written are left out.
        """
        args = ["capture-pane", "-p", "-J", "-t", "t", *(["-S", "-"] if history else [])]
        return self.tmux(*args).rstrip("\n")

    def resize_window(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def size(self) -> tuple[int, int]:
        width, height = self.tmux("display-message", "-p", "-t", "t",
                                   "#{pane_width} #{pane_height}").split()
        return int(width), int(height)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> str:
        """Wait until the screen or scrollback shows pattern (text, or a compiled regex)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture_pane(history=True)
            found = (pattern in screen) if isinstance(pattern, str) else pattern.search(screen)
            if found:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the terminal after {timeout}s:\n{screen}")
            time.sleep(0.05)

    def exit_status(self) -> int | None:
        """The command's exit status once it has exited, else None.

        tmux 3.3a sometimes leaves the exited command a zombie it never reaps, and then never
        learns its status; the kernel still shows it in /proc/PID/stat (exit_code, field 52).
        """
        status, signal = self.tmux(
            "display-message", "-p", "-t", "t", "#{pane_dead_status}:#{pane_dead_signal}"
        ).strip().split(":")
        if status:
            return int(status)
        if signal:  # the shell's convention: 128 + the signal's number
            return 128 + int(signal)
        try:
            fields = Path(f"/proc/{self.pane_pid}/stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):  # gone before or while it was read
            return None  # reaped by tmux: its status shows on the next call
        if fields[0] != "Z":
            return None
        code = int(fields[49])
        return (code >> 8) & 0xFF if code & 0x7F == 0 else 128 + (code & 0x7F)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the command to exit; its exit status."""
        deadline = time.monotonic() + timeout
        while (status := self.exit_status()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"still running after {timeout}s:\n{self.capture_pane()}\n"
                    f"--- its processes\n{self.processes()}"
                )
            time.sleep(0.05)
        return status

    def processes(self) -> str:
        """ps lines of the pane's command and its descendants (for failure messages)."""
        rows = run(["ps", "-eo", "pid=,ppid=,stat=,wchan:20=,args="], timeout=30).stdout
        table = [(int(r.split()[0]), int(r.split()[1]), r) for r in rows.splitlines()]
        wanted, lines = {self.pane_pid}, []
        for pid, ppid, row in table:  # ps lists parents before their children
            if pid in wanted or ppid in wanted:
                wanted.add(pid)
                lines.append(row)
        return "\n".join(lines)

    def close(self) -> None:
        run(["tmux", "-L", self.socket, "kill-server"], check=False, timeout=30)
