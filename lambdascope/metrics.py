"""Evaluation metrics: pure functions over character spans (no model, no store, no torch).

The trainer (``trainer.evaluate``), ``lambdascope import`` and the ``Recorder`` all score with
these, so a checkpoint's figures mean the same whatever made its predictions. Spans are
``[start, end)`` character spans; ``(0, 0)`` is normal form. ``span_iou`` is the one in
``lambdascope.spans`` (re-exported here), so IoU is computed in one place; the IoU bins and the
slices by length and steps to go are ``lambdascope.vocabulary``'s, which the dashboard uses too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from lambdascope.spans import NORMAL_FORM, span_iou
from lambdascope.vocabulary import iou_histogram, length_bucket_width, length_slice, slice_label, togo_slice
from lambdascope.terms import alpha_equivalent, contract_span, parse, print_term, redex_span

__all__ = ["span_iou", "step_exact", "iou_histogram", "nf_precision_recall_f1", "accuracy_by",
           "length_bucket", "steps_left_bucket", "trace_accuracy", "step_metrics", "GoldTrace",
           "RolloutResult", "rollout", "rollout_summary", "score_steps", "RolloutMismatch", "replay_rollout"]

Span = tuple[int, int]


def step_exact(pred: Span, gold: Span) -> bool:
    """The predicted span is the gold span (normal form included)."""
    return tuple(pred) == tuple(gold)


def nf_precision_recall_f1(preds: Sequence[Span], golds: Sequence[Span]) -> tuple[float, float, float]:
    """Normal form as the positive class. With no normal form predicted and none in the gold,
    all three are 1.0 (nothing to find, nothing wrongly claimed)."""
    pred_nf = [tuple(p) == NORMAL_FORM for p in preds]
    gold_nf = [tuple(g) == NORMAL_FORM for g in golds]
    tp = sum(p and g for p, g in zip(pred_nf, gold_nf))
    n_pred, n_gold = sum(pred_nf), sum(gold_nf)
    if n_pred == 0 and n_gold == 0:
        return 1.0, 1.0, 1.0
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def length_bucket(term_len: int, width: int) -> str:
    """The term-length slice of ``lambdascope.vocabulary`` as a key: '0-9', '10-19', …"""
    return slice_label(*length_slice(term_len, width))


def steps_left_bucket(steps_left: int) -> str:
    """The steps-to-go slice of ``lambdascope.vocabulary`` as a key: '0', '1', …, '16+'."""
    return slice_label(*togo_slice(steps_left))


def accuracy_by(keys: Sequence[str], exact: Sequence[bool]) -> dict[str, dict[str, float]]:
    """For each key: ``{"n": count, "exact": fraction right}``, keys in order of first appearance
    sorted by their numeric start."""
    n: dict[str, int] = defaultdict(int)
    right: dict[str, int] = defaultdict(int)
    for k, e in zip(keys, exact):
        n[k] += 1
        right[k] += bool(e)
    order = sorted(n, key=lambda k: int(k.split("-")[0].rstrip("+")))
    return {k: {"n": n[k], "exact": right[k] / n[k]} for k in order}


def trace_accuracy(trace_keys: Sequence[str], exact: Sequence[bool]) -> float:
    """Fraction of traces whose every step is exactly right."""
    ok: dict[str, bool] = {}
    for t, e in zip(trace_keys, exact):
        ok[t] = ok.get(t, True) and bool(e)
    return sum(ok.values()) / len(ok) if ok else 0.0


def step_metrics(preds: Sequence[Span], golds: Sequence[Span], term_lens: Sequence[int],
                 steps_left: Sequence[int], trace_keys: Sequence[str]) -> dict:
    """Every per-step figure of one evaluation, as a JSON-ready dict."""
    exact = [step_exact(p, g) for p, g in zip(preds, golds)]
    ious = [span_iou(p[0], p[1], g[0], g[1]) for p, g in zip(preds, golds)]
    p, r, f1 = nf_precision_recall_f1(preds, golds)
    n = len(exact)
    width = length_bucket_width(max(term_lens, default=0))
    return {
        "examples": n,
        "exact": sum(exact) / n if n else 0.0,
        "mean_iou": sum(ious) / n if n else 0.0,
        "iou_hist": iou_histogram(ious),
        "nf_precision": p,
        "nf_recall": r,
        "nf_f1": f1,
        "trace_accuracy": trace_accuracy(trace_keys, exact),
        "length_bucket": width,
        "by_length": accuracy_by([length_bucket(x, width) for x in term_lens], exact),
        "by_steps_left": accuracy_by([steps_left_bucket(x) for x in steps_left], exact),
    }


# ---------------------------------------------------------------------------------------------
# Rollouts


@dataclass(frozen=True)
class GoldTrace:
    """A complete trace: its terms and gold spans, step 0 to normal form."""

    identity: str
    terms: tuple[str, ...]
    spans: tuple[Span, ...]

    @property
    def gold_steps(self) -> int:
        return len(self.terms) - 1


@dataclass
class RolloutResult:
    identity: str
    success: bool  # the gold normal form, up to α, after exactly the gold number of steps
    reached_normal_form: bool  # the model said "normal form" at a term that is one
    steps: int  # contractions the model made
    gold_steps: int
    first_divergent_step: int | None  # first step whose predicted span differs from gold
    path: list = field(default_factory=list)  # [[term, [start, end]], …]: each term the model saw, its span
    stop: str = ""  # normal_form | not_a_redex | step_cap | too_long

    def row(self) -> dict:
        """The ``Rollout`` columns (without checkpoint_id)."""
        return dict(trace_identity=self.identity, success=self.success,
                    reached_normal_form=self.reached_normal_form, steps=self.steps,
                    gold_steps=self.gold_steps, first_divergent_step=self.first_divergent_step,
                    path=self.path)


@dataclass
class _State:
    gold: GoldTrace
    term: object
    text: str
    result: RolloutResult
    on_gold: bool = True


def rollout(traces: Sequence[GoldTrace], predict: Callable[[list[str]], list[Span]],
            max_len: int = 1024) -> list[RolloutResult]:
    """Let the model reduce each trace's first term on its own: predict a span, contract the
    redex with exactly that text (``contract_span``), repeat, until the model predicts normal
    form, points at something that is not a redex, takes 2x the gold number of steps, or the
    term grows past ``max_len`` code points. ``predict`` maps a batch of terms to character
    spans; all live traces advance together, one batch per step."""
    states = []
    for g in traces:
        res = RolloutResult(g.identity, False, False, 0, g.gold_steps, None)
        states.append(_State(g, parse(g.terms[0]), g.terms[0], res))
    live = list(states)
    while live:
        spans = predict([s.text for s in live])
        still = []
        for s, span in zip(live, spans):
            span = tuple(span)
            r, k = s.result, s.result.steps
            r.path.append([s.text, list(span)])
            if s.on_gold and (k >= len(s.gold.spans) or span != tuple(s.gold.spans[k])):
                r.first_divergent_step, s.on_gold = k, False
            if span == NORMAL_FORM:
                r.stop = "normal_form"
                r.reached_normal_form = redex_span(s.term) == NORMAL_FORM
                r.success = (r.reached_normal_form and k == s.gold.gold_steps
                             and alpha_equivalent(s.term, parse(s.gold.terms[-1])))
                continue
            nxt = contract_span(s.term, span)
            if nxt is None:
                r.stop = "not_a_redex"
                continue
            s.term, s.text, r.steps = nxt, print_term(nxt), k + 1
            if r.steps > 2 * s.gold.gold_steps:
                r.stop = "step_cap"
            elif len(s.text) > max_len:
                r.stop = "too_long"
            else:
                still.append(s)
        live = still
    return [s.result for s in states]


def rollout_summary(results: Sequence[RolloutResult]) -> dict:
    n = len(results)
    div = [r.first_divergent_step for r in results if r.first_divergent_step is not None]
    stops: dict[str, int] = defaultdict(int)
    for r in results:
        stops[r.stop] += 1
    return {
        "rollouts": n,
        "rollout_success": sum(r.success for r in results) / n if n else 0.0,
        "rollout_reached_nf": sum(r.reached_normal_form for r in results) / n if n else 0.0,
        "rollout_diverged": len(div) / n if n else 0.0,
        "rollout_stops": dict(stops),
    }


# ---------------------------------------------------------------------------------------------
# One evaluation from character spans: what the trainer, `lambdascope import` and the Recorder share


def score_steps(records: Sequence[tuple[str, object]], preds: Sequence[tuple[int, int, float, float]],
                example_ids: dict[tuple[str, int], int] | None = None) -> tuple[dict, list[dict]]:
    """The per-step figures (``step_metrics``) of predictions on evaluation records, and their
    ``Prediction`` rows. ``records`` are ``(trace identity, lambdascope.traces.Record)`` pairs,
    ``preds`` one ``(start, end, start_conf, end_conf)`` character span per record; rows are made
    when ``example_ids`` maps (identity, step_k) to the store's example ids. Error kinds are left
    to ``store.write_evaluation``."""
    spans = [(int(p[0]), int(p[1])) for p in preds]
    golds = [tuple(r.span) for _, r in records]
    metrics = step_metrics(spans, golds, [len(r.term) for _, r in records],
                           [r.steps_total - r.step_k for _, r in records], [i for i, _ in records])
    rows = []
    if example_ids is not None:
        for (ident, r), (s, e), p, gold in zip(records, spans, preds, golds):
            rows.append(dict(example_id=example_ids[(ident, r.step_k)], pred_start=s, pred_end=e,
                             start_conf=float(p[2]), end_conf=float(p[3]),
                             iou=span_iou(s, e, gold[0], gold[1]), exact=(s, e) == gold))
    return metrics, rows


class RolloutMismatch(ValueError):
    """The spans given for a rollout do not fit the reduction they drive (``replay_rollout``)."""


def replay_rollout(gold: GoldTrace, spans: Sequence[Span], max_len: int = 1024,
                   convert: Callable[[str, Span], Span] | None = None) -> RolloutResult:
    """``rollout`` of one trace driven by a model's recorded choices: ``spans`` are the spans it
    chose, one per term it saw, from the first term on (character spans, or what ``convert(term,
    span)`` turns into one; it may raise RolloutMismatch). The same rules decide each step and
    where the reduction stops, so the spans must be exactly as many as the reduction takes:
    RolloutMismatch when they run out before it stops or go on after it."""
    used = 0

    def predict(texts: list[str]) -> list[Span]:
        nonlocal used
        if used == len(spans):
            raise RolloutMismatch(f"the rollout ends after {used} spans, but its reduction goes on "
                                  f"at {texts[0]!r} (it stops at [0,0], at a span that is not a redex, "
                                  f"after {2 * gold.gold_steps} contractions or past {max_len} code points)")
        span = tuple(spans[used])
        used += 1
        return [convert(texts[0], span) if convert is not None else span]

    (result,) = rollout([gold], predict, max_len=max_len)
    if used < len(spans):
        raise RolloutMismatch(f"the rollout has {len(spans)} spans, but its reduction stopped after "
                              f"{used} ({result.stop.replace('_', ' ')})")
    return result


def shape_histogram(counts: Mapping[int, int], max_bins: int = 60) -> dict:
    """A histogram of non-negative integers given as {value: how many}: ``{"width": W,
    "counts": [...], "max": M}``, bin ``i`` counting the values in ``[i*W, (i+1)*W)``, ``W`` the
    smallest width that needs at most ``max_bins`` bins, ``M`` the largest value (0 and no
    counts when there are none). The training data's shape (``train_shape``, docs/DESIGN.md
    "Evaluation suites"), counted as the data is read."""
    top = max((v for v, n in counts.items() if n), default=None)
    if top is None:
        return {"width": 1, "counts": [], "max": 0}
    width = max(1, -(-(top + 1) // max_bins))
    bins = [0] * (top // width + 1)
    for v, n in counts.items():
        bins[v // width] += n
    return {"width": width, "counts": bins, "max": top}
