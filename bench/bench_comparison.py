"""How long the dashboard takes to compare two checkpoints it has not compared before.

    .venv/bin/python bench/bench_comparison.py [--db data/bench/dashboard.db] [--repeat 5]

For two neighbouring checkpoints of the store (the dashboard benchmark's, by default), times
``app.comparison.compute_vector`` (reading a checkpoint's predictions into arrays) and
``compute_comparison`` (counts, transitions and the four ordered lists), and, in the same run,
the floor: the bare ``sqlite3`` fetch of the same rows, which any way of comparing has to read.
Prints medians in milliseconds and the ratio to the floor.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=str(ROOT / "data" / "bench" / "dashboard.db"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.db).exists():
        print(f"no store at {args.db}: build it with bench/bench_dashboard.py first", file=sys.stderr)
        return 2
    from sqlalchemy.orm import Session

    from app.comparison import compute_comparison, compute_vector
    from lambdascope.store import make_engine

    con = sqlite3.connect(args.db)
    a, b = (r[0] for r in con.execute(
        "SELECT id FROM checkpoints WHERE suite IS NULL AND name IS NULL ORDER BY id LIMIT 2"))
    n = con.execute("SELECT count(*) FROM predictions WHERE checkpoint_id = ?", (a,)).fetchone()[0]
    sql = ("SELECT example_id, iou, exact, error_kind FROM predictions WHERE checkpoint_id = ? "
           "ORDER BY example_id")
    floor = median_ms(lambda: con.execute(sql, (a,)).fetchall(), args.repeat)
    engine = make_engine(f"sqlite:///{Path(args.db).resolve()}")
    with Session(engine) as s:
        vector = median_ms(lambda: compute_vector(s, a), args.repeat)
        va, vb = compute_vector(s, a), compute_vector(s, b)
    comparison = median_ms(lambda: compute_comparison(va, vb), args.repeat)
    print(f"checkpoints {a} and {b}, {n:,} predictions each; medians of {args.repeat}")
    print(f"floor (sqlite3 fetch of one checkpoint's rows): {floor:8.1f} ms")
    print(f"compute_vector (one checkpoint):              {vector:8.1f} ms  ({vector / floor:.2f}x the floor)")
    print(f"compute_comparison (two vectors):             {comparison:8.1f} ms  ({comparison / floor:.2f}x the floor)")
    print(f"a first comparison (two vectors + compare):   {2 * vector + comparison:8.1f} ms  "
          f"({(2 * vector + comparison) / floor:.2f}x the floor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
