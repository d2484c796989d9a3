"""The examples page's counts, from arrays in memory instead of a count over the store.

A filter's count is the number of a checkpoint's predictions that meet every condition of the
filter (``app.filters.where_sql`` says which). Counted in SQL, each new filter or checkpoint was
a scan of the checkpoint's predictions joined to their examples: 13-45 ms on 100,000 predictions
with the file in memory, more from disk. Here it is a few boolean operations over arrays that
cannot change:

- the checkpoint's ``CheckpointVector`` (``app.comparison``: IoU, exact, error kind, predicts
  normal form, by example id), the same one comparisons are made of;
- its evaluation set's ``SetArrays`` (gold normal form, term length, steps to go, by example id):
  a set's examples are written once (``store.ensure_eval_set``);
- for a ``labelled`` filter, the set's labelled mask, read again when the labels change (keyed on
  their count and newest id); for a term substring ``q``, the set's mask of terms holding it.

Each is read from the store once (``cache.Aggregates`` keeps them) and every count after it is
well under a millisecond. A checkpoint whose predictions name an example outside its own set
(none is written so) is counted in SQL, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import text

from .comparison import KIND_INDEX, CheckpointVector, fetch_array
from .filters import ExampleFilter, example_conds
from .sql import GOLD_NF_SQL, TOGO_SQL


@dataclass
class SetArrays:
    """An evaluation set's examples as numpy arrays, in example-id order."""

    ids: np.ndarray  # int64
    gold_nf: np.ndarray  # bool: the gold span is [0, 0]
    term_len: np.ndarray  # int64, code points
    togo: np.ndarray  # int64, steps to normal form

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.gold_nf.nbytes + self.term_len.nbytes + self.togo.nbytes


SET_SQL = (f"SELECT e.id, CASE WHEN {GOLD_NF_SQL} THEN 1 ELSE 0 END, e.term_len, {TOGO_SQL} "
           "FROM examples e WHERE e.eval_set_id = {param} ORDER BY e.id")
SET_ROW = np.dtype([("id", "i8"), ("gold_nf", "?"), ("term_len", "i8"), ("togo", "i8")])
# the examples of a set that carry a label on their trace or their step (app.sql.LABELLED_SQL, read
# from the labels' side: a few labels, not a probe per example)
LABELLED_IDS_SQL = ("SELECT DISTINCT e.id FROM labels l JOIN examples e ON e.trace_identity = l.trace_identity "
                    "AND (l.step_k IS NULL OR l.step_k = e.step_k) WHERE e.eval_set_id = :es")


def compute_set_arrays(session, eval_set_id: int) -> SetArrays:
    rows = fetch_array(session, SET_SQL, eval_set_id, SET_ROW)
    return SetArrays(*(np.ascontiguousarray(rows[f]) for f in SET_ROW.names))


def _mask(session, sa: SetArrays, sql: str, params: dict) -> np.ndarray:
    """Which of the set's examples are among the ids ``sql`` selects."""
    ids = np.fromiter((r[0] for r in session.execute(text(sql), params)), dtype=np.int64)
    return np.isin(sa.ids, ids)


def labelled_mask(session, sa: SetArrays, eval_set_id: int) -> np.ndarray:
    """Which of the set's examples have a label on their trace or step (``LABELLED_SQL``)."""
    return _mask(session, sa, LABELLED_IDS_SQL, {"es": eval_set_id})


def term_mask(session, sa: SetArrays, eval_set_id: int, q: str) -> np.ndarray:
    """Which of the set's examples have a term holding ``q`` (the filter's own condition)."""
    conds, params = example_conds(ExampleFilter(q=q), session.get_bind().dialect.name)
    sql = f"SELECT e.id FROM examples e WHERE e.eval_set_id = :es AND {' AND '.join(conds)}"
    return _mask(session, sa, sql, params | {"es": eval_set_id})


def positions(vec: CheckpointVector, sa: SetArrays) -> slice | np.ndarray | None:
    """Where each of the checkpoint's examples is in its set's arrays: everything in order (the
    usual case: one prediction for each example), their positions, or None if one is not in it."""
    if np.array_equal(vec.ids, sa.ids):
        return slice(None)
    pos = np.searchsorted(sa.ids, vec.ids)
    if len(pos) and (pos[-1] >= len(sa.ids) or not np.array_equal(sa.ids[np.minimum(pos, len(sa.ids) - 1)], vec.ids)):
        return None
    return pos


def vector_count(f: ExampleFilter, vec: CheckpointVector, sa: SetArrays, at, *,
                 labelled: np.ndarray | None = None, term: np.ndarray | None = None) -> int:
    """The count of ``f`` (cursors ignored) over the checkpoint's predictions: ``at`` is
    ``positions(vec, sa)``; ``labelled`` and ``term`` the set's masks, given when ``f`` has a
    ``labelled`` filter or a ``q``."""
    keep = np.ones(len(vec.ids), dtype=bool)
    if f.correct:
        keep &= vec.exact if f.correct == "right" else ~vec.exact
    if f.kind:
        chosen = np.zeros(256, dtype=bool)  # by the kind's byte (UNJUDGED, 255, is never chosen)
        chosen[[KIND_INDEX[k] for k in f.kind]] = True
        keep &= chosen[vec.kinds]
    if f.iou_min is not None:
        keep &= vec.ious >= f.iou_min
    if f.iou_max is not None:
        keep &= vec.ious < f.iou_max
    if f.pred_nf is not None:
        keep &= vec.pred_nf if f.pred_nf else ~vec.pred_nf
    if f.nf is not None:
        keep &= sa.gold_nf[at] if f.nf else ~sa.gold_nf[at]
    if f.len_min is not None:
        keep &= sa.term_len[at] >= f.len_min
    if f.len_max is not None:
        keep &= sa.term_len[at] <= f.len_max
    if f.togo_min is not None:
        keep &= sa.togo[at] >= f.togo_min
    if f.togo_max is not None:
        keep &= sa.togo[at] <= f.togo_max
    if f.labelled is not None:
        keep &= labelled[at] if f.labelled else ~labelled[at]
    if f.q:
        keep &= term[at]
    return int(np.count_nonzero(keep))
