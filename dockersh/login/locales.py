"""The client's locale, as far as the session's image has it.

A client's LANG or LC_* (sshd's AcceptEnv) that the image has no locale for makes every command
say "setlocale: cannot change locale". An image that names its locales in the dockersh.locales
label (the default image does) gets a locale it lacks replaced by C.UTF-8, quietly; an image
without the label gets what the client sent. No imports: this is on every login.
"""

#: What a locale the image lacks becomes (built into glibc since 2.35: every current image).
FALLBACK = "C.UTF-8"
#: The variables setlocale reads (LC_TERMINAL and the like are not locales: left alone).
CATEGORIES = frozenset(("LANG", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE",
                        "LC_MONETARY", "LC_MESSAGES", "LC_PAPER", "LC_NAME", "LC_ADDRESS",
                        "LC_TELEPHONE", "LC_MEASUREMENT", "LC_IDENTIFICATION"))
ALWAYS = ("C", "POSIX", "C.UTF-8")


def normal(name: str) -> str:
    """glibc's spelling of a locale name: the codeset in lower case, letters and digits only
    (en_US.UTF-8 is en_US.utf8, as `locale -a` lists it)."""
    language, dot, rest = name.partition(".")
    if not dot:
        return name
    codeset, at, modifier = rest.partition("@")
    codeset = "".join(c for c in codeset.lower() if c.isalnum())
    return f"{language}.{codeset}{at}{modifier}"


def fit(env: list[tuple[str, str]], label: str | None) -> list[tuple[str, str]]:
    """``env`` with each locale the image's ``label`` does not list replaced by FALLBACK; as it
    is without a label."""
    if label is None:
        return env
    known = {normal(name) for name in (*ALWAYS, *label.split())}
    return [(k, FALLBACK if k in CATEGORIES and v and normal(v) not in known else v)
            for k, v in env]
