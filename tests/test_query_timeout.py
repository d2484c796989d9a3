"""A time limit on every page's queries (issue 16): a query past ``Settings.query_timeout``
(``serve --query-timeout``) is stopped, the page answers 503 with a message (JSON for a twin),
and the server goes on serving: the next request on the same connections answers 200. SQLite
(a progress handler) and PostgreSQL (statement_timeout), with an artificially slow query reached
through a test-only route."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from app.deps import ReadDB
from app.errors import QueryTimeout
from app.settings import DEFAULT_QUERY_TIMEOUT, SETTINGS_ENV, Settings, serve_settings, settings_from_env, settings_to_env
from tests.app_store import make_client

LIMIT = 0.3
SLOW = {  # each takes far longer than LIMIT (tens of seconds) when nothing stops it
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
              "SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(60)",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def limited_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("pg_url")


def with_slow_routes(client):
    """The dashboard with /slow and /slow.json: one artificially slow query on the read session,
    as a page and as a JSON twin."""
    app = client.app
    dialect = app.state.read_engine.dialect.name

    @app.get("/slow.json")
    def slow_json(db: ReadDB):
        return {"n": db.execute(text(SLOW[dialect])).scalar()}

    @app.get("/slow", response_class=HTMLResponse)
    def slow_page(db: ReadDB):
        return HTMLResponse(f"<p>{db.execute(text(SLOW[dialect])).scalar()}</p>")

    return client


def test_a_query_past_the_limit_is_a_503_and_the_server_goes_on(limited_url):
    c = with_slow_routes(make_client(limited_url, query_timeout=LIMIT, threads=1))
    assert c.get("/runs.json").status_code == 200
    for round_ in range(2):  # twice: the stopped connection serves again, and stops again
        t0 = time.monotonic()
        r = c.get("/slow.json")
        took = time.monotonic() - t0
        assert r.status_code == 503, r.text
        assert r.json() == {"error": QueryTimeout(LIMIT).message, "status": 503}
        assert "limit of 0.3 s" in r.json()["error"] and "--query-timeout" in r.json()["error"]
        assert LIMIT <= took < LIMIT + 5, took
        page = c.get("/slow")
        assert page.status_code == 503 and "text/html" in page.headers["content-type"]
        assert "limit of 0.3 s" in page.text
        for path in ("/runs.json", "/", "/labels.json"):  # and the next requests are answered
            assert c.get(path).status_code == 200, path


def test_queries_under_the_limit_and_without_one_are_not_stopped(limited_url):
    """A fast query runs whole however long the page has been open before it; a limit of 0 is
    none (the slow query then runs to its end: here a shorter one)."""
    c = make_client(limited_url, query_timeout=LIMIT)
    dialect = c.app.state.read_engine.dialect.name
    short = {"sqlite": SLOW["sqlite"].replace("1000000000", "1000"), "postgresql": "SELECT pg_sleep(0.05)"}

    @c.app.get("/waits.json")
    def waits(db: ReadDB):
        first = db.execute(text(short[dialect])).scalar()
        time.sleep(LIMIT * 1.5)  # the page's own work between two queries is not a query's time
        return {"first": first, "second": db.execute(text(short[dialect])).scalar()}

    assert c.get("/waits.json").status_code == 200
    unlimited = make_client(limited_url, query_timeout=0)
    slower = {"sqlite": SLOW["sqlite"].replace("1000000000", "3000000"), "postgresql": "SELECT pg_sleep(0.6)"}

    @unlimited.app.get("/slower.json")
    def slower_json(db: ReadDB):
        return {"n": db.execute(text(slower[dialect])).scalar()}

    assert unlimited.get("/slower.json").status_code == 200


def test_the_limit_is_a_setting_and_a_flag_of_serve(tmp_path, monkeypatch):
    assert Settings(db_url="sqlite://").query_timeout == DEFAULT_QUERY_TIMEOUT == 2.0
    s = serve_settings("x.db", "127.0.0.1", None, query_timeout=0.5)
    assert s.query_timeout == 0.5
    monkeypatch.setenv(SETTINGS_ENV, settings_to_env(s))
    assert settings_from_env().query_timeout == 0.5  # serve --workers N: every process keeps it
    for bad in (-1.0, float("nan"), 1e9):
        with pytest.raises(ValueError, match="query_timeout"):
            make_client(f"sqlite:///{tmp_path}/s.db", query_timeout=bad)
    cli = [sys.executable, "-m", "lambdascope.cli", "serve"]
    out = subprocess.run(cli + ["--help"], capture_output=True, text=True)
    assert "--query-timeout SECONDS" in out.stdout and "503" in out.stdout
    for bad, said in (("-1", "expected 0 to 3600 seconds, got -1"), ("soon", "expected a number of seconds")):
        r = subprocess.run(cli + ["--query-timeout", bad, "--db", str(tmp_path / "s.db")], capture_output=True,
                           text=True)
        assert r.returncode == 2 and said in r.stderr and "--query-timeout" in r.stderr, r.stderr
    assert json.loads(settings_to_env(Settings(db_url="sqlite://", query_timeout=0)))["query_timeout"] == 0


def test_a_comparison_vector_read_long_after_an_earlier_query_is_not_stopped(seeded, monkeypatch):
    """compute_vector fetches from the driver's cursor, but its statement goes through
    SQLAlchemy, so the time limit arms for it afresh: a page that queried, then worked past the
    limit, still reads a checkpoint's vector whole (a statement run on the bare cursor would find
    the earlier query's deadline passed and be interrupted)."""
    import app.query_limit
    from app.comparison import compute_vector

    monkeypatch.setattr(app.query_limit, "PROGRESS_OPS", 1)  # the deadline looked at every instruction
    c = make_client(seeded.url, query_timeout=LIMIT)

    @c.app.get("/vector.json")
    def vector(db: ReadDB):
        db.execute(text("SELECT 1")).scalar()
        time.sleep(LIMIT * 1.5)
        v = compute_vector(db, seeded.ck1)
        return {"n": len(v.ids), "exact": int(v.exact.sum())}

    r = c.get("/vector.json")
    assert r.status_code == 200, r.text
    assert r.json()["n"] > 0
