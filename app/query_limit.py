"""A time limit on every query of the dashboard's read connections (``serve --query-timeout``,
``Settings.query_timeout``): a statement still running that many seconds after it started is
stopped, and the page answers 503 (``errors.QueryTimeout``, from ``main``) while the server
goes on serving.

- SQLite: a progress handler on each read connection looks at the clock every
  ``PROGRESS_OPS`` virtual-machine instructions and interrupts the statement past its deadline
  (set when the statement starts, and covering the fetching of its rows);
- PostgreSQL: the connection's ``statement_timeout``, set when it is opened.

Either way the connection stays open and goes back to the pool ready for the next page.
"""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine

PROGRESS_OPS = 10_000  # SQLite instructions between two looks at the clock (~0.1 ms of work)
_DEADLINE = "lambdascope_query_deadline"  # in each connection's info: [monotonic deadline or None]


def limit_queries(engine: Engine, seconds: float | None) -> None:
    """Stop any statement on ``engine`` that runs longer than ``seconds`` (None or 0: no
    limit). SQLite and PostgreSQL; another engine is left without a limit."""
    if not seconds:
        return
    if engine.dialect.name == "sqlite":
        _limit_sqlite(engine, seconds)
    elif engine.dialect.name == "postgresql":
        _limit_postgresql(engine, seconds)


def _limit_sqlite(engine: Engine, seconds: float) -> None:
    @event.listens_for(engine, "connect")
    def install(dbapi_conn, record) -> None:
        box: list[float | None] = [None]
        record.info[_DEADLINE] = box

        def past_deadline() -> int:  # nonzero: SQLite interrupts the statement
            deadline = box[0]
            return 1 if deadline is not None and time.monotonic() > deadline else 0

        dbapi_conn.set_progress_handler(past_deadline, PROGRESS_OPS)

    @event.listens_for(engine, "before_cursor_execute")
    def arm(conn, cursor, statement, parameters, context, executemany) -> None:
        box = conn.info.get(_DEADLINE)
        if box is not None:
            box[0] = time.monotonic() + seconds

    @event.listens_for(engine, "reset")
    def disarm(dbapi_conn, record, reset_state=None) -> None:  # before the pool's rollback
        box = record.info.get(_DEADLINE)
        if box is not None:
            box[0] = None


def _limit_postgresql(engine: Engine, seconds: float) -> None:
    ms = max(1, round(seconds * 1000))

    @event.listens_for(engine, "connect")
    def set_timeout(dbapi_conn, record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"SET statement_timeout = {ms}")
        cur.close()
        dbapi_conn.commit()  # a setting of the session, kept past this transaction


def is_query_timeout(exc: BaseException) -> bool:
    """Whether a database error is a statement stopped by ``limit_queries``: SQLite's
    'interrupted', PostgreSQL's query_canceled (SQLSTATE 57014)."""
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.OperationalError):
        return "interrupted" in str(orig)
    return getattr(orig, "sqlstate", None) == "57014"
