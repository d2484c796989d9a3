"""Checkpoint pickers filled in when a page is served, so that a new checkpoint does not make
every page of the store anew.

The examples, trace and compare pages each have a ``<select>`` of the checkpoints evaluated on
their evaluation set: the only thing on them that a new checkpoint changes. Their templates
write a *marker* where the options go (``marker``: the evaluation set, the suite, the selected
checkpoint) and the route says so (``FILLED_HEADER`` on its response, ``Templates.render(...,
pickers=True)``): such a page shows the store's checkpoints only through its markers. The page
cache (``app.page_cache``) then keeps the page's body with its markers under a key that leaves
the newest checkpoint out, and every time it serves the page, from the cache or just made,
replaces each marker by the options of now (``fill``): the options of one (set, suite) are made
once per version of the checkpoints (``PickerOptions``) and reused by every page that has them.
"""

from __future__ import annotations

import re
from typing import Callable, Hashable

from markupsafe import Markup

from .cache import Memo

PREFIX = b"<!--ls:checkpoints "  # how every marker begins
FILLED_HEADER = b"x-lambdascope-pickers"  # the response's checkpoints are in markers only (not sent)
MARKER = re.compile(rb"<!--ls:checkpoints (\d{1,18}) (-|[0-9a-f]{2,256}) (\d{1,18})-->")


def marker(eval_set_id: int, suite: str | None, selected: int | None) -> Markup:
    """Where a picker's ``<option>``s go: the checkpoints of evaluation set ``eval_set_id`` (its
    main rows, or with ``suite`` that suite's rows), ``selected`` marked (None: none)."""
    name = "-" if suite is None else suite.encode().hex()
    return Markup(f"<!--ls:checkpoints {int(eval_set_id)} {name} {int(selected or 0)}-->")


def fill(body: bytes, options: Callable[[int, str | None], bytes]) -> bytes:
    """``body`` with each marker replaced by ``options(eval_set_id, suite)`` (the options'
    HTML, none selected) with its selected checkpoint marked."""
    if PREFIX not in body:
        return body

    def one(m: re.Match) -> bytes:
        suite = None if m[2] == b"-" else bytes.fromhex(m[2].decode()).decode()
        html = options(int(m[1]), suite)
        chosen = int(m[3])
        if chosen:
            html = html.replace(b'<option value="%d">' % chosen, b'<option value="%d" selected>' % chosen, 1)
        return html

    return MARKER.sub(one, body)


class PickerOptions:
    """The options' HTML of each (evaluation set, suite), made by ``make(session, eval_set_id,
    suite)`` once per ``version`` of the store's checkpoints (the page cache's stamp: the newest
    checkpoint id and the runs' count, so a deleted run's checkpoints go too)."""

    def __init__(self, make: Callable[..., str]) -> None:
        self.make = make
        self._memo = Memo(256)

    def get(self, sessions, eval_set_id: int, suite: str | None, version: Hashable | None) -> bytes:
        """The options (none selected); ``version`` None: not known, so made afresh, not kept."""

        def compute() -> bytes:
            with sessions() as session:
                return str(self.make(session, eval_set_id, suite)).encode()

        return compute() if version is None else self._memo.get((eval_set_id, suite, version), compute)

    def clear(self) -> None:
        self._memo.clear()
