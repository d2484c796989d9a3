"""The trainer and its background writer against PostgreSQL: the same code as on SQLite."""

import subprocess
import sys

from sqlalchemy import func, select

from lambdascope.store import Checkpoint, MetricPoint, Prediction, Rollout, Run, open_store

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--d-ff", "32", "--threads", "1",
        "--batch-tokens", "1024", "--warmup-steps", "2", "--eval-traces", "10"]

# pg_url (tests/conftest.py): a fresh database in the session's PostgreSQL cluster; a skip where
# PostgreSQL cannot run.


def train(*args):
    r = subprocess.run([sys.executable, "-m", "lambdascope.cli", "train", *args, *TINY],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_train_and_resume_on_postgresql(tmp_path, pg_url):
    data = tmp_path / "d.jsonl"
    subprocess.run([sys.executable, "-m", "lambdascope.cli", "generate", "--reference", str(data), "300",
                    "--seed", "8"], check=True, capture_output=True)
    out = str(tmp_path / "pg")
    train("--data", str(data), "--db", pg_url, "--run-name", "pg", "--out-dir", out, "--steps", "4",
          "--eval-every", "2")
    train("--data", str(data), "--db", pg_url, "--out-dir", out, "--resume", "--steps", "6")
    engine, Session = open_store(pg_url)
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == "pg"))
        assert run.status == "finished" and run.validation["invalid_records"] == 0
        cks = s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step)).all()
        assert [c.step for c in cks] == [2, 4, 6]
        n_examples = run.validation["eval_examples"]
        for c in cks:
            assert s.scalar(select(func.count()).select_from(Prediction)
                            .where(Prediction.checkpoint_id == c.id)) == n_examples
            assert s.scalar(select(func.count()).select_from(Rollout)
                            .where(Rollout.checkpoint_id == c.id)) == run.validation["eval_traces"]
        assert s.scalar(select(func.count()).select_from(MetricPoint).where(MetricPoint.run_id == run.id)) > 0
    engine.dispose()
