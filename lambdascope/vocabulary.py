"""The words the trainer writes and the dashboard reads, defined once: run status values, metric
names and their titles, the IoU histogram's bins, and the slices by term length and by steps to
normal form. The trainer stores with these; the dashboard shows what was stored, or computes it
with these same functions (docs/DESIGN.md, "Metrics")."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Iterable, Sequence


class RunStatus(StrEnum):
    """A run's status: the ``status`` column holds one of the first four (``STORED_STATUSES``);
    ``lost`` is derived when it is read (``effective_status``) and never stored."""

    RUNNING = "running"  # a trainer is writing it: its heartbeat is recent
    FINISHED = "finished"  # its budget was spent and its last evaluation written
    FAILED = "failed"  # it stopped on an error; ``message`` says which
    STOPPED = "stopped"  # interrupted (Ctrl-C, SIGTERM); ``--resume`` continues it
    LOST = "lost"  # stored as running, but not heard from for LOST_AFTER: its trainer died
    # without a word (SIGKILL, a power cut, a lost machine); ``--resume`` continues it


STORED_STATUSES = (RunStatus.RUNNING, RunStatus.FINISHED, RunStatus.FAILED, RunStatus.STOPPED)

# The trainer's store writer stamps ``runs.heartbeat_at`` when a run starts (or resumes) and
# every HEARTBEAT_SECONDS after, from its own thread, whatever the training loop is doing; a
# running run not heard from for LOST_AFTER (nine heartbeats) is lost.
HEARTBEAT_SECONDS = 10.0
LOST_AFTER = dt.timedelta(seconds=90)


def last_heard(heartbeat_at: dt.datetime | None,
               activity: Iterable[dt.datetime | None] = ()) -> dt.datetime | None:
    """When a run was last heard from: its heartbeat; for a row written before heartbeats
    (``heartbeat_at`` null), the newest of ``activity`` (its row's update, its newest
    checkpoint, its newest metric point)."""
    if heartbeat_at is not None:
        return heartbeat_at
    known = [t for t in activity if isinstance(t, dt.datetime)]
    return max(known) if known else None


def effective_status(status: str, heard: dt.datetime | None, now: dt.datetime) -> str:
    """The status to show at ``now`` (naive UTC, as the store keeps times): ``lost`` for a
    running run last ``heard`` from (``last_heard``) more than LOST_AFTER ago, else the stored
    one. The one place the rule is written: the dashboard's pages and JSON twins use it."""
    if status == RunStatus.RUNNING and heard is not None and now - heard > LOST_AFTER:
        return RunStatus.LOST
    return status


# ---------------------------------------------------------------------------------------------
# Metric names, in the order curves are shown, with their titles. Live points are written while
# training (every few seconds); evaluation points at every evaluation, with the checkpoint.

METRIC_TITLES: dict[str, str] = {
    "loss": "loss",  # live: mean training loss over the last few seconds
    "val_loss": "validation loss",  # evaluation
    "exact": "exact match",  # evaluation: share of steps whose predicted span is the gold span
    "mean_iou": "mean IoU",  # evaluation
    "nf_f1": "normal-form F1",  # evaluation: normal form as the positive class
    "rollout_success": "rollout success",  # evaluation: the model's own reduction ends right
    "tokens_per_s": "tokens/s",  # live: non-padding tokens per second of training
    "nf_precision": "normal-form precision",  # evaluation (checkpoint metrics only)
    "nf_recall": "normal-form recall",  # evaluation (checkpoint metrics only)
    "trace_accuracy": "trace accuracy",  # evaluation: share of traces right at every step
    "mfu": "MFU",  # live: model FLOPs per second over the measured matmul peak
    "lr": "learning rate",  # live
    "train_minutes": "training minutes",  # evaluation: training time when it was made
}
LIVE_METRICS = ("loss", "lr", "tokens_per_s", "mfu")
EVAL_POINT_METRICS = ("exact", "mean_iou", "nf_f1", "trace_accuracy", "rollout_success")
SPARKLINE_METRICS = ("loss", "val_loss", "exact", "mean_iou")  # the runs list shows the first recorded
SUMMARY_METRICS = ("exact", "mean_iou", "nf_f1", "trace_accuracy", "rollout_success")
EVAL_CURVES = ("exact", "mean_iou", "nf_f1", "nf_precision", "nf_recall", "trace_accuracy",
               "rollout_success", "val_loss", "mfu")  # curves drawn from checkpoints' metrics too


def metric_title(name: str) -> str:
    return METRIC_TITLES.get(name, name.replace("_", " "))


def metric_order(name: str) -> tuple[int, str]:
    """Sort key: the names above in their order, then any other name alphabetically."""
    order = list(METRIC_TITLES)
    return (order.index(name) if name in order else len(order), name)


# ---------------------------------------------------------------------------------------------
# IoU histogram: ten bins [i/10, (i+1)/10) and one for IoU exactly 1 (an exact match). The
# edges are the same floats the examples filter receives from a bar's link (i/10 is the float
# nearest to the decimal 0.i, so "0.3" in a URL parses back to the edge used here).

IOU_EDGES = tuple(i / 10 for i in range(11))
N_IOU_BINS = len(IOU_EDGES)  # 10 bins below 1, and IoU == 1


def iou_bins() -> list[tuple[float, float | None]]:
    """(lower, upper) of each bin; the last, (1.0, None), holds IoU == 1."""
    return [(IOU_EDGES[i], IOU_EDGES[i + 1]) for i in range(10)] + [(1.0, None)]


def iou_bin(iou: float) -> int:
    """The bin of one IoU: the last edge at or below it (1.0 has a bin of its own)."""
    for i in range(10, 0, -1):
        if iou >= IOU_EDGES[i]:
            return i
    return 0


def iou_histogram(ious: Sequence[float]) -> list[int]:
    """Counts per bin of ``iou_bins()``."""
    counts = [0] * N_IOU_BINS
    for x in ious:
        counts[iou_bin(x)] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Slices: by term length (code points) in buckets of a width chosen for the longest term, and
# by steps to normal form (0 at the last step of a trace), one per value up to MAX_TOGO_SLICES.

MAX_TOGO_SLICES = 16  # steps to go beyond this share one slice
_WIDTHS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)


def length_bucket_width(max_len: int, target: int = 12) -> int:
    """A round bucket width that cuts 0..max_len into fewer than ``target`` buckets."""
    for w in _WIDTHS:
        if max_len // w < target:
            return w
    return max(1, max_len // target)


def length_slice(term_len: int, width: int) -> tuple[int, int]:
    """The (lo, hi) bucket of a term length, both inclusive."""
    b = term_len // width
    return b * width, b * width + width - 1


def togo_slice(steps_to_go: int) -> tuple[int, int | None]:
    """The (lo, hi) slice of steps to normal form; hi None: that many or more."""
    t = min(steps_to_go, MAX_TOGO_SLICES)
    return t, (t if t < MAX_TOGO_SLICES else None)


def slice_label(lo: int, hi: int | None) -> str:
    """'3', '0-31' or '16+': the key of a slice in the trainer's metrics."""
    if hi is None:
        return f"{lo}+"
    return str(lo) if lo == hi else f"{lo}-{hi}"


# ---------------------------------------------------------------------------------------------
# Error kinds: why a prediction is what it is, one per prediction, the first that applies
# (``lambdascope.diagnosis.error_kind``; docs/DESIGN.md, "Error kinds").

ERROR_KINDS: dict[str, str] = {
    "exact": "the predicted span is the gold span (normal form included)",
    "false_nf": "claimed normal form, but the term has a redex",
    "missed_nf": "the term is in normal form, but the model pointed at a span",
    "inner_redex": "a redex inside the normal-order redex: a valid step, but not normal order",
    "right_redex": "a redex to the right of the normal-order redex: a valid step, but not normal order",
    "not_redex": "a subterm that is not a redex",
    "not_subterm": "the span delimits no subterm",
}
ERROR_KIND_TITLES: dict[str, str] = {
    "exact": "exact", "false_nf": "false normal form", "missed_nf": "missed normal form",
    "inner_redex": "inner redex", "right_redex": "redex to the right", "not_redex": "not a redex",
    "not_subterm": "not a subterm",
}
WRONG_KINDS = tuple(k for k in ERROR_KINDS if k != "exact")

# How a rollout (the model reducing a trace by its own predictions) ended
# (``lambdascope.diagnosis.rollout_outcome``).
ROLLOUT_OUTCOMES: dict[str, str] = {
    "success": "the gold normal form (up to α) in the gold number of steps",
    "other_path": "the gold normal form (up to α) by another path: a different number of steps",
    "other_nf": "a normal form that is not the gold one",
    "false_nf": "claimed normal form at a term that has a redex",
    "not_redex": "pointed at a span that is not a redex",
    "step_cap": "took more than twice the gold number of steps",
    "too_long": "the term grew past the length cap",
}
ROLLOUT_OUTCOME_TITLES: dict[str, str] = {
    "success": "success", "other_path": "same normal form, another path", "other_nf": "another normal form",
    "false_nf": "normal form claimed too early", "not_redex": "stopped at a non-redex",
    "step_cap": "step cap", "too_long": "too long",
}

# What an attention head may track, scored per head over a checkpoint's evaluation set: the mean
# attention weight from each position to its partner (``lambdascope.structure``;
# ``trainer.predict.Predictor.head_scores``).
STRUCTURAL_SCORES: dict[str, str] = {
    "binding": "from a bound variable to the λ that binds it",
    "paren": "from a parenthesis to its match (both ways)",
}
STRUCTURAL_SCORE_TITLES: dict[str, str] = {"binding": "variable → its λ", "paren": "parenthesis → its match"}
