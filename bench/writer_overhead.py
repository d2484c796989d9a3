"""What recording to the store costs training: the same run with and without the store.

    .venv/bin/python bench/writer_overhead.py [--data FILE] [--steps 300] [--eval-every 100] [--repeats 2]

Trains the default model for ``--steps`` on the same data twice per repeat, alternately without
the store (``--no-store``: evaluations are still computed and checkpoints still saved) and with
it (a fresh SQLite store in a temporary folder: metric points every 2 s, each evaluation's
checkpoint row, predictions and rollouts in one transaction from the background writer). It
prints the training throughput (non-padding tokens/s over the optimiser steps) and the wall
throughput (tokens / wall time of the whole run, evaluations included) of each, and the
overhead. On a shared machine, compare the medians of several repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.config import TrainConfig  # noqa: E402
from trainer.train import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/bench-3k.jsonl", help="trace file (generated if missing)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval-every", default="100")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = Path(args.data)
    if not data.exists():
        from lambdascope.generate import write_traces

        data.parent.mkdir(parents=True, exist_ok=True)
        write_traces(str(data), 3000, seed=12345, quiet=True)
    results: dict[str, list[tuple[float, float]]] = {"without store": [], "with store": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for label, no_store in (("without store", True), ("with store", False)):
                name = f"bench-{rep}-{'off' if no_store else 'on'}"
                cfg = TrainConfig(data=[str(data)], db=f"{tmp}/store.db", run_name=name, out_dir=f"{tmp}/{name}",
                                  steps=args.steps, eval_every=args.eval_every, no_store=no_store,
                                  threads=args.threads)
                t0 = time.perf_counter()
                s = train(cfg)
                wall = time.perf_counter() - t0
                results[label].append((s["tokens_per_s"], s["tokens"] / wall))
                print(f"{label:>14} (repeat {rep + 1}): training {s['tokens_per_s']:,.0f} tokens/s, "
                      f"wall {s['tokens'] / wall:,.0f} tokens/s; writer busy {s['writer_busy_seconds']:.2f}s, "
                      f"{s['written']['evaluations']} evaluations, {s['written']['metric_points']} metric points",
                      flush=True)
    med = {k: (statistics.median(t for t, _ in v), statistics.median(w for _, w in v)) for k, v in results.items()}
    off, on = med["without store"], med["with store"]
    print(f"median training throughput: without store {off[0]:,.0f} tokens/s, with store {on[0]:,.0f} tokens/s: "
          f"overhead {100 * (1 - on[0] / off[0]):+.1f}%")
    print(f"median wall throughput:     without store {off[1]:,.0f} tokens/s, with store {on[1]:,.0f} tokens/s: "
          f"overhead {100 * (1 - on[1] / off[1]):+.1f}%")


if __name__ == "__main__":
    main()
