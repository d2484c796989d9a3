"""Model work runs in its own bounded pool (app/models.py), never in the page threads: with the
pool saturated by a slow model, the other pages answer as fast as before, a further model
request is answered 429 with Retry-After, and the requests in the pool stop at their budget and
say so."""

import asyncio
import threading
import time

import httpx
import pytest

from lambdascope.terms import parse, redex_span

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# a term whose normal-order reduction takes many steps: the rollout outlasts the budget
LONG = "(λf.λx.f (f (f (f (f (f (f (f x)))))))) (λy.y) z"
STEP_S = 0.3  # the slow model's time per prediction
BUDGET_S = 1.0


class SlowPredictor:
    """Points at the true redex, slowly, recording the threads it ran in."""

    threads: set[str] = set()

    def predict(self, term):
        SlowPredictor.threads.add(threading.current_thread().name)
        time.sleep(STEP_S)
        s, e = redex_span(parse(term))
        return (s, e, 0.9, 0.9)

    def predict_many(self, terms):
        return [self.predict(t) for t in terms]


def test_a_saturated_model_pool_never_delays_the_pages(seeded):
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(db_url=seeded.url, warm_caches=False, model_workers=1, model_queue=1,
                              model_budget=BUDGET_S), model_loader=lambda path: SlowPredictor())
    pages = ["/", "/runs.json", f"/checkpoints/{seeded.ck1}", f"/checkpoints/{seeded.ck1}.json"]
    playground = {"term": LONG, "ck": seeded.ck1}

    async def timed(c, path):
        t0 = time.perf_counter()
        r = await c.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        return time.perf_counter() - t0

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=30) as c:
                for path in pages:  # warm: first queries, compiled templates, summaries cached
                    await timed(c, path)
                usual = {p: min([await timed(c, p) for _ in range(3)]) for p in pages}
                pool = app.state.models
                # one request computing, one waiting: the pool is full
                busy = [asyncio.create_task(c.get("/playground.json", params=playground)) for _ in range(2)]
                for _ in range(200):
                    if pool.pending == 2:
                        break
                    await asyncio.sleep(0.01)
                assert pool.pending == 2
                during = {p: max([await timed(c, p) for _ in range(3)]) for p in pages}
                refused = await c.get("/playground.json", params=playground)
                refused_page = await c.get("/playground", params=playground)
                refused_fragment = await c.get(f"/traces/{seeded.regression[0]}/beliefs",
                                               params={"ck": seeded.ck1, "step": 0})
                still_busy = pool.pending
                answers = await asyncio.gather(*busy)
        return usual, during, refused, refused_page, refused_fragment, still_busy, answers

    t0 = time.perf_counter()
    usual, during, refused, refused_page, refused_fragment, still_busy, answers = asyncio.run(go())
    elapsed = time.perf_counter() - t0
    assert still_busy == 2  # the pages were measured while the pool was full
    for path in usual:  # the usual latency: a slow model request is never in the way
        assert during[path] < max(0.25, 5 * usual[path]), (path, usual[path], during[path])
    for r in (refused, refused_page, refused_fragment):
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
    assert "the model is busy" in refused.json()["error"] and refused.json()["status"] == 429
    assert "the model is busy" in refused_page.text and "the model is busy" in refused_fragment.text
    # the two in the pool ran out of budget: what was done within it, and that it stopped
    for a in answers:
        m = a.json()["model"]
        assert a.status_code == 200 and m["budget_stopped"]
        assert 1 <= len(m["steps"]) <= BUDGET_S / STEP_S + 1
        assert m["end"].startswith(f"stopped: the model's time budget of {BUDGET_S:g} s per request ran out")
        assert f"({len(m['steps'])} step" in m["end"]
    assert elapsed < 2 * (BUDGET_S + STEP_S) + 5
    assert SlowPredictor.threads and all(t.startswith("lambdascope-model") for t in SlowPredictor.threads)


def test_the_pool_counts_what_it_holds():
    from app.errors import TooManyRequests
    from app.models import ModelPool

    pool = ModelPool(workers=1, queue=0, budget=0.5)
    release = threading.Event()

    async def go():
        first = asyncio.ensure_future(pool.run(lambda budget: release.wait(5)))
        await asyncio.sleep(0.05)
        with pytest.raises(TooManyRequests) as e:
            await pool.run(lambda budget: None)
        assert e.value.retry_after == 1 and e.value.headers == {"Retry-After": "1"}
        release.set()
        assert await first is True
        # a job that fails frees its place too
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda budget: 1 / 0)
        assert pool.pending == 0
        return await pool.run(lambda budget: budget.seconds)

    assert asyncio.run(go()) == 0.5
    with pytest.raises(ValueError):
        ModelPool(workers=0, queue=1, budget=1)
