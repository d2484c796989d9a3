"""Two checkpoints compared on the examples both were evaluated on: for each example its IoU and
exact match under each, counted by kind of change (fixed, broken, IoU rose, IoU fell), and each
kind's rows in order of the size of the change, a page at a time (``Comparison.page``, after a
cursor ``<IoU change>,<example id>``). Built from two ``CheckpointVector``s, compactly, since a
checkpoint's predictions never change; ``cache.Aggregates`` keeps both."""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field

from sqlalchemy import text


@dataclass
class CheckpointVector:
    """A checkpoint's (example id, IoU, exact) in example-id order, compactly."""

    ids: array
    ious: array
    exact: bytearray


def compute_vector(session, ck: int) -> CheckpointVector:
    ids, ious, exact = array("q"), array("d"), bytearray()
    result = session.execute(text(
        "SELECT example_id, iou, exact FROM predictions WHERE checkpoint_id = :ck "
        "ORDER BY example_id"), {"ck": ck})
    for eid, iou, ex in result:
        ids.append(eid)
        ious.append(iou)
        exact.append(1 if ex else 0)
    return CheckpointVector(ids, ious, exact)


COMPARE_KINDS = {
    "regressions": "IoU fell",
    "improvements": "IoU rose",
    "broken": "right → wrong",
    "fixed": "wrong → right",
}


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

    @property
    def n(self) -> int:
        return len(self.ids)

    def counts(self) -> dict[str, int]:
        return {"n": self.n, "fixed": self.fixed, "broken": self.broken,
                "both_right": self.both_right, "both_wrong": self.both_wrong,
                "regressions": len(self.lists["regressions"]),
                "improvements": len(self.lists["improvements"])}

    def _key(self, pos: int) -> tuple[float, int]:
        return (-abs(self.iou_b[pos] - self.iou_a[pos]), self.ids[pos])

    def row(self, pos: int) -> tuple:
        """(abs change, example id, iou_a, iou_b, exact_a, exact_b)"""
        ia, ib = self.iou_a[pos], self.iou_b[pos]
        return (abs(ib - ia), self.ids[pos], ia, ib, bool(self.exact_a[pos]), bool(self.exact_b[pos]))

    def page(self, kind: str, order: str, after: tuple[float, int] | None, limit: int):
        """Rows of ``kind`` after the cursor (abs change, example id); ``order`` 'change' is
        the largest change first, '-change' the smallest first. Returns rows and whether more
        follow."""
        positions = self.lists[kind]
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
        ids, ia, ib, ea, eb = a.ids, a.ious, b.ious, a.exact, b.exact
    else:  # different coverage: compare the examples both have
        pos_b = {eid: i for i, eid in enumerate(b.ids)}
        ids, ia, ib, ea, eb = array("q"), array("d"), array("d"), bytearray(), bytearray()
        for i, eid in enumerate(a.ids):
            j = pos_b.get(eid)
            if j is not None:
                ids.append(eid)
                ia.append(a.ious[i])
                ib.append(b.ious[j])
                ea.append(a.exact[i])
                eb.append(b.exact[j])
    fixed = broken = both_right = both_wrong = 0
    lists: dict[str, list[int]] = {k: [] for k in COMPARE_KINDS}
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
    cmp = Comparison(ids, ia, ib, ea, eb, fixed, broken, both_right, both_wrong)
    for kind, positions in lists.items():
        positions.sort(key=cmp._key)
        cmp.lists[kind] = array("l", positions)
    return cmp
