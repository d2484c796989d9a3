#!/usr/bin/env python3
"""Speed of the Rust trace generator against the Python reference, on the same arguments.

Runs ``lambda_gen_rs/target/release/lambda-gen generate`` (build it first:
``cd lambda_gen_rs && cargo build --release``; this script builds nothing) and the Python
reference ``lambdascope.generate`` (``make_trace`` + ``trace_records``, in a ``python3 -c``
subprocess that writes the same file), ``--runs`` times each, and prints the median wall time
and records/s of each, the speed-up over Python, and whether all outputs are byte-identical.

Usage, from the repository root::

    python3 bench/bench_generator.py [--traces N] [--runs R] [--seed S] [--threads 2,1]

Wall time is measured around each whole command (process start included, for both sides).
Exit status 1 if the outputs differ.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "lambda_gen_rs" / "target" / "release" / "lambda-gen"

PY_SNIPPET = """
import sys
sys.path.insert(0, sys.argv[1])
from lambdascope.generate import Options, make_trace, trace_records
out, n, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
opts = Options(seed=seed)
drops = {}
with open(out, "w", encoding="utf-8", newline="\\n") as f:
    for i in range(n):
        f.write("".join(r + "\\n" for r in trace_records(opts, make_trace(opts, i, drops))))
"""


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")
    return elapsed


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=20_000, help="traces per run (default 20000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each command (default 3)")
    ap.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    ap.add_argument("--threads", default="2,1", help="Rust thread counts, comma-separated (default 2,1)")
    ap.add_argument("--binary", type=Path, default=BINARY, help=f"lambda-gen binary (default {BINARY.relative_to(ROOT)})")
    args = ap.parse_args()
    if args.traces < 1 or args.runs < 1:
        ap.error("--traces and --runs must be at least 1")
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if not args.binary.exists():
        print(f"no binary at {args.binary}: run `cd lambda_gen_rs && cargo build --release` first", file=sys.stderr)
        return 2

    rows = []  # (name, threads, seconds, records/s, output path)
    with tempfile.TemporaryDirectory(prefix="bench_generator_") as tmp:
        tmp = Path(tmp)
        outputs = {}
        for t in threads:
            out = tmp / f"rust_t{t}.jsonl"
            cmd = [str(args.binary), "generate", str(out), str(args.traces), str(t), "--seed", str(args.seed), "--quiet"]
            times = [timed(cmd) for _ in range(args.runs)]
            outputs[f"rust, {t} thread{'s' if t > 1 else ''}"] = out
            rows.append(("rust lambda-gen", t, times, out))
        out = tmp / "python.jsonl"
        cmd = [sys.executable, "-c", PY_SNIPPET, str(ROOT), str(out), str(args.traces), str(args.seed)]
        times = [timed(cmd) for _ in range(args.runs)]
        rows.append(("python reference", 1, times, out))

        records = count_lines(out)
        reference = out.read_bytes()
        identical = all(path.read_bytes() == reference for _, _, _, path in rows)

        py_rate = records / statistics.median(rows[-1][2])
        print(f"{args.traces} traces, seed {args.seed}, {records} records, "
              f"{out.stat().st_size / 1e6:.1f} MB; median of {args.runs} run(s); {os.cpu_count()} CPUs")
        print(f"{'implementation':<18} {'threads':>7} {'median s':>9} {'records/s':>12} {'vs python':>9}")
        for name, t, times, _ in rows:
            med = statistics.median(times)
            rate = records / med
            print(f"{name:<18} {t:>7} {med:>9.3f} {rate:>12,.0f} {rate / py_rate:>8.1f}x")
        print("outputs byte-identical:", "yes" if identical else "NO")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
