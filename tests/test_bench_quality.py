"""bench/quality.py's own arguments: refused before it generates data or starts a run."""

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("value", ["1", "-0.1", "nan", "half"])
def test_quality_bench_refuses_a_bad_long_share_before_it_generates(value, tmp_path):
    """bench/quality.py's --long-share: a fraction in [0, 1); anything else exits 2 with the flag
    named, before any data is generated or a run started."""
    root = Path(__file__).resolve().parent.parent
    before = set((root / "data").glob("quality-*.jsonl"))
    r = subprocess.run([sys.executable, str(root / "bench" / "quality.py"), "--long-share", value,
                        "--db", str(tmp_path / "q.db"), "--traces", "7"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--long-share" in r.stderr, r.stderr
    assert set((root / "data").glob("quality-*.jsonl")) == before and not list(tmp_path.iterdir())
