"""replay's output filter: what of a recording reaches the admin's terminal, byte for byte."""

from __future__ import annotations

import pytest

from dockersh.admin.termfilter import Filter


def filtered(*events: str) -> list[str]:
    sieve = Filter()
    return [sieve.feed(e) for e in events]


@pytest.mark.parametrize("kept", [
    "plain text \u00e9\u4e2d\r\n\t\x08\x07",
    "\x1b[31;1mred\x1b[0m \x1b[38:2::1:2:3mtrue\x1b[m",
    "\x1b[H\x1b[2J\x1b[10;5H\x1b[A\x1b[3B\x1b[K\x1b[2P\x1b[4@\x1b[3;20r\x1b[s\x1b[u",
    "\x1b[?1049h\x1b[?25l\x1b[?2004h\x1b[?1h\x1b[4h\x1b[?1049l",
    "\x1b7\x1b8\x1bM\x1bD\x1bE\x1b=\x1b>\x1b(0q\x1b(B\x1b)0\x1b#8\x1bc",
    "\x1b]0;my title\x07\x1b]2;other\x1b\\",
    "\x1b]8;;https://example.org/?a=1\x1b\\link\x1b]8;;\x1b\\",
])
def test_what_draws_passes_unchanged(kept: str) -> None:
    assert filtered(kept) == [kept]


@pytest.mark.parametrize(("text", "left"), [
    ("a\x05b", "ab"),  # ENQ: the answerback
    ("a\x1b[6nb\x1b[5n\x1b[?6n", "ab"),  # DSR: cursor and status reports
    ("a\x1b[c\x1b[>c\x1b[=cb", "ab"),  # device attributes
    ("a\x1b[21t\x1b[14t\x1b[8;100;100t\x1b[2tb", "ab"),  # window reports and operations
    ("a\x1b[?1$p\x1b[x\x1b[>q\x1b[?u\x1b[>1u\x1b[>4;2m\x1b[2 qb", "ab"),  # DECRQM, XTVERSION...
    ("a\x1b]52;c;cHduZWQ=\x07b", "ab"),  # clipboard
    ("a\x1b]50;fixed\x07\x1b]50;?\x1b\\b", "ab"),  # font
    ("a\x1b]10;?\x07\x1b]11;?\x1b\\\x1b]4;1;?\x07\x1b]4;1;#ff0000\x07b", "ab"),  # colours
    ("a\x1b]1337;File=name=eA==:eA==\x07\x1b]9;notify\x07\x1b]777;x\x07b", "ab"),  # others
    ("a\x1bP$qm\x1b\\\x1bP1;1|17/ZZ\x1b\\\x1bP+q544e\x1b\\b", "ab"),  # DECRQSS, DECUDK, XTGETTCAP
    ("a\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\b", "ab"),  # APC, PM, SOS
    ("a\x1bZ\x1b[?1000h\x1b[?1003h\x1b[?1004h\x1b[?1006h\x1b[?1015h\x1b[?9hb",
     "ab"),  # DECID, mouse and focus reporting
    ("a\x1b%G\x1b G\x1bnb", "ab"),  # character set switches, 8-bit controls, locking shifts
    ("a\x9b6n\x9d52;c;eA==\x9c\x90$qm\x9cb", "ab"),  # the same as C1 controls
    ("a\x1b[?1049;1000;25h", "a\x1b[?1049;25h"),  # the kept modes of a list
    ("a\x1b]0;t\x18b\x1b[3\x1bM", "ab\x1bM"),  # cancelled, restarted by ESC
    ("a\x1b[3\rb", "a\rb"),  # a control inside: the sequence is dropped, the control kept
    ("a\ud800b", "a\ufffdb"),  # a lone surrogate cannot be written
    ("a\x1b[3g\x1b[gb", "ab"),  # clearing tab stops: it would outlast the replay
])
def test_dangerous_sequences_are_dropped_whole(text: str, left: str) -> None:
    assert filtered(text) == [left]


def test_sequences_split_across_events_are_still_found() -> None:
    assert filtered("a\x1b", "]5", "2;c;eA", "==\x1b", "\\b") == ["a", "", "", "", "b"]
    assert filtered("x\x1b[", "6", "n\x1b[3", "1mred") == ["x", "", "", "\x1b[31mred"]
    assert filtered("\x1bP$q", "m\x1b", "\\ok\x1b]0;ti", "tle\x07") == ["", "", "ok",
                                                                       "\x1b]0;title\x07"]
    assert filtered("\x9d52;", "c;eA==\x9c.") == ["", "."]


def test_an_endless_sequence_is_dropped_and_what_follows_kept() -> None:
    assert filtered("\x1b]0;" + "x" * 5000 + "\x07after") == ["after"]
    assert filtered("\x1bP" + "q" * 5000, "\x1b\\after") == ["", "after"]


def test_the_reset_closes_a_hyperlink_the_recording_left_open() -> None:
    """A recording ending inside an OSC 8 link would make all the admin's later output a link."""
    from dockersh.admin.replay import RESET

    assert RESET.endswith(b"\x1b]8;;\x1b\\")
