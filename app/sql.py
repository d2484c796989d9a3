"""SQL fragments over a checkpoint's predictions (``p``) joined to their examples (``e``),
shared by the examples filter, the checkpoint summaries and the label queue. Fixed text only:
whatever a person typed reaches SQL as a bound parameter."""

from __future__ import annotations

LABELLED_SQL = ("EXISTS (SELECT 1 FROM labels l WHERE l.trace_identity = e.trace_identity "
                "AND (l.step_k IS NULL OR l.step_k = e.step_k))")  # the trace or the step has a label
GOLD_NF_SQL = "(e.gold_start = 0 AND e.gold_end = 0)"  # the gold span is normal form
PRED_NF_SQL = "(p.pred_start = 0 AND p.pred_end = 0)"  # the model predicts normal form
TOGO_SQL = "(e.steps_total - e.step_k)"  # steps to normal form


def join_kw(dialect: str) -> str:
    """SQLite's CROSS JOIN is an inner join that keeps the written table order (its way of
    saying which table leads); elsewhere a plain JOIN (PostgreSQL rejects ON after CROSS JOIN)."""
    return "CROSS JOIN" if dialect == "sqlite" else "JOIN"
