"""The store tells the truth after a crash (issue 16): a run whose trainer stopped being heard from
is ``lost`` (a status derived from the writer's heartbeat, never stored), and metric points are
idempotent: a (run, name, step) is stored once, however often a resumed run writes it again, and
migration 0004 removes the repeats that older stores hold."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import pytest
from sqlalchemy import func, select, text

from lambdascope.migrate import upgrade
from lambdascope.store import (MetricPoint, Run, insert_metric_points, make_engine, open_store, utcnow,
                               write_evaluation)
from lambdascope.vocabulary import (HEARTBEAT_SECONDS, LOST_AFTER, STORED_STATUSES, RunStatus, effective_status,
                                    last_heard)
from tests.crash_harness import events, start, train_command
from tests.trainer_helpers import write_generated

T0 = dt.datetime(2026, 1, 2, 3, 4, 5)


# ---------------------------------------------------------------------------------------------
# The rule


def test_a_running_run_unheard_from_for_over_90_s_is_lost():
    assert LOST_AFTER == dt.timedelta(seconds=90) and HEARTBEAT_SECONDS <= 15
    beat = T0
    assert effective_status("running", beat, T0 + dt.timedelta(seconds=90)) == RunStatus.RUNNING
    assert effective_status("running", beat, T0 + dt.timedelta(seconds=90, microseconds=1)) == RunStatus.LOST
    assert effective_status(RunStatus.RUNNING, beat, T0 + dt.timedelta(hours=5)) == "lost"
    for status in ("finished", "failed", "stopped"):  # only a running run can be lost
        assert effective_status(status, beat, T0 + dt.timedelta(days=3)) == status
    assert effective_status("running", None, T0) == "running"  # never heard from at all: no claim
    # a row from before heartbeats: its update and its newest activity stand in for one
    assert last_heard(None, [T0, None, T0 + dt.timedelta(minutes=3)]) == T0 + dt.timedelta(minutes=3)
    assert last_heard(T0, [T0 + dt.timedelta(minutes=3)]) == T0  # a heartbeat is the word
    assert last_heard(None, [None]) is None
    assert RunStatus.LOST == "lost" and RunStatus.LOST not in STORED_STATUSES


def test_the_writer_stamps_the_heartbeat_on_its_own_timer(tmp_path):
    """From the start, every HEARTBEAT_SECONDS (here 0.1 s) while the training side sends
    nothing at all (a long evaluation), and no more once the run has ended."""
    from lambdascope.writer import StoreWriter

    engine, Session = open_store(f"sqlite:///{tmp_path}/store.db")
    w = StoreWriter(Session, heartbeat_seconds=0.1)
    before = utcnow()
    run_id = w.start_run("beats", resuming=False, config={}, data_files=[], data_hash="0" * 64)

    def beat() -> dt.datetime:
        with Session() as s:
            return s.scalar(select(Run.heartbeat_at).where(Run.id == run_id))

    first = beat()
    assert first is not None and first >= before  # stamped at the start, synchronously
    seen = {first}
    deadline = time.monotonic() + 10
    while len(seen) < 4 and time.monotonic() < deadline:  # the training side is busy elsewhere
        time.sleep(0.05)
        seen.add(beat())
    assert len(seen) >= 4, seen
    w.update_run(run_id, status=RunStatus.FINISHED)
    w.flush()
    last = beat()
    time.sleep(0.4)
    assert beat() == last  # a finished run has no heartbeat
    w.close()
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# Idempotent metric points, on both engines


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("pg_url")


def points_of(Session, run_id: int) -> list[tuple[str, int, float]]:
    with Session() as s:
        return [tuple(r) for r in s.execute(select(MetricPoint.name, MetricPoint.step, MetricPoint.value)
                                            .where(MetricPoint.run_id == run_id)
                                            .order_by(MetricPoint.name, MetricPoint.step))]


def test_a_point_written_again_replaces_the_one_stored(store_url):
    engine, Session = open_store(store_url)
    with Session() as s, s.begin():
        run = Run(name="r", config={}, data_files=[], data_hash="0" * 64)
        s.add(run)
        s.flush()
        run_id = run.id
        es = s.execute(text("INSERT INTO eval_sets (name, source, created_at) "
                            "VALUES ('e', 'f', CURRENT_TIMESTAMP) RETURNING id")).scalar_one()
    with Session() as s, s.begin():
        insert_metric_points(s, [dict(run_id=run_id, step=k, name="loss", value=1.0) for k in range(5)])
    with Session() as s, s.begin():  # a resumed run from step 2: steps 2-4 again, and on
        insert_metric_points(s, [dict(run_id=run_id, step=k, name="loss", value=2.0) for k in range(2, 7)]
                             + [dict(run_id=run_id, step=6, name="loss", value=3.0)])  # twice in one batch
    with Session() as s, s.begin():  # an evaluation written again
        for value in (0.5, 0.75):
            write_evaluation(s, run_id=run_id, eval_set_id=es, step=4, path="p", metrics={}, predictions=[],
                             rollouts=[], metric_points=[dict(step=4, name="exact", value=value)])
    assert points_of(Session, run_id) == [("exact", 4, 0.75)] + [("loss", k, 1.0) for k in (0, 1)] + [
        ("loss", k, 2.0) for k in (2, 3, 4, 5)] + [("loss", 6, 3.0)]
    with Session() as s, pytest.raises(Exception):  # and the store itself refuses a repeat
        s.execute(MetricPoint.__table__.insert(), [dict(run_id=run_id, step=0, name="loss", value=9.0)])
        s.flush()
    engine.dispose()


def test_migration_0004_keeps_the_newest_of_repeated_points(store_url):
    engine = make_engine(store_url)
    upgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO runs (id, name, config, data_files, data_hash, status, started_at, "
                          "updated_at) VALUES (1, 'r', '{}', '[]', 'h', 'running', CURRENT_TIMESTAMP, "
                          "CURRENT_TIMESTAMP), (2, 's', '{}', '[]', 'h', 'finished', CURRENT_TIMESTAMP, "
                          "CURRENT_TIMESTAMP)"))
        rows = []
        for kill in range(6):  # six kills and resumes, each writing steps 0-9 of loss again
            rows += [dict(r=1, s=k, n="loss", v=kill + k / 100) for k in range(10)]
        rows += [dict(r=1, s=k, n="lr", v=0.1) for k in range(10)]  # never repeated
        rows += [dict(r=2, s=3, n="loss", v=5.0), dict(r=2, s=3, n="loss", v=6.0)]
        conn.execute(text("INSERT INTO metric_points (run_id, step, name, value, time) "
                          "VALUES (:r, :s, :n, :v, CURRENT_TIMESTAMP)"), rows)
        assert conn.execute(text("SELECT count(*) FROM metric_points")).scalar() == 72
    engine.dispose()
    engine, Session = open_store(store_url)  # opening upgrades
    assert points_of(Session, 1) == [("loss", k, 5 + k / 100) for k in range(10)] + [
        ("lr", k, 0.1) for k in range(10)]
    assert points_of(Session, 2) == [("loss", 3, 6.0)]
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# A real trainer, killed with SIGKILL between two checkpoints, then resumed


@pytest.fixture(scope="module")
def crash_traces(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "traces.jsonl"
    write_generated(path, 120, seed=5)
    return path


def _wait(what: str, proc, condition, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the trainer ended (rc {proc.returncode}) before {what}:\n"
                                 + proc.stderr.read()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.02)


def test_a_killed_trainer_is_lost_and_its_resumption_repeats_no_point(tmp_path, crash_traces):
    from tests.app_store import make_client

    db, out, log = f"sqlite:///{tmp_path}/store.db", tmp_path / "run", tmp_path / "events.log"
    steps, every, name = 60, 20, "crash"
    engine, Session = open_store(db)

    def loss_steps() -> list[int]:
        with Session() as s:
            return list(s.scalars(select(MetricPoint.step).join(Run, Run.id == MetricPoint.run_id)
                                  .where(Run.name == name, MetricPoint.name == "loss")))

    def row() -> Run | None:
        with Session() as s:
            return s.scalar(select(Run).where(Run.name == name))

    # every step is slow (0.1 s) and writes its points; kill once points past the first
    # checkpoint are in the store, before the second checkpoint
    proc = start(train_command(crash_traces, db, out, steps=steps, eval_every=every, run_name=name), log,
                 step_pause=0.1)
    _wait("the first evaluation", proc, lambda: ("eval_end", every) in {e[:2] for e in events(log)})
    _wait("points past it", proc, lambda: max(loss_steps(), default=0) > every + 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert sorted(int(f.stem.split("_")[1]) for f in out.glob("ckpt_*.pt")) == [every]
    killed_at = max(loss_steps())
    run = row()
    assert run.status == "running" and run.heartbeat_at is not None  # what the store says

    client = make_client(db)
    later = run.heartbeat_at + LOST_AFTER + dt.timedelta(seconds=1)

    def shown(now: dt.datetime | None = None) -> tuple[dict, dict, str]:
        client.app.state.clock = (lambda: now) if now else utcnow
        listed = next(r for r in client.get("/runs.json").json()["runs"] if r["id"] == run.id)
        one = client.get(f"/runs/{run.id}.json").json()["run"]
        return listed, one, client.get(f"/runs/{run.id}").text

    listed, one, page = shown()  # heard from less than 90 s ago: still running
    assert listed["status"] == one["status"] == "running", (listed, one)
    listed, one, page = shown(later)  # the clock moved past 90 s without a heartbeat: lost
    assert listed["status"] == one["status"] == "lost", (listed, one)
    assert listed["last_heard_at"] == one["last_heard_at"] == run.heartbeat_at.isoformat()
    assert 'status-lost' in page and "no sign of life for 1 min" in page and 'class="live-dot"' not in page
    assert 'status-lost' in client.get("/").text

    # --resume: running again, and it writes steps every+1 .. killed_at again
    proc = start(train_command(crash_traces, db, out, steps=steps, eval_every=every, resume=True), log,
                 step_pause=0.05)
    _wait("the resumed run's row", proc, lambda: row().heartbeat_at > run.heartbeat_at)
    listed, one, page = shown()
    assert listed["status"] == one["status"] == "running" and 'class="live-dot"' in page
    _wait("the resumed run's points past the kill", proc, lambda: max(loss_steps()) > killed_at)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert f"resuming {name} from" in err and f"(step {every})" in err
    got = loss_steps()
    assert sorted(got) == list(range(1, steps + 1)), f"{len(got) - len(set(got))} repeated points"
    with Session() as s:
        n, distinct = s.execute(text(
            "SELECT count(*), count(DISTINCT name || ':' || step) FROM metric_points")).one()
    assert n == distinct
    assert row().status == "finished" and shown(later + dt.timedelta(days=1))[0]["status"] == "finished"
    engine.dispose()
