"""Two checkpoints compared on the examples both were evaluated on: for each example its IoU,
exact match and error kind under each, counted by kind of change (fixed, broken, IoU rose, IoU
fell) and by error kind at A and at B (the 7 x 7 ``transitions``), and each kind of change's rows
in order of the size of the change, a page at a time (``Comparison.page``, after a cursor
``<IoU change>,<example id>``), optionally only those of one error kind at A and/or at B. Built
from two ``CheckpointVector``s, compactly, since a checkpoint's predictions never change;
``cache.Aggregates`` keeps both."""

from __future__ import annotations

import bisect
from array import array
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import text

from lambdascope.vocabulary import ERROR_KINDS

KIND_INDEX = {k: i for i, k in enumerate(ERROR_KINDS)}  # an error kind as one byte
UNJUDGED = 255  # a prediction whose error kind is NULL


@dataclass
class CheckpointVector:
    """A checkpoint's (example id, IoU, exact, error kind) in example-id order, compactly (the
    kind as its index in ``ERROR_KINDS``)."""

    ids: array
    ious: array
    exact: bytearray
    kinds: bytearray = field(default_factory=bytearray)


def compute_vector(session, ck: int) -> CheckpointVector:
    ids, ious, exact, kinds = array("q"), array("d"), bytearray(), bytearray()
    result = session.execute(text(
        "SELECT example_id, iou, exact, error_kind FROM predictions WHERE checkpoint_id = :ck "
        "ORDER BY example_id"), {"ck": ck})
    index = KIND_INDEX.get
    for eid, iou, ex, kind in result:
        ids.append(eid)
        ious.append(iou)
        exact.append(1 if ex else 0)
        kinds.append(index(kind, UNJUDGED))
    return CheckpointVector(ids, ious, exact, kinds)


COMPARE_KINDS = {
    "regressions": "IoU fell",
    "improvements": "IoU rose",
    "broken": "right → wrong",
    "fixed": "wrong → right",
    "all": "every example",
}
FILTERED_LISTS = 64  # lists of one error kind at A and/or B a comparison keeps


@dataclass
class Comparison:
    """Two checkpoints on the examples both have: parallel arrays, and per kind of change the
    positions of its rows, largest IoU change first (ties by example id)."""

    ids: array
    iou_a: array
    iou_b: array
    exact_a: bytearray
    exact_b: bytearray
    fixed: int
    broken: int
    both_right: int
    both_wrong: int
    lists: dict[str, array] = field(default_factory=dict)
    kind_a: bytearray = field(default_factory=bytearray)  # error kinds (indices in ERROR_KINDS)
    kind_b: bytearray = field(default_factory=bytearray)
    transitions: list[list[int]] = field(default_factory=list)  # [kind at A][kind at B] -> examples
    _filtered: dict[tuple, array] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.ids)

    def counts(self) -> dict[str, int]:
        return {"n": self.n, "fixed": self.fixed, "broken": self.broken,
                "both_right": self.both_right, "both_wrong": self.both_wrong,
                "regressions": len(self.lists["regressions"]),
                "improvements": len(self.lists["improvements"]), "all": self.n}

    def positions(self, kind: str, kind_a: str | None = None, kind_b: str | None = None) -> array:
        """The positions of the list ``kind`` in its order, only those whose error kind at A is
        ``kind_a`` and at B ``kind_b`` (either None: any); computed on first use and kept (a
        filter keeps the list's order)."""
        if kind == "all" and "all" not in self.lists:
            self.lists["all"] = array("l", sorted(range(self.n), key=self._key))
        positions = self.lists[kind]
        if kind_a is None and kind_b is None:
            return positions
        key = (kind, kind_a, kind_b)
        chosen = self._filtered.get(key)
        if chosen is None:
            ia = KIND_INDEX[kind_a] if kind_a is not None else None
            ib = KIND_INDEX[kind_b] if kind_b is not None else None
            ka, kb = self.kind_a, self.kind_b
            chosen = array("l", [p for p in positions
                                 if (ia is None or ka[p] == ia) and (ib is None or kb[p] == ib)])
            if len(self._filtered) >= FILTERED_LISTS:
                self._filtered.clear()
            self._filtered[key] = chosen
        return chosen

    def _key(self, pos: int) -> tuple[float, int]:
        return (-abs(self.iou_b[pos] - self.iou_a[pos]), self.ids[pos])

    def row(self, pos: int) -> tuple:
        """(abs change, example id, iou_a, iou_b, exact_a, exact_b)"""
        ia, ib = self.iou_a[pos], self.iou_b[pos]
        return (abs(ib - ia), self.ids[pos], ia, ib, bool(self.exact_a[pos]), bool(self.exact_b[pos]))

    def page(self, kind: str, order: str, after: tuple[float, int] | None, limit: int,
             kind_a: str | None = None, kind_b: str | None = None):
        """Rows of ``kind`` (of error kind ``kind_a`` at A and ``kind_b`` at B, when given) after
        the cursor (abs change, example id); ``order`` 'change' is the largest change first,
        '-change' the smallest first. Returns rows and whether more follow."""
        positions = self.positions(kind, kind_a, kind_b)
        if order == "change":
            start = 0 if after is None else bisect.bisect_right(
                positions, (-after[0], after[1]), key=self._key)
            chosen = positions[start:start + limit + 1]
        else:  # walk from the end
            end = len(positions) if after is None else bisect.bisect_left(
                positions, (-after[0], after[1]), key=self._key)
            chosen = positions[max(0, end - limit - 1):end][::-1]
        rows = [self.row(p) for p in chosen]
        return rows[:limit], len(rows) > limit


def compute_comparison(a: CheckpointVector, b: CheckpointVector) -> Comparison:
    if a.ids == b.ids:
        ids, ia, ib, ea, eb, ka, kb = a.ids, a.ious, b.ious, a.exact, b.exact, a.kinds, b.kinds
    else:  # different coverage: compare the examples both have
        pos_b = {eid: i for i, eid in enumerate(b.ids)}
        ids, ia, ib, ea, eb = array("q"), array("d"), array("d"), bytearray(), bytearray()
        ka, kb = bytearray(), bytearray()
        for i, eid in enumerate(a.ids):
            j = pos_b.get(eid)
            if j is not None:
                ids.append(eid)
                ia.append(a.ious[i])
                ib.append(b.ious[j])
                ea.append(a.exact[i])
                eb.append(b.exact[j])
                ka.append(a.kinds[i])
                kb.append(b.kinds[j])
    fixed = broken = both_right = both_wrong = 0
    lists: dict[str, list[int]] = {k: [] for k in COMPARE_KINDS if k != "all"}  # "all": on first use
    reg, imp, brk, fix = (lists[k].append for k in ("regressions", "improvements", "broken", "fixed"))
    for pos, (x, y, ex, ey) in enumerate(zip(ia, ib, ea, eb)):
        if ex and ey:
            both_right += 1
        elif ex:
            broken += 1
            brk(pos)
        elif ey:
            fixed += 1
            fix(pos)
        else:
            both_wrong += 1
        if y < x:
            reg(pos)
        elif y > x:
            imp(pos)
    pairs = Counter(zip(ka, kb))
    transitions = [[pairs.get((i, j), 0) for j in range(len(ERROR_KINDS))] for i in range(len(ERROR_KINDS))]
    cmp = Comparison(ids, ia, ib, ea, eb, fixed, broken, both_right, both_wrong,
                     kind_a=ka, kind_b=kb, transitions=transitions)
    for kind, positions in lists.items():
        positions.sort(key=cmp._key)
        cmp.lists[kind] = array("l", positions)
    return cmp
