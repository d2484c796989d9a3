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
    # the page cache off: with it, concurrent requests for one page are made once (app.page_cache)
    app = create_app(Settings(db_url=url, warm_caches=False, page_cache_mb=0, **extra))

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


def test_a_trace_page_answers_while_every_page_thread_is_taken(seeded, monkeypatch):
    """Over SQLite a trace page is made on the event loop, not in a page thread: with the one
    page thread held by a slow runs page, trace pages the page cache has not seen still answer
    at once (and right), in order, before the runs page is done."""
    from app import queries
    from app.settings import Settings
    from app.main import create_app

    release = threading.Event()
    real = queries.runs_data

    def held_runs_data(**kw):
        release.wait(10)
        return real(**kw)

    monkeypatch.setattr(queries, "runs_data", held_runs_data)
    app = create_app(Settings(db_url=seeded.url, warm_caches=False, threads=1))
    identities = [tr.identity for tr in seeded.traces[:3]]

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                runs = asyncio.create_task(c.get("/runs.json"))
                await asyncio.sleep(0.2)
                assert not runs.done()  # the page thread is taken
                pages = [await asyncio.wait_for(c.get(f"/traces/{i}", params={"ck": seeded.ck1}), timeout=3)
                         for i in identities]
                assert not runs.done()
                release.set()
                return pages, await asyncio.wait_for(runs, timeout=10)

    try:
        pages, runs = asyncio.run(go())
    finally:
        release.set()
    assert runs.status_code == 200
    for identity, page in zip(identities, pages):
        assert page.status_code == 200
        assert f'<span class="mono">{identity}</span>' in page.text
        assert 'id="step-0"' in page.text


def test_a_long_trace_page_is_made_in_a_page_thread_and_is_the_same(seeded, monkeypatch):
    """A trace of more than ``ON_LOOP_STEPS`` steps is rendered in a page thread (so a long
    one never holds the event loop): the same page as on the loop, unknown traces a 404 both ways."""
    import app.routes as routes
    from tests.app_store import make_client

    longest = max(seeded.traces, key=lambda tr: len(tr.records))
    identity = longest.identity
    client = make_client(seeded.url, page_cache_mb=0)
    on_loop = client.get(f"/traces/{identity}", params={"ck": seeded.ck2})
    missing_on_loop = client.get("/traces/0123456789abcdef")
    names = []
    real = routes.in_page_thread

    async def counted(fn):
        names.append(threading.current_thread().name)
        return await real(fn)

    monkeypatch.setattr(routes, "in_page_thread", counted)
    monkeypatch.setattr(routes, "ON_LOOP_STEPS", len(longest.records) - 1)  # its steps, one too many
    in_thread = client.get(f"/traces/{identity}", params={"ck": seeded.ck2})
    assert len(names) == 1  # the render, not the data
    assert on_loop.status_code == in_thread.status_code == 200
    assert on_loop.text == in_thread.text
    assert missing_on_loop.status_code == client.get("/traces/0123456789abcdef").status_code == 404
