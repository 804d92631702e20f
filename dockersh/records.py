"""Frozen records: what ``@dataclass(frozen=True)`` gives the config and the plan, without it.

Why our own: importing dataclasses imports inspect, re and enum, 9 ms of the 40 ms of CPU a
user's first login costs here (it is the config's and the plan's only use of them), and
building each class runs ``exec`` on generated source. This keeps the part they use: fields
in annotation order with a default or a default factory and metadata, keyword or positional
construction, immutability, equality, hashing, a repr, ``fields``, ``asdict`` and
``replace``. mypy checks the classes as dataclasses (``dataclass_transform``). No inheritance
between records, no ``__post_init__``, no ordering.
"""

from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs 9 ms on a first login
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_kwargs: object) -> object:
        return lambda decorated: decorated


#: Where a record class keeps its fields.
FIELDS = "__record_fields__"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field of a record, as dataclasses.Field names its parts."""

    __slots__ = ("default", "default_factory", "metadata", "name")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.metadata: Mapping[str, Any] = metadata or {}


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING,
          metadata: Mapping[str, Any] | None = None) -> Any:
    return Field(default, default_factory, metadata)


class FrozenInstanceError(AttributeError):
    pass


def _frozen(self: object, name: str, value: object = None) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T]) -> type[T]:
    """The class as a frozen record of its annotated attributes (their values: defaults)."""
    own: list[Field] = []
    # The class's own annotations, in order (inspect.get_annotations would import inspect).
    for name in cls.__dict__.get("__annotations__", {}):  # noqa: RUF063
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name = name
        own.append(spec)
        if isinstance(value, Field):
            if spec.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
    specs = tuple(own)
    names = tuple(f.name for f in specs)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(specs):
            raise TypeError(f"{cls.__name__}() takes {len(specs)} positional arguments")
        unknown = set(kwargs) - set(names)
        if unknown:
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument "
                            f"{sorted(unknown)[0]!r}")
        for i, f in enumerate(specs):
            if i < len(args):
                if f.name in kwargs:
                    raise TypeError(f"{cls.__name__}() got multiple values for {f.name!r}")
                value = args[i]
            elif f.name in kwargs:
                value = kwargs[f.name]
            elif f.default is not MISSING:
                value = f.default
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                raise TypeError(f"{cls.__name__}() missing argument {f.name!r}")
            object.__setattr__(self, f.name, value)

    def values(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in names)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(values(self) == values(other))

    def __hash__(self: Any) -> int:
        return hash(values(self))

    def __repr__(self: Any) -> str:
        inside = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{cls.__qualname__}({inside})"

    for method in (__init__, __eq__, __hash__, __repr__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)
    for name in ("__setattr__", "__delattr__"):
        setattr(cls, name, _frozen)
    setattr(cls, FIELDS, specs)
    return cls


def fields(instance_or_class: object) -> tuple[Field, ...]:
    found: tuple[Field, ...] = getattr(instance_or_class, FIELDS)
    return found


def asdict(instance: object) -> dict[str, Any]:
    """Its fields as a dict, records inside (in tuples, lists and dicts too) as dicts."""
    return {f.name: _plain(getattr(instance, f.name)) for f in fields(instance)}


def _plain(value: Any) -> Any:
    if hasattr(value, FIELDS):
        return asdict(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def replace(instance: T, **changes: Any) -> T:
    """A copy with some fields changed."""
    kwargs = {f.name: getattr(instance, f.name) for f in fields(instance)}
    kwargs.update(changes)
    made: T = instance.__class__(**kwargs)
    return made
