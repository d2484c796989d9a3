"""Concurrency benchmark: the trainer's StoreWriter writing a live run (metric points all the
time, a whole evaluation every few seconds) while 16 readers and 2 labellers use a real
`lambdascope serve` on 127.0.0.1 over a SQLite store (WAL) for 60 s. Prints request counts,
p50/p95/max latency per request kind, errors, "database is locked" occurrences, whether every
label written was read back at once and exported exactly once, and whether every checkpoint a
reader found showed its whole evaluation. Exits 1 on any error.

    .venv/bin/python bench/bench_concurrency.py
    .venv/bin/python bench/bench_concurrency.py --seconds 30 --readers 8 --traces 500

The store is made fresh in a temporary folder: reference-generator traces, two synthetic
checkpoints (tests/app_store.py), then the writer's live run. See tests/concurrency_harness.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.app_store import build_small_store  # noqa: E402
from tests.concurrency_harness import run_load, summary  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readers", type=int, default=16)
    ap.add_argument("--labellers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--traces", type=int, default=3000, help="evaluation traces (about 9 steps each)")
    ap.add_argument("--eval-every", type=float, default=3.0, help="seconds between the writer's evaluations")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    url = f"sqlite:///{tmp}/store.db"
    t0 = time.perf_counter()
    build_small_store(url, n_traces=args.traces)
    print(f"store built in {time.perf_counter() - t0:.1f} s ({tmp})", file=sys.stderr)
    o = run_load(url, readers=args.readers, labellers=args.labellers, seconds=args.seconds,
                 eval_every=args.eval_every, workdir=tmp)
    print(f"\nconcurrency benchmark: {args.readers} readers + {args.labellers} labellers for "
          f"{args.seconds:.0f} s against `lambdascope serve` (SQLite WAL), the trainer's StoreWriter "
          f"evaluating every {args.eval_every:g} s; {os.cpu_count()} CPUs")
    print(o.table())
    print(summary(o))
    r = o.results
    for e in (r.errors + o.server_log_errors)[:10]:
        print("  error:", e)
    ok = (not r.errors and not o.server_log_errors and o.writer.get("error") is None
          and r.labels_read_back == len(r.labels_written) and not o.missing_labels())
    print("zero errors, zero 'database is locked', every label read back" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
