"""bench/quality.py's own arguments: refused before it generates data or starts a run."""

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("flag, value", [("--long-share", "1"), ("--long-share", "-0.1"), ("--long-share", "nan"),
                                         ("--long-share", "half"), ("--long-min-start", "192"),
                                         ("--long-min-start", "-1"), ("--long-min-start", "far")])
def test_quality_bench_refuses_a_bad_length_mix_before_it_generates(flag, value, tmp_path):
    """bench/quality.py's --long-share (a fraction in [0, 1)) and --long-min-start (a start
    within the generator's max-len): anything else exits 2 with the flag named, before any
    data is generated or a run started."""
    root = Path(__file__).resolve().parent.parent
    before = set((root / "data").glob("quality-*.jsonl"))
    r = subprocess.run([sys.executable, str(root / "bench" / "quality.py"), flag, value,
                        "--db", str(tmp_path / "q.db"), "--traces", "7"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and flag in r.stderr, r.stderr
    assert set((root / "data").glob("quality-*.jsonl")) == before and not list(tmp_path.iterdir())
