"""Reading and validating trace files (the JSONL contract of docs/DESIGN.md).

``TraceValidator`` streams lines and reports every violation with its line number; it never
stops on a bad line and never repairs one. A record is *valid* when its own content is right
(JSON, fields, types, a canonical term, the span equal to the normal-order redex, ``[0, 0]``
only at the last step). A trace is *complete* when, in addition, its steps are contiguous
from 0 to ``steps_total`` and each term contracts to the next one. Training uses valid
records; evaluation and rollouts use complete traces only.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

from .terms import ParseError, Term, alpha_equivalent, parse, print_with_span, step

MAX_LINE_BYTES = 1 << 20  # a longer line is rejected without parsing it

# reason codes, in the order a reader meets them
REASONS = {
    "invalid_utf8": "the line is not valid UTF-8",
    "line_too_long": f"the line is longer than {MAX_LINE_BYTES} bytes",
    "blank_line": "the line is empty",
    "bad_json": "the line is not valid JSON",
    "truncated_line": "the last line is cut off (no newline and not valid JSON)",
    "not_an_object": "the JSON value is not an object",
    "missing_field": "a required field is missing",
    "wrong_type": "a field has the wrong type",
    "span_out_of_bounds": "the span lies outside the term",
    "span_reversed": "the span's start is after its end",
    "step_out_of_range": "step_k is negative or greater than steps_total",
    "term_parse_error": "the term does not parse",
    "non_canonical_term": "the term is not in canonical printing",
    "normal_form_mid_trace": "[0,0] (normal form) before the last step",
    "not_normal_form_at_end": "the last step's term is not in normal form",
    "wrong_span": "the span is not the normal-order redex",
    "missing_steps": "steps of the trace are missing or out of order",
    "steps_total_mismatch": "steps_total differs between records of one trace",
    "wrong_contraction": "contracting the redex does not give the next step's term",
    "duplicate_trace_id": "a trace id appears again after its trace ended",
}

# problems found after the fields and types were read: the line still belongs to its trace
_PLACEABLE = {"step_out_of_range", "span_reversed", "span_out_of_bounds", "term_parse_error",
              "non_canonical_term", "normal_form_mid_trace", "wrong_span", "not_normal_form_at_end"}

FIELDS = {"trace_id": str, "step_k": int, "steps_total": int, "term": str, "target_span": list}


def trace_identity(first_term: str) -> str:
    """A trace's identity: a hash of the canonical text of its first term (docs/DESIGN.md)."""
    return hashlib.sha256(first_term.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Record:
    line: int
    trace_id: str
    step_k: int
    steps_total: int
    term: str
    span: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    reason: str
    detail: str
    source: str = ""  # the file, when known

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.source else f"line {self.line}"
        return f"{where}: {self.reason}: {self.detail}"


@dataclass
class TraceResult:
    """One trace as read: its valid records and whether the whole trace is complete."""

    trace_id: str
    records: list[Record]
    complete: bool

    @property
    def identity(self) -> str:
        return trace_identity(self.records[0].term) if self.records else ""


def unique_traces(traces: Iterable[TraceResult]) -> list[TraceResult]:
    """One trace per identity (the first), traces without records left out: an evaluation set
    holds each trace once (``lambdascope.store.ensure_eval_set``)."""
    seen: set[str] = set()
    out = []
    for tr in traces:
        if tr.records and tr.identity not in seen:
            seen.add(tr.identity)
            out.append(tr)
    return out


def eval_set_name(traces: Iterable[TraceResult]) -> str:
    """An evaluation set is named by its traces' identities, so the same traces make the same
    set in any run, from any file and any trainer, and checkpoints evaluated on it can be
    compared."""
    idents = sorted({t.identity for t in traces if t.records})
    return "eval-" + hashlib.sha256("\n".join(idents).encode()).hexdigest()[:16]


def _byte_offset_hint(term_text: str, s: int, e: int) -> str:
    """A hint when a span is the normal-order redex counted in UTF-8 bytes, a classic bug."""
    try:
        gs, ge = print_with_span(parse(term_text))[1]
    except (ParseError, RecursionError):
        return ""
    as_bytes = (len(term_text[:gs].encode()), len(term_text[:ge].encode()))
    if (gs, ge) != (0, 0) and as_bytes == (s, e) and as_bytes != (gs, ge):
        return " (these are UTF-8 byte offsets; spans count code points)"
    return ""


def _check_record(line_no: int, raw: bytes) -> tuple[Record | None, Problem | None, Term | None]:
    """Validate one line on its own; returns the record (None if invalid), the problem, and the
    parsed term (for the trace-level checks)."""
    if len(raw) > MAX_LINE_BYTES:
        return None, Problem(line_no, "line_too_long", f"{len(raw)} bytes"), None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, Problem(line_no, "invalid_utf8", f"byte {e.start}: {e.reason}"), None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, Problem(line_no, "bad_json", f"{e.msg} at column {e.colno}"), None
    if not isinstance(obj, dict):
        return None, Problem(line_no, "not_an_object", type(obj).__name__), None
    for name, typ in FIELDS.items():
        if name not in obj:
            return None, Problem(line_no, "missing_field", name), None
        value = obj[name]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            return None, Problem(line_no, "wrong_type", f"{name} is {json.dumps(value)[:40]}"), None
    span = obj["target_span"]
    if len(span) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in span):
        return None, Problem(line_no, "wrong_type", f"target_span is {json.dumps(span)[:40]}"), None
    s, e = span
    term_text: str = obj["term"]
    k, total = obj["step_k"], obj["steps_total"]
    if not (0 <= k <= total):
        return None, Problem(line_no, "step_out_of_range", f"step_k={k} steps_total={total}"), None
    if s > e:
        return None, Problem(line_no, "span_reversed", f"[{s},{e}]"), None
    if s < 0 or e > len(term_text):
        return None, Problem(line_no, "span_out_of_bounds",
                             f"[{s},{e}] in a term of {len(term_text)} code points"
                             + _byte_offset_hint(term_text, s, e)), None
    try:
        term = parse(term_text)
    except ParseError as err:
        return None, Problem(line_no, "term_parse_error", str(err)), None
    except RecursionError:
        return None, Problem(line_no, "term_parse_error", "term nested too deeply"), None
    canonical, gold = print_with_span(term)
    if canonical != term_text:
        return None, Problem(line_no, "non_canonical_term", f"canonical form is {canonical!r}"[:200]), term
    if (s, e) == (0, 0) and k < total:
        return None, Problem(line_no, "normal_form_mid_trace", f"[0,0] at step {k} of {total}"), term
    if gold == (0, 0) and (s, e) != (0, 0):
        return None, Problem(line_no, "wrong_span", f"[{s},{e}] but the term is in normal form"), term
    if (s, e) != gold:
        return None, Problem(line_no, "wrong_span",
                             f"[{s},{e}] but the normal-order redex is [{gold[0]},{gold[1]}]"
                             + _byte_offset_hint(term_text, s, e)), term
    if k == total and gold != (0, 0):
        return None, Problem(line_no, "not_normal_form_at_end",
                             f"step {k} is the last but has a redex at [{gold[0]},{gold[1]}]"), term
    return Record(line_no, obj["trace_id"], k, total, term_text, (s, e)), None, term


@dataclass
class _Open:
    trace_id: str
    steps_total: int
    next_k: int | None  # None: a line that could not be placed broke the sequence
    records: list[Record] = field(default_factory=list)
    last_term: Term | None = None
    complete: bool = True


class TraceValidator:
    """Feed lines with ``feed``; finished traces come out of ``feed`` and ``finish``; problems
    accumulate in ``problems`` (all of them) and ``counts`` (per reason)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()
        self.lines = 0
        self.valid_records = 0
        self.traces = 0
        self.complete_traces = 0
        self.source = ""
        self._open: _Open | None = None
        self._seen_ids: set[str] = set()

    def _problem(self, p: Problem) -> None:
        if self.source and not p.source:
            p = replace(p, source=self.source)
        self.problems.append(p)
        self.counts[p.reason] += 1

    def _close(self) -> TraceResult | None:
        o, self._open = self._open, None
        if o is None:
            return None
        if o.complete and o.next_k != o.steps_total + 1:
            last = o.records[-1].line if o.records else 0
            self._problem(Problem(last, "missing_steps",
                                  f"trace {o.trace_id!r} ends at step {o.next_k - 1} of {o.steps_total}"))
            o.complete = False
        self.traces += 1
        self.complete_traces += o.complete
        return TraceResult(o.trace_id, o.records, o.complete)

    def feed(self, line_no: int, raw: bytes, truncated: bool = False) -> Iterator[TraceResult]:
        """Validate one line (without its newline). ``truncated``: the file's last line, which
        has no newline."""
        self.lines += 1
        rec, prob, term = _check_record(line_no, raw)
        ident: tuple | None = None  # (trace_id, step_k, steps_total) when the line can be placed
        if prob is None:
            ident = (rec.trace_id, rec.step_k, rec.steps_total)
        else:
            if prob.reason == "bad_json" and truncated:
                prob = Problem(line_no, "truncated_line", prob.detail)
            self._problem(prob)
            if prob.reason in _PLACEABLE:
                obj = json.loads(raw)
                ident = (obj["trace_id"], obj["step_k"], obj["steps_total"])
        if ident is None:
            # a line we cannot place: the open trace has a hole we cannot see the size of
            if self._open is not None:
                self._open.complete = False
                self._open.next_k = None
                self._open.last_term = None
            return
        tid, k, total = ident
        if self._open is not None and self._open.trace_id != tid:
            done = self._close()
            if done is not None:
                yield done
        if self._open is None:
            if tid in self._seen_ids:
                self._problem(Problem(line_no, "duplicate_trace_id", repr(tid)))
            self._seen_ids.add(tid)
            self._open = _Open(tid, total, 0)
        o = self._open
        if total != o.steps_total:
            self._problem(Problem(line_no, "steps_total_mismatch",
                                  f"{total} here, {o.steps_total} at the trace's first record"))
            o.complete = False
        elif o.next_k is not None and k != o.next_k:
            what = f"starts at step {k}" if o.next_k == 0 else f"step {k} follows step {o.next_k - 1}"
            self._problem(Problem(line_no, "missing_steps", f"trace {tid!r}: {what}"))
            o.complete = False
        elif rec is not None and o.last_term is not None and term is not None:
            nxt = step(o.last_term)
            if nxt is None or not alpha_equivalent(nxt, term):
                self._problem(Problem(line_no, "wrong_contraction",
                                      f"step {k} is not the contraction of step {k - 1}"))
                o.complete = False
        o.next_k = k + 1
        o.last_term = term if rec is not None else None
        if rec is not None:
            o.records.append(rec)
            self.valid_records += 1
        else:
            o.complete = False

    def finish(self) -> Iterator[TraceResult]:
        done = self._close()
        if done is not None:
            yield done


def read_traces(paths: Iterable[str | Path], validator: TraceValidator | None = None,
                progress=None, each_line=None) -> Iterator[TraceResult]:
    """Stream the traces of one or more files through a validator. Line numbers restart in
    each file (``validator.source`` names the file being read). ``progress``, if given, is
    called with the number of bytes of each line read; ``each_line``, if given, with the number
    and the bytes (without the newline) of each line that is not blank, before the validator
    sees it (``lambdascope import`` reads its own fields there)."""
    v = validator if validator is not None else TraceValidator()
    for path in paths:
        v.source = str(path)
        with open(path, "rb") as f:
            raw = f.readline()
            line_no = 0
            while raw:
                line_no += 1
                nxt = f.readline()
                if progress is not None:
                    progress(len(raw))
                truncated = not nxt and not raw.endswith(b"\n")
                body = raw.rstrip(b"\r\n")
                if body.strip():
                    if each_line is not None:
                        each_line(line_no, body)
                    yield from v.feed(line_no, body, truncated)
                else:
                    v._problem(Problem(line_no, "blank_line", "the line is empty"))
                raw = nxt
        yield from v.finish()


class TraceFileError(ValueError):
    """A named trace file that is missing, a glob that matches nothing, or data that is all
    empty files: the message names the input."""


def expand_data_paths(items: list[str], allow_empty: bool = False) -> list[Path]:
    """Files and globs, in the order given (a glob's matches sorted); every one must exist.
    Unless ``allow_empty``, at least one must hold something: data that is all empty files is
    a mistake to name plainly, not a run to fail later with "no valid records"."""
    import glob

    out: list[Path] = []
    for item in items:
        if any(c in item for c in "*?["):
            matches = sorted(glob.glob(item))
            if not matches:
                raise TraceFileError(f"no file matches {item!r}")
            out += [Path(m) for m in matches]
        else:
            p = Path(item)
            if not p.is_file():
                raise TraceFileError(f"{item}: no such file")
            out.append(p)
    if not allow_empty and out and all(p.stat().st_size == 0 for p in out):
        names = ", ".join(map(str, out))
        raise TraceFileError(f"{names}: the file is empty (no trace records)" if len(out) == 1 else
                             f"{names}: the files are empty (no trace records)")
    return out
