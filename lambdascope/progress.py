"""Progress bars for long work: a tqdm bar on standard error when it is a terminal, nothing
otherwise (a log file or a pipe gets the summary lines alone)."""

from __future__ import annotations

import sys


def progress_bar(total: int | None, desc: str, unit: str = "B"):
    """A tqdm bar (``.update(n)``, ``.close()``) on a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr, leave=False)
