"""Measure this machine's matmul peak (FLOP/s), the denominator of MFU.

    .venv/bin/python bench/peak.py [--device cpu|cuda] [--threads 2] [--out runs/peak.json]

Times square matmuls of a few sizes (fp32 on CPU, bf16 on CUDA, the dtypes training uses) and
takes the best rate. The result is printed and saved as JSON (``{device: {"peak_flops": …}}``);
``lambdascope train`` reads it (``--peak-file``) to report MFU: model FLOPs per second / peak.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without NumPy says so
import torch  # noqa: E402

DEFAULT_OUT = Path("runs/peak.json")


def matmul_flops(device: str = "cpu", dtype: torch.dtype = torch.float32, seconds: float = 1.0,
                 sizes=(256, 512, 1024, 2048)) -> tuple[float, dict[int, float]]:
    """The best FLOP/s over ``sizes`` (each timed for about ``seconds``) and the rate of each."""
    rates = {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):  # warm up
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        reps, t0 = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
        rates[n] = 2 * n ** 3 * reps / dt
    return max(rates.values()), rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads on CPU (default 2)")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per size")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    peak, rates = matmul_flops(args.device, dtype, args.seconds)
    for n, r in rates.items():
        print(f"{n:>5} x {n:<5} {str(dtype).removeprefix('torch.'):>8}: {r / 1e9:10.1f} GFLOP/s")
    print(f"peak ({args.device}, {args.threads if args.device == 'cpu' else 'gpu'} threads): "
          f"{peak / 1e9:.1f} GFLOP/s")
    data = {}
    if args.out.exists():
        try:
            data = json.loads(args.out.read_text())
        except ValueError:
            data = {}
    data[args.device] = {"peak_flops": peak, "dtype": str(dtype), "threads": args.threads,
                         "rates": {str(n): r for n, r in rates.items()}, "time": time.time()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
