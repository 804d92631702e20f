"""``dockersh --user NAME`` by someone other than root or NAME: NAME's password, through PAM."""

from __future__ import annotations

import getpass
import os
import sys

from dockersh.errors import DockershError

SERVICE = "dockersh"
TRIES = 3


def authenticate(name: str) -> None:
    """Ask for NAME's password on the terminal, like su; three tries, then refuse.

    The delay after a failure is PAM's (pam_unix, pam_faildelay in /etc/pam.d/dockersh)."""
    import pam

    if not os.isatty(0):
        raise DockershError(f"a password for {name} is needed and there is no terminal to ask on")
    checker = pam.pam()
    for attempt in range(1, TRIES + 1):
        try:
            password = getpass.getpass(f"Password for {name}: ", stream=sys.stderr)
        except EOFError:
            break
        # No empty passwords: Debian's common-auth accepts them for accounts that have none.
        # resetcreds=False: pam_setcred would run credential modules in this root process.
        if password and checker.authenticate(name, password, service=SERVICE,
                                             resetcreds=False):
            return
        if attempt < TRIES:
            print("dockersh: authentication failed, try again", file=sys.stderr)
    raise DockershError(f"authentication failed for {name}")
