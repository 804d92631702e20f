import pytest

from dockersh.config import units
from dockersh.plan import naming


@pytest.mark.parametrize(
    ("user", "name"),
    [
        ("alice", "dockersh-alice"),
        ("john.doe", "dockersh-john.doe"),
        ("Ana", "dockersh-_41na"),
        ("a_b", "dockersh-a_5fb"),
        ("1st-user", "dockersh-1st-user"),
        ("jörg", "dockersh-j_c3_b6rg"),
        ("PC$", "dockersh-_50_43_24"),
    ],
)
def test_container_names_escape_user_names(user: str, name: str) -> None:
    assert naming.container_name("dockersh-{user}", {"user": user}) == name


def test_names_that_differ_only_in_case_or_escapes_stay_apart() -> None:
    names = {naming.escape(u) for u in ["ana", "Ana", "_41na", "a_b", "a_5fb"]}
    assert len(names) == 5


def test_long_names_are_capped_with_a_hash() -> None:
    long = naming.container_name("dockersh-{user}", {"user": "x" * 80})
    other = naming.container_name("dockersh-{user}", {"user": "x" * 81})
    assert len(long) == naming.MAX_LENGTH and long != other
    assert long.startswith("dockersh-xxxx")


def test_template_that_starts_with_a_symbol_still_gives_a_valid_name() -> None:
    assert naming.container_name("{user}", {"user": ".hidden"}) == "X.hidden"


def test_hostnames_are_valid_labels() -> None:
    assert naming.hostname("{user}-box", {"user": "John.Doe_1"}) == "john-doe-1-box"
    assert naming.hostname("---", {}) == "dockersh"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512m", 512 * 2**20),
        ("4g", 4 * 2**30),
        ("4GiB", 4 * 2**30),
        ("1024", 1024),
        ("1.5g", int(1.5 * 2**30)),
        ("4x", None),
        ("", None),
        ("-1g", None),
    ],
)
def test_sizes(text: str, size: int | None) -> None:
    assert units.parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("12h", 43200),
        ("7d", 604800),
        ("0", 0),
        ("2w", 1209600),
        ("soon", None),
    ],
)
def test_durations(text: str, seconds: int | None) -> None:
    assert units.parse_duration(text) == seconds
