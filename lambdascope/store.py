"""The store: one schema, used by the trainer (writes) and the dashboard (reads, and labels).

SQLAlchemy 2.0 typed models. SQLite by default (WAL, a busy timeout, foreign keys on); any
SQLAlchemy URL works (PostgreSQL through ``postgresql+psycopg://``). The store holds character
spans only, never token indices.

Identity (docs/DESIGN.md): a trace is keyed by ``trace_identity`` (a hash of its first term's text),
an example by (trace identity, step_k). Labels use these keys, so they hold across runs.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, String, Text,
                        UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

DEFAULT_DB = "sqlite:///runs/lambdascope.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    """One training run."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]]  # the full configuration (model, optimiser, data options)
    data_files: Mapped[list[Any]]  # paths as given
    data_hash: Mapped[str] = mapped_column(String(64))  # sha256 over the data files' bytes
    # running|finished|failed|stopped (vocabulary.STORED_STATUSES); a running run whose heartbeat
    # is old reads as lost (vocabulary.effective_status)
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # data report: counts by reason…
    eval_set_id: Mapped[int | None] = mapped_column(ForeignKey("eval_sets.id"))
    message: Mapped[str | None] = mapped_column(Text)  # why it failed or stopped
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # the writer's, every few seconds

    checkpoints: Mapped[list["Checkpoint"]] = relationship(back_populates="run", order_by="Checkpoint.step")


class EvalSet(Base):
    """A fixed set of evaluation traces; every step of each trace is an example."""

    __tablename__ = "eval_sets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(Text)  # where the traces came from
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Example(Base):
    """One step of one evaluation trace, with its gold character span."""

    __tablename__ = "examples"
    id: Mapped[int] = mapped_column(primary_key=True)
    eval_set_id: Mapped[int] = mapped_column(ForeignKey("eval_sets.id", ondelete="CASCADE"))
    trace_identity: Mapped[str] = mapped_column(String(32))
    trace_id: Mapped[str] = mapped_column(String(200))  # the data file's trace_id, for people
    step_k: Mapped[int]
    steps_total: Mapped[int]
    term: Mapped[str] = mapped_column(Text)
    gold_start: Mapped[int]
    gold_end: Mapped[int]
    term_len: Mapped[int]  # code points
    __table_args__ = (
        UniqueConstraint("eval_set_id", "trace_identity", "step_k"),
        Index("ix_examples_trace", "trace_identity", "step_k"),
    )


class Checkpoint(Base):
    """A saved model and its evaluation (a training checkpoint, or a named evaluation of one)."""

    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    eval_set_id: Mapped[int] = mapped_column(ForeignKey("eval_sets.id"))
    step: Mapped[int]  # optimiser steps at save time
    path: Mapped[str] = mapped_column(Text)  # the checkpoint file
    name: Mapped[str | None] = mapped_column(String(200))  # set for `lambdascope evaluate --name`
    # None for the run's own evaluation (its held-out set); a suite's name (`train --suite
    # NAME=FILE`) for the same checkpoint file evaluated on that suite: a sibling row with the same
    # run, step and path, and the suite's evaluation set
    suite: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    metrics: Mapped[dict[str, Any]]  # summary: exact, mean_iou, nf_f1, rollout_success, …

    run: Mapped[Run] = relationship(back_populates="checkpoints")
    __table_args__ = (Index("ix_checkpoints_run", "run_id", "step"),
                      Index("ix_checkpoints_suite", "run_id", "suite", "step"))


class Prediction(Base):
    """A checkpoint's prediction on one example (character spans)."""

    __tablename__ = "predictions"
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"), primary_key=True)
    example_id: Mapped[int] = mapped_column(ForeignKey("examples.id", ondelete="CASCADE"), primary_key=True)
    pred_start: Mapped[int]
    pred_end: Mapped[int]
    start_conf: Mapped[float] = mapped_column(Float)  # softmax probability of the chosen start
    end_conf: Mapped[float] = mapped_column(Float)
    iou: Mapped[float] = mapped_column(Float)
    exact: Mapped[bool] = mapped_column(Boolean)
    error_kind: Mapped[str | None] = mapped_column(String(16))  # lambdascope.vocabulary.ERROR_KINDS
    __table_args__ = (
        Index("ix_predictions_exact", "checkpoint_id", "exact", "example_id"),
        Index("ix_predictions_kind", "checkpoint_id", "error_kind", "example_id"),
        Index("ix_predictions_iou", "checkpoint_id", "iou", "example_id"),
        # none by example alone: nothing reads one so, and it cost writes (migration 0007)
    )


class Rollout(Base):
    """A checkpoint driving the reduction of one evaluation trace by its own predictions."""

    __tablename__ = "rollouts"
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"), primary_key=True)
    trace_identity: Mapped[str] = mapped_column(String(32), primary_key=True)
    success: Mapped[bool] = mapped_column(Boolean)  # gold normal form (up to α) in the gold number of steps
    reached_normal_form: Mapped[bool] = mapped_column(Boolean)
    steps: Mapped[int]  # steps the model took
    gold_steps: Mapped[int]
    first_divergent_step: Mapped[int | None]  # first step whose predicted span differs from gold
    path: Mapped[list[Any]]  # [[term, [start, end]], …]: the model's own reduction
    outcome: Mapped[str | None] = mapped_column(String(16))  # lambdascope.vocabulary.ROLLOUT_OUTCOMES
    __table_args__ = (Index("ix_rollouts_trace", "trace_identity"),)


class MetricPoint(Base):
    """A point on a curve: loss, lr, tokens/s, exact match… at an optimiser step. One per (run,
    name, step): a point written again (a resumed run goes over steps it had already taken)
    replaces the stored one (``insert_metric_points``)."""

    __tablename__ = "metric_points"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("uq_metric_points_run_name_step", "run_id", "name", "step", unique=True),
                      Index("ix_metric_points_run_id", "run_id", "id"))  # a run's newest point


class DataProblem(Base):
    """An invalid record or trace found while reading a run's data."""

    __tablename__ = "data_problems"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    file: Mapped[str] = mapped_column(Text)
    line: Mapped[int]
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_data_problems_run", "run_id", "reason"),)


# Indexes for the dashboard's reads (app/): sorting examples by confidence, term length and
# steps to normal form along an index (keyset pagination), and metric curves read from the
# index alone. Expression indexes work in SQLite and PostgreSQL alike.
Index("ix_predictions_conf", Prediction.checkpoint_id, Prediction.start_conf * Prediction.end_conf,
      Prediction.example_id)
Index("ix_examples_len", Example.eval_set_id, Example.term_len)
Index("ix_examples_togo", Example.eval_set_id, Example.steps_total - Example.step_k)
Index("ix_metric_points_curve", MetricPoint.run_id, MetricPoint.name, MetricPoint.step, MetricPoint.value)


LABEL_CATEGORIES = ("bad_gold", "model_error", "interesting", "other")


class Label(Base):
    """A person's mark on a trace (``step_k`` None) or on one step of it."""

    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    trace_identity: Mapped[str] = mapped_column(String(32))
    step_k: Mapped[int | None]
    category: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    term: Mapped[str] = mapped_column(Text, default="")  # the trace's first term, for people
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("ix_labels_trace", "trace_identity", "step_k"),)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # the timeout first: switching to WAL needs a lock that another process may hold for a moment
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str = DEFAULT_DB, **kwargs) -> Engine:
    """An engine for ``url``; for SQLite, creates the folder and turns on WAL and the busy
    timeout on every connection."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url[len("sqlite:///"):])
        if str(path):
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def create_schema(engine: Engine) -> None:
    """Bring the store to the newest schema with the Alembic migrations (lambdascope/migrations):
    an empty store is created, an older one upgraded in place. Two processes opening a new store
    at once (the demo's trainer and server) may race: the loser re-checks and goes on."""
    from sqlalchemy.exc import DBAPIError

    from .migrate import current_revision, head_revision, upgrade

    head = head_revision()
    for attempt in range(3):
        if current_revision(engine) == head:
            return
        try:
            upgrade(engine)
            return
        except DBAPIError:
            if attempt == 2:
                raise
            time.sleep(0.5)


def open_store(url: str = DEFAULT_DB, **kwargs) -> tuple[Engine, sessionmaker]:
    """Engine and session factory for a store, creating the schema if it is missing."""
    engine = make_engine(url, **kwargs)
    create_schema(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)


def resolve_db_url(url: str | None) -> str:
    """``--db`` or ``$LAMBDASCOPE_DB`` or the default; a bare path means a SQLite file."""
    url = url or os.environ.get("LAMBDASCOPE_DB") or DEFAULT_DB
    if "://" not in url:
        url = "sqlite:///" + url
    return url


# ---------------------------------------------------------------------------------------------
# Writing (one place for the trainer, `lambdascope evaluate`, tests and benchmarks)


def ensure_eval_set(session, name: str, source: str, traces) -> tuple[int, dict[tuple[str, int], int]]:
    """The evaluation set ``name`` with every step of ``traces`` (``TraceResult``s) as examples;
    created if missing. Returns its id and a map (trace identity, step_k) -> example id. The
    caller commits."""
    from sqlalchemy import select

    es = session.scalar(select(EvalSet).where(EvalSet.name == name))
    if es is None:
        es = EvalSet(name=name, source=source)
        session.add(es)
        session.flush()
        rows = []
        seen: set[str] = set()
        for tr in traces:
            ident = tr.identity
            if ident in seen:  # the same first term twice: one trace is enough
                continue
            seen.add(ident)
            for r in tr.records:
                rows.append(dict(eval_set_id=es.id, trace_identity=ident, trace_id=r.trace_id,
                                 step_k=r.step_k, steps_total=r.steps_total, term=r.term,
                                 gold_start=r.span[0], gold_end=r.span[1], term_len=len(r.term)))
        if rows:
            session.execute(Example.__table__.insert(), rows)
    ids = {(ident, k): eid for eid, ident, k in session.execute(
        select(Example.id, Example.trace_identity, Example.step_k).where(Example.eval_set_id == es.id))}
    return es.id, ids


def write_evaluation(session, *, run_id: int, eval_set_id: int, step: int, path: str,
                     metrics: dict[str, Any], predictions: list[dict[str, Any]],
                     rollouts: list[dict[str, Any]], metric_points: list[dict[str, Any]] = (),
                     name: str | None = None, suite: str | None = None) -> int:
    """Insert one evaluation: the checkpoint row, all its predictions (dicts with example_id,
    pred_start, pred_end, start_conf, end_conf, iou, exact), rollouts (dicts with the Rollout
    columns but checkpoint_id) and metric points (dicts with step, name, value). A prediction's
    error kind and a rollout's outcome are judged here (``lambdascope.diagnosis``) when the rows
    do not carry them: in the trainer's writer thread, off the training loop. The caller runs
    this inside one transaction, so a reader sees all of it or none of it. ``suite`` names the
    evaluation suite this is (None: the run's own evaluation set)."""
    if any("error_kind" not in p for p in predictions) or any("outcome" not in r for r in rollouts):
        predictions, rollouts = judged(session, eval_set_id, predictions, rollouts)
    ck = Checkpoint(run_id=run_id, eval_set_id=eval_set_id, step=step, path=path, metrics=metrics,
                    name=name, suite=suite)
    session.add(ck)
    session.flush()
    if predictions:
        session.execute(Prediction.__table__.insert(),
                        [dict(p, checkpoint_id=ck.id) for p in predictions])
    if rollouts:
        session.execute(Rollout.__table__.insert(), [dict(r, checkpoint_id=ck.id) for r in rollouts])
    if metric_points:
        insert_metric_points(session, [dict(m, run_id=run_id, time=utcnow()) for m in metric_points])
    return ck.id


def write_keyed_evaluation(session, *, eval_set: tuple[str, str, Any], run_id: int,
                           predictions: list[dict[str, Any]], **evaluation: Any) -> tuple[int, int]:
    """``ensure_eval_set`` and ``write_evaluation`` in the caller's one transaction, for an
    evaluation whose evaluation set may not be in the store yet (``lambdascope import``, the
    ``Recorder``): ``eval_set`` is ``(name, source, traces)``, and each prediction names its
    example by ``example_key``, (trace identity, step_k), instead of ``example_id``. The run
    takes the set as its own when it has none. Returns (checkpoint id, evaluation set id)."""
    from sqlalchemy import update

    eval_set_id, ids = ensure_eval_set(session, *eval_set)
    rows = []
    for p in predictions:
        p = dict(p)
        key = p.pop("example_key")
        if key not in ids:
            raise KeyError(f"no example {key} in evaluation set {eval_set[0]!r}")
        rows.append(dict(p, example_id=ids[key]))
    session.execute(update(Run).where(Run.id == run_id, Run.eval_set_id.is_(None)).values(eval_set_id=eval_set_id))
    ck_id = write_evaluation(session, run_id=run_id, eval_set_id=eval_set_id, predictions=rows, **evaluation)
    return ck_id, eval_set_id


def insert_metric_points(session, points: list[dict[str, Any]]) -> None:
    """Insert metric points (dicts with run_id, step, name, value, and optionally time), each
    replacing the stored point of its (run, name, step) if there is one, and the last of any
    that repeat one in ``points``: INSERT … ON CONFLICT DO UPDATE on SQLite and PostgreSQL;
    on another engine, the points' keys deleted first. The caller commits."""
    from sqlalchemy import delete, tuple_

    latest: dict[tuple[int, str, int], dict[str, Any]] = {}
    for p in points:  # one statement may not update a row twice (PostgreSQL)
        latest[(p["run_id"], p["name"], p["step"])] = {"time": utcnow(), **p}
    rows = list(latest.values())
    if not rows:
        return
    table = MetricPoint.__table__
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "name", "step"],
                                          set_={"value": stmt.excluded.value, "time": stmt.excluded.time})
        session.execute(stmt, rows)
        return
    session.execute(delete(table).where(tuple_(table.c.run_id, table.c.name, table.c.step).in_(list(latest))))
    session.execute(table.insert(), rows)


def judged(session, eval_set_id: int, predictions: list[dict[str, Any]],
           rollouts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows with ``error_kind`` and ``outcome`` filled in, from the evaluation set's examples
    (their terms and gold spans, and each trace's gold normal form)."""
    from sqlalchemy import select

    from .diagnosis import judge, rollout_outcome

    examples: dict[int, tuple[str, int, int]] = {}
    gold_nf: dict[str, str] = {}
    for eid, term, gs, ge, ident, k, total in session.execute(
            select(Example.id, Example.term, Example.gold_start, Example.gold_end, Example.trace_identity,
                   Example.step_k, Example.steps_total).where(Example.eval_set_id == eval_set_id)):
        examples[eid] = (term, gs, ge)
        if k == total:
            gold_nf[ident] = term
    def kind(p: dict[str, Any]) -> str | None:
        ex = examples.get(p["example_id"])  # not of this set: the insert refuses it
        return judge(ex[0], ex[1:], (p["pred_start"], p["pred_end"])) if ex else None

    preds = [p if "error_kind" in p else dict(p, error_kind=kind(p)) for p in predictions]
    outs = [r if "outcome" in r else dict(r, outcome=rollout_outcome(
        r["path"], success=r["success"], gold_steps=r["gold_steps"],
        gold_normal_form=gold_nf.get(r["trace_identity"]))) for r in rollouts]
    return preds, outs
