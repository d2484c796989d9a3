"""Keyset paging, for every long list: a checkpoint's examples, a comparison's rows, the labels.

A page ends with a cursor, the sort key and the id of its last row, and the next page holds the
rows strictly after it in the list's order (the examples' Previous link: strictly before its
first row), so page 500 costs what page 1 costs and a row written meanwhile is neither shown
twice nor skipped. Lists are paged by cursor and ``limit`` only: ``refuse_page_numbers``.

One codec, ``Cursor``, writes and reads every list's cursors: ``<key>,<id>``, or ``<id>`` alone
for a list in id order. On the wire:

- examples: ``<example id>`` (trace order), ``<int key>,<example id>`` (term length, steps to
  go) or ``<float key>,<example id>`` (IoU, confidence), by sort (``filters.SORTS``)
- a comparison: ``<IoU change>,<example id>``
- labels: ``<created_at, ISO 8601, naive UTC>,<label id>``

A float is written as ``repr`` writes it, which reads back as the same float.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from lambdascope.numbers import parse_number

from .errors import BadRequest
from .params import MAX_ID


def _read_int(text: str) -> int:
    return parse_number(text, name="cursor", kind=int)


def _read_float(text: str) -> float:
    return parse_number(text, name="cursor", kind=float)  # NaN and infinities are refused


def _read_time(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is not None:  # the store's times are naive UTC
        raise ValueError("a time with a zone")
    return when


@dataclass(frozen=True)
class KeyFormat:
    """How one kind of sort key is written into a cursor and read back."""

    write: Callable[[Any], str]
    read: Callable[[str], Any]  # ValueError: not such a key
    fits: Callable[[Any], bool] = lambda key: True  # a key that some row can have


INT_KEY = KeyFormat(lambda key: str(int(key)), _read_int, lambda key: -MAX_ID <= key <= MAX_ID)
FLOAT_KEY = KeyFormat(lambda key: repr(float(key)), _read_float)
TIME_KEY = KeyFormat(lambda when: when.isoformat(), _read_time)


@dataclass(frozen=True)
class Cursor:
    """The cursors of one list: its sort key's format (None: the list is in id order, and the
    id is the key) and the lowest id a row can have."""

    key: KeyFormat | None
    first_id: int = 0

    def encode(self, key: Any, row_id: int) -> str:
        if self.key is None:
            return str(int(row_id))
        return f"{self.key.write(key)},{int(row_id)}"

    def decode(self, text: str, *, malformed: str, out_of_range: str | None = None) -> tuple[Any, int]:
        """(key, id) of a cursor, or a BadRequest: ``malformed`` for text that is not a cursor
        of this list, ``out_of_range`` (by default ``malformed`` too) for a key or an id that
        no row can have. ``{text}`` in either stands for the cursor, as ``repr`` writes it."""
        try:
            if self.key is None:
                key = row_id = _read_int(text)
            else:
                key_text, id_text = text.rsplit(",", 1)
                key, row_id = self.key.read(key_text), _read_int(id_text)
        except ValueError:  # a NumberError is one
            raise BadRequest(malformed.format(text=repr(text[:80]))) from None
        if not (self.first_id <= row_id <= MAX_ID and (self.key is None or self.key.fits(key))):
            raise BadRequest((out_of_range or malformed).format(text=repr(text[:80])))
        return key, row_id


def refuse_page_numbers(query_params: Mapping[str, str]) -> None:
    """The lists page by cursor (``after``/``before``, from the Next and Previous links) and
    ``limit``; a ``page`` number (``?page=-1``, ``?page=3``) would otherwise be ignored and show
    the first page as if it were the one asked for."""
    if "page" in query_params:
        raise BadRequest(f"page: this list is paged with the 'after'/'before' cursors of its Next "
                         f"and Previous links and 'limit', not page numbers (got "
                         f"page={query_params['page'][:20]!r})")
