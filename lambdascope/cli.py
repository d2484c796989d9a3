"""The ``lambdascope`` command line: generate, check (and, as they land, train, serve, demo…)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

EXIT_USAGE = 2
REPO_ROOT = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """Bad input from the person at the keyboard: printed as one line, exit 2."""


def _progress(total: int | None, desc: str, unit: str = "B"):
    """A tqdm bar on stderr when it is a terminal, else a no-op."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr, leave=False)


# ---------------------------------------------------------------------------------------------
# generate


def find_generator() -> Path | None:
    """The ``lambda-gen`` binary: built in the repo, else on PATH."""
    built = REPO_ROOT / "lambda_gen_rs" / "target" / "release" / "lambda-gen"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which("lambda-gen")
    return Path(found) if found else None


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import parse_shard

    try:
        parse_shard(args.shard)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.reference:
        from .generate import write_traces

        return write_traces(args.out, args.traces, seed=args.seed, max_steps=args.max_steps,
                            max_len=args.max_len, min_steps=args.min_steps, shard=args.shard)
    exe = find_generator()
    if exe is None:
        raise UsageError("lambda-gen is not built: run `make build` (or pass --reference to use "
                         "the slower Python generator)")
    cmd = [str(exe), "generate", args.out, str(args.traces), str(args.threads), "--seed", str(args.seed)]
    for flag, value in (("--max-steps", args.max_steps), ("--max-len", args.max_len),
                        ("--min-steps", args.min_steps)):
        if value is not None:
            cmd += [flag, str(value)]
    if args.shard:
        cmd += ["--shard", args.shard]
    return subprocess.call(cmd)


# ---------------------------------------------------------------------------------------------
# check


def cmd_check(args: argparse.Namespace) -> int:
    from .traces import REASONS, TraceValidator, read_traces

    paths = expand_data_paths(args.files, allow_empty=True)  # reported below, with the counts
    total_bytes = sum(p.stat().st_size for p in paths)
    bar = _progress(total_bytes, "check")
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
                raise UsageError(f"no file matches {item!r}")
            out += [Path(m) for m in matches]
        else:
            p = Path(item)
            if not p.is_file():
                raise UsageError(f"{item}: no such file")
            out.append(p)
    if not allow_empty and out and all(p.stat().st_size == 0 for p in out):
        names = ", ".join(map(str, out))
        raise UsageError(f"{names}: the file is empty (no trace records)" if len(out) == 1 else
                         f"{names}: the files are empty (no trace records)")
    return out


# ---------------------------------------------------------------------------------------------
# db


def cmd_db(args: argparse.Namespace) -> int:
    from .migrate import current_revision, head_revision, upgrade
    from .store import make_engine, resolve_db_url

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


# ---------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lambdascope", description="Train small models to find the next redex of "
                "a λ-term (normal order) and inspect what they get wrong.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    g = sub.add_parser("generate", help="write random reduction traces (JSONL) with lambda-gen",
                       description="Write N complete normal-order reduction traces as JSON Lines, "
                       "one record per step (see DESIGN.md). Uses the Rust lambda-gen; "
                       "--reference uses the Python reference generator (same bytes, slower).")
    g.add_argument("out", metavar="OUT.jsonl", help="output file ('-' for stdout)")
    g.add_argument("traces", metavar="N_TRACES", type=_positive_int, help="number of traces")
    g.add_argument("--threads", type=_positive_int, default=os.cpu_count() or 1,
                   help="worker threads (default: all cores); the output does not depend on it")
    g.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    g.add_argument("--max-steps", type=_positive_int, default=None, help="drop traces longer than this")
    g.add_argument("--max-len", type=_positive_int, default=None, help="drop traces with a longer term")
    g.add_argument("--min-steps", type=_nonneg_int, default=None, help="drop traces shorter than this")
    g.add_argument("--shard", metavar="I/N", default=None, help="write only the I-th of N slices")
    g.add_argument("--reference", action="store_true", help="use the Python reference generator")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("check", help="validate trace files against the contract",
                       description="Stream trace files and validate every record: JSON, fields and "
                       "types, span bounds, [0,0] only at the last step, contiguous steps, the span "
                       "is the normal-order redex, the contraction gives the next term. Exit 1 on "
                       "any problem.")
    c.add_argument("files", nargs="+", metavar="FILE", help="trace files or globs")
    c.add_argument("--show", type=_nonneg_int, default=20, help="problems to print in full (default 20)")
    c.set_defaults(func=cmd_check)

    db = sub.add_parser("db", help="store schema: upgrade to the newest revision, or show it",
                        description="Alembic migrations own the store's schema on SQLite and "
                        "PostgreSQL. `upgrade` creates an empty store or upgrades an older one in "
                        "place (data kept); `current` shows the store's revision.")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument("--db", metavar="URL", help="store URL or SQLite path (default $LAMBDASCOPE_DB "
                    "or runs/lambdascope.db)")
    db.set_defaults(func=cmd_db)
    from trainer.cli import register as register_trainer; register_trainer(sub)  # train, evaluate
    from app.cli import register as register_app; register_app(sub)  # serve, labels
    from .demo import register as register_demo; register_demo(sub)  # demo
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"lambdascope {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # `python -m lambdascope.cli`: run the imported module's main, not this __main__ copy, so
    # that UsageError raised by trainer/ and app/ (which import lambdascope.cli) is caught
    from lambdascope.cli import main as _main

    sys.exit(_main())
