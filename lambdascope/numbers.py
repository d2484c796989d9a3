"""One parser for a bounded number a person typed: a command-line flag or a URL parameter.

``parse_number(text, name=…, kind=int, lo=…, hi=…)`` returns the number or raises
``NumberError``, whose message names the parameter (``"limit: must be between 1 and 200, got
500"``). Each caller may word the two ways a value goes wrong (not a number; out of range) for
its parameter, so that messages people already know stay the same; ``{text}`` (the input, as
``repr``), ``{value}``, ``{lo}`` and ``{hi}`` are filled in.
"""

from __future__ import annotations

import math
MAX_TEXT = 40  # characters of a number's text, at most (a longer one is shown cut)


class NumberError(ValueError):
    """A number that is not one or is out of range. ``str(e)`` is ``"name: detail"``; the
    command line's argument parser, which names the flag itself, shows ``detail``."""

    def __init__(self, name: str, detail: str):
        super().__init__(f"{name}: {detail}" if name else detail)
        self.name = name
        self.detail = detail


def parse_number(text: str, *, name: str, kind: type = int, lo: float | None = None,
                 hi: float | None = None, lo_open: bool = False, expected: str | None = None,
                 out_of_range: str | None = None) -> int | float:
    """``text`` as ``kind`` (int or float) within [lo, hi] (``lo_open``: strictly above lo).
    ``expected`` is the message for text that is not a number, ``out_of_range`` for a number
    outside the bounds; both are templates (see the module's docstring)."""
    shown = text if len(text) <= MAX_TEXT else text[:MAX_TEXT]
    fill = {"text": repr(shown), "lo": lo, "hi": hi}
    try:
        value = kind(text.strip())
    except (ValueError, TypeError, OverflowError):
        what = "an integer" if kind is int else "a number"
        raise NumberError(name, (expected or f"expected {what}, got {{text}}").format(**fill)) from None
    if kind is float and not math.isfinite(value):
        value_ok = False
    else:
        value_ok = ((lo is None or (value > lo if lo_open else value >= lo))
                    and (hi is None or value <= hi))
    if not value_ok:
        if out_of_range is None:
            if lo is not None and hi is not None:
                out_of_range = "must be between {lo} and {hi}, got {value}"
            elif lo is not None:
                out_of_range = ("must be above {lo}, got {value}" if lo_open
                                else "must be at least {lo}, got {value}")
            else:
                out_of_range = "must be at most {hi}, got {value}"
        raise NumberError(name, out_of_range.format(value=text.strip() if kind is float else value, **fill))
    return value

