"""``lambdascope shrink CHECKPOINT TERM``: the smallest term found on which a checkpoint still
errs as it does on TERM (lambdascope/shrink.py; docs/DESIGN.md, "Shrinking"). CHECKPOINT is a
checkpoint file or a checkpoint's id in the store (--db). Standard output is the same for the
same checkpoint and term; the time taken goes to standard error."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lambdascope.progress import progress_bar
from lambdascope.shrink import DEFAULT_BUDGET, NothingToShrink, ShrinkResult, ShrinkStep, shrink
from lambdascope.spans import is_normal_form
from lambdascope.terms import ParseError, parse

from .common import EXIT_FAILED, UsageError, number_type

MAX_ID = 2 ** 63 - 1
MAX_BUDGET = 1_000_000
budget_type = number_type(lo=1, hi=MAX_BUDGET, expected="expected a positive number of model calls, got {text}",
                          out_of_range="expected 1 to {hi} model calls, got {value}")

STOPPED = {
    "minimal": "a local minimum: no smaller candidate errs so",
    "budget": "stopped: the budget of {budget} model calls was used",
    "deadline": "stopped: out of time",
}


def register(sub) -> None:
    s = sub.add_parser("shrink", help="shrink a term the model gets wrong to a minimal one it still gets wrong",
                       description="Search for a smaller term on which the checkpoint's model still errs with "
                       "the same error kind (or any error, --any), by structural moves (a subterm replaced "
                       "by a variable or by one of its children, an argument dropped, two binders merged), "
                       "smallest candidate first, the gold span recomputed at every candidate. Prints the "
                       "chain from TERM to the smallest term found (docs/DESIGN.md, \"Shrinking\").")
    s.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="a checkpoint file (runs/NAME/ckpt_*.pt) or a checkpoint id in the store (--db)")
    s.add_argument("term", metavar="TERM", help="the term, as typed (\\ may stand for λ)")
    s.add_argument("--budget", type=budget_type, default=DEFAULT_BUDGET, metavar="N",
                   help=f"model calls at most, the original's included (default {DEFAULT_BUDGET})")
    s.add_argument("--any", action="store_true", help="keep any wrong span, not only the original's error kind")
    s.add_argument("--json", action="store_true", help="print a JSON object: the chain and the minimal term")
    s.add_argument("--db", metavar="URL", help="store, for a checkpoint id (default $LAMBDASCOPE_DB or "
                   "runs/lambdascope.db)")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.set_defaults(func=cmd_shrink)


def checkpoint_path(arg: str, db: str | None) -> str:
    """The checkpoint file CHECKPOINT names: a file, or the file of a checkpoint id in the store."""
    if Path(arg).is_file():
        return arg
    if not arg.isdigit():
        raise UsageError(f"{arg}: no such checkpoint file (CHECKPOINT is a .pt file or a checkpoint id)")
    from sqlalchemy.engine import make_url

    from lambdascope.store import Checkpoint, open_store, resolve_db_url

    ck_id, url = int(arg), resolve_db_url(db)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).is_file():
        raise UsageError(f"checkpoint {arg}: no store at {parsed.database} (give it with --db)")
    if not 1 <= ck_id <= MAX_ID:
        raise UsageError(f"checkpoint {arg}: not in the store ({url})")
    engine, Session = open_store(url)
    try:
        with Session() as s:
            ck = s.get(Checkpoint, ck_id)
            path = None if ck is None else ck.path
    finally:
        engine.dispose()
    if ck is None:
        raise UsageError(f"checkpoint {arg}: not in the store ({url})")
    if not path:
        raise UsageError(f"checkpoint {arg} has no model file (its predictions were imported)")
    if not Path(path).is_file():
        raise UsageError(f"checkpoint {arg}: its file {path} does not exist")
    return path


def parse_term(text: str):
    try:
        return parse(text)
    except ParseError as e:
        raise UsageError(f"TERM {text!r} does not parse: {e}") from None
    except RecursionError:
        raise UsageError(f"TERM is nested too deeply ({len(text)} characters)") from None


def span(s) -> str:
    return "normal form" if is_normal_form(s) else f"[{s[0]}, {s[1]})"


def step_line(i: int, s: ShrinkStep) -> str:
    return (f"{i:>3}  {s.length:>4}  gold {span(s.gold):<12}  pred {span(s.pred):<12}  {s.kind:<11}  "
            f"{s.term}" + ("" if s.move_kind == "original" else f"    ({s.move})"))


def summary(r: ShrinkResult) -> str:
    return (f"from {r.original.length} to {r.minimal.length} code points in {len(r.chain) - 1} "
            f"move{'' if len(r.chain) == 2 else 's'} and {r.calls} model call{'' if r.calls == 1 else 's'} "
            f"of {r.budget} ({STOPPED[r.stopped].format(budget=r.budget)})")


def cmd_shrink(args: argparse.Namespace) -> int:
    term = parse_term(args.term)
    path = checkpoint_path(args.checkpoint, args.db)
    try:
        from trainer.predict import load_predictor
    except ImportError as e:
        raise UsageError(f"shrink needs the trainer and torch: {e}") from None
    t0 = time.perf_counter()
    try:
        predictor = load_predictor(path, args.device)
    except Exception as e:  # not a checkpoint, a torch error: the file is the problem
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:200]  # torch's are long
        raise UsageError(f"{path}: cannot load the checkpoint: {type(e).__name__}: {first}") from None
    bar = progress_bar(args.budget, "shrink", unit="call")
    seen = [0]

    def progress(calls: int, length: int) -> None:
        if bar is not None:
            bar.update(calls - seen[0])
            bar.set_postfix_str(f"{length} code points")
            seen[0] = calls

    try:
        result = shrink(predictor, term, any_error=args.any, budget=args.budget, progress=progress)
    except NothingToShrink as e:
        print(f"lambdascope shrink: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps({"checkpoint": path, **result.to_dict()}, ensure_ascii=False))
    else:
        print(f"shrinking {result.original.term} with {path}: keeping "
              f"{'any error' if result.target == 'any' else 'the error kind ' + result.target}")
        for i, s in enumerate(result.chain):
            print(step_line(i, s))
        print(summary(result))
    print(f"lambdascope shrink: {result.calls} model calls in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return 0
