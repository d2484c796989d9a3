"""What recording to the store costs training: the same run with and without the store.

    .venv/bin/python bench/writer_overhead.py [--data FILE] [--steps 200] [--eval-every 50] [--repeats 3]

Trains the default model for ``--steps`` on the same data, alternately without the store
(``--no-store``: evaluations are still computed and checkpoints still saved) and with it (a
fresh SQLite store: metric points every 2 s, each evaluation's checkpoint row, predictions and
rollouts in one transaction from the background writer), ``--repeats`` pairs. A fifth of the
traces are held out so that each evaluation has the default 500 traces (about 4,000 predictions). It prints the
training throughput (non-padding tokens/s over the optimiser steps) of each run and the median
of the pairs' overheads, and the CPU time of the writer thread as a share of training time:
on a machine shared with other work the throughputs swing with the neighbours' load, while
the writer's CPU time is what it takes from training whatever the load. Of that, the time spent
judging each prediction's error kind and each rollout's outcome (``store.judged``, in the writer
thread) is measured on its own: what the error kinds add (docs/DESIGN.md, "Error kinds").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lambdascope.store as store  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.train import train  # noqa: E402

JUDGING = {"cpu": 0.0, "wall": 0.0, "calls": 0, "predictions": 0}


def _timed_judged(real):
    """``store.judged`` timed: the writer thread's CPU and wall time in it."""
    def judged(session, eval_set_id, predictions, rollouts):
        c0, t0 = time.thread_time(), time.perf_counter()
        try:
            return real(session, eval_set_id, predictions, rollouts)
        finally:
            JUDGING["cpu"] += time.thread_time() - c0
            JUDGING["wall"] += time.perf_counter() - t0
            JUDGING["calls"] += 1
            JUDGING["predictions"] += len(predictions)
    return judged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/bench-3k.jsonl", help="trace file (generated if missing)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-every", default="50")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = Path(args.data)
    if not data.exists():
        from lambdascope.generate import write_traces

        data.parent.mkdir(parents=True, exist_ok=True)
        write_traces(str(data), 3000, seed=12345, quiet=True)
    store.judged = _timed_judged(store.judged)  # write_evaluation calls it by this name
    overheads, cpu_shares, judge_shares, rows = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            pair = {}
            for label, no_store in (("without store", True), ("with store", False)):
                name = f"bench-{rep}-{'off' if no_store else 'on'}"
                cfg = TrainConfig(data=[str(data)], db=f"{tmp}/store.db", run_name=name, out_dir=f"{tmp}/{name}",
                                  steps=args.steps, eval_every=args.eval_every, no_store=no_store,
                                  threads=args.threads, eval_frac=0.2)  # evaluations of the default size
                judging_before = dict(JUDGING)
                t0 = time.perf_counter()
                s = train(cfg)
                wall = time.perf_counter() - t0
                pair[label] = s
                judging = {k: JUDGING[k] - judging_before[k] for k in JUDGING}
                s["judging"] = judging
                rows.append(f"{label:>14} (pair {rep + 1}): training {s['tokens_per_s']:,.0f} tokens/s, wall "
                            f"{s['tokens'] / wall:,.0f} tokens/s; writer CPU {s['writer_cpu_seconds']:.2f}s, busy "
                            f"{s['writer_busy_seconds']:.2f}s, {s['written']['evaluations']} evaluations, "
                            f"{s['written']['metric_points']} metric points; judging kinds and outcomes "
                            f"{judging['cpu']:.3f}s CPU ({judging['wall']:.3f}s wall) over "
                            f"{judging['predictions']:,} predictions; training {s['train_minutes'] * 60:.1f}s")
                print(rows[-1], flush=True)
            on, off = pair["with store"], pair["without store"]
            overheads.append(1 - on["tokens_per_s"] / off["tokens_per_s"])
            cpu_shares.append(on["writer_cpu_seconds"] / (on["train_minutes"] * 60))
            judge_shares.append(on["judging"]["cpu"] / (on["train_minutes"] * 60))
    print("\n".join(["", *rows]))
    print(f"throughput overhead of the store, median of {len(overheads)} pairs: {100 * statistics.median(overheads):+.1f}% "
          f"(pairs: {', '.join(f'{100 * o:+.1f}%' for o in overheads)})")
    print(f"writer thread CPU time / training time: {100 * statistics.median(cpu_shares):.2f}% "
          f"(pairs: {', '.join(f'{100 * c:.2f}%' for c in cpu_shares)})")
    print(f"of which judging error kinds and rollout outcomes / training time: "
          f"{100 * statistics.median(judge_shares):.3f}% (pairs: {', '.join(f'{100 * c:.3f}%' for c in judge_shares)})")


if __name__ == "__main__":
    main()
