"""Crash benchmark: kill -9 a real `lambdascope train` again and again, at random moments inside
its evaluation writes and its checkpoint saves, and check after every kill that the store is
consistent (every checkpoint row has all its predictions, rollouts and metric points, and its
file; no partial evaluation), that every checkpoint file loads whole, and that `--resume` starts
from the newest whole checkpoint. Prints one line per kill and a summary; exits 1 on any failure.

    .venv/bin/python bench/bench_crash.py                  # 24 kills (half in each section)
    .venv/bin/python bench/bench_crash.py --kills 40 --seed 7

The slow points that make the sections long enough to hit are put in from outside by
tests/crash_harness.py (test-only; nothing in lambdascope/ or trainer/ knows about them).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.crash_harness import check_consistent, kill_inside, resumed_from, start, train_command  # noqa: E402
from tests.trainer_helpers import write_generated  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--every", type=int, default=2, help="evaluate every N steps")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    data = tmp / "traces.jsonl"
    write_generated(data, 120, seed=11)
    db, out, log = f"sqlite:///{tmp}/store.db", tmp / "run", tmp / "events.log"
    steps = args.every * (args.kills + 4)  # room for every kill to land inside the run
    print(f"crash benchmark: {args.kills} kills, seed {seed}, run of {steps} steps evaluated every "
          f"{args.every}; folder {tmp}")
    print(f"{'#':>3} {'section':<8}{'step':>5}{'at s':>7}  {'ended':<6}{'resumed':>8}{'rows':>6}{'files':>6}"
          f"{'tmp':>5}  result")
    failures, outcomes = 0, {"eval": [0, 0], "save": [0, 0]}
    t0 = time.time()
    for i in range(args.kills):
        section = "eval" if i % 2 == 0 else "save"
        nth = rng.randint(1, 2)
        window = 0.3 if section == "eval" else 0.4
        files = sorted(out.glob("ckpt_*.pt"))
        had = {int(f.stem.split("_")[1]) for f in files}
        before = max(had) if had else None
        proc = start(train_command(data, db, out, steps=steps, eval_every=args.every, resume=i > 0), log)
        result, resumed, state = "ok", None, {"checkpoint_rows": [], "files": [], "leftover_tmp": 0}
        try:
            kill = kill_inside(proc, log, section, nth, rng, window)
            resumed = resumed_from(kill.stderr)
            if i > 0 and resumed != before:
                raise AssertionError(f"resumed from step {resumed}, the newest whole checkpoint is {before}")
            state = check_consistent(db, out)
            if section == "save" and not kill.completed and kill.step in state["files"] \
                    and kill.step not in had:  # (a resumed run may save a step again, atomically)
                raise AssertionError(f"the interrupted save of step {kill.step} left a checkpoint file")
            if section == "eval" and kill.completed and kill.step not in state["checkpoint_rows"]:
                raise AssertionError(f"the committed evaluation of step {kill.step} is missing")
            outcomes[section][kill.completed] += 1
        except Exception as e:
            failures += 1
            result = f"FAILED: {type(e).__name__}: {str(e)[:300]}"
            kill = None
        print(f"{i + 1:>3} {section:<8}{kill.step if kill else '-':>5}{kill.after_s if kill else 0:>7.3f}  "
              f"{str(kill.completed) if kill else '-':<6}{str(resumed):>8}{len(state['checkpoint_rows']):>6}"
              f"{len(state['files']):>6}{state['leftover_tmp']:>5}  {result}", flush=True)
    # the run then goes on to its end
    proc = start(train_command(data, db, out, steps=steps, eval_every=args.every, resume=True), log)
    _, err = proc.communicate(timeout=600)
    final = "not run"
    try:
        assert proc.returncode == 0, err[-2000:]
        state = check_consistent(db, out)
        assert state["files"][-1] == steps and state["checkpoint_rows"][-1] == steps
        missing = sorted(set(state["files"]) - set(state["checkpoint_rows"]))
        final = (f"finished at step {steps}: {len(state['checkpoint_rows'])} checkpoint rows, "
                 f"{len(state['files'])} files (evaluations lost to kills between a save and its "
                 f"write: steps {missing or 'none'}), {state['leftover_tmp']} leftover temporary files")
    except AssertionError as e:
        failures += 1
        final = f"FAILED: {e}"
    print(f"\nkills inside an evaluation write: {sum(outcomes['eval'])} ({outcomes['eval'][0]} before its "
          f"commit, {outcomes['eval'][1]} just after); inside a checkpoint save: {sum(outcomes['save'])} "
          f"({outcomes['save'][0]} before the file was whole, {outcomes['save'][1]} after)")
    print(f"final resume: {final}")
    print(f"{args.kills} kills in {time.time() - t0:.0f} s: "
          + ("every check passed" if failures == 0 else f"{failures} FAILED"))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
