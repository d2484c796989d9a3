"""How the server runs its handlers: at most ``threads`` requests at once in one process
(``serve --threads``), however many clients wait."""

import asyncio
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def most_handlers_at_once(url: str, monkeypatch, threads: int | None, clients: int = 8) -> int:
    """Send ``clients`` requests at once to a real app (its lifespan run) whose runs page takes
    40 ms, and count how many of its handlers ran at the same moment."""
    from app import queries
    from app.settings import Settings
    from app.main import create_app

    lock, now, most = threading.Lock(), [0], [0]
    real = queries.runs_data

    def slow_runs_data(**kw):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        try:
            time.sleep(0.04)
            return real(**kw)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(queries, "runs_data", slow_runs_data)
    extra = {} if threads is None else {"threads": threads}
    app = create_app(Settings(db_url=url, warm_caches=False, **extra))

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                answers = await asyncio.gather(*(c.get("/runs.json") for _ in range(clients)))
        assert [a.status_code for a in answers] == [200] * clients
        assert all(a.json()["runs"] for a in answers)

    asyncio.run(go())
    return most[0]


@pytest.mark.parametrize("threads", [1, 3])
def test_handlers_run_at_most_threads_at_once(seeded, monkeypatch, threads):
    assert most_handlers_at_once(seeded.url, monkeypatch, threads) == threads


def test_default_is_four_handlers_at_once(seeded, monkeypatch):
    # not FastAPI's 40: Python-bound handlers only take turns on the GIL (bench_dashboard.py)
    from app.settings import DEFAULT_THREADS

    assert DEFAULT_THREADS == 4
    assert most_handlers_at_once(seeded.url, monkeypatch, None) == 4


@pytest.mark.parametrize("value, message", [("0", "expected 1 to 64 threads, got 0"),
                                            ("65", "expected 1 to 64 threads, got 65"),
                                            ("two", "expected a number of threads, got 'two'")])
def test_serve_refuses_a_bad_thread_count(value, message, capsys):
    from lambdascope.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--db", "x.db", "--threads", value])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_create_app_refuses_a_bad_thread_count(seeded):
    from app.settings import Settings
    from app.main import create_app

    with pytest.raises(ValueError, match="threads: 1 to 64, got 0"):
        create_app(Settings(db_url=seeded.url, warm_caches=False, threads=0))


def test_a_label_write_waiting_for_the_lock_does_not_stop_the_pages(fresh):
    """While the trainer holds SQLite's write lock (an evaluation being committed), a label
    POST waits for it in a thread of its own: with one page thread, pages still answer, and
    the label is written once the lock is free."""
    import sqlite3

    from app.settings import Settings
    from app.main import create_app

    settings = Settings(db_url=fresh.url, warm_caches=False, threads=1)
    app = create_app(settings)
    identity = fresh.traces[3].identity
    trainer = sqlite3.connect(fresh.url.removeprefix("sqlite:///"), isolation_level=None)

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                trainer.execute("BEGIN IMMEDIATE")  # the trainer's write transaction
                post = asyncio.create_task(c.post(
                    "/labels", data={"identity": identity, "category": "other", "note": "queued"},
                    headers={"X-CSRF-Token": settings.csrf_token}))
                await asyncio.sleep(0.3)
                assert not post.done()  # waiting for the lock
                t0 = time.perf_counter()
                for path in ("/runs.json", f"/traces/{identity}.json", "/labels.json"):
                    r = await asyncio.wait_for(c.get(path), timeout=5)
                    assert r.status_code == 200
                pages_s = time.perf_counter() - t0
                assert not post.done()
                trainer.execute("COMMIT")
                answer = await asyncio.wait_for(post, timeout=10)
                assert answer.status_code == 303, answer.text
                labels = (await c.get("/labels.json")).json()["labels"]
                return pages_s, labels

    pages_s, labels = asyncio.run(go())
    trainer.close()
    assert pages_s < 2
    assert [(lb["trace_identity"], lb["note"]) for lb in labels] == [(identity, "queued")]


def test_starting_compiles_the_templates_and_freezes_what_it_made(seeded):
    """What the server makes while starting lives as long as it does: frozen, it is left out
    of the collector's full collections (60 ms each before, under bench_dashboard's load)."""
    import gc

    from app.settings import Settings
    from app.main import create_app

    app = create_app(Settings(db_url=seeded.url, warm_caches=False))
    cache = app.state.renderer.env.cache
    assert not any("examples.html" in str(k) for k in cache)

    async def go():
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    gc.unfreeze()
    try:
        assert asyncio.run(go()) > 10_000
        assert any("examples.html" in str(k) for k in cache)
    finally:
        gc.unfreeze()
