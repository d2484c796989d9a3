"""``lambdascope generate``, ``check`` and ``db``: the data and the store, no model."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from lambdascope.families import FAMILIES, FAMILY_NAMES
from lambdascope.generate import parse_shard, write_traces
from lambdascope.progress import progress_bar
from lambdascope.traces import REASONS, TraceValidator, expand_data_paths, read_traces

from .common import UsageError, find_generator, nonneg_int, positive_int


def register(sub) -> None:
    g = sub.add_parser("generate", help="write random reduction traces (JSONL) with lambda-gen",
                       description="Write N complete normal-order reduction traces as JSON Lines, "
                       "one record per step (see docs/DESIGN.md). Uses the Rust lambda-gen; "
                       "--reference uses the Python reference generator (same bytes, slower).")
    g.add_argument("out", metavar="OUT.jsonl", help="output file ('-' for stdout)")
    g.add_argument("traces", metavar="N_TRACES", type=positive_int, help="number of traces")
    g.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1,
                   help="worker threads (default: all cores); the output does not depend on it")
    g.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    g.add_argument("--max-steps", type=positive_int, default=None, help="drop traces longer than this")
    g.add_argument("--max-len", type=positive_int, default=None, help="drop traces with a longer term")
    g.add_argument("--min-steps", type=nonneg_int, default=None, help="drop traces shorter than this")
    g.add_argument("--min-len", type=nonneg_int, default=None,
                   help="keep only traces with a term longer than this (code points); the others are "
                   "dropped as too_short")
    g.add_argument("--min-start", type=nonneg_int, default=None,
                   help="keep only traces with a redex starting this many code points or more into its "
                   "term; the others are dropped as near_start (training data with redexes inside long "
                   "terms, which the default distribution rarely has)")
    g.add_argument("--family", choices=FAMILY_NAMES, default=None, metavar="NAME",
                   help="the family of first terms (default random): "
                   + "; ".join(f"{name}: {text}" for name, text in FAMILIES))
    g.add_argument("--shard", metavar="I/N", default=None, help="write only the I-th of N slices")
    g.add_argument("--reference", action="store_true", help="use the Python reference generator")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("check", help="validate trace files against the contract",
                       description="Stream trace files and validate every record: JSON, fields and "
                       "types, span bounds, [0,0] only at the last step, contiguous steps, the span "
                       "is the normal-order redex, the contraction gives the next term. Exit 1 on "
                       "any problem.")
    c.add_argument("files", nargs="+", metavar="FILE", help="trace files or globs")
    c.add_argument("--show", type=nonneg_int, default=20, help="problems to print in full (default 20)")
    c.set_defaults(func=cmd_check)

    db = sub.add_parser("db", help="store schema: upgrade to the newest revision, or show it",
                        description="Alembic migrations own the store's schema on SQLite and "
                        "PostgreSQL. `upgrade` creates an empty store or upgrades an older one in "
                        "place (data kept); `current` shows the store's revision.")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument("--db", metavar="URL", help="store URL or SQLite path (default $LAMBDASCOPE_DB "
                    "or runs/lambdascope.db)")
    db.set_defaults(func=cmd_db)


def cmd_generate(args: argparse.Namespace) -> int:
    try:
        parse_shard(args.shard)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return run_generator(args.out, args.traces, threads=args.threads, seed=args.seed,
                         max_steps=args.max_steps, max_len=args.max_len, min_steps=args.min_steps,
                         min_len=args.min_len, min_start=args.min_start, family=args.family, shard=args.shard,
                         reference=args.reference)


def run_generator(out: str, traces: int, *, threads: int, seed: int, max_steps: int | None = None,
                  max_len: int | None = None, min_steps: int | None = None, min_len: int | None = None,
                  min_start: int | None = None, family: str | None = None, shard: str | None = None,
                  reference: bool = False, fallback: bool = False, quiet: bool = False) -> int:
    """Write ``traces`` traces to ``out`` with lambda-gen, or with the reference generator
    (``reference``, or ``fallback`` when lambda-gen is not built): the same bytes either way.
    Returns the generator's exit code; None options are the generator's defaults."""
    exe = None if reference else find_generator()
    if exe is None and not reference and not fallback:
        raise UsageError("lambda-gen is not built: run `make build` (or pass --reference to use "
                         "the slower Python generator)")
    if exe is None:
        return write_traces(out, traces, seed=seed, max_steps=max_steps, max_len=max_len,
                            min_steps=min_steps, shard=shard, family=family, min_len=min_len,
                            min_start=min_start, quiet=quiet)
    cmd = [str(exe), "generate", out, str(traces), str(threads), "--seed", str(seed)]
    for flag, value in (("--max-steps", max_steps), ("--max-len", max_len),
                        ("--min-steps", min_steps), ("--min-len", min_len),
                        ("--min-start", min_start), ("--family", family)):
        if value is not None:
            cmd += [flag, str(value)]
    if shard:
        cmd += ["--shard", shard]
    if quiet:
        cmd.append("--quiet")
    return subprocess.call(cmd)


def cmd_check(args: argparse.Namespace) -> int:
    paths = expand_data_paths(args.files, allow_empty=True)  # reported below, with the counts
    total_bytes = sum(p.stat().st_size for p in paths)
    bar = progress_bar(total_bytes, "check")
    v = TraceValidator()
    t0 = time.perf_counter()
    shown = 0

    def show_new_problems() -> None:  # as the scan finds them, up to --show
        nonlocal shown
        while shown < min(len(v.problems), args.show):
            print(f"error: {v.problems[shown]}", file=sys.stderr)
            shown += 1

    for _ in read_traces(paths, v, progress=bar.update if bar else None):
        show_new_problems()
    show_new_problems()  # problems found when the last trace closes
    if bar:
        bar.close()
    dt = time.perf_counter() - t0
    names = ", ".join(str(p) for p in paths)
    n_problems = len(v.problems)
    if n_problems > shown:
        print(f"... {n_problems - shown} more problems not shown", file=sys.stderr)
    if v.counts:
        print("problems by reason:", file=sys.stderr)
        for reason, n in v.counts.most_common():
            print(f"  {reason:<24} {n:>8}  {REASONS.get(reason, '')}", file=sys.stderr)
    if v.lines == 0:
        print(f"error: {names}: the file is empty (no trace records)", file=sys.stderr)
        return 1
    print(f"{names}: {v.lines} lines, {v.valid_records} valid records, {v.traces} traces "
          f"({v.complete_traces} complete), {n_problems} problems; "
          f"{v.lines / max(dt, 1e-9):,.0f} lines/s", file=sys.stderr)
    print("OK" if n_problems == 0 else "FAILED", file=sys.stderr)
    return 0 if n_problems == 0 else 1


def cmd_db(args: argparse.Namespace) -> int:
    from lambdascope.migrate import current_revision, head_revision, upgrade  # alembic: slow to import
    from lambdascope.store import make_engine, resolve_db_url

    url = resolve_db_url(args.db)
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        if args.action == "current":
            print(f"{url}: schema revision {before or 'none (empty store)'}; newest is {head_revision()}")
            return 0
        upgrade(engine)
        after = current_revision(engine)
        print(f"{url}: schema revision {before or 'none'} -> {after}" if before != after
              else f"{url}: already at the newest schema revision ({after})", file=sys.stderr)
    finally:
        engine.dispose()
    return 0
