"""Throughput of training with 1 process vs N processes (torchrun, DistributedDataParallel,
gloo on CPU), same data, same effective batch, same number of steps. Prints tokens/s of each.

    .venv/bin/python bench/bench_ddp.py [--traces 5000] [--steps 60] [--nproc 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def run(cmd: list[str]) -> float:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr[-3000:])
    m = re.search(r"throughput ([\d,]+) tokens/s", r.stderr)
    return float(m.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--batch-tokens", type=int, default=4096, help="effective batch (all processes)")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "d.jsonl"
        subprocess.run([py, "-m", "lambdascope.cli", "generate", str(data), str(args.traces), "--seed", "1"],
                       check=True, capture_output=True)
        common = ["train", "--data", str(data), "--no-store", "--steps", str(args.steps),
                  "--eval-every", str(args.steps * 10)]
        one = run([py, "-m", "lambdascope.cli", *common, "--out-dir", f"{d}/one", "--threads", str(args.nproc),
                   "--batch-tokens", str(args.batch_tokens)])
        many = run([str(Path(py).with_name("torchrun")), "--standalone", "--nproc_per_node", str(args.nproc),
                    "-m", "lambdascope.cli", *common, "--out-dir", f"{d}/many", "--threads", "1",
                    "--batch-tokens", str(args.batch_tokens // args.nproc)])
    print(f"{'processes':>10} {'threads each':>13} {'tokens/s':>12}")
    print(f"{1:>10} {args.nproc:>13} {one:>12,.0f}")
    print(f"{args.nproc:>10} {1:>13} {many:>12,.0f}")
    print(f"ratio {many / one:.2f}x")


if __name__ == "__main__":
    main()
