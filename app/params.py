"""Reading what a person typed into an address or a form: ids, step numbers, trace identities.

Numbers go through ``lambdascope.numbers.parse_number`` (the one bounded-number parser, shared
with the command line); its ``NumberError`` is answered as a ``BadRequest`` here, at one place.
An absent or blank value means "not given" (``None``); each caller says what that means.
"""

from __future__ import annotations

import re

from lambdascope.numbers import NumberError, parse_number
from lambdascope.suites import NAME_RE as SUITE_NAME

from .errors import BadRequest

MAX_ID = 2**62  # ids beyond this cannot be bound as SQLite integers
MAX_STEP = 1_000_000  # a trace's step numbers are far below this
IDENTITY = re.compile(r"[0-9A-Za-z_-]{1,32}")


def unset(value: str | None) -> bool:
    return value is None or value.strip() == ""


def number(text: str, *, name: str, **bounds) -> int | float:
    """``parse_number(text, name=name, **bounds)``, its error a 400 whose message is
    ``"name: detail"``."""
    try:
        return parse_number(text, name=name, **bounds)
    except NumberError as e:
        raise BadRequest(str(e)) from None


def opt_id(value: str | None, name: str) -> int | None:
    """An optional id: empty means none; anything else must be a positive integer."""
    if unset(value):
        return None
    return number(value, name=name, lo=1, hi=MAX_ID,
                  expected="expected an id (a positive integer), got {text}",
                  out_of_range="no such id {value}")


def opt_step(value: str | None, name: str = "step") -> int | None:
    """An optional step number of a trace (0 is its first term)."""
    if unset(value):
        return None
    return number(value, name=name, lo=0, hi=MAX_STEP, expected="expected a step number, got {text}",
                  out_of_range="expected a step number >= 0, got {value}")


def check_identity(identity: str) -> str:
    if not IDENTITY.fullmatch(identity):
        raise BadRequest("a trace identity is 1 to 32 letters, digits, '-' or '_'")
    return identity


SUITE = SUITE_NAME  # the rule `train --suite NAME=FILE` names suites by


def opt_suite(value: str | None, name: str = "suite") -> str | None:
    """An optional evaluation suite's name (``checkpoints.suite``): empty means the run's own
    evaluation set; anything else is 1 to 64 letters, digits, '.', '-' or '_'."""
    if unset(value):
        return None
    value = value.strip()
    if not SUITE.fullmatch(value):
        raise BadRequest(f"{name}: a suite name is 1 to 64 letters, digits, '.', '-' or '_' "
                         f"(starting with a letter or digit), got {value[:70]!r}")
    return value
