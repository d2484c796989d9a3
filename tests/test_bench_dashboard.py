"""bench/bench_dashboard.py's --pages-over: refused, naming the flag and the store's count,
before a server starts."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_dashboard_bench_refuses_pages_over_more_checkpoints_than_the_store_has(tmp_path):
    db = tmp_path / "tiny.db"
    for value in ("4", "1", "0"):
        r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_dashboard.py"), "--db", str(db),
                            "--examples", "60", "--checkpoints", "3", "--pages-over", value],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert f"--pages-over: 2 to the store's 3 benchmark checkpoints, got {value}" in r.stderr
        assert "floor" not in r.stdout  # nothing was measured
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_dashboard.py"), "--pages-over", "two"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--pages-over" in r.stderr and "invalid int value" in r.stderr
