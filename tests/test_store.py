"""lambdascope.store: the schema, SQLite settings, evaluation sets and one-transaction evaluations."""

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from lambdascope.store import (Checkpoint, Example, Prediction, Run, ensure_eval_set, open_store,
                               resolve_db_url, write_evaluation)
from lambdascope.traces import Record, TraceResult


def trace(tid, terms_spans):
    total = len(terms_spans) - 1
    return TraceResult(tid, [Record(k + 1, tid, k, total, t, sp) for k, (t, sp) in enumerate(terms_spans)], True)


A = trace("a", [("(λx.x) y", (0, 8)), ("y", (0, 0))])
B = trace("b", [("f ((λx.x) y)", (3, 11)), ("f y", (0, 0))])
A_AGAIN = trace("a2", [("(λx.x) y", (0, 8)), ("y", (0, 0))])  # same first term: same identity


@pytest.fixture
def Session(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'sub' / 's.db'}")[1]


def test_sqlite_is_set_up_for_one_writer_and_many_readers(Session):
    with Session() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_resolve_db_url(monkeypatch):
    monkeypatch.delenv("LAMBDASCOPE_DB", raising=False)
    assert resolve_db_url("x.db") == "sqlite:///x.db"
    assert resolve_db_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("LAMBDASCOPE_DB", "env.db")
    assert resolve_db_url(None) == "sqlite:///env.db"


def test_eval_set_is_created_once_keyed_by_identity(Session):
    with Session() as s, s.begin():
        es1, ids1 = ensure_eval_set(s, "e", "f.jsonl", [A, B, A_AGAIN])
    with Session() as s, s.begin():
        es2, ids2 = ensure_eval_set(s, "e", "other.jsonl", [B])  # existing: unchanged
    assert es1 == es2 and ids1 == ids2
    assert set(ids1) == {(A.identity, 0), (A.identity, 1), (B.identity, 0), (B.identity, 1)}
    with Session() as s:
        ex = s.scalar(select(Example).where(Example.trace_identity == B.identity, Example.step_k == 0))
        assert (ex.gold_start, ex.gold_end, ex.term_len, ex.trace_id) == (3, 11, 12, "b")
        assert ex.term[ex.gold_start:ex.gold_end] == "(λx.x) y"  # character spans, not tokens


def test_write_evaluation_is_all_or_nothing(Session):
    with Session() as s, s.begin():
        run = Run(name="r", config={"a": 1}, data_files=["f"], data_hash="h")
        s.add(run)
        s.flush()
        es, ids = ensure_eval_set(s, "e", "f", [A, B])
        run_id = run.id
    preds = [dict(example_id=i, pred_start=0, pred_end=0, start_conf=1.0, end_conf=1.0, iou=1.0, exact=True)
             for i in ids.values()]
    with pytest.raises(IntegrityError):
        with Session() as s, s.begin():
            write_evaluation(s, run_id=run_id, eval_set_id=es, step=1, path="p", metrics={},
                             predictions=preds + [dict(preds[0], example_id=10 ** 6)], rollouts=[])
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Checkpoint)) == 0
        assert s.scalar(select(func.count()).select_from(Prediction)) == 0
    with Session() as s, s.begin():
        ck = write_evaluation(s, run_id=run_id, eval_set_id=es, step=1, path="p", metrics={"exact": 1.0},
                              predictions=preds, rollouts=[], name="named")
    with Session() as s:
        c = s.get(Checkpoint, ck)
        assert c.name == "named" and c.metrics == {"exact": 1.0} and c.run.name == "r"
        assert s.scalar(select(func.count()).select_from(Prediction)) == len(preds)


def test_connecting_waits_for_a_lock_instead_of_failing(tmp_path):
    """Switching a new store to WAL needs a lock; a connection made while another process holds
    it (e.g. rank 0 creating the schema) waits for it rather than failing 'database is locked'."""
    import sqlite3
    import threading
    import time as _time

    from lambdascope.store import make_engine

    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE t (x)")
    # longer than the 5 s that Python's sqlite3 waits by itself
    threading.Thread(target=lambda: (_time.sleep(5.5), holder.commit()), daemon=True).start()
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
    holder.close()
