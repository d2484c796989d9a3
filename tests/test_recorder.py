"""``from lambdascope import Recorder`` (issue 15): any trainer's run in the store through the trainer's
own store writer. The caller never waits for the database; leaving the ``with`` block marks the
run finished (failed on an exception, stopped on Ctrl-C); bad predictions are refused before
anything is queued, with the offsets hint; and a recorder killed with SIGKILL leaves a consistent
store whose run is lost 90 s after its last heartbeat, every committed evaluation whole."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lambdascope import Recorder
from lambdascope.exchange import PredictionError, traces_from_records
from lambdascope.generate import Options, generate, trace_records
from lambdascope.recorder import RecorderError
from lambdascope.spans import char_to_token_span
from lambdascope.store import Checkpoint, Example, MetricPoint, Prediction, Rollout, Run, open_store, utcnow
from lambdascope.terms import parse, print_with_span
from lambdascope.vocabulary import LOST_AFTER, effective_status, last_heard

ROOT = Path(__file__).resolve().parent.parent


def records(seed: int = 5, n: int = 6) -> list[str]:
    opts = Options(seed=seed)
    return [x for tr in generate(opts, n) for x in trace_records(opts, tr)]


def gold_tokens(terms: list[str]) -> list[tuple[int, int]]:
    return [char_to_token_span(*print_with_span(parse(t))[1]) for t in terms]


@pytest.fixture
def rec_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/store.db"


def run_row(url: str, name: str) -> Run:
    _, Session = open_store(url)
    with Session() as s:
        return s.scalar(select(Run).where(Run.name == name))


def test_a_recorded_run_fills_the_store_and_every_page(rec_url):
    from tests.app_store import make_client

    traces = traces_from_records(records())
    terms = [r.term for t in traces for r in t.records]
    with Recorder(rec_url, run="mine", config={"lr": 3e-4, "layers": 2}) as rec:
        for step in range(1, 21):
            rec.log(step, loss=2.0 / step, lr=3e-4)
        m1 = rec.evaluate(10, traces, [(0, 0)] * len(terms), offsets="bos-tokens")
        m2 = rec.evaluate(20, traces, [(*s, 0.9, 0.8) for s in gold_tokens(terms)], offsets="bos-tokens",
                          predict=gold_tokens)
        assert rec.run_id is not None
    assert m1["exact"] < 1 and m2["exact"] == 1.0 and m2["rollout_success"] == 1.0 and "rollout_success" not in m1
    run = run_row(rec_url, "mine")
    assert run.status == "finished" and run.finished_at is not None and run.config == {"lr": 3e-4, "layers": 2}
    _, Session = open_store(rec_url)
    with Session() as s:
        cks = list(s.scalars(select(Checkpoint).order_by(Checkpoint.step)))
        assert [c.step for c in cks] == [10, 20]
        assert cks[1].metrics["source"] == {"by": "lambdascope.Recorder", "offsets": "bos-tokens", "confidences": True}
        n_examples = s.scalar(select(func.count()).select_from(Example))
        assert n_examples == len(terms)
        kinds = dict(s.execute(select(Prediction.error_kind, func.count()).where(Prediction.checkpoint_id == cks[0].id)
                               .group_by(Prediction.error_kind)).all())
        assert kinds["false_nf"] == sum(1 for t in traces for r in t.records if r.span != (0, 0))
        assert s.scalar(select(func.count()).select_from(Rollout).where(Rollout.checkpoint_id == cks[1].id)) == len(traces)
        assert set(s.scalars(select(Rollout.outcome))) == {"success"}
        loss = list(s.scalars(select(MetricPoint.step).where(MetricPoint.name == "loss").order_by(MetricPoint.step)))
        assert loss == list(range(1, 21))
    c = make_client(rec_url)
    ident = traces[0].identity
    for page in ("/", f"/runs/{run.id}", f"/checkpoints/{cks[1].id}", f"/examples?ck={cks[0].id}",
                 f"/traces/{ident}?ck={cks[1].id}", f"/compare?a={cks[0].id}&b={cks[1].id}", "/playground?ck=2&term=x"):
        r = c.get(page)
        assert r.status_code == 200, (page, r.text[:300])
    shown = c.get(f"/runs/{run.id}.json").json()
    assert shown["run"]["status"] == "finished" and {"loss", "exact"} <= {c["name"] for c in shown["curves"]}


def test_the_run_ends_failed_on_an_exception_and_stopped_on_ctrl_c(rec_url):
    with pytest.raises(ZeroDivisionError):
        with Recorder(rec_url, run="boom") as rec:
            rec.log(1, loss=1.0)
            1 / 0
    run = run_row(rec_url, "boom")
    assert run.status == "failed" and run.message == "ZeroDivisionError: division by zero"
    with pytest.raises(KeyboardInterrupt):
        with Recorder(rec_url, run="ctrl-c"):
            raise KeyboardInterrupt
    assert run_row(rec_url, "ctrl-c").status == "stopped"
    with pytest.raises(RecorderError, match="a run named 'boom' is already in the store: pass resume=True"):
        Recorder(rec_url, run="boom")
    with Recorder(rec_url, run="boom", resume=True) as rec:  # continued: running again, then finished
        assert run_row(rec_url, "boom").status == "running"
        rec.log(2, loss=0.5)
    assert run_row(rec_url, "boom").status == "finished"
    with pytest.raises(RecorderError, match="is closed"):
        rec.log(3, loss=0.1)


def test_bad_input_is_refused_before_anything_is_queued(rec_url):
    traces = traces_from_records(records())
    terms = [r.term for t in traces for r in t.records]
    tokens = gold_tokens(terms)
    with Recorder(rec_url, run="careful") as rec:
        with pytest.raises(PredictionError) as e:  # BOS-token spans declared as characters
            rec.evaluate(1, traces, tokens)
        assert 'looks like a BOS-token span; pass offsets="bos-tokens"' in str(e.value)
        assert str(e.value).startswith("Recorder.evaluate: ") and "nothing was written" in str(e.value)
        shifted = [(s + 1, e) if (s, e) != (0, 0) else (1, 0) for s, e in
                   (print_with_span(parse(t))[1] for t in terms)]  # only the start moved past BOS
        with pytest.raises(PredictionError, match="only one end looks shifted by one"):
            rec.evaluate(1, traces, shifted, offsets="bos-tokens")
        with pytest.raises(ValueError, match=f"3 predictions for {len(terms)} steps"):
            rec.evaluate(1, traces, tokens[:3], offsets="bos-tokens")
        with pytest.raises(PredictionError, match="conf_out_of_range"):
            rec.evaluate(1, traces, [(*t, 2.0, 0.5) for t in tokens], offsets="bos-tokens")
        with pytest.raises(PredictionError, match="wrong_span"):  # records are validated as `check` does
            bad = [json.loads(x) for x in records()]
            bad[0]["target_span"] = [1, 3]
            rec.evaluate(1, bad, tokens, offsets="bos-tokens")
        with pytest.raises(ValueError, match="offsets must be one of chars, bos-tokens"):
            rec.evaluate(1, traces, tokens, offsets="tokens")
        with pytest.raises(PredictionError, match="rollout_mismatch"):
            rec.evaluate(1, traces, tokens, offsets="bos-tokens", rollouts={traces[0].trace_id: [tokens[0]]})
        with pytest.raises(ValueError, match="finite"):
            rec.log(1, loss=float("nan"))
        with pytest.raises(ValueError, match="step is -1"):
            rec.log(-1, loss=1.0)
        with pytest.raises(ValueError, match="a metric point is a number"):
            rec.log(1, loss="low")
        rec.flush()
        assert run_row(rec_url, "careful").status == "running"
        m = rec.evaluate(1, [json.loads(x) for x in records()], tokens, offsets="bos-tokens")  # records as dicts
        assert m["exact"] == 1.0
        with pytest.raises(ValueError, match="step 1 is evaluated already"):
            rec.evaluate(1, traces, tokens, offsets="bos-tokens")
    _, Session = open_store(rec_url)
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Checkpoint)) == 1
        assert s.scalar(select(func.count()).select_from(MetricPoint).where(MetricPoint.name == "loss")) == 0
    with pytest.raises(RecorderError, match="config is not JSON"):
        Recorder(rec_url, run="odd", config={"f": object()})


def test_the_caller_never_waits_for_the_database(tmp_path):
    """With the store's write lock held by another process's transaction, log and evaluate
    return at once; what they queued is written when the lock goes."""
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    traces = traces_from_records(records())
    tokens = gold_tokens([r.term for t in traces for r in t.records])
    rec = Recorder(url, run="patient", flush_seconds=0.05, heartbeat_seconds=0.1)
    rec.flush()
    lock = sqlite3.connect(path, timeout=30)
    lock.execute("BEGIN IMMEDIATE")  # the writer's next statement waits for this lock
    try:
        t0 = time.perf_counter()
        for step in range(1, 200):
            rec.log(step, loss=1.0 / step)
        rec.evaluate(200, traces, tokens, offsets="bos-tokens", predict=gold_tokens)
        waited = time.perf_counter() - t0
        time.sleep(0.5)  # the writer is stuck behind the lock (a heartbeat, the points)
    finally:
        lock.rollback()
        lock.close()
    assert waited < 1.0, waited
    rec.close()
    _, Session = open_store(url)
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(MetricPoint).where(MetricPoint.name == "loss")) == 199
        assert s.scalar(select(func.count()).select_from(Checkpoint)) == 1


def test_the_heartbeat_goes_on_while_the_loop_is_busy(rec_url):
    with Recorder(rec_url, run="alive", heartbeat_seconds=0.1) as rec:
        first = run_row(rec_url, "alive").heartbeat_at
        deadline = time.monotonic() + 10
        while run_row(rec_url, "alive").heartbeat_at == first and time.monotonic() < deadline:
            time.sleep(0.05)  # the caller sends nothing at all
        assert run_row(rec_url, "alive").heartbeat_at > first
        rec.log(1, loss=1.0)
    ended = run_row(rec_url, "alive").heartbeat_at
    time.sleep(0.3)
    assert run_row(rec_url, "alive").heartbeat_at == ended  # a finished run has no heartbeat


# ---------------------------------------------------------------------------------------------
# SIGKILL


def _events(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(p[0], int(p[1])) for p in (line.split() for line in log.read_text().splitlines()) if len(p) == 3]


def test_a_recorder_killed_with_sigkill_leaves_a_consistent_store_and_a_lost_run(tmp_path):
    from tests.app_store import make_client

    db, log = tmp_path / "store.db", tmp_path / "events.log"
    url = f"sqlite:///{db}"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "tests.recorder_child", url, str(log)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rng = random.Random(15)
    try:
        deadline = time.monotonic() + 120
        while sum(e == "eval_end" for e, _ in _events(log)) < 2:  # two evaluations committed
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no evaluation within 120 s"
            time.sleep(0.02)
        n_begun = sum(e == "eval_begin" for e, _ in _events(log))
        while sum(e == "eval_begin" for e, _ in _events(log)) == n_begun:  # the next one has begun
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.1))  # somewhere inside its transaction (or just after)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    committed = {k for e, k in _events(log) if e == "eval_end"}
    _, Session = open_store(url)
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == "killed"))
        assert run.status == "running" and run.heartbeat_at is not None and run.finished_at is None
        cks = list(s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id)))
        assert {c.step for c in cks} >= committed and len(cks) >= 2
        n_examples = s.scalar(select(func.count()).select_from(Example).where(Example.eval_set_id == cks[0].eval_set_id))
        for ck in cks:  # every evaluation in the store is whole
            n_pred = s.scalar(select(func.count()).select_from(Prediction).where(Prediction.checkpoint_id == ck.id))
            n_roll = s.scalar(select(func.count()).select_from(Rollout).where(Rollout.checkpoint_id == ck.id))
            points = set(s.scalars(select(MetricPoint.name).where(MetricPoint.run_id == run.id,
                                                                  MetricPoint.step == ck.step)))
            assert (n_pred, n_roll) == (n_examples, 8) and {"exact", "mean_iou", "loss"} <= points, ck.step
            assert s.scalar(select(func.count()).select_from(Prediction).where(
                Prediction.checkpoint_id == ck.id, Prediction.error_kind.is_(None))) == 0
        n, distinct = s.execute(select(func.count(), func.count(func.distinct(MetricPoint.name + ":" + func.cast(
            MetricPoint.step, type_=MetricPoint.name.type)))).where(MetricPoint.run_id == run.id)).one()
        assert n == distinct and n > 0

    heard = last_heard(run.heartbeat_at)
    assert effective_status(run.status, heard, heard + LOST_AFTER) == "running"
    assert effective_status(run.status, heard, heard + LOST_AFTER + dt.timedelta(seconds=1)) == "lost"
    client = make_client(url)
    client.app.state.clock = lambda: heard + dt.timedelta(seconds=91)
    assert client.get(f"/runs/{run.id}.json").json()["run"]["status"] == "lost"
    assert next(r for r in client.get("/runs.json").json()["runs"] if r["id"] == run.id)["status"] == "lost"
    assert "status-lost" in client.get(f"/runs/{run.id}").text
    client.app.state.clock = utcnow
    assert client.get(f"/runs/{run.id}.json").json()["run"]["status"] in ("running", "lost")
