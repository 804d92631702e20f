"""The labels on containers: dockersh's only state about them (no database). No imports."""

LABEL_USER = "dockersh.user"
LABEL_UID = "dockersh.uid"
#: The hash of the container spec it was made from: a different one means "recreate".
LABEL_HASH = "dockersh.config-hash"
LABEL_VERSION = "dockersh.version"
#: The shell found in the image when the container was made.
LABEL_SHELL = "dockersh.shell"
#: On the never-started containers that read an image's passwd, group and shells.
LABEL_PROBE = "dockersh.probe"
#: On a session's own container ([container] lifetime = "session"): "session", the pid and
#: start time ("PID:TICKS") of the process that removes it when the session ends, and those of
#: the session's monitor (gc removes it only when both are gone).
LABEL_LIFETIME = "dockersh.lifetime"
LABEL_REAPER = "dockersh.reaper"
LABEL_MONITOR = "dockersh.monitor"
#: Set by an image (the default one does): the locales it has (en_US.UTF-8: compared as glibc
#: spells them); a session asking for another gets C.UTF-8 (login/locales.py). Containers carry
#: their image's labels.
LABEL_LOCALES = "dockersh.locales"
