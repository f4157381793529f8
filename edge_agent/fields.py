"""Field parsers for JSON documents (pure): each takes the field's path and value, returns a
typed value or raises a :class:`~edge_agent.errors.SubmissionError` naming the path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import TypeVar

from consent_wire.errors import InvalidCodeError, OutOfRangeError
from edge_agent.errors import InvalidFieldError

__all__ = [
    "MAX_REFERENCES",
    "MAX_REFERENCE_TEXT",
    "MAX_TEXT",
    "bool_",
    "enum",
    "enums",
    "int_",
    "object_",
    "opt_enum",
    "opt_int",
    "opt_reference",
    "references",
    "text",
]

# Free-text fields (explanations, remedial actions) are bounded so one event stays small.
MAX_TEXT = 4000
# References (a CAG approval such as "21/CAG/0032", a COPI notice, an agreement's id) are short codes;
# an objection names a handful of exempt flows at most.
MAX_REFERENCE_TEXT = 128
MAX_REFERENCES = 32
E = TypeVar("E", bound=Enum)


def object_(path: str, value: object) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise InvalidFieldError(f"{path} must be a JSON object")
    return value


def text(path: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidFieldError(f"{path} must be a string")
    if len(value) > MAX_TEXT:
        raise InvalidFieldError(f"{path} is {len(value)} characters; the limit is {MAX_TEXT}")
    return value


def bool_(path: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidFieldError(f"{path} must be true or false")
    return value


def int_(path: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFieldError(f"{path} must be an integer")
    if not -(2**63) <= value < 2**63:  # Avro long
        raise OutOfRangeError(f"{path} is out of the 64-bit range -2**63..2**63-1")
    return value


def opt_int(path: str, value: object) -> int | None:
    return None if value is None else int_(path, value)


def enum(cls: type[E]) -> Callable[[str, object], E]:
    def parse(path: str, value: object) -> E:
        try:
            return cls(value)
        except ValueError:
            codes = ", ".join(str(m.value) for m in cls)
            raise InvalidCodeError(f"{path}={value!r} is not a {cls.__name__} code; one of {codes}") from None

    return parse


def opt_enum(cls: type[E]) -> Callable[[str, object], E | None]:
    parse = enum(cls)
    return lambda path, value: None if value is None else parse(path, value)


def enums(cls: type[E]) -> Callable[[str, object], tuple[E, ...]]:
    parse = enum(cls)

    def parse_all(path: str, value: object) -> tuple[E, ...]:
        if not isinstance(value, list):
            raise InvalidFieldError(f"{path} must be an array of {cls.__name__} codes")
        items = tuple(parse(f"{path}[{i}]", v) for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise InvalidFieldError(f"{path} lists a code twice")
        return items

    return parse_all


def reference(path: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_REFERENCE_TEXT:
        raise InvalidFieldError(f"{path} must be a non-empty reference of at most {MAX_REFERENCE_TEXT} characters")
    return value


def opt_reference(path: str, value: object) -> str | None:
    return None if value is None else reference(path, value)


def references(path: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_REFERENCES:
        raise InvalidFieldError(f"{path} must be an array of at most {MAX_REFERENCES} references")
    items = tuple(reference(f"{path}[{i}]", v) for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise InvalidFieldError(f"{path} lists a reference twice")
    return items
