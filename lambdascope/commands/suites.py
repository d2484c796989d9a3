"""``lambdascope suite make``: a standard evaluation suite as a trace file, made with the one
generation path (``data.run_generator``: lambda-gen, or the reference generator when it is not
built) and validated like any trace file (docs/DESIGN.md, "Evaluation suites")."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from lambdascope.generate import DEFAULT_MAX_LEN, DEFAULT_MAX_STEPS
from lambdascope.suites import DEFAULT_SIZE, SUITE_NAMES, SUITE_SEED, suite_plan, suites_help
from lambdascope.traces import TraceValidator, read_traces

from .common import EXIT_FAILED, UsageError, nonneg_int, positive_int
from .data import run_generator

MAX_SIZE = 1_000_000
MAX_DEEPER_TRACES = 50_000_000  # traces generated at most to find the deeper ones


def register(sub) -> None:
    listing = "standard suites:\n" + suites_help()
    s = sub.add_parser("suite", help="evaluation suites: make a standard one (heldout, longer, deeper, "
                       "the families)", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Evaluation suites are trace files that test whether a model "
                       "generalises past its training distribution; `lambdascope train --suite "
                       "NAME=FILE` evaluates every checkpoint on them.\n\n" + listing)
    ss = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    m = ss.add_parser("make", help="write a standard suite (JSONL, the trace format)",
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      description="Write the standard suite NAME as a trace file, relative to the "
                      "training caps (--train-max-len, --train-max-steps: the generator's defaults "
                      "unless given). The same arguments write the same bytes.\n\n" + listing)
    m.add_argument("name", metavar="NAME", help="the suite: " + ", ".join(SUITE_NAMES))
    m.add_argument("out", metavar="OUT.jsonl", help="output file")
    m.add_argument("--size", type=positive_int, default=DEFAULT_SIZE,
                   help=f"traces (default {DEFAULT_SIZE}, at most {MAX_SIZE:,})")
    m.add_argument("--seed", type=nonneg_int, default=SUITE_SEED,
                   help=f"generator seed (default {SUITE_SEED}, not a training seed)")
    m.add_argument("--train-max-len", type=positive_int, default=DEFAULT_MAX_LEN,
                   help=f"the training data's --max-len the suite is relative to (default {DEFAULT_MAX_LEN})")
    m.add_argument("--train-max-steps", type=positive_int, default=DEFAULT_MAX_STEPS,
                   help=f"the training data's --max-steps (default {DEFAULT_MAX_STEPS})")
    m.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1,
                   help="generator threads (default: all cores); the output does not depend on it")
    m.add_argument("--reference", action="store_true", help="use the Python reference generator")
    m.set_defaults(func=cmd_suite_make)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_suite_make(args: argparse.Namespace) -> int:
    summary = make_suite(args.name, Path(args.out), size=args.size, seed=args.seed,
                         train_max_len=args.train_max_len, train_max_steps=args.train_max_steps,
                         threads=args.threads, reference=args.reference)
    return 0 if summary else EXIT_FAILED


def make_suite(name: str, out: Path, *, size: int = DEFAULT_SIZE, seed: int = SUITE_SEED,
               train_max_len: int = DEFAULT_MAX_LEN, train_max_steps: int = DEFAULT_MAX_STEPS,
               threads: int = 1, reference: bool = False, quiet: bool = False) -> dict | None:
    """Write the standard suite ``name`` to ``out`` and validate it; its summary (traces, steps,
    the ranges of term length and steps), or None when the generator failed. UsageError for a
    bad name or size."""
    try:
        plan = suite_plan(name, train_max_len, train_max_steps)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not 1 <= size <= MAX_SIZE:
        raise UsageError(f"--size: expected 1 to {MAX_SIZE:,} traces, got {size}")
    if plan.min_len is not None and plan.min_len >= plan.max_len:
        raise UsageError(f"--train-max-len {train_max_len}: too small for suite {name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    gen = dict(threads=threads, seed=seed, max_steps=plan.max_steps, max_len=plan.max_len,
               min_steps=plan.min_steps, min_len=plan.min_len, family=plan.family, reference=reference,
               fallback=True)
    if plan.keep_steps_above is None:
        if run_generator(str(out), size, quiet=quiet, **gen) != 0:
            return None
    elif not _make_filtered(out, size, plan.keep_steps_above, gen, quiet):
        return None
    summary = suite_summary(out)
    if summary["problems"]:
        say(f"error: {out}: {summary['problems']} problems (see `lambdascope check {out}`)")
        return None
    if not quiet:
        say(f"suite {name}: {summary['traces']:,} traces, {summary['steps']:,} steps; term length "
            f"{summary['min_len']}-{summary['max_len']} code points, steps per trace "
            f"{summary['min_steps']}-{summary['max_steps']} (training caps: max-len {train_max_len}, "
            f"max-steps {train_max_steps}; seed {seed}) -> {out}")
    return summary


def _make_filtered(out: Path, size: int, above: int, gen: dict, quiet: bool) -> bool:
    """``deeper``: generate traces 0..n-1 (a trace depends on its seed and index only, so a
    shorter file is a prefix of a longer one) and keep the first ``size`` complete traces with
    more than ``above`` steps, n growing until there are enough. Written whole or not at all."""
    n = size * 32
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.gen.", dir=out.parent)
    os.close(fd)
    try:
        while True:
            if run_generator(tmp, n, quiet=True, **gen) != 0:
                return False
            kept = _traces_with_steps_above(Path(tmp), above, size)
            if not quiet:
                say(f"deeper: {len(kept):,} of {n:,} traces have more than {above} steps"
                    + ("" if len(kept) >= size else f"; {size:,} wanted, generating more"))
            if len(kept) >= size:
                break
            if n >= MAX_DEEPER_TRACES:
                say(f"error: only {len(kept)} of {n:,} traces have more than {above} steps")
                return False
            n = min(MAX_DEEPER_TRACES, n * 4)
        fd, part = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(b"".join(kept[:size]))
        os.replace(part, out)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _traces_with_steps_above(path: Path, above: int, limit: int) -> list[bytes]:
    """The lines of each trace of a generator's file whose steps_total exceeds ``above`` (the
    first ``limit`` such traces), each trace's lines joined."""
    kept: list[bytes] = []
    current: list[bytes] = []
    with open(path, "rb") as f:
        for line in f:
            r = json.loads(line)
            if r["step_k"] == 0:
                current = []
            current.append(line)
            if r["step_k"] == r["steps_total"] and r["steps_total"] > above:
                kept.append(b"".join(current))
                if len(kept) >= limit:
                    break
    return kept


def suite_summary(path: Path) -> dict:
    """What a suite file holds, validated as any trace file: traces, steps, problems, and the
    ranges of term length (code points) and steps per trace."""
    v = TraceValidator()
    lens: list[int] = []
    steps: list[int] = []
    n = 0
    for tr in read_traces([path], v):
        if not tr.records:
            continue
        n += 1
        lens += [len(r.term) for r in tr.records]
        steps.append(tr.records[0].steps_total)
    return dict(traces=n, steps=len(lens), problems=len(v.problems), min_len=min(lens, default=0),
                max_len=max(lens, default=0), min_steps=min(steps, default=0), max_steps=max(steps, default=0))
