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


def test_the_dashboard_bench_runs_on_a_small_store_and_counts_the_kept_answers(tmp_path):
    """A store too small for page 500 still gives a plan (its last page); the mixed phase
    reports, per page kind, the share of answers the page cache kept (its response header):
    three checkpoints' examples pages are asked again and again, so most are kept."""
    db = tmp_path / "small.db"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_dashboard.py"), "--db", str(db),
                        "--examples", "120", "--checkpoints", "3", "--kinds", "examples p1,examples p500",
                        "--phase-seconds", "0", "--seconds", "1.5", "--warmup", "0.5", "--no-writer"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {line[:17].strip(): line.split() for line in r.stdout.splitlines()
            if line.startswith(("examples p1", "examples p500"))}
    header = next(line for line in r.stdout.splitlines() if line.startswith("page "))
    assert "kept %" in header
    for kind in ("examples p1", "examples p500"):
        kept, errors = float(rows[kind][-2]), int(rows[kind][-1])
        assert errors == 0 and 50 < kept <= 100, r.stdout
    share = next(line for line in r.stdout.splitlines() if "of the answers from the page cache" in line)
    assert 50 < float(share.split("mixed: ")[1].split("%")[0]) <= 100
