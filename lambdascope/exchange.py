"""Predictions made elsewhere: the file format of ``lambdascope import`` and ``lambdascope export``,
and the checks that the import and the ``Recorder`` put any model's spans through
(docs/DESIGN.md, "Importing and exporting predictions").

A predictions file is a trace file (docs/DESIGN.md, "The trace format": every record validated
exactly as ``lambdascope check`` does, every trace complete) whose records also carry the model's
prediction on that step:

- ``pred_span``: ``[start, end)`` in the offsets declared for the whole file: ``chars``
  (character spans, as ``target_span``) or ``bos-tokens`` (token positions with BOS at 0, normal
  form ``[0, 0]`` at BOS), converted by ``lambdascope.spans.token_to_char_span`` and nothing else;
- ``start_conf``, ``end_conf`` (optional; both or neither, on every line or on none): the
  model's probabilities of the chosen start and end, numbers in [0, 1];
- ``rollout`` (optional, on a trace's step 0 only): the spans the model chose when it reduced
  the trace's first term on its own, one per term it saw, in the declared offsets.

Everything the store keeps of an evaluation is computed from these with the trainer's code:
IoU, exact match and the per-step figures (``lambdascope.metrics.score_steps``), each rollout
(``lambdascope.metrics.replay_rollout``: the recorded spans drive ``rollout``'s rules), error kinds
and rollout outcomes (``store.write_evaluation``). Nothing is written unless every line is right.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .metrics import GoldTrace, RolloutMismatch, RolloutResult, replay_rollout, rollout, rollout_summary, score_steps
from .spans import NORMAL_FORM, char_to_token_span, token_to_char_span
from .traces import (MAX_LINE_BYTES, Problem, Record, TraceResult, TraceValidator, eval_set_name, read_traces)
from .vocabulary import EVAL_POINT_METRICS

OFFSETS = ("chars", "bos-tokens")
OFFSET_WORDS = {"chars": "characters", "bos-tokens": "BOS tokens (BOS at 0, character i at i + 1)"}
PRED_FIELDS = ("pred_span", "start_conf", "end_conf", "rollout")
ROLLOUT_MAX_LEN = 1024  # lambdascope.metrics.rollout's length cap, as the trainer's evaluation uses it

# reasons a predictions file adds to lambdascope.traces.REASONS (whose missing_field and
# wrong_type also name the prediction fields)
REASONS = {
    "pred_out_of_range": "pred_span lies outside the term for the declared offsets",
    "pred_empty": "pred_span is empty but not normal form [0,0]",
    "conf_out_of_range": "start_conf or end_conf is not between 0 and 1",
    "conf_mixed": "start_conf and end_conf are given on some lines and not on others",
    "rollout_misplaced": "a rollout on a record other than its trace's step 0",
    "rollout_out_of_range": "a rollout span lies outside the term it points into",
    "rollout_mismatch": "the rollout's spans do not fit the reduction they drive",
    "empty_file": "the file holds no records",
}

Span = tuple[int, int]


def flag_hint(offsets: str) -> str:
    """How the command line says "declare these offsets"."""
    return f"pass --offsets {offsets}"


def _fits(span: Span, n: int, offsets: str) -> bool:
    """Whether a span can be a prediction on a term of ``n`` code points in ``offsets``: normal
    form, or a non-empty span inside the term (in tokens, the exclusive end may be EOS, n + 1)."""
    s, e = span
    if (s, e) == NORMAL_FORM:
        return True
    return 0 <= s < e <= n if offsets == "chars" else 1 <= s < e <= n + 1


def span_problem(span: Span, n: int, offsets: str, *, what: str = "pred_span",
                 hint: Callable[[str], str] = flag_hint) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``span`` cannot be a prediction on a term of ``n`` code points in
    the declared ``offsets``, with a hint when it would fit the other convention (a BOS-token
    span declared as characters, or the reverse) or fits with only one end moved by one (the
    off-by-one of converting one end only); None when it fits."""
    s, e = span
    if _fits(span, n, offsets):
        return None
    out = "rollout_out_of_range" if what.startswith("rollout") else "pred_out_of_range"
    if s == e:
        return ("pred_empty" if out == "pred_out_of_range" else out,
                f"{what} [{s},{e}] is empty: normal form is [0,0], and a redex is never empty")
    detail = f"{what} [{s},{e}] is outside a term of {n} code points counted in {OFFSET_WORDS[offsets]}"
    other = "bos-tokens" if offsets == "chars" else "chars"
    if _fits(span, n, other):
        looks = "a BOS-token span" if other == "bos-tokens" else "a character span"
        detail += f" (looks like {looks}; {hint(other)})"
    elif any(_fits(c, n, offsets) for c in ((s + 1, e), (s - 1, e), (s, e + 1), (s, e - 1))):
        detail += (" (only one end looks shifted by one: convert both ends, with "
                   "lambdascope.spans.char_to_token_span or token_to_char_span)")
    return out, detail


def to_chars(span: Span, offsets: str) -> Span:
    """A span in the declared offsets as a character span: the one conversion function."""
    return token_to_char_span(*span) if offsets == "bos-tokens" else (span[0], span[1])


def from_chars(span: Span, offsets: str) -> Span:
    return char_to_token_span(*span) if offsets == "bos-tokens" else (span[0], span[1])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _span_value(v: Any) -> Span | None:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v):
        return int(v[0]), int(v[1])
    return None


def _loose_span(v: Any) -> Span | None:
    """A span from Python: two integers of any integer type (numpy, torch), bools excluded."""
    try:
        a, b = v
        if isinstance(a, bool) or isinstance(b, bool):
            return None
        return operator.index(a), operator.index(b)
    except (TypeError, ValueError):
        return None


def _show(v: Any) -> str:
    try:
        return json.dumps(v, ensure_ascii=False)[:40]
    except (TypeError, ValueError):
        return repr(v)[:40]


def _as_float(v: Any) -> Any:
    """A Python number from a numpy or torch scalar; anything else as it is."""
    if isinstance(v, (int, float)) or not hasattr(v, "item"):
        return v
    try:
        return v.item()
    except (TypeError, ValueError, RuntimeError):
        return v


def conf_problem(name: str, v: Any) -> tuple[str, str] | None:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "wrong_type", f"{name} is {_show(v)}"
    if not (math.isfinite(v) and 0 <= v <= 1):
        return "conf_out_of_range", f"{name} is {v}: a probability is between 0 and 1"
    return None


# ---------------------------------------------------------------------------------------------
# Validated predictions, from a file or from a Recorder's arguments


@dataclass
class Predictions:
    """A model's evaluation on complete traces, validated and in character spans."""

    traces: list[TraceResult]
    preds: list[tuple[int, int, float, float]]  # one per record of ``traces``, in order
    rollouts: list[RolloutResult]  # those given, in the order of ``traces``
    confidences: bool  # whether the confidences were given (else 1.0 each)
    offsets: str
    warnings: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[tuple[str, Record]]:
        return [(tr.identity, r) for tr in self.traces for r in tr.records]

    def evaluation(self, source: str) -> dict[str, Any]:
        """The arguments of ``store.write_keyed_evaluation`` but the run, step, path and name:
        the evaluation set of these traces, the figures (the trainer's), prediction rows keyed
        by (identity, step_k), rollout rows and the metric points the trainer writes."""
        records = self.records
        keys = {(i, r.step_k): (i, r.step_k) for i, r in records}
        metrics, rows = score_steps(records, self.preds, keys)
        for row in rows:
            row["example_key"] = row.pop("example_id")
        if self.rollouts:
            metrics.update(rollout_summary(self.rollouts))
        points = [dict(name=k, value=metrics[k]) for k in EVAL_POINT_METRICS if k in metrics]
        return dict(eval_set=(eval_set_name(self.traces), source, self.traces), metrics=metrics,
                    predictions=rows, rollouts=[r.row() for r in self.rollouts], metric_points=points)


class PredictionError(ValueError):
    """Predictions that cannot be stored: every problem (``lambdascope.traces.Problem``s, with
    the file and line for a file), counted by reason in the message."""

    def __init__(self, where: str, problems: list[Problem], what: str = "nothing was written",
                 lines: bool = True):
        self.problems = sorted(problems, key=lambda p: (p.source, p.line))
        self.counts = Counter(p.reason for p in self.problems)
        by_reason = ", ".join(f"{r} {n}" for r, n in self.counts.most_common())
        n = len(self.problems)
        first = self.problems[0] if self.problems else None
        shown = (str(first) if lines else f"{first.reason}: {first.detail}") if first else ""
        self.summary = f"{where}: {n} problem{'s' if n != 1 else ''} ({by_reason}); {what}"
        super().__init__(self.summary + (f"; the first: {shown}" if shown else ""))


def _gold(tr: TraceResult) -> GoldTrace:
    return GoldTrace(tr.identity, tuple(r.term for r in tr.records), tuple(r.span for r in tr.records))


def _replay(tr: TraceResult, spans: Sequence[Span], offsets: str, hint) -> RolloutResult:
    """The trace's rollout driven by ``spans`` (declared offsets); RolloutMismatch with a
    ``reason`` when they do not fit."""

    def convert(text: str, span: Span) -> Span:
        bad = span_problem(span, len(text), offsets, what="rollout span", hint=hint)
        if bad:
            err = RolloutMismatch(f"{bad[1]} (the term {text!r})")
            err.reason = bad[0]
            raise err
        return to_chars(span, offsets)

    return replay_rollout(_gold(tr), spans, ROLLOUT_MAX_LEN, convert=convert)


def _first_of_each(traces: list[TraceResult], line: Callable[[TraceResult], int],
                   what: str = "line") -> tuple[list[bool], str | None]:
    """Which traces to keep: the first of each identity, as an evaluation set holds each trace
    once (``lambdascope.traces.unique_traces``, as the trainer's evaluation does); and a warning
    naming the first repeat when there are any (a repeated first term repeats the whole trace)."""
    seen: dict[str, TraceResult] = {}
    keep, repeats = [], []
    for tr in traces:
        first = seen.setdefault(tr.identity, tr)
        keep.append(first is tr)
        if first is not tr:
            repeats.append((tr, first))
    if not repeats:
        return keep, None
    tr, first = repeats[0]
    n = len(repeats)
    return keep, (f"{n} trace{'s' if n != 1 else ''} repeat{'s' if n == 1 else ''} an earlier trace's first "
                  f"term ({what} {line(tr)}: trace {tr.trace_id!r} is trace {first.trace_id!r} of {what} "
                  f"{line(first)}): only the first of each is stored, with its predictions, as an "
                  "evaluation set holds each trace once")


def shift_warning(p: Predictions, lines: Sequence[int] | None = None,
                  hint: Callable[[str], str] = flag_hint) -> str | None:
    """A warning when most predictions on terms with a redex are the gold span with one end
    moved by one (the classic bug of converting one end of a span), or with both ends moved by
    one the same way (spans declared in the wrong offsets that all happen to fit). Not an error:
    a model may be that wrong; but it is worth a look before trusting the figures."""
    n = 0
    found: dict[str, list] = {"one": [], "right": [], "left": []}
    for k, ((_, r), pred) in enumerate(zip(p.records, p.preds)):
        gs, ge = r.span
        if (gs, ge) == NORMAL_FORM:
            continue
        n += 1
        s, e = pred[0], pred[1]
        kind = ("one" if (s == gs and abs(e - ge) == 1) or (e == ge and abs(s - gs) == 1) else
                "right" if (s, e) == (gs + 1, ge + 1) else "left" if (s, e) == (gs - 1, ge - 1) else None)
        if kind:
            found[kind].append((r.line if lines is None else lines[k], (s, e), (gs, ge)))
    kind, seen = max(found.items(), key=lambda kv: len(kv[1]))
    if n < 4 or len(seen) * 2 <= n:
        return None
    line, (s, e), (gs, ge) = seen[0]
    what = {"one": "with one end moved by one", "right": "moved one to the right at both ends",
            "left": "moved one to the left at both ends"}[kind]
    why = {"one": "were the spans converted at one end only?",
           "right": f"are they BOS-token spans? ({hint('bos-tokens')})",
           "left": f"are they character spans? ({hint('chars')})"}[kind]
    if kind == "right" and p.offsets == "bos-tokens" or kind == "left" and p.offsets == "chars":
        why = "were they converted twice?"
    return (f"{len(seen)} of {n} predictions on terms with a redex are the gold span {what} (line {line}: "
            f"[{s},{e}] as characters, gold [{gs},{ge}]): {why} (docs/DESIGN.md, \"Spans and offsets\")")


# ---------------------------------------------------------------------------------------------
# Reading a predictions file


class _LineReader:
    """The prediction fields of each line, checked as the validator reads the trace fields."""

    def __init__(self, source: str, offsets: str, hint):
        self.source, self.offsets, self.hint = source, offsets, hint
        self.preds: dict[int, tuple[int, int, float, float]] = {}  # line -> character span and confidences
        self.rollouts: dict[int, list[Span]] = {}  # line of a step 0 -> spans as given
        self.problems: list[Problem] = []
        self.confidences: tuple[bool, int] | None = None  # (given, on which line first)

    def _problem(self, line: int, reason: str, detail: str) -> None:
        self.problems.append(Problem(line, reason, detail, self.source))

    def __call__(self, line: int, raw: bytes) -> None:
        if len(raw) > MAX_LINE_BYTES:
            return  # the validator reports it
        try:
            obj = json.loads(raw)
        except ValueError:
            return  # likewise
        if not isinstance(obj, dict):
            return
        term = obj.get("term")
        n = len(term) if isinstance(term, str) else None
        ok = True
        if "pred_span" not in obj:
            self._problem(line, "missing_field", "pred_span")
            ok = False
        else:
            span = _span_value(obj["pred_span"])
            if span is None:
                self._problem(line, "wrong_type", f"pred_span is {_show(obj['pred_span'])}")
                ok = False
            elif n is not None:
                bad = span_problem(span, n, self.offsets, hint=self.hint)
                if bad:
                    self._problem(line, *bad)
                    ok = False
        given = [name in obj for name in ("start_conf", "end_conf")]
        conf = (1.0, 1.0)
        if any(given) and not all(given):
            self._problem(line, "conf_mixed", "start_conf and end_conf come together: "
                          + ("end_conf" if given[0] else "start_conf") + " is missing")
            ok = False
        elif all(given):
            for name in ("start_conf", "end_conf"):
                bad = conf_problem(name, obj[name])
                if bad:
                    self._problem(line, *bad)
                    ok = False
            if ok:
                conf = (float(obj["start_conf"]), float(obj["end_conf"]))
        if any(given) != all(given):
            pass  # said above
        elif self.confidences is None:
            self.confidences = (all(given), line)
        elif all(given) != self.confidences[0]:
            first_given, first_line = self.confidences
            self._problem(line, "conf_mixed",
                          f"start_conf and end_conf are {'missing here but given' if first_given else 'given here but not'}"
                          f" on line {first_line}: give them on every line or on none")
            ok = False
        if "rollout" in obj:
            spans = obj["rollout"]
            k = obj.get("step_k")
            if _is_int(k) and k != 0:
                self._problem(line, "rollout_misplaced", f"a rollout on step {k}: a trace's rollout goes "
                              "on its first record (step_k 0)")
            elif not isinstance(spans, list) or not spans or any(_span_value(x) is None for x in spans):
                self._problem(line, "wrong_type", f"rollout is {_show(spans)}: expected a list of [start, end] spans")
            else:
                self.rollouts[line] = [_span_value(x) for x in spans]
        if ok and n is not None:
            self.preds[line] = (*to_chars(span, self.offsets), *conf)


def read_predictions(path: str | Path, offsets: str = "chars", *, progress=None,
                     hint: Callable[[str], str] = flag_hint) -> tuple[Predictions, TraceValidator]:
    """Read and check a predictions file: every record as ``lambdascope check`` validates it,
    every prediction field, every rollout replayed. PredictionError (every problem with its
    line, counted by reason) unless all of it is right; else the predictions in character spans
    and the validator (its counts of lines and traces)."""
    if offsets not in OFFSETS:
        raise ValueError(f"offsets must be one of {', '.join(OFFSETS)}, not {offsets!r}")
    source = str(path)
    v = TraceValidator()
    reader = _LineReader(source, offsets, hint)
    traces = list(read_traces([path], v, progress=progress, each_line=reader))
    problems = list(v.problems) + reader.problems
    if v.lines == 0:
        problems.append(Problem(0, "empty_file", "the file is empty (no trace records)", source))
    complete = [tr for tr in traces if tr.complete and tr.records]
    keep, repeats = _first_of_each(complete, lambda tr: tr.records[0].line)
    complete = [tr for tr, k in zip(complete, keep) if k]
    results: list[RolloutResult] = []
    for tr in complete:
        first = tr.records[0].line
        if first not in reader.rollouts:
            continue
        try:
            results.append(_replay(tr, reader.rollouts[first], offsets, hint))
        except RolloutMismatch as e:
            problems.append(Problem(first, getattr(e, "reason", "rollout_mismatch"), str(e), source))
    if problems:
        raise PredictionError(source, problems, "nothing was imported")
    preds = [reader.preds[r.line] for tr in complete for r in tr.records]
    p = Predictions(complete, preds, results, bool(reader.confidences and reader.confidences[0]), offsets)
    p.warnings += [w for w in (repeats, shift_warning(p, hint=hint)) if w]
    return p, v


def predictions_of(traces: Sequence[TraceResult], predictions: Sequence[Sequence[float]], offsets: str, *,
                   rollouts: dict[str, Sequence[Span]] | None = None,
                   predict: Callable[[list[str]], Sequence[Span]] | None = None,
                   hint: Callable[[str], str] = flag_hint, where: str = "evaluate") -> Predictions:
    """The ``Recorder``'s check of its arguments (the same as a file's): complete traces,
    one prediction per step in trace order, ``(start, end)`` or ``(start, end, start_conf,
    end_conf)`` in ``offsets``; a rollout per trace either recorded (``rollouts``: trace_id ->
    spans) or made now by ``predict`` (terms -> spans in ``offsets``, batched as the trainer
    does). PredictionError naming each bad prediction by its index, trace and step."""
    if offsets not in OFFSETS:
        raise ValueError(f"offsets must be one of {', '.join(OFFSETS)}, not {offsets!r}")
    traces = list(traces)
    problems: list[Problem] = []
    for tr in traces:
        if not isinstance(tr, TraceResult) or not tr.complete or not tr.records:
            name = tr.trace_id if isinstance(tr, TraceResult) else type(tr).__name__
            raise ValueError(f"{where}: trace {name!r} is not a complete trace (read traces with "
                             "lambdascope.traces.read_traces, or pass the records to Recorder.evaluate)")
    records = [(tr, r) for tr in traces for r in tr.records]
    if len(predictions) != len(records):
        raise ValueError(f"{where}: {len(predictions)} predictions for {len(records)} steps of {len(traces)} "
                         "traces: give one per step, in the traces' order")
    preds = []
    given = None
    for k, ((tr, r), p) in enumerate(zip(records, predictions)):
        at = f"prediction {k} (trace {tr.trace_id!r} step {r.step_k})"
        try:
            p = tuple(p)
        except TypeError:
            p = (p,)
        span = _loose_span(p[:2]) if len(p) in (2, 4) else None
        if span is None:
            problems.append(Problem(k, "wrong_type", f"{at} is {_show(p)}: expected (start, end) or "
                                    "(start, end, start_conf, end_conf)", where))
            continue
        bad = span_problem(span, len(r.term), offsets, hint=hint)
        if bad:
            problems.append(Problem(k, bad[0], f"{at}: {bad[1]}", where))
            continue
        has = len(p) == 4
        if given is None:
            given = has
        elif has != given:
            problems.append(Problem(k, "conf_mixed", f"{at}: give the confidences with every prediction or with none",
                                    where))
            continue
        conf = (1.0, 1.0)
        if has:
            p = p[:2] + tuple(_as_float(x) for x in p[2:])
            bads = [b for b in (conf_problem("start_conf", p[2]), conf_problem("end_conf", p[3])) if b]
            if bads:
                problems += [Problem(k, b[0], f"{at}: {b[1]}", where) for b in bads]
                continue
            conf = (float(p[2]), float(p[3]))
        preds.append((*to_chars(span, offsets), *conf))
    starts = {}
    for k, (tr, _) in enumerate(records):
        starts.setdefault(id(tr), k)
    keep, repeats = _first_of_each(traces, lambda tr: starts[id(tr)], "prediction")
    if not problems and repeats:  # (with problems, preds lacks the bad ones: not used)
        preds = [pred for k, pred in zip(_kept_steps(traces, keep), preds) if k]
    traces = [tr for tr, k in zip(traces, keep) if k]
    results: list[RolloutResult] = []
    if rollouts is not None and predict is not None:
        raise ValueError(f"{where}: give rollouts or predict, not both")
    if rollouts is not None and not problems:
        by_id = {tr.trace_id: tr for tr in traces}
        unknown = [t for t in rollouts if t not in by_id]
        if unknown:
            raise ValueError(f"{where}: rollouts of traces that are not evaluated: {', '.join(map(repr, unknown[:5]))}")
        for tr in traces:
            if tr.trace_id in rollouts:
                spans = [_loose_span(x) for x in rollouts[tr.trace_id]]
                if not spans or None in spans:
                    problems.append(Problem(0, "wrong_type", f"the rollout of trace {tr.trace_id!r} is "
                                            f"{_show(rollouts[tr.trace_id])}: expected a list of (start, end)", where))
                    continue
                try:
                    results.append(_replay(tr, spans, offsets, hint))
                except RolloutMismatch as e:
                    problems.append(Problem(0, getattr(e, "reason", "rollout_mismatch"),
                                            f"the rollout of trace {tr.trace_id!r}: {e}", where))
    elif predict is not None and not problems:
        results = _rollouts_by(traces, predict, offsets, hint, where)
    if problems:
        raise PredictionError(where, problems, lines=False)
    p = Predictions(traces, preds, results, bool(given), offsets)
    p.warnings += [w for w in (repeats, shift_warning(p, lines=[starts[id(tr)] + r.step_k for tr in traces
                                                                 for r in tr.records], hint=hint)) if w]
    p.warnings = [w.replace("(line ", "(prediction ") for w in p.warnings]
    return p


def _kept_steps(traces: Sequence[TraceResult], keep: Sequence[bool]) -> list[bool]:
    """For each step of ``traces``, whether its trace is kept."""
    return [k for tr, k in zip(traces, keep) for _ in tr.records]


def _rollouts_by(traces: Sequence[TraceResult], predict, offsets: str, hint, where: str) -> list[RolloutResult]:
    """Every trace's rollout by ``predict`` (a batch of terms -> spans in ``offsets``), all
    traces advancing together as in the trainer's evaluation; a span that does not fit its term
    is a PredictionError."""

    def predict_chars(texts: list[str]) -> list[Span]:
        spans = list(predict(list(texts)))
        if len(spans) != len(texts):
            raise ValueError(f"{where}: predict returned {len(spans)} spans for {len(texts)} terms")
        out = []
        for text, sp in zip(texts, spans):
            span = _loose_span(sp[:2] if isinstance(sp, (list, tuple)) else sp)
            if span is None:
                raise PredictionError(where, [Problem(0, "wrong_type", f"predict gave {_show(sp)} for {text!r}",
                                                      where)], lines=False)
            bad = span_problem(span, len(text), offsets, what="rollout span", hint=hint)
            if bad:
                raise PredictionError(where, [Problem(0, bad[0], f"predict on {text!r}: {bad[1]}", where)],
                                      lines=False)
            out.append(to_chars(span, offsets))
        return out

    return rollout([_gold(tr) for tr in traces], predict_chars, max_len=ROLLOUT_MAX_LEN)


def traces_from_records(records: Iterable[dict | str | bytes], source: str = "records") -> list[TraceResult]:
    """Trace records (dicts in the trace format, or their JSON lines) as complete traces,
    validated exactly as ``lambdascope check`` validates a file (line numbers count the records
    from 1); PredictionError on any problem."""
    v = TraceValidator()
    v.source = source
    traces: list[TraceResult] = []
    n = 0
    for n, rec in enumerate(records, 1):
        raw = rec if isinstance(rec, bytes) else rec.encode() if isinstance(rec, str) else \
            json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
        traces += v.feed(n, raw.rstrip(b"\r\n"))
    traces += v.finish()
    if v.problems or n == 0:
        raise PredictionError(source, v.problems or [Problem(0, "blank_line", "no records", source)],
                              "nothing was written")
    return traces


# ---------------------------------------------------------------------------------------------
# Import into a store, export from one


class StepTaken(ValueError):
    """The run already has an evaluation at the step (``--replace`` replaces it)."""


@dataclass
class ImportResult:
    run_id: int
    checkpoint_id: int
    created: bool  # a new run (else appended to, or a step replaced)
    replaced: int  # checkpoints replaced at this step
    lines: int
    traces: int
    metrics: dict
    seconds: float
    warnings: list[str]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def import_predictions(sessionmaker, path: str | Path, *, run: str, step: int, offsets: str = "chars",
                       replace: bool = False, progress=None, hint: Callable[[str], str] = flag_hint) -> ImportResult:
    """``lambdascope import``: read and check the file (PredictionError, nothing written), then
    in one transaction create the run (or append to it), the evaluation set of its traces (or
    find it), and the evaluation at ``step``: a checkpoint row without a model file, its
    predictions, rollouts and metric points. StepTaken when the run has an evaluation at
    ``step`` already, unless ``replace``."""
    from sqlalchemy import delete, select

    from .store import Checkpoint, Run, utcnow, write_keyed_evaluation
    from .vocabulary import RunStatus

    t0 = time.perf_counter()
    preds, v = read_predictions(path, offsets, progress=progress, hint=hint)
    source = str(path)
    ev = preds.evaluation(source)
    ev["metrics"].update(step=step, source={"by": "lambdascope import", "file": source, "offsets": offsets,
                                            "confidences": preds.confidences})
    ev["metric_points"] = [dict(p, step=step) for p in ev["metric_points"]]
    with sessionmaker() as s, s.begin():
        r = s.scalar(select(Run).where(Run.name == run))
        created, replaced = r is None, 0
        now = utcnow()
        if r is None:
            r = Run(name=run, config={"imported": {"file": source, "offsets": offsets}}, data_files=[source],
                    data_hash=file_sha256(path), status=RunStatus.FINISHED, started_at=now, updated_at=now,
                    finished_at=now, message=f"predictions imported by `lambdascope import` from {source}")
            s.add(r)
            s.flush()
        else:
            taken = list(s.scalars(select(Checkpoint.id).where(Checkpoint.run_id == r.id, Checkpoint.step == step,
                                                              Checkpoint.name.is_(None))))
            if taken and not replace:
                raise StepTaken(f"run {run!r} already has an evaluation at step {step} (checkpoint "
                                f"{', '.join(map(str, taken))}): pass --replace to replace it, or another --step")
            if taken:
                s.execute(delete(Checkpoint).where(Checkpoint.id.in_(taken)))
                replaced = len(taken)
            r.updated_at = now
        ck_id, _ = write_keyed_evaluation(s, run_id=r.id, step=step, path=f"(imported from {source})", name=None,
                                          **ev)
        run_id = r.id
    return ImportResult(run_id, ck_id, created, replaced, v.lines, len(preds.traces), ev["metrics"],
                        time.perf_counter() - t0, preds.warnings)


class ExportError(ValueError):
    """A checkpoint that is not in the store, or whose evaluation cannot be written whole."""


def export_records(session, checkpoint_id: int, offsets: str = "chars") -> Iterable[str]:
    """The predictions file of a checkpoint, line by line (without newlines): its evaluation
    set's traces in the order they were stored, each step with the checkpoint's prediction, the
    confidences unless they were never given, and the trace's rollout on its step 0. What
    ``import_predictions`` reads back to the same store rows (and exports to the same bytes)."""
    from sqlalchemy import select

    from .store import Checkpoint, Example, Prediction, Rollout

    if offsets not in OFFSETS:
        raise ValueError(f"offsets must be one of {', '.join(OFFSETS)}, not {offsets!r}")
    ck = session.get(Checkpoint, checkpoint_id) if 1 <= checkpoint_id < 2 ** 63 else None
    if ck is None:
        raise ExportError(f"no checkpoint {checkpoint_id} in the store")
    source = (ck.metrics or {}).get("source")
    with_conf = not (isinstance(source, dict) and source.get("confidences") is False)
    preds = {row.example_id: row for row in session.execute(
        select(Prediction.example_id, Prediction.pred_start, Prediction.pred_end, Prediction.start_conf,
               Prediction.end_conf).where(Prediction.checkpoint_id == ck.id))}
    paths = {ident: path for ident, path in session.execute(
        select(Rollout.trace_identity, Rollout.path).where(Rollout.checkpoint_id == ck.id))}
    examples = session.execute(
        select(Example.id, Example.trace_identity, Example.trace_id, Example.step_k, Example.steps_total,
               Example.term, Example.gold_start, Example.gold_end)
        .where(Example.eval_set_id == ck.eval_set_id).order_by(Example.id)).all()
    first_id: dict[str, int] = {}
    for e in examples:
        first_id.setdefault(e.trace_identity, e.id)
    examples.sort(key=lambda e: (first_id[e.trace_identity], e.step_k))

    def dumps(obj) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    for e in examples:
        p = preds.get(e.id)
        if p is None:
            raise ExportError(f"checkpoint {ck.id} has no prediction for trace {e.trace_id!r} step {e.step_k}: "
                              "an evaluation is exported whole")
        rec: dict[str, Any] = {"trace_id": e.trace_id, "step_k": e.step_k, "steps_total": e.steps_total,
                               "term": e.term, "target_span": [e.gold_start, e.gold_end],
                               "pred_span": list(from_chars((p.pred_start, p.pred_end), offsets))}
        if with_conf:
            rec["start_conf"], rec["end_conf"] = float(p.start_conf), float(p.end_conf)
        if e.step_k == 0 and e.trace_identity in paths:
            rec["rollout"] = [list(from_chars((int(sp[0]), int(sp[1])), offsets)) for _, sp in paths[e.trace_identity]]
        yield dumps(rec)


def export_predictions(sessionmaker, checkpoint_id: int, out: str | Path, offsets: str = "chars") -> int:
    """``lambdascope export``: write ``export_records`` to ``out`` ('-': standard output), through
    a temporary file renamed into place, so a failed export leaves no half file. Returns the
    number of lines."""
    with sessionmaker() as s:
        lines = export_records(s, checkpoint_id, offsets)
        if str(out) == "-":
            n = 0
            for line in lines:
                sys.stdout.write(line + "\n")
                n += 1
            sys.stdout.flush()
            return n
        out = Path(out)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        n = 0
        try:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                for line in lines:
                    f.write(line + "\n")
                    n += 1
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return n
