"""This machine's matmul peak (FLOP/s), the denominator of MFU.

Times square matmuls of a few sizes (fp32 on CPU, bf16 on CUDA, the dtypes training uses) and
takes the best rate. ``measure_peak`` saves it as JSON (``{device: {"peak_flops": …}}``);
``lambdascope train --peak-file`` reads it (``read_peak``) to report MFU: model FLOPs per second
over this peak. ``lambdascope demo`` measures it once; ``bench/peak.py`` prints it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

DEFAULT_PEAK_FILE = "runs/peak.json"


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


def measure_peak(out: str | Path = DEFAULT_PEAK_FILE, device: str = "cpu", threads: int = 2,
                 seconds: float = 1.0) -> dict:
    """Measure the peak of ``device`` and save it into ``out`` (other devices' entries kept);
    returns the saved entry (``peak_flops``, ``dtype``, ``threads``, ``rates``, ``time``)."""
    out = Path(out)
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    peak, rates = matmul_flops(device, dtype, seconds)
    data = {}
    if out.exists():
        try:
            data = json.loads(out.read_text())
        except ValueError:
            data = {}
    entry = {"peak_flops": peak, "dtype": str(dtype), "threads": threads,
             "rates": {str(n): r for n, r in rates.items()}, "time": time.time()}
    data[device] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    return entry


def read_peak(path: str, device: str) -> float | None:
    """The saved peak of ``device`` in FLOP/s, or None when there is none (MFU is then n/a)."""
    try:
        return float(json.loads(Path(path).read_text())[device]["peak_flops"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
