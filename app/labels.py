"""Labels: the one thing the dashboard writes. Create, delete, export and import.

A label is keyed by trace identity (and a step, or none for the whole trace), never by a row
number, so it holds across evaluation sets, runs and stores. Export writes every label as JSON
Lines or CSV, oldest first; import reads either back and skips labels already present, so
``export -> import into an empty store -> export`` gives back the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any, Iterable, Iterator

from sqlalchemy import select

from lambdascope.store import LABEL_CATEGORIES, Example, Label

from .errors import BadRequest
from .params import MAX_STEP

MAX_NOTE = 4000
MAX_IDENTITY = 32
FIELDS = ("trace_identity", "step_k", "category", "note", "term", "created_at")
CATEGORY_TITLES = {"bad_gold": "bad gold", "model_error": "model error",
                   "interesting": "interesting", "other": "other"}


class LabelError(BadRequest):
    """A label that cannot be written; the message says which field and, on import, which line
    (the command line's ``labels import`` prints it; a page answers it with a 400)."""


def _check(identity: Any, step_k: Any, category: Any, note: Any) -> None:
    if not isinstance(identity, str) or not 1 <= len(identity) <= MAX_IDENTITY or "\x00" in identity:
        raise LabelError(f"trace_identity: a string of 1 to {MAX_IDENTITY} characters")
    if step_k is not None and (not isinstance(step_k, int) or isinstance(step_k, bool)
                               or not 0 <= step_k <= MAX_STEP):
        raise LabelError("step_k: a step number >= 0, or empty for the whole trace")
    if category not in LABEL_CATEGORIES:
        raise LabelError(f"category: one of {', '.join(LABEL_CATEGORIES)}, got {category!r}")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise LabelError(f"note: text of at most {MAX_NOTE} characters")
    if "\x00" in note:  # PostgreSQL text cannot hold one; nobody means to type one
        raise LabelError("note: must not contain a NUL character")


def add_label(session, *, trace_identity: str, step_k: int | None, category: str,
              note: str = "") -> Label:
    """Add a label to a trace of the store (or to one of its steps). The caller commits."""
    _check(trace_identity, step_k, category, note)
    first = session.execute(select(Example.term, Example.steps_total).where(
        Example.trace_identity == trace_identity, Example.step_k == 0).limit(1)).first()
    if first is None:
        raise LabelError(f"no trace {trace_identity} in the store")
    if step_k is not None and step_k > first.steps_total:
        raise LabelError(f"step_k: the trace has steps 0 to {first.steps_total}, got {step_k}")
    label = Label(trace_identity=trace_identity, step_k=step_k, category=category,
                  note=note.replace("\r\n", "\n"), term=first.term)
    session.add(label)
    session.flush()
    return label


def delete_label(session, label_id: int) -> bool:
    label = session.get(Label, label_id)
    if label is None:
        return False
    session.delete(label)
    session.flush()
    return True


# ---------------------------------------------------------------------------------------------
# Export and import


def _record(lb: Label) -> dict[str, Any]:
    return {"trace_identity": lb.trace_identity, "step_k": lb.step_k, "category": lb.category,
            "note": lb.note, "term": lb.term,
            "created_at": lb.created_at.isoformat(timespec="microseconds")}


def all_labels(session) -> list[Label]:
    return list(session.scalars(select(Label).order_by(Label.created_at, Label.id)))


def export_labels(session, fmt: str = "jsonl") -> Iterator[str]:
    """The labels as text chunks (one per line) in ``fmt``: 'jsonl' or 'csv'."""
    if fmt == "jsonl":
        for lb in all_labels(session):
            yield json.dumps(_record(lb), ensure_ascii=False) + "\n"
    elif fmt == "csv":
        buf = io.StringIO()
        # CRLF line ends (RFC 4180): the writer quotes a field holding any character of its
        # line terminator, so a note with a lone "\r" is quoted too (with "\n" alone it was
        # written bare, and read back as two rows)
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(FIELDS)
        for lb in all_labels(session):
            r = _record(lb)
            w.writerow(["" if r[k] is None else r[k] for k in FIELDS])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield buf.getvalue()
    else:
        raise LabelError(f"format: 'jsonl' or 'csv', got {fmt!r}")


def _read_records(lines: Iterable[str], fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if fmt == "jsonl":
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise LabelError(f"line {n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise LabelError(f"line {n}: expected a JSON object")
            yield n, obj
    elif fmt == "csv":
        reader = csv.DictReader(lines)
        missing = [f for f in ("trace_identity", "category") if f not in (reader.fieldnames or ())]
        if missing:
            raise LabelError(f"line 1: the CSV header lacks {', '.join(missing)}")
        for row in reader:
            step = (row.get("step_k") or "").strip()
            try:
                step_k = int(step) if step else None
            except ValueError:
                raise LabelError(f"line {reader.line_num}: step_k: not an integer: {step!r}") from None
            yield reader.line_num, {"trace_identity": row.get("trace_identity"), "step_k": step_k,
                                    "category": row.get("category"), "note": row.get("note") or "",
                                    "term": row.get("term") or "",
                                    "created_at": row.get("created_at") or None}
    else:
        raise LabelError(f"format: 'jsonl' or 'csv', got {fmt!r}")


def import_labels(session, lines: Iterable[str], fmt: str = "jsonl") -> tuple[int, int]:
    """Add the labels read from ``lines``; a label equal in every field to one present is
    skipped. All or nothing: a bad record raises ``LabelError`` naming its line and nothing
    is added. Labels of traces not in this store are kept (they apply once the trace is).
    Returns (added, skipped). The caller commits."""
    present = {(lb.trace_identity, lb.step_k, lb.category, lb.note, lb.created_at)
               for lb in all_labels(session)}
    new: list[Label] = []
    skipped = 0
    for n, r in _read_records(lines, fmt):
        note = r.get("note", "")
        try:
            _check(r.get("trace_identity"), r.get("step_k"), r.get("category"), note)
            created = r.get("created_at")
            created_at = dt.datetime.fromisoformat(created) if created else None
            if created_at is not None and created_at.tzinfo is not None:
                created_at = created_at.astimezone(dt.timezone.utc).replace(tzinfo=None)
            term = r.get("term", "")
            if not isinstance(term, str) or "\x00" in term:
                raise LabelError("term: expected text without NUL characters")
        except LabelError as e:
            raise LabelError(f"line {n}: {e}") from None
        except (TypeError, ValueError):
            raise LabelError(f"line {n}: created_at: not an ISO date and time: {created!r}") from None
        key = (r["trace_identity"], r.get("step_k"), r["category"], note, created_at)
        if created_at is not None and key in present:
            skipped += 1
            continue
        present.add(key)
        kw = {} if created_at is None else {"created_at": created_at}
        new.append(Label(trace_identity=r["trace_identity"], step_k=r.get("step_k"),
                         category=r["category"], note=note, term=term, **kw))
    session.add_all(new)
    session.flush()
    return len(new), skipped
