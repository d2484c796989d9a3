"""Aggregates over one checkpoint's predictions, or a pair's, computed once and kept in memory.

A checkpoint's evaluation is written in one transaction (``store.write_evaluation``) and never
changes afterwards, so whatever is computed from its predictions and its (fixed) evaluation set
stays true: the IoU histogram, the normal-form confusion matrix, accuracy by term length and by
steps to normal form, and a comparison of two checkpoints. Each is computed on first use (one
grouped query, tens of milliseconds on 100,000 predictions) and then served from memory; the
examples page's total counts are cached the same way, keyed by the filter (and by the labels'
version when the filter reads labels). Concurrent first requests for one key compute it once.
"""

from __future__ import annotations

import bisect
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from sqlalchemy import select, text

from lambdascope.store import Checkpoint

from .filters import GOLD_NF_SQL, PRED_NF_SQL, TOGO_SQL, join_kw

# IoU histogram: ten bins [i/10, (i+1)/10) and one for IoU exactly 1 (an exact match). The
# edges are the same floats the examples filter receives from a bar's link (i/10 is the
# float nearest to the decimal 0.i, so "0.3" in a URL parses back to the edge used here).
IOU_EDGES = tuple(i / 10 for i in range(11))


def iou_bins() -> list[tuple[float, float | None]]:
    """(lower, upper) of each bin; the last, (1.0, None), holds IoU == 1."""
    return [(IOU_EDGES[i], IOU_EDGES[i + 1]) for i in range(10)] + [(1.0, None)]


def _histogram_sql() -> tuple[str, dict[str, float]]:
    cases = " ".join(f"WHEN iou >= :e{i} THEN {i}" for i in range(10, 0, -1))
    return (f"SELECT CASE {cases} ELSE 0 END AS bin, count(*) AS n FROM predictions "
            f"WHERE checkpoint_id = :ck GROUP BY bin",
            {f"e{i}": IOU_EDGES[i] for i in range(1, 11)})


def _bucket_width(max_len: int, target: int = 12) -> int:
    for w in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if max_len // w < target:
            return w
    return max(1, max_len // target)


class Memo:
    """A small LRU map whose missing values are computed once even under concurrent requests."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._data:
                    return self._data[key]
            value = compute()
            with self._lock:
                self._data[key] = value
                while len(self._data) > self.maxsize:
                    self._data.popitem(last=False)
                self._computing.pop(key, None)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


@dataclass
class Slice:
    """Accuracy over a slice of examples (a term-length bucket, a steps-to-go value)."""

    lo: int
    hi: int | None  # inclusive; None: and above
    n: int = 0
    exact: int = 0
    iou_sum: float = 0.0

    @property
    def exact_rate(self) -> float | None:
        return self.exact / self.n if self.n else None

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.n if self.n else None

    def as_dict(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "n": self.n, "exact": self.exact,
                "exact_rate": self.exact_rate, "mean_iou": self.mean_iou}


@dataclass
class CheckpointSummary:
    n: int
    exact: int
    iou_sum: float
    histogram: list[dict[str, Any]]  # lo, hi, n
    confusion: dict[str, int]  # "gold_pred" for gold/pred normal form in {nf, redex}
    by_length: list[Slice]
    by_togo: list[Slice]
    length_width: int
    rollouts: int
    rollout_success: int
    rollout_nf: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "exact": self.exact,
            "exact_rate": self.exact / self.n if self.n else None,
            "mean_iou": self.iou_sum / self.n if self.n else None,
            "iou_histogram": self.histogram, "nf_confusion": self.confusion,
            "nf": nf_scores(self.confusion),
            "by_term_length": [s.as_dict() for s in self.by_length],
            "term_length_bucket": self.length_width,
            "by_steps_to_go": [s.as_dict() for s in self.by_togo],
            "rollouts": self.rollouts, "rollout_success": self.rollout_success,
            "rollout_success_rate": self.rollout_success / self.rollouts if self.rollouts else None,
            "rollout_reached_nf": self.rollout_nf,
        }


def nf_scores(c: dict[str, int]) -> dict[str, float | None]:
    """Precision, recall and F1 of predicting normal form (the positive class)."""
    tp, fp, fn = c.get("nf_nf", 0), c.get("redex_nf", 0), c.get("nf_redex", 0)
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f1 = 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)
    return {"precision": p, "recall": r, "f1": f1}


MAX_TOGO_SLICES = 16  # steps to go beyond this share one slice


def compute_checkpoint_summary(session, ck: int) -> CheckpointSummary:
    sql, params = _histogram_sql()
    counts = dict(session.execute(text(sql), dict(params, ck=ck)).all())
    histogram = [{"lo": lo, "hi": hi, "n": int(counts.get(i, 0))}
                 for i, (lo, hi) in enumerate(iou_bins())]
    rows = session.execute(text(
        f"SELECT e.term_len, {TOGO_SQL} AS togo, {GOLD_NF_SQL} AS gnf, {PRED_NF_SQL} AS pnf, "
        "count(*) AS n, sum(CASE WHEN p.exact THEN 1 ELSE 0 END) AS exact, sum(p.iou) AS iou "
        f"FROM predictions p {join_kw(session.get_bind().dialect.name)} examples e ON e.id = p.example_id "
        "WHERE p.checkpoint_id = :ck GROUP BY 1, 2, 3, 4"), {"ck": ck}).all()
    max_len = max((r[0] for r in rows), default=0)
    width = _bucket_width(max_len)
    by_len: dict[int, Slice] = {}
    by_togo: dict[int, Slice] = {}
    confusion = {"nf_nf": 0, "nf_redex": 0, "redex_nf": 0, "redex_redex": 0}
    n = exact = 0
    iou_sum = 0.0
    for term_len, togo, gnf, pnf, cnt, ex, iou in rows:
        ex, iou = int(ex or 0), float(iou or 0.0)
        n += cnt
        exact += ex
        iou_sum += iou
        confusion[f"{'nf' if gnf else 'redex'}_{'nf' if pnf else 'redex'}"] += cnt
        b = term_len // width
        s = by_len.setdefault(b, Slice(b * width, b * width + width - 1))
        s.n, s.exact, s.iou_sum = s.n + cnt, s.exact + ex, s.iou_sum + iou
        t = min(togo, MAX_TOGO_SLICES)
        s = by_togo.setdefault(t, Slice(t, t if t < MAX_TOGO_SLICES else None))
        s.n, s.exact, s.iou_sum = s.n + cnt, s.exact + ex, s.iou_sum + iou
    ro = session.execute(text(
        "SELECT count(*), sum(CASE WHEN success THEN 1 ELSE 0 END), "
        "sum(CASE WHEN reached_normal_form THEN 1 ELSE 0 END) FROM rollouts "
        "WHERE checkpoint_id = :ck"), {"ck": ck}).one()
    return CheckpointSummary(
        n=n, exact=exact, iou_sum=iou_sum, histogram=histogram, confusion=confusion,
        by_length=[by_len[k] for k in sorted(by_len)], by_togo=[by_togo[k] for k in sorted(by_togo)],
        length_width=width, rollouts=int(ro[0] or 0), rollout_success=int(ro[1] or 0),
        rollout_nf=int(ro[2] or 0))


# ---------------------------------------------------------------------------------------------
# Two checkpoints


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


class Aggregates:
    """The process-wide caches; one per application."""

    def __init__(self) -> None:
        self.summaries = Memo(64)
        self.vectors = Memo(24)
        self.comparisons = Memo(32)
        self.counts = Memo(4096)
        self.curves = Memo(512)
        self.sparkline_metric: dict[int, str] = {}  # run id -> the metric its sparkline shows

    def clear(self) -> None:
        for memo in (self.summaries, self.vectors, self.comparisons, self.counts, self.curves):
            memo.clear()
        self.sparkline_metric.clear()

    def summary(self, session, ck: int, stamp: Hashable) -> dict[str, Any]:
        """The summary of a checkpoint (``CheckpointSummary.as_dict``; read-only). ``stamp``
        tells checkpoints apart if an id is ever reused (its creation time)."""
        return self.summaries.get((ck, stamp),
                                  lambda: compute_checkpoint_summary(session, ck).as_dict())

    def comparison(self, session, a: tuple[int, Hashable], b: tuple[int, Hashable]) -> Comparison:
        def compute() -> Comparison:
            va = self.vectors.get(a, lambda: compute_vector(session, a[0]))
            vb = self.vectors.get(b, lambda: compute_vector(session, b[0]))
            return compute_comparison(va, vb)

        return self.comparisons.get((a, b), compute)

    def count(self, key: Hashable, compute: Callable[[], int]) -> int:
        return self.counts.get(key, compute)


class Warmer:
    """A background thread that computes the summaries of the newest checkpoints (and the
    comparison of each with the one before it in its run) soon after the trainer writes
    them, so that the first person to open a new checkpoint does not wait for it."""

    def __init__(self, sessions, aggregates: Aggregates, interval: float = 5.0, newest: int = 12):
        self.sessions, self.aggregates = sessions, aggregates
        self.interval, self.newest = interval, newest
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lambdascope-warmer", daemon=True)

    def start(self) -> "Warmer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def warm_once(self) -> None:
        with self.sessions() as session:
            # typed columns: created_at must come back as the pages see it (a datetime)
            rows = session.execute(select(
                Checkpoint.id, Checkpoint.created_at, Checkpoint.run_id, Checkpoint.eval_set_id,
                Checkpoint.step).order_by(Checkpoint.id.desc()).limit(self.newest)).all()
            previous: dict[tuple[int, int], tuple] = {}
            for r in sorted(rows, key=lambda r: (r.run_id, r.eval_set_id, r.step, r.id)):
                if self._stop.is_set():
                    return
                self.aggregates.summary(session, r.id, r.created_at)
                before = previous.get((r.run_id, r.eval_set_id))
                if before is not None:
                    self.aggregates.comparison(session, (before.id, before.created_at),
                                               (r.id, r.created_at))
                previous[(r.run_id, r.eval_set_id)] = r

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.warm_once()
            except Exception as e:  # never let warming take the server down
                print(f"lambdascope: warming the caches failed: {type(e).__name__}: {e}", flush=True)
            self._stop.wait(self.interval)
