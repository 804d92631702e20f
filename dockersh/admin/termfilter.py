"""What of a recording `replay` lets through to the admin's terminal.

A recording is what a user's session printed, so it is hostile to the terminal that plays it:
queries make the terminal answer on its input (the cursor position, the title, its settings,
a DECRQSS), which the admin's shell would read as typed; OSC 52 writes the clipboard, OSC 50
changes the font, DECUDK defines keys; mouse and focus reporting keep sending input after the
replay. The filter keeps what draws (text, colours, cursor movement and editing, the alternate
screen, titles, hyperlinks) and drops every other control sequence whole, from its introducer
on: the terminal never sees a part of it, so it never parses the rest in another state than
this parser does. Allowlists, not blocklists: what a terminal does with a sequence this parser
does not know is unknown.

It is a parser with state (ECMA-48 / VT500's): a sequence can be split across events. C1
controls (U+0080-U+009F, which some terminals act on in UTF-8 too) are read as their ESC forms;
lone surrogates become U+FFFD.
"""

from __future__ import annotations

import re

# ESC FINAL kept: DECSC, DECRC, IND, NEL, HTS, RI, DECKPAM, DECKPNM, RIS.
ESC_KEPT = frozenset("78DEHM=>c")
# ESC ( ) * + FINAL (a character set into G0-G3), ESC # 8 (DECALN) are kept too.
CHARSET_INTERMEDIATES = frozenset("()*+")
# CSI finals kept when the sequence has no private marker and no intermediates: cursor moves,
# erasing, inserting and deleting, scrolling, tabs, SGR, the scrolling region, save/restore.
# Not kept, among others: n (DSR: cursor and status reports), c (device attributes), t (window
# operations and reports), x (DECREQTPARM), g (TBC: cleared tab stops would outlast the replay),
# and anything with an intermediate ($p DECRQM...).
CSI_KEPT = frozenset("@ABCDEFGHIJKLMPSTXZ`abdefmrsu")
# The modes of CSI h/l kept, by private marker: IRM; cursor keys, origin, autowrap, cursor blink
# and visibility, the alternate screens, bracketed paste, synchronized output. Not mouse or
# focus reporting (9, 1000-1006, 1015, 1016) nor anything else.
MODES_KEPT = {"": frozenset({"4"}),
              "?": frozenset({"1", "6", "7", "12", "25", "47", "1047", "1048", "1049", "2004",
                              "2026"})}
# OSC kept: the icon name and window title (0, 1, 2) and hyperlinks (8). Not clipboard (52),
# font (50), colours (4, 10-19: they would outlast the replay, and "?" queries them) or any other.
OSC_KEPT = frozenset({"0", "1", "2", "8"})
LONGEST = 4096  # a longer sequence is dropped (the filter's memory is bounded)
# Where ground state stops copying: ESC, ENQ (answerback), C1 controls, surrogates.
SPECIAL = re.compile("[\x05\x1b\x80-\x9f\ud800-\udfff]")

GROUND, ESCAPE, CSI, STRING, STRING_ESC = range(5)


class Filter:
    """feed(text) -> what of it may reach the terminal; keeps state between calls."""

    def __init__(self) -> None:
        self.state = GROUND
        self.seq = ""  # the sequence so far, after its introducer
        self.osc = False  # the string being read is an OSC (else DCS, SOS, PM or APC: dropped)
        self.out: list[str] = []

    def feed(self, text: str) -> str:
        at = 0
        while at < len(text):
            if self.state == GROUND:
                found = SPECIAL.search(text, at)
                end = found.start() if found else len(text)
                self.out.append(text[at:end])
                if found is None:
                    break
                at = end
            code = ord(text[at])
            at += 1
            if 0x80 <= code < 0xA0:  # C1: as ESC and its 7-bit form
                self.step("\x1b")
                self.step(chr(code - 0x40))
            elif 0xD800 <= code < 0xE000:
                self.step("\ufffd")
            else:
                self.step(chr(code))
        done, self.out = "".join(self.out), []
        return done

    def step(self, ch: str) -> None:
        """One character, in the current state."""
        if self.state == GROUND:
            if ch == "\x1b":
                self.state, self.seq = ESCAPE, ""
            elif ch != "\x05":  # ENQ asks for the answerback message
                self.out.append(ch)
        elif self.state == ESCAPE:
            self.escape(ch)
        elif self.state == CSI:
            self.csi(ch)
        elif self.state == STRING:
            self.string(ch)
        elif ch == "\\":  # STRING_ESC: the ESC of ST, or one that ends the string
            self.state = GROUND
            self.end_string("\x1b\\")
        else:
            self.state, self.seq = ESCAPE, ""
            self.step(ch)

    def escape(self, ch: str) -> None:
        if "\x20" <= ch <= "\x2f":
            self.seq += ch
            if len(self.seq) > 1:  # no sequence kept has more than one intermediate
                self.state = GROUND
            return
        self.state = GROUND
        if not "\x30" <= ch <= "\x7e":  # a control or ESC where a final belongs: drop it all
            self.step(ch)
        elif self.seq:
            if self.seq in CHARSET_INTERMEDIATES or self.seq + ch == "#8":
                self.out.append("\x1b" + self.seq + ch)
        elif ch == "[":
            self.state = CSI
        elif ch in "]PX^_":  # OSC; DCS, SOS, PM, APC (DECRQSS, DECUDK, XTGETTCAP...)
            self.state, self.osc = STRING, ch == "]"
        elif ch in ESC_KEPT:
            self.out.append("\x1b" + ch)

    def csi(self, ch: str) -> None:
        if "\x20" <= ch <= "\x3f":  # parameters and intermediates
            self.seq += ch
            if len(self.seq) > LONGEST:
                self.state = GROUND
            return
        self.state = GROUND
        if not "\x40" <= ch <= "\x7e":  # a control or ESC inside: the sequence is dropped
            self.step(ch)
            return
        marker = self.seq[:1] if self.seq[:1] in ("<", "=", ">", "?") else ""
        params = self.seq[len(marker):]
        if params.strip("0123456789;:"):  # intermediates, or markers further in
            return
        if ch in "hl":
            modes = [m for m in params.split(";") if m in MODES_KEPT.get(marker, ())]
            if modes:
                self.out.append(f"\x1b[{marker}{';'.join(modes)}{ch}")
        elif not marker and ch in CSI_KEPT:
            self.out.append(f"\x1b[{params}{ch}")

    def string(self, ch: str) -> None:
        if ch == "\x07":
            self.state = GROUND
            self.end_string(ch)
        elif ch == "\x1b":
            self.state = STRING_ESC
        elif ch in "\x18\x1a":  # CAN, SUB: the string is cancelled
            self.state = GROUND
        elif ch >= " " and ch != "\x7f" and self.osc:  # other controls are ignored in strings
            self.seq += ch
            self.osc = len(self.seq) <= LONGEST

    def end_string(self, terminator: str) -> None:
        if self.osc and self.seq.partition(";")[0] in OSC_KEPT:
            self.out.append(f"\x1b]{self.seq}{terminator}")
