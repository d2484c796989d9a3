"""Alembic owns the schema: a new store gets exactly the models' schema, and a store from an
older revision upgrades in place without losing data (SQLite and PostgreSQL)."""

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from lambdascope.migrate import current_revision, head_revision, upgrade
from lambdascope.store import Base, make_engine, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty store of this test's own: SQLite, then a fresh database in the session's PostgreSQL
    cluster (pg_url, tests/conftest.py; skipped where PostgreSQL cannot run)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("pg_url")


def index_names(engine) -> set[str]:
    # the catalogue itself: SQLAlchemy's reflection skips expression indexes on SQLite
    sql = ("SELECT name FROM sqlite_master WHERE type = 'index'" if engine.dialect.name == "sqlite"
           else "SELECT indexname FROM pg_indexes")
    with engine.connect() as conn:
        return set(conn.execute(text(sql)).scalars())


def test_migrations_build_the_models_schema(url):
    engine = make_engine(url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    # the expression indexes, which autogenerate cannot compare, exist too
    assert {"ix_predictions_conf", "ix_examples_togo"} <= index_names(engine)
    engine.dispose()


def test_an_older_store_upgrades_without_loss(url):
    engine = make_engine(url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO eval_sets (id, name, source, created_at) "
                          "VALUES (1, 'e', 'f', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO examples (id, eval_set_id, trace_identity, trace_id, step_k, "
                          "steps_total, term, gold_start, gold_end, term_len) VALUES "
                          "(7, 1, 'abc', '1-0', 0, 1, '(λx.x) a', 0, 8, 8)"))
        conn.execute(text("INSERT INTO labels (trace_identity, step_k, category, note, term, created_at) "
                          "VALUES ('abc', NULL, 'bad_gold', 'keep me', '(λx.x) a', CURRENT_TIMESTAMP)"))
    assert "ix_examples_len" not in index_names(engine)
    engine.dispose()
    engine, Session = open_store(url)  # opening upgrades
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT term FROM examples WHERE id = 7")).scalar() == "(λx.x) a"
        assert conn.execute(text("SELECT note FROM labels")).scalar() == "keep me"
    assert {"ix_examples_len", "ix_predictions_conf"} <= index_names(engine)
    engine.dispose()


def test_db_command(tmp_path):
    db = tmp_path / "s.db"
    run = lambda *a: subprocess.run([sys.executable, "-m", "lambdascope.cli", "db", *a, "--db", str(db)],
                                    capture_output=True, text=True)
    r = run("current")
    assert r.returncode == 0 and "none (empty store)" in r.stdout
    r = run("upgrade")
    assert r.returncode == 0 and f"-> {head_revision()}" in r.stderr
    r = run("upgrade")
    assert "already at the newest" in r.stderr
    assert run("frobnicate").returncode == 2
