"""Training with several processes (torchrun, DistributedDataParallel over gloo): rank 0 alone
writes the store and the checkpoints, and the run learns like one process with the same
effective batch."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from lambdascope.store import Checkpoint, DataProblem, MetricPoint, Run, open_store

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--d-ff", "32", "--threads", "1",
        "--warmup-steps", "2", "--eval-traces", "10", "--seed", "3"]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def train(tmp_path, name, nproc, batch_tokens, data, steps=30):
    args = ["-m", "lambdascope.cli", "train", "--data", str(data), "--db", f"sqlite:///{tmp_path}/s.db",
            "--run-name", name, "--out-dir", str(tmp_path / name), "--steps", str(steps),
            "--eval-every", "5", "--batch-tokens", str(batch_tokens), *TINY]
    cmd = ([str(TORCHRUN), "--standalone", "--nproc_per_node", str(nproc), *args] if nproc > 1
           else [sys.executable, *args])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    data = tmp / "d.jsonl"
    subprocess.run([sys.executable, "-m", "lambdascope.cli", "generate", "--reference", str(data), "500",
                    "--seed", "4"], check=True, capture_output=True)
    # one bad record: it must be reported once, by rank 0 only
    with open(data, "a", encoding="utf-8") as f:
        f.write('{"trace_id": "broken"\n')
    two = train(tmp, "two", 2, 512, data)
    one = train(tmp, "one", 1, 1024, data)
    return tmp, one, two


def curve(s, name, metric="val_loss"):
    run = s.scalar(select(Run).where(Run.name == name))
    return run, [p.value for p in s.scalars(select(MetricPoint).where(
        MetricPoint.run_id == run.id, MetricPoint.name == metric).order_by(MetricPoint.step))]


def test_rank_zero_alone_writes(runs):
    tmp, _, two = runs
    assert "2 processes (DistributedDataParallel)" in two.stderr
    assert two.stderr.count("done: two:") == 1  # the other rank is quiet
    engine, Session = open_store(f"sqlite:///{tmp}/s.db")
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == "two"))
        assert run.status == "finished"
        steps = [c.step for c in s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id))]
        assert steps == [5, 10, 15, 20, 25, 30]
        problems = s.scalars(select(DataProblem).where(DataProblem.run_id == run.id)).all()
        last_line = len((tmp / "d.jsonl").read_text(encoding="utf-8").splitlines())
        assert [(p.reason, p.line) for p in problems] == [("bad_json", last_line)]
        assert len(s.scalars(select(Run)).all()) == 2
    assert sorted(p.name for p in (tmp / "two").iterdir()) == [f"ckpt_{k:07d}.pt" for k in steps]
    engine.dispose()


def test_two_processes_learn_like_one_with_the_same_effective_batch(runs):
    tmp, _, _ = runs
    engine, Session = open_store(f"sqlite:///{tmp}/s.db")
    with Session() as s:
        _, one = curve(s, "one")
        _, two = curve(s, "two")
    engine.dispose()
    assert len(one) == len(two) == 6
    assert one[-1] < one[0] and two[-1] < two[0]  # both learn
    for a, b in zip(one, two):
        assert abs(a - b) / a < 0.05, (one, two)
