"""A locale the session's image lacks becomes C.UTF-8 (dockersh.login.locales), by the image's
dockersh.locales label, compared as glibc names locales."""

from dockersh.login import locales

LABEL = "C.UTF-8 en_US.UTF-8 de_DE.UTF-8 sr_RS.UTF-8@latin"


def test_a_locale_the_image_lacks_becomes_c_utf8() -> None:
    env = [("LANG", "en_US.utf8"), ("LC_ALL", "xx_YY.UTF-8"), ("LC_TIME", "de_DE.UTF8"),
           ("LC_MESSAGES", "de_DE"), ("LC_CTYPE", "sr_RS.UTF-8@latin"), ("LC_NUMERIC", "POSIX"),
           ("LC_COLLATE", "C"), ("LC_PAPER", ""), ("LC_TERMINAL", "iTerm2"), ("TERM", "xterm")]
    assert locales.fit(env, LABEL) == [
        ("LANG", "en_US.utf8"), ("LC_ALL", "C.UTF-8"), ("LC_TIME", "de_DE.UTF8"),
        ("LC_MESSAGES", "C.UTF-8"),  # de_DE alone is ISO-8859-1, which the image lacks
        ("LC_CTYPE", "sr_RS.UTF-8@latin"), ("LC_NUMERIC", "POSIX"), ("LC_COLLATE", "C"),
        ("LC_PAPER", ""), ("LC_TERMINAL", "iTerm2"), ("TERM", "xterm")]


def test_an_image_without_the_label_gets_what_the_client_sent() -> None:
    env = [("LANG", "xx_YY.UTF-8")]
    assert locales.fit(env, None) == env
    assert locales.fit(env, "") == [("LANG", "C.UTF-8")]


def test_glibc_spelling() -> None:
    assert locales.normal("en_US.UTF-8") == "en_US.utf8"
    assert locales.normal("sr_RS.UTF-8@latin") == "sr_RS.utf8@latin"
    assert locales.normal("de_DE@euro") == "de_DE@euro"
    assert locales.normal("C") == "C"
