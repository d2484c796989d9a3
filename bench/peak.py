"""Measure and print this machine's matmul peak (FLOP/s), the denominator of MFU.

    .venv/bin/python bench/peak.py [--device cpu|cuda] [--threads 2] [--seconds 1] [--out runs/peak.json]

The measurement is the trainer's own (``trainer.peak.measure_peak``); this script prints each
size's rate and saves the result where ``lambdascope train --peak-file`` reads it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without NumPy says so

from trainer.peak import DEFAULT_PEAK_FILE, measure_peak  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads on CPU (default 2)")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per size")
    ap.add_argument("--out", type=Path, default=Path(DEFAULT_PEAK_FILE))
    args = ap.parse_args()
    entry = measure_peak(args.out, args.device, args.threads, args.seconds)
    dtype = entry["dtype"].removeprefix("torch.")
    for n, r in entry["rates"].items():
        print(f"{int(n):>5} x {int(n):<5} {dtype:>8}: {r / 1e9:10.1f} GFLOP/s")
    print(f"peak ({args.device}, {args.threads if args.device == 'cpu' else 'gpu'} threads): "
          f"{entry['peak_flops'] / 1e9:.1f} GFLOP/s")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
