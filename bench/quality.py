"""The quality run: the default configuration on the generator's traces (with a length mix), with the
learning curve on held-out traces.

    .venv/bin/python bench/quality.py [--minutes 60] [--traces 150000] [--db runs/quality.db]

1. generates ``--traces`` traces (``lambdascope generate``; the Rust generator when it is built,
   else ``--reference``), unless the files are there already: two thirds with the default
   distribution, a third (``--long-share``) with ``--min-len 128 --min-start 40``, terms past two
   thirds of the training max-len and within it, each trace with a redex 40 or more code points
   into its term (the length mix; ``--long-min-start 0``: long terms only; ``--long-share 0``: the
   default distribution alone);
2. measures the matmul peak for MFU (``bench/peak.py``);
3. runs ``lambdascope train --data FILE --minutes M --eval-every 5m`` (the default model and
   optimiser), evaluating on the held-out evaluation split every 5 minutes of training, and on
   the evaluation suites ``longer`` and the four families (``lambdascope suite make``, next to
   the data; ``--no-suites`` leaves them out), within the trainer's 15 % suite share;
4. prints step exact match, normal-form F1 and rollout success at 5, 10, 20, 40 and 60 minutes
   (the evaluation nearest each), with the throughput, MFU and padding of the run, and each
   suite's figures at the last evaluation.

The bars (issue 4): step exact match >= 99%, normal-form F1 >= 99.5%, rollout success >= 90%
within 60 minutes on this 2-core CPU. Extra arguments after ``--`` go to ``lambdascope train``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lambdascope.generate import DEFAULT_MAX_LEN  # noqa: E402

MARKS = (5, 10, 20, 40, 60)
LONG_MIN_LEN = DEFAULT_MAX_LEN * 2 // 3  # the length mix's --min-len: two thirds of the generator's max-len (128)
LONG_MIN_START = 40  # and its --min-start: redexes inside long terms (docs/DESIGN.md, "Length generalisation")
SUITES = ("longer", "church", "bool", "pairs", "combinators")  # `lambdascope suite make`


def curve(db: str, run_name: str) -> list[dict]:
    from sqlalchemy import select

    from lambdascope.store import Checkpoint, Run, open_store, resolve_db_url

    _, Session = open_store(resolve_db_url(db))
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == run_name))
        if run is None:
            return []
        return [dict(c.metrics, step=c.step) for c in
                s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.name.is_(None),
                                                   Checkpoint.suite.is_(None))
                          .order_by(Checkpoint.step))]


def suite_finals(db: str, run_name: str) -> dict[str, dict]:
    """Each suite's metrics at the run's last evaluation of it."""
    from sqlalchemy import select

    from lambdascope.store import Checkpoint, Run, open_store, resolve_db_url

    _, Session = open_store(resolve_db_url(db))
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == run_name))
        rows = [] if run is None else s.scalars(select(Checkpoint).where(
            Checkpoint.run_id == run.id, Checkpoint.suite.is_not(None)).order_by(Checkpoint.step))
        return {c.suite: dict(c.metrics, step=c.step) for c in rows}


def print_curve(points: list[dict], minutes: float) -> None:
    print(f"{'minutes':>8} {'step':>7} {'exact':>8} {'nf F1':>8} {'trace':>8} {'rollout':>8} {'mean IoU':>9}")
    for mark in [m for m in MARKS if m <= minutes + 1e-9] or [minutes]:
        near = min(points, key=lambda p: abs(p["train_minutes"] - mark), default=None)
        if near is None or abs(near["train_minutes"] - mark) > 2.5:
            print(f"{mark:>8} {'-':>7}")
            continue
        print(f"{near['train_minutes']:>8.1f} {near['step']:>7} {100 * near['exact']:>7.2f}% "
              f"{100 * near['nf_f1']:>7.2f}% {100 * near['trace_accuracy']:>7.2f}% "
              f"{100 * near['rollout_success']:>7.2f}% {near['mean_iou']:>9.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--traces", type=int, default=150_000)
    ap.add_argument("--seed", type=int, default=2024, help="generator seed")
    ap.add_argument("--db", default="runs/quality.db")
    ap.add_argument("--run-name", default=None)
    ap.add_argument("--skip-peak", action="store_true", help="reuse runs/peak.json")
    ap.add_argument("--long-share", type=float, default=1 / 3,
                    help=f"the share of --traces generated with --min-len {LONG_MIN_LEN} and --long-min-start "
                    "(terms past two thirds of the training max-len, within it): the length mix that lifted every suite "
                    "(docs/DESIGN.md, 'Length generalisation'); 0: the generator's distribution alone")
    ap.add_argument("--long-min-start", type=int, default=LONG_MIN_START,
                    help=f"the length mix's --min-start (default {LONG_MIN_START}): each of its traces has a "
                    "redex this many code points or more into its term, which the default distribution "
                    "rarely has; 0: long terms only")
    ap.add_argument("--suite-size", type=int, default=500, help="traces per evaluation suite (default 500)")
    ap.add_argument("--no-suites", action="store_true", help="evaluate the held-out set only")
    ap.add_argument("train_args", nargs="*", help="more `lambdascope train` arguments (after --)")
    args = ap.parse_args()
    if not 0 <= args.long_share < 1:
        ap.error(f"--long-share: a fraction in [0, 1), got {args.long_share}")
    if not 0 <= args.long_min_start < DEFAULT_MAX_LEN:
        ap.error(f"--long-min-start: 0 to {DEFAULT_MAX_LEN - 1} code points, got {args.long_min_start}")
    exe = str(ROOT / ".venv" / "bin" / "lambdascope")
    n_long = round(args.traces * args.long_share)
    data = ROOT / "data" / f"quality-{args.traces - n_long}-s{args.seed}.jsonl"
    files = [(data, args.traces - n_long, args.seed, [])]
    if n_long:  # the length mix: terms past two thirds of the cap, within it
        far = f"-start{args.long_min_start}" if args.long_min_start else ""
        files.append((ROOT / "data" / f"quality-long{LONG_MIN_LEN}{far}-{n_long}-s{args.seed + 1}.jsonl", n_long,
                      args.seed + 1, ["--min-len", str(LONG_MIN_LEN), "--min-start", str(args.long_min_start)]))
    for path, n, seed, extra in files:
        if path.exists():
            continue
        from lambdascope.commands.common import find_generator

        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [exe, "generate", str(path), str(n), "--seed", str(seed), *extra]
        if find_generator() is None:
            cmd.append("--reference")
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    if not args.skip_peak:
        subprocess.run([sys.executable, str(ROOT / "bench" / "peak.py")], check=True)
    suites = []
    for suite in () if args.no_suites else SUITES:  # made once, next to the data
        path = data.parent / f"quality-suite-{suite}-{args.suite_size}.jsonl"
        if not path.exists():
            subprocess.run([exe, "suite", "make", suite, str(path), "--size", str(args.suite_size)], check=True)
        suites += ["--suite", f"{suite}={path}"]
    name = args.run_name or dt.datetime.now().strftime("quality-%Y%m%d-%H%M%S")
    cmd = [exe, "train", "--data", *(str(f[0]) for f in files), "--db", args.db, "--run-name", name,
           "--minutes", str(args.minutes), "--eval-every", "5m", *suites, *args.train_args]
    print("$", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    points = curve(args.db, name)
    print(f"\nheld-out evaluation of run {name} ({len(points)} evaluations):")
    print_curve(points, args.minutes)
    finals = suite_finals(args.db, name)
    if finals:
        print(f"\n{'suite':<12} {'step':>7} {'traces':>7} {'exact':>8} {'nf F1':>8} {'rollout':>8}")
        for suite, m in finals.items():
            print(f"{suite:<12} {m['step']:>7} {m['rollouts']:>7} {100 * m['exact']:>7.2f}% "
                  f"{100 * m['nf_f1']:>7.2f}% {100 * m['rollout_success']:>7.2f}%")
    sys.exit(rc)


if __name__ == "__main__":
    main()
