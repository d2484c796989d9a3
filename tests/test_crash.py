"""Crashes: a real `lambdascope train` killed with SIGKILL inside an evaluation write and inside a
checkpoint save (tests/crash_harness.py slows those sections down from outside) leaves a
consistent store and whole checkpoint files, and `--resume` continues from the newest whole
checkpoint. bench/bench_crash.py does the same 20 or more times."""

import os
import random

import pytest
from sqlalchemy import select

from lambdascope.store import Label, Run, open_store
from tests.crash_harness import ROOT, check_consistent, kill_inside, resumed_from, start, train_command
from tests.trainer_helpers import write_generated

STEPS, EVERY = 12, 2


@pytest.fixture(scope="module")
def traces_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "traces.jsonl"
    write_generated(path, 120, seed=11)
    return path


def newest_file_step(out_dir):
    files = sorted(out_dir.glob("ckpt_*.pt"))
    return int(files[-1].stem.split("_")[1]) if files else None


def test_kill_9_during_evaluation_writes_and_checkpoint_saves(tmp_path, traces_file):
    seed = int(os.environ.get("LAMBDASCOPE_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    db, out, log = f"sqlite:///{tmp_path}/store.db", tmp_path / "run", tmp_path / "events.log"
    plan = [("eval", 2, 0.3), ("save", 1, 0.4), ("eval", 1, 0.3)]  # section, n-th after (re)start, window s
    engine, Session = open_store(db)
    with Session() as s, s.begin():  # a person's label, made before the run: never lost
        s.add(Label(trace_identity="0123456789abcdef", step_k=None, category="bad_gold", note="keep me"))
    engine.dispose()
    kills = []
    for i, (section, nth, window) in enumerate(plan):
        before = newest_file_step(out)
        had = {int(f.stem.split("_")[1]) for f in out.glob("ckpt_*.pt")}
        proc = start(train_command(traces_file, db, out, steps=STEPS, eval_every=EVERY, resume=i > 0), log)
        kill = kill_inside(proc, log, section, nth, rng, window)
        kills.append(kill)
        where = f"seed {seed}, kill {i + 1}: {kill}"
        if i > 0:  # the resumed process started from the newest whole checkpoint file
            assert resumed_from(kill.stderr) == before, where + "\n" + kill.stderr[-2000:]
        state = check_consistent(db, out)
        # the killed section's own outcome: a save never leaves its file half-written under the
        # final name; an evaluation is in the store whole, or not at all
        if section == "save" and not kill.completed and kill.step not in had:
            assert kill.step not in state["files"], where  # (a step saved again is replaced whole)
        if section == "eval" and kill.completed:
            assert kill.step in state["checkpoint_rows"], where
    # and the run goes on to its end
    before = newest_file_step(out)
    proc = start(train_command(traces_file, db, out, steps=STEPS, eval_every=EVERY, resume=True), log)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert resumed_from(err) == before
    state = check_consistent(db, out)
    assert state["files"][-1] == STEPS and state["checkpoint_rows"][-1] == STEPS
    engine, Session = open_store(db)
    with Session() as s:
        assert s.scalar(select(Run.status).where(Run.name == "crash")) == "finished"
        assert s.scalars(select(Label.note)).all() == ["keep me"]
    engine.dispose()
    assert {k.section for k in kills} == {"eval", "save"}


def test_harness_slow_points_are_test_only():
    """The slow points live in tests/ and are switched on only by running the harness."""
    for folder in ("lambdascope", "trainer", "app"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "LAMBDASCOPE_CRASH" not in text and "crash_harness" not in text, path
