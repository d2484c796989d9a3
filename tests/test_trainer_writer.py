"""lambdascope.writer: evaluations are written whole or not at all; metric points flow on their own."""

import threading
import time

import pytest
from sqlalchemy import event, func, select

from lambdascope.store import (Checkpoint, MetricPoint, Prediction, Rollout, Run, ensure_eval_set,
                               open_store)
from lambdascope.traces import Record, TraceResult
from lambdascope.writer import NullWriter, StoreWriter, WriterError


def trace(tid: str, terms_spans) -> TraceResult:
    total = len(terms_spans) - 1
    return TraceResult(tid, [Record(k + 1, tid, k, total, t, sp) for k, (t, sp) in enumerate(terms_spans)], True)


TRACES = [trace("a", [("(λx.x) y", (0, 8)), ("y", (0, 0))]),
          trace("b", [("f ((λx.x) y)", (3, 11)), ("f y", (0, 0))])]


@pytest.fixture
def store(tmp_path):
    engine, Session = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with Session() as s, s.begin():
        run = Run(name="r", config={}, data_files=[], data_hash="")
        s.add(run)
        s.flush()
        es_id, ids = ensure_eval_set(s, "e", "test", TRACES)
        run_id = run.id
    return engine, Session, run_id, es_id, ids


def evaluation(run_id, es_id, ids, step=1, bad=False):
    preds = [dict(example_id=eid, pred_start=0, pred_end=0, start_conf=0.5, end_conf=0.5, iou=1.0, exact=True)
             for eid in ids.values()]
    if bad:  # the same example twice: the primary key fails after the checkpoint row went in
        preds.append(dict(preds[0]))
    rollouts = [dict(trace_identity=t.identity, success=True, reached_normal_form=True, steps=1, gold_steps=1,
                     first_divergent_step=None, path=[[t.records[0].term, [0, 0]]]) for t in TRACES]
    return dict(run_id=run_id, eval_set_id=es_id, step=step, path="x.pt", metrics={"exact": 1.0},
                predictions=preds, rollouts=rollouts, metric_points=[dict(step=step, name="exact", value=1.0)])


def counts(Session):
    with Session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Checkpoint, Prediction, Rollout, MetricPoint))


def test_an_evaluation_is_written_whole(store):
    _, Session, run_id, es_id, ids = store
    w = StoreWriter(Session, flush_seconds=0.05)
    w.evaluation(**evaluation(run_id, es_id, ids))
    w.close()
    assert counts(Session) == (1, len(ids), 2, 1)


def test_a_failing_evaluation_leaves_nothing_behind(store):
    _, Session, run_id, es_id, ids = store
    w = StoreWriter(Session, flush_seconds=0.05)
    w.evaluation(**evaluation(run_id, es_id, ids, bad=True))
    with pytest.raises(WriterError, match="IntegrityError"):
        w.close(timeout=10)
    assert counts(Session) == (0, 0, 0, 0)  # not the checkpoint row, not one prediction
    with pytest.raises(WriterError):  # and the trainer hears of it at its next call
        w.metric(run_id, 1, "loss", 1.0)


def test_readers_never_see_half_an_evaluation(store):
    engine, Session, run_id, es_id, ids = store
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            with Session() as s:  # one statement, one snapshot (two could straddle a commit)
                n_ck, n_pred = s.execute(select(select(func.count()).select_from(Checkpoint).scalar_subquery(),
                                                select(func.count()).select_from(Prediction).scalar_subquery())).one()
                seen.append((n_ck, n_pred))

    # slow the writer down between its statements, so a reader has time to look in between
    @event.listens_for(engine, "after_cursor_execute")
    def slow(*args):
        if threading.current_thread().name == "store-writer":
            time.sleep(0.02)

    t = threading.Thread(target=reader)
    t.start()
    w = StoreWriter(Session)
    for step in range(1, 4):
        w.evaluation(**evaluation(run_id, es_id, ids, step=step))
    w.close(timeout=30)
    stop.set()
    t.join()
    assert {(c, p) for c, p in seen} <= {(k, k * len(ids)) for k in range(4)}
    assert (3, 3 * len(ids)) in seen or counts(Session)[:2] == (3, 3 * len(ids))


def test_metric_points_are_flushed_every_few_seconds_without_waiting(store):
    _, Session, run_id, _, _ = store
    w = StoreWriter(Session, flush_seconds=0.1)
    t0 = time.perf_counter()
    for i in range(500):
        w.metric(run_id, i, "loss", 1.0 / (i + 1))
    assert time.perf_counter() - t0 < 1.0  # putting points on the queue never waits for the database
    deadline = time.monotonic() + 10
    while counts(Session)[3] < 500 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counts(Session)[3] == 500  # written by the thread, before any flush or close
    w.update_run(run_id, status="finished")
    w.close()
    with Session() as s:
        assert s.get(Run, run_id).status == "finished"


def test_null_writer_has_the_same_interface():
    w = NullWriter()
    w.metric(1, 1, "loss", 1.0)
    w.evaluation(run_id=1)
    w.update_run(1, status="x")
    w.flush()
    w.close()
    assert w.written == {"metric_points": 0, "evaluations": 0}


def test_the_checkpoint_file_is_on_disk_before_its_row_is_committed(store, tmp_path, monkeypatch):
    """A power loss must not leave a checkpoint row naming a file whose bytes (or whose rename
    into place) never reached the disk: the writer fsyncs the file and its folder first."""
    import os

    engine, Session, run_id, es_id, ids = store
    ckpt = tmp_path / "run" / "ckpt_0000001.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"model")
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        with Session() as s:  # what a reader of the store could see at that moment
            synced.append((os.readlink(f"/proc/self/fd/{fd}"),
                           s.scalar(select(func.count()).select_from(Checkpoint))))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    w = StoreWriter(Session, flush_seconds=0.05)
    w.evaluation(**dict(evaluation(run_id, es_id, ids), path=str(ckpt)))
    w.close(timeout=30)
    assert counts(Session)[0] == 1
    assert (str(ckpt), 0) in synced and (str(ckpt.parent), 0) in synced  # both, before the row


def test_points_logged_before_an_evaluation_are_committed_before_it(store):
    """A process killed right after an evaluation's commit has every point logged before it
    (the recorder's SIGKILL test once found the loss of that step missing): the pending points
    go first, though their flush is not due."""
    _, Session, run_id, es_id, ids = store
    w = StoreWriter(Session, flush_seconds=3600)
    w.metric(run_id, 5, "loss", 0.25)
    w.evaluation(**evaluation(run_id, es_id, ids, step=5))
    deadline = time.monotonic() + 10
    while counts(Session)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with Session() as s:  # the evaluation is there: so is the loss, with no flush or close yet
        names = set(s.scalars(select(MetricPoint.name).where(MetricPoint.step == 5)))
    assert counts(Session)[0] == 1 and names == {"loss", "exact"}
    w.close()
