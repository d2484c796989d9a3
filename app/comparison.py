"""Two checkpoints compared on the examples both were evaluated on: for each example its IoU,
exact match and error kind under each, counted by kind of change (fixed, broken, IoU rose, IoU
fell) and by error kind at A and at B (the 7 x 7 ``transitions``), and each kind of change's rows
in order of the size of the change, a page at a time (``Comparison.page``, after a cursor
``<IoU change>,<example id>``), optionally only those of one error kind at A and/or at B. Built
from two ``CheckpointVector``s, compactly, since a checkpoint's predictions never change;
``cache.Aggregates`` keeps both."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from lambdascope.vocabulary import ERROR_KINDS

from .sql import PRED_NF_SQL

KIND_INDEX = {k: i for i, k in enumerate(ERROR_KINDS)}  # an error kind as one byte
UNJUDGED = 255  # a prediction whose error kind is NULL


@dataclass
class CheckpointVector:
    """A checkpoint's (example id, IoU, exact, error kind, predicts normal form) in example-id
    order, as numpy arrays (the kind as its index in ``ERROR_KINDS``, one byte). The comparison
    is made of them, and so are the examples page's counts (``app.counting``)."""

    ids: np.ndarray  # int64
    ious: np.ndarray  # float64
    exact: np.ndarray  # bool
    kinds: np.ndarray  # uint8
    pred_nf: np.ndarray  # bool: the predicted span is [0, 0]

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.ious.nbytes + self.exact.nbytes + self.kinds.nbytes + self.pred_nf.nbytes


# the error kind as its index, in SQL: every column a number, so the rows become one structured
# array in a single numpy call (unzipping 100,000 tuples in Python costs as much as the fetch)
KIND_CASES = " ".join("WHEN '%s' THEN %d" % (k, i) for k, i in KIND_INDEX.items())  # code constants only
VECTOR_SQL = (f"SELECT p.example_id, p.iou, p.exact, CASE p.error_kind {KIND_CASES} ELSE {UNJUDGED} END, "
              f"CASE WHEN {PRED_NF_SQL} THEN 1 ELSE 0 END "
              "FROM predictions p WHERE p.checkpoint_id = {param} ORDER BY p.example_id")
VECTOR_ROW = np.dtype([("id", "i8"), ("iou", "f8"), ("exact", "?"), ("kind", "u1"), ("pred_nf", "?")])


def fetch_array(session, statement: str, value: int, dtype: np.dtype) -> np.ndarray:
    """The rows of ``statement`` (one parameter, written ``{param}``, bound to ``value``) as one
    structured array. The statement goes through SQLAlchemy (so the pages' query time limit arms
    for it, and its errors are SQLAlchemy's), the rows are fetched from the driver's cursor as
    plain tuples (SQLAlchemy's rows cost as much again as the fetch, on 100,000 rows): a fetch
    stopped by the time limit is wrapped the same way."""
    from sqlalchemy.exc import DBAPIError

    conn = session.connection()
    style = conn.dialect.paramstyle
    placeholder = {"qmark": "?", "numeric": ":1", "named": ":v", "format": "%s", "pyformat": "%(v)s"}[style]
    statement = statement.format(param=placeholder)
    params = {"v": value} if style in ("named", "pyformat") else (value,)
    result = conn.exec_driver_sql(statement, params)
    error = conn.dialect.loaded_dbapi.Error
    try:
        return np.array(result.cursor.fetchall(), dtype=dtype)
    except error as e:
        raise DBAPIError.instance(statement, params, e, error) from e
    finally:
        result.close()


def compute_vector(session, ck: int) -> CheckpointVector:
    """Read checkpoint ``ck``'s predictions into a vector."""
    rows = fetch_array(session, VECTOR_SQL, ck, VECTOR_ROW)
    return CheckpointVector(*(np.ascontiguousarray(rows[f]) for f in VECTOR_ROW.names))


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
    """Two checkpoints on the examples both have: parallel numpy arrays, and per kind of change
    the positions of its rows, largest IoU change first (ties by example id)."""

    ids: np.ndarray
    iou_a: np.ndarray
    iou_b: np.ndarray
    exact_a: np.ndarray
    exact_b: np.ndarray
    fixed: int
    broken: int
    both_right: int
    both_wrong: int
    lists: dict[str, np.ndarray] = field(default_factory=dict)
    kind_a: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # ERROR_KINDS indices
    kind_b: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    transitions: list[list[int]] = field(default_factory=list)  # [kind at A][kind at B] -> examples
    _filtered: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Memory held (arrays shared with the vectors counted too: an upper bound)."""
        arrays = (self.ids, self.iou_a, self.iou_b, self.exact_a, self.exact_b, self.kind_a, self.kind_b,
                  *self.lists.values(), *self._filtered.values())
        return sum(a.nbytes for a in arrays) + 4096

    def counts(self) -> dict[str, int]:
        return {"n": self.n, "fixed": self.fixed, "broken": self.broken,
                "both_right": self.both_right, "both_wrong": self.both_wrong,
                "regressions": len(self.lists["regressions"]),
                "improvements": len(self.lists["improvements"]), "all": self.n}

    def ordered(self, positions: np.ndarray) -> np.ndarray:
        """``positions`` in list order: largest IoU change first, ties by example id."""
        change = np.abs(self.iou_b[positions] - self.iou_a[positions])
        return positions[np.lexsort((self.ids[positions], -change))]

    def positions(self, kind: str, kind_a: str | None = None, kind_b: str | None = None) -> np.ndarray:
        """The positions of the list ``kind`` in its order, only those whose error kind at A is
        ``kind_a`` and at B ``kind_b`` (either None: any); computed on first use and kept (a
        filter keeps the list's order)."""
        if kind == "all" and "all" not in self.lists:
            self.lists["all"] = self.ordered(np.arange(self.n, dtype=np.int64))
        positions = self.lists[kind]
        if kind_a is None and kind_b is None:
            return positions
        key = (kind, kind_a, kind_b)
        chosen = self._filtered.get(key)
        if chosen is None:
            keep = np.ones(len(positions), dtype=bool)
            if kind_a is not None:
                keep &= self.kind_a[positions] == KIND_INDEX[kind_a]
            if kind_b is not None:
                keep &= self.kind_b[positions] == KIND_INDEX[kind_b]
            chosen = positions[keep]
            if len(self._filtered) >= FILTERED_LISTS:
                self._filtered.clear()
            self._filtered[key] = chosen
        return chosen

    def _key(self, pos) -> tuple[float, int]:
        return (-abs(float(self.iou_b[pos]) - float(self.iou_a[pos])), int(self.ids[pos]))

    def row(self, pos) -> tuple:
        """(abs change, example id, iou_a, iou_b, exact_a, exact_b)"""
        ia, ib = float(self.iou_a[pos]), float(self.iou_b[pos])
        return (abs(ib - ia), int(self.ids[pos]), ia, ib, bool(self.exact_a[pos]), bool(self.exact_b[pos]))

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
    if np.array_equal(a.ids, b.ids):
        ids, ia, ib, ea, eb, ka, kb = a.ids, a.ious, b.ious, a.exact, b.exact, a.kinds, b.kinds
    else:  # different coverage: compare the examples both have
        ids, pa, pb = np.intersect1d(a.ids, b.ids, assume_unique=True, return_indices=True)
        ia, ib, ea, eb, ka, kb = a.ious[pa], b.ious[pb], a.exact[pa], b.exact[pb], a.kinds[pa], b.kinds[pb]
    broken_mask, fixed_mask = ea & ~eb, ~ea & eb
    n_kinds = len(ERROR_KINDS)
    judged = (ka < n_kinds) & (kb < n_kinds)
    pairs = np.bincount(ka[judged].astype(np.int64) * n_kinds + kb[judged], minlength=n_kinds * n_kinds)
    cmp = Comparison(ids, ia, ib, ea, eb, fixed=int(fixed_mask.sum()), broken=int(broken_mask.sum()),
                     both_right=int((ea & eb).sum()), both_wrong=int((~ea & ~eb).sum()),
                     kind_a=ka, kind_b=kb, transitions=pairs.reshape(n_kinds, n_kinds).tolist())
    for kind, mask in (("regressions", ib < ia), ("improvements", ib > ia), ("broken", broken_mask),
                       ("fixed", fixed_mask)):  # "all": on first use
        cmp.lists[kind] = cmp.ordered(np.flatnonzero(mask))
    return cmp
