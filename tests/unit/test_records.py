"""dockersh/records.py: what the config and the plan take from dataclasses, kept."""

from __future__ import annotations

import pytest

from dockersh import records
from dockersh.records import field, record


@record
class Inner:
    a: int = 1
    b: tuple[str, ...] = ()


@record
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    tag: str = field(default="x", metadata={"kind": "str"})


def test_construction_defaults_and_factories() -> None:
    o = Outer("n")
    assert (o.name, o.inner, o.tag) == ("n", Inner(), "x")
    assert Outer(name="n", tag="y").tag == "y"
    assert Outer("n").inner is not Outer("n").inner  # a factory per instance
    with pytest.raises(TypeError):
        Outer()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Outer("n", nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Outer("n", name="m")  # type: ignore[misc]


def test_frozen_equal_hashable_and_shown() -> None:
    o = Outer("n")
    with pytest.raises(AttributeError):
        o.name = "m"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del o.name
    assert o == Outer("n") and o != Outer("m") and o.__eq__("n") is NotImplemented
    assert hash(o) == hash(Outer("n")) and len({o, Outer("n")}) == 1
    assert repr(Inner(2, ("c",))) == "Inner(a=2, b=('c',))"


def test_fields_asdict_replace() -> None:
    assert [f.name for f in records.fields(Outer)] == ["name", "inner", "tag"]
    tag = records.fields(Outer("n"))[2]
    assert (tag.default, dict(tag.metadata)) == ("x", {"kind": "str"})
    assert records.fields(Outer)[1].default_factory is Inner
    assert records.asdict(Outer("n", Inner(3, ("d",)))) == {
        "name": "n", "inner": {"a": 3, "b": ("d",)}, "tag": "x"}
    changed = records.replace(Outer("n"), tag="z")
    assert (changed.name, changed.tag) == ("n", "z")
