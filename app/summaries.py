"""A checkpoint's summary: what its evaluation says as a whole. The IoU histogram, the
normal-form confusion matrix with precision, recall and F1, accuracy by term length and by
steps to normal form, in the bins and slices of ``lambdascope.vocabulary`` (the trainer's), and
the counts of predictions by error kind and of rollouts by outcome (every kind and outcome of
the vocabulary, zeros included). A few grouped queries over the checkpoint's predictions make
it; ``cache.Aggregates`` keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from lambdascope.vocabulary import (ERROR_KINDS, IOU_EDGES, N_IOU_BINS, ROLLOUT_OUTCOMES, iou_bins,
                                    length_bucket_width, length_slice, togo_slice)

from .sql import GOLD_NF_SQL, PRED_NF_SQL, TOGO_SQL, join_kw


def _histogram_sql() -> tuple[str, dict[str, float]]:
    """Counts per bin of ``iou_bins()``: the bin of an IoU is the last edge at or below it
    (``vocabulary.iou_bin``), in SQL."""
    cases = " ".join(f"WHEN iou >= :e{i} THEN {i}" for i in range(N_IOU_BINS - 1, 0, -1))
    return (f"SELECT CASE {cases} ELSE 0 END AS bin, count(*) AS n FROM predictions "
            f"WHERE checkpoint_id = :ck GROUP BY bin",
            {f"e{i}": IOU_EDGES[i] for i in range(1, N_IOU_BINS)})


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
    error_kinds: dict[str, int] = field(default_factory=dict)  # kind -> predictions, ERROR_KINDS order
    rollout_outcomes: dict[str, int] = field(default_factory=dict)  # outcome -> rollouts

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
            "error_kinds": self.error_kinds, "rollout_outcomes": self.rollout_outcomes,
        }


def nf_scores(c: dict[str, int]) -> dict[str, float | None]:
    """Precision, recall and F1 of predicting normal form (the positive class)."""
    tp, fp, fn = c.get("nf_nf", 0), c.get("redex_nf", 0), c.get("nf_redex", 0)
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f1 = 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)
    return {"precision": p, "recall": r, "f1": f1}


def kind_counts(session, ck: int) -> dict[str, int]:
    """The checkpoint's predictions counted by error kind: every kind of ``ERROR_KINDS``, in its
    order, zeros included (along the index on (checkpoint, error kind); a prediction not judged,
    NULL, is in none)."""
    counts = dict(session.execute(text(
        "SELECT error_kind, count(*) FROM predictions WHERE checkpoint_id = :ck GROUP BY error_kind"),
        {"ck": ck}).all())
    return {k: int(counts.get(k, 0)) for k in ERROR_KINDS}


def outcome_counts(session, ck: int) -> dict[str, int]:
    """The checkpoint's rollouts counted by outcome: every outcome of ``ROLLOUT_OUTCOMES``."""
    counts = dict(session.execute(text(
        "SELECT outcome, count(*) FROM rollouts WHERE checkpoint_id = :ck GROUP BY outcome"),
        {"ck": ck}).all())
    return {k: int(counts.get(k, 0)) for k in ROLLOUT_OUTCOMES}


def compute_checkpoint_summary(session, ck: int, kinds: dict[str, int] | None = None) -> CheckpointSummary:
    """The summary of checkpoint ``ck``; ``kinds``, when given, is its ``kind_counts`` (kept by
    the caller's cache, which the run page reads too)."""
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
    width = length_bucket_width(max_len)
    by_len: dict[int, Slice] = {}  # by the lower end of the slice
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
        for slices, (lo, hi) in ((by_len, length_slice(term_len, width)), (by_togo, togo_slice(togo))):
            s = slices.setdefault(lo, Slice(lo, hi))
            s.n, s.exact, s.iou_sum = s.n + cnt, s.exact + ex, s.iou_sum + iou
    ro = session.execute(text(
        "SELECT count(*), sum(CASE WHEN success THEN 1 ELSE 0 END), "
        "sum(CASE WHEN reached_normal_form THEN 1 ELSE 0 END) FROM rollouts "
        "WHERE checkpoint_id = :ck"), {"ck": ck}).one()
    return CheckpointSummary(
        n=n, exact=exact, iou_sum=iou_sum, histogram=histogram, confusion=confusion,
        by_length=[by_len[k] for k in sorted(by_len)], by_togo=[by_togo[k] for k in sorted(by_togo)],
        length_width=width, rollouts=int(ro[0] or 0), rollout_success=int(ro[1] or 0),
        rollout_nf=int(ro[2] or 0), error_kinds=kinds if kinds is not None else kind_counts(session, ck),
        rollout_outcomes=outcome_counts(session, ck))


def generalisation_counts(session, ck: int) -> dict[str, dict[int, tuple[int, int]]]:
    """What the generalisation chart needs of checkpoint ``ck``, by exact value (bucketed by
    the caller, in any width): {"length": {term length: (predictions, exact)}, "steps":
    {steps_total of the example's trace: (predictions, exact)}, "rollout_steps": {gold steps of
    the trace: (rollouts, successes)}}, from grouped queries."""
    join = join_kw(session.get_bind().dialect.name)
    out: dict[str, dict[int, tuple[int, int]]] = {}
    for key, column in (("length", "e.term_len"), ("steps", "e.steps_total")):
        out[key] = {int(v): (int(n), int(ex or 0)) for v, n, ex in session.execute(text(
            f"SELECT {column}, count(*), sum(CASE WHEN p.exact THEN 1 ELSE 0 END) FROM predictions p "
            f"{join} examples e ON e.id = p.example_id WHERE p.checkpoint_id = :ck GROUP BY 1"), {"ck": ck})}
    out["rollout_steps"] = {int(v): (int(n), int(ok or 0)) for v, n, ok in session.execute(text(
        "SELECT gold_steps, count(*), sum(CASE WHEN success THEN 1 ELSE 0 END) FROM rollouts "
        "WHERE checkpoint_id = :ck GROUP BY 1"), {"ck": ck})}
    return out
