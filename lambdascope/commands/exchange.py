"""``lambdascope import`` and ``lambdascope export``: a model's predictions from any trainer into
the store, and a checkpoint's back out, in one file format (lambdascope/exchange.py;
docs/DESIGN.md, "Importing and exporting predictions")."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lambdascope.exchange import OFFSETS, REASONS as PRED_REASONS, PredictionError, StepTaken
from lambdascope.progress import progress_bar
from lambdascope.traces import REASONS

from .common import UsageError, nonneg_int, number_type

MAX_ID = 2 ** 63 - 1  # the store's integers
step_type = number_type(lo=0, hi=MAX_ID, expected="expected an integer >= 0, got {text}",
                        out_of_range="expected an integer >= 0 (at most {hi}), got {value}")
checkpoint_id = number_type(lo=1, hi=MAX_ID, expected="expected a positive integer, got {text}",
                            out_of_range="expected a checkpoint id between 1 and {hi}, got {value}")

FORMAT = """\
The file is a trace file (JSON Lines, one record per step, the steps of a trace on
consecutive lines; docs/DESIGN.md, "The trace format") whose every record also holds the
model's prediction for that step (here with --offsets bos-tokens):

  {"trace_id":"1-1","step_k":0,"steps_total":2,"term":"(λf.f) ((λy.y) a)",
   "target_span":[0,17],"pred_span":[1,18],"start_conf":0.91,"end_conf":0.88,
   "rollout":[[1,18],[1,9],[0,0]]}

  trace_id, step_k, steps_total, term, target_span
                 the trace record, validated exactly as `lambdascope check` does; every
                 trace complete; target_span is the gold span in characters, always
  pred_span      the predicted [start, end), in the offsets of --offsets
  start_conf, end_conf
                 optional, both or neither, on every line or on none: the model's
                 probabilities of its start and end (stored as 1.0 when not given)
  rollout        optional, on a trace's step 0 only: the spans the model chose when it
                 reduced the first term on its own, one per term it saw, in --offsets

Offsets (docs/DESIGN.md, "Spans and offsets"):
  chars          [start, end) in Unicode code points of the term, end exclusive, [0,0]
                 normal form: what target_span, the store and the dashboard use
  bos-tokens     token positions with BOS at 0: character i is token i + 1, so both ends
                 move by one; [0,0] (both pointers at BOS) is normal form; a redex that
                 ends the term ends at EOS, len(term) + 1. Converted to characters by
                 lambdascope.spans.token_to_char_span, both ends at once.

A span out of range for its declared offsets is refused with its line and a hint (a span
that only fits the other convention, or fits with one end moved by one). IoU, exact match,
error kinds, the checkpoint's metrics and the rollouts are computed by the trainer's own
code. Nothing is written unless every line is right (one transaction)."""


def register(sub) -> None:
    i = sub.add_parser("import", help="import a model's predictions (JSONL) as an evaluation of a run",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Store the predictions of any model, made by any trainer, as the "
                       "evaluation at step N of run NAME (created if it is not in the store, else "
                       "appended to), so that every page of the dashboard shows them.\n\n" + FORMAT)
    i.add_argument("file", metavar="FILE.jsonl", help="the predictions file")
    i.add_argument("--db", metavar="URL", help="store URL or SQLite path (default $LAMBDASCOPE_DB "
                   "or runs/lambdascope.db)")
    i.add_argument("--run", required=True, metavar="NAME", help="the run's name in the store")
    i.add_argument("--step", required=True, type=step_type, metavar="N",
                   help="the training step the predictions were made at")
    i.add_argument("--offsets", choices=OFFSETS, default="chars",
                   help="what pred_span and rollout spans count: chars (default) or bos-tokens")
    i.add_argument("--replace", action="store_true",
                   help="replace the run's evaluation at this step (else refused)")
    i.add_argument("--show", type=nonneg_int, default=20, help="problems to print in full (default 20)")
    i.set_defaults(func=cmd_import)

    e = sub.add_parser("export", help="write a checkpoint's predictions as an import file (JSONL)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write every prediction of checkpoint ID in the format `lambdascope "
                       "import` reads: its evaluation set's traces in order, each step with the "
                       "prediction, the confidences and, on step 0, the rollout. Export, import into "
                       "another store, export gives the same bytes.\n\n" + FORMAT)
    e.add_argument("checkpoint", metavar="CHECKPOINT_ID", type=checkpoint_id,
                   help="the checkpoint's id (its page is /checkpoints/ID)")
    e.add_argument("out", metavar="OUT.jsonl", help="output file ('-' for stdout)")
    e.add_argument("--offsets", choices=OFFSETS, default="chars",
                   help="what pred_span and rollout spans count: chars (default) or bos-tokens")
    e.add_argument("--db", metavar="URL", help="store URL or SQLite path (default $LAMBDASCOPE_DB "
                   "or runs/lambdascope.db)")
    e.set_defaults(func=cmd_export)


def _pct(x) -> str:
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) else "n/a"


def cmd_import(args: argparse.Namespace) -> int:
    from lambdascope.exchange import import_predictions
    from lambdascope.store import open_store, resolve_db_url

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file")
    bar = progress_bar(path.stat().st_size, "import")
    engine, Session = open_store(resolve_db_url(args.db))
    t0 = time.perf_counter()
    try:
        res = import_predictions(Session, path, run=args.run, step=args.step, offsets=args.offsets,
                                 replace=args.replace, progress=bar.update if bar else None)
    except PredictionError as e:
        if bar:
            bar.close()
        for p in e.problems[:args.show]:
            print(f"{p}", file=sys.stderr)
        if len(e.problems) > args.show:
            print(f"... {len(e.problems) - args.show} more problems not shown", file=sys.stderr)
        print("problems by reason:", file=sys.stderr)
        for reason, n in e.counts.most_common():
            print(f"  {reason:<24} {n:>8}  {PRED_REASONS.get(reason) or REASONS.get(reason, '')}", file=sys.stderr)
        raise UsageError(e.summary) from None
    except StepTaken as e:
        raise UsageError(str(e)) from None
    finally:
        if bar:
            bar.close()
        engine.dispose()
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    m = res.metrics
    how = "a new run" if res.created else (f"replacing {res.replaced} evaluation" if res.replaced
                                           else "appended to the run")
    dt = time.perf_counter() - t0
    print(f"{args.file}: {res.lines:,} lines, {res.traces:,} traces imported as checkpoint {res.checkpoint_id} "
          f"of run {args.run!r} at step {args.step} ({how}; offsets {args.offsets}): exact {_pct(m.get('exact'))}, "
          f"mean IoU {m.get('mean_iou', 0):.4f}, nf F1 {_pct(m.get('nf_f1'))}, trace accuracy "
          f"{_pct(m.get('trace_accuracy'))}, rollout success {_pct(m.get('rollout_success'))} "
          f"({m.get('rollouts', 0)} rollouts); {res.lines / max(dt, 1e-9):,.0f} lines/s", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lambdascope.exchange import ExportError, export_predictions
    from lambdascope.store import Checkpoint, Run, open_store, resolve_db_url

    url = resolve_db_url(args.db)
    engine, Session = open_store(url)
    t0 = time.perf_counter()
    try:
        try:
            n = export_predictions(Session, args.checkpoint, args.out, args.offsets)
        except ExportError as e:
            raise UsageError(f"{e} ({url})") from None
        except OSError as e:
            raise UsageError(f"{args.out}: cannot write: {e.strerror or e}") from None
        with Session() as s:
            ck = s.get(Checkpoint, args.checkpoint)
            run = s.get(Run, ck.run_id)
            what = f"checkpoint {ck.id} (run {run.name!r} at step {ck.step})"
    finally:
        engine.dispose()
    print(f"{args.out}: {n:,} lines of {what}, offsets {args.offsets} "
          f"({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    return 0
