"""The page cache (app/page_cache.py): a kept page is byte for byte what the handler makes, and
every change the pages show (a label, a checkpoint, a metric point, a run's status, the clock)
makes the next request a fresh one."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, update

from app.page_cache import PageCache, route_kind
from lambdascope.store import Checkpoint, MetricPoint, Run, open_store, utcnow, write_evaluation
from tests.app_helpers import csrf, pages
from tests.app_store import make_client

HTMX = {"HX-Request": "true", "HX-Target": "results"}


def cacheable(seeded) -> list[str]:
    """Every page and twin of the shared list the cache keeps (not the trace twin: beliefs)."""
    out = []
    for page, twin in pages(seeded):
        out += [p for p in (page, twin) if route_kind(p.split("?")[0]) is not None]
    assert len(out) >= 15 and not any(p.startswith(("/playground", "/traces/")) and ".json" in p for p in out)
    return out


def test_a_kept_page_is_what_the_handler_makes(seeded):
    secret = b"s" * 32  # the same form token on both
    cached, plain = make_client(seeded.url, secret=secret), make_client(seeded.url, page_cache_mb=0, secret=secret)
    stats = cached.app.state.page_cache.stats
    now = utcnow()  # run-b is running: its pages change with the clock, to the second
    cached.app.state.clock = plain.app.state.clock = lambda: now
    paths = cacheable(seeded) + [f"/examples?ck={seeded.ck1}&correct=wrong"]
    for path in dict.fromkeys(paths):  # each once: the first answer is made, the second kept
        for headers in ({}, HTMX):
            want = plain.get(path, headers=headers)
            first = cached.get(path, headers=headers)
            hits = stats()["hits"]
            again = cached.get(path, headers=headers)
            assert stats()["hits"] == hits + 1, path  # answered from the cache
            assert first.status_code == again.status_code == want.status_code == 200, (path, want.text[:300])
            assert first.content == again.content == want.content, path
            assert again.headers["content-type"] == want.headers["content-type"]
            assert again.headers["etag"] == first.headers["etag"]
            # the answer says where it came from; a page made with the cache off says nothing
            assert (first.headers["x-lambdascope-cache"], again.headers["x-lambdascope-cache"]) == ("miss", "hit"), path
            assert "x-lambdascope-cache" not in want.headers
    # an htmx fragment and its page are kept apart
    frag = cached.get(f"/examples?ck={seeded.ck1}", headers=HTMX).text
    page = cached.get(f"/examples?ck={seeded.ck1}").text
    assert "<html" in page and "<html" not in frag


def test_model_work_and_downloads_are_never_kept(seeded):
    c = make_client(seeded.url)
    ident = seeded.regression[0]
    for path in (f"/traces/{ident}.json?ck={seeded.ck2}", "/playground?term=x", "/labels/export.jsonl",
                 f"/checkpoints/{seeded.ck1}/heads.json", "/static/app.css"):
        c.get(path)
        r = c.get(path)
        assert "etag" not in r.headers or path.startswith("/static"), path
        assert "x-lambdascope-cache" not in r.headers, path
    assert c.app.state.page_cache.stats()["entries"] == 0


def test_an_etag_answers_304_until_the_page_changes(fresh):
    c = make_client(fresh.url)
    ident = fresh.regression[0]
    r = c.get("/labels")
    tag = r.headers["etag"]
    again = c.get("/labels", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    assert c.get("/labels", headers={"If-None-Match": '"other"'}).status_code == 200
    r = c.post("/labels", data={"identity": ident, "category": "bad_gold", "note": "after the tag",
                                "csrf": csrf(c, ident)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    changed = c.get("/labels", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and "after the tag" in changed.text and changed.headers["etag"] != tag


def test_labels_checkpoints_points_and_statuses_reach_the_pages(fresh):
    c = make_client(fresh.url)
    ident = fresh.regression[0]
    watched = [f"/traces/{ident}", "/labels.json", f"/compare?a={fresh.ck1}&b={fresh.ck2}",
               f"/checkpoints/{fresh.ck2}.json", f"/runs/{fresh.run_a}.json", "/runs.json",
               f"/examples.json?ck={fresh.ck1}&labelled=0"]
    for p in watched:
        c.get(p)  # all kept
    # a label: the trace page, the labels list and the unlabelled examples change
    before = c.get(f"/examples.json?ck={fresh.ck1}&labelled=0").json()["total"]
    r = c.post("/labels", data={"identity": ident, "category": "model_error", "note": "seen-by-cache",
                                "csrf": csrf(c, ident)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert "seen-by-cache" in c.get(f"/traces/{ident}").text
    assert any(lb["note"] == "seen-by-cache" for lb in c.get("/labels.json").json()["labels"])
    assert c.get(f"/examples.json?ck={fresh.ck1}&labelled=0").json()["total"] < before

    # a new checkpoint of run-a: the run's list, the neighbour links, the pickers
    engine, Session = open_store(fresh.url)
    with Session() as s, s.begin():
        es = s.get(Checkpoint, fresh.ck2).eval_set_id
        ck3 = write_evaluation(s, run_id=fresh.run_a, eval_set_id=es, step=300, path="runs/run-a/ckpt-300.pt",
                               metrics={"exact": 0.9}, predictions=[], rollouts=[])
    assert c.get(f"/checkpoints/{fresh.ck2}.json").json()["next_id"] == ck3
    assert ck3 in [ck["id"] for ck in c.get(f"/runs/{fresh.run_a}.json").json()["checkpoints"]]
    assert f"/checkpoints/{ck3}" in c.get(f"/compare?a={fresh.ck1}&b={fresh.ck2}").text \
        or f'value="{ck3}"' in c.get(f"/compare?a={fresh.ck1}&b={fresh.ck2}").text

    # a metric point: the run's curve
    def loss_steps():
        curves = c.get(f"/runs/{fresh.run_a}.json").json()["curves"]
        return [p[0] for cv in curves if cv["name"] == "loss" for p in cv["points"]]

    assert 4000 not in loss_steps()
    with Session() as s, s.begin():
        s.add(MetricPoint(run_id=fresh.run_a, step=4000, name="loss", value=0.01))
    assert 4000 in loss_steps()

    # a run's status (as the trainer's writer sets it, with updated_at)
    def status_of_a():
        return next(r["status"] for r in c.get("/runs.json").json()["runs"] if r["id"] == fresh.run_a)

    assert status_of_a() == "finished"
    with Session() as s, s.begin():
        s.execute(update(Run).where(Run.id == fresh.run_a).values(status="failed", updated_at=utcnow()))
    assert status_of_a() == "failed"
    assert c.get(f"/runs/{fresh.run_a}.json").json()["run"]["status"] == "failed"
    engine.dispose()


def test_the_clock_makes_a_silent_running_run_lost(fresh):
    c = make_client(fresh.url)
    engine, Session = open_store(fresh.url)
    heard = utcnow()
    with Session() as s, s.begin():
        s.execute(update(Run).where(Run.id == fresh.run_b).values(heartbeat_at=heard, updated_at=heard))
    engine.dispose()

    def status_of_b(path):
        d = c.get(path).json()
        return d["run"]["status"] if "run" in d else next(r["status"] for r in d["runs"] if r["id"] == fresh.run_b)

    for path in ("/runs.json", f"/runs/{fresh.run_b}.json"):
        c.app.state.clock = lambda: heard + dt.timedelta(seconds=5)
        assert status_of_b(path) == "running"
        c.app.state.clock = lambda: heard + dt.timedelta(seconds=91)
        assert status_of_b(path) == "lost", path


def test_least_recently_used_pages_go_first_and_big_ones_are_not_kept():
    cache = PageCache(max_bytes=100)
    for k in (b"a", b"b", b"c"):
        cache.put(k, 200, [], b"x" * 40)
    assert cache.get(b"a") is None and cache.get(b"b") is not None  # a went first
    cache.put(b"d", 200, [], b"y" * 40)  # c is now the oldest
    assert cache.get(b"c") is None and cache.get(b"b") and cache.get(b"d")
    assert cache.stats()["bytes"] <= 100
    cache.put(b"huge", 200, [], b"z" * 101)
    assert cache.get(b"huge") is None and cache.get(b"d") is not None


@pytest.mark.parametrize("value, message", [("-1", "expected 0 to"), ("lots", "expected a number of megabytes"),
                                            ("99999999", "expected 0 to")])
def test_serve_refuses_a_bad_page_cache_size(value, message):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "lambdascope.cli", "serve", "--page-cache", value],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--page-cache" in r.stderr and message in r.stderr, r.stderr


def test_a_new_checkpoint_is_filled_into_kept_pages_without_making_them_anew(fresh):
    """The examples, trace and compare pages list their set's checkpoints in pickers filled in as
    they are served (app/pickers.py): a new checkpoint leaves them kept, and they show it."""
    c = make_client(fresh.url)
    stats = c.app.state.page_cache.stats
    ident = fresh.regression[0]
    picked = [(f"/examples?ck={fresh.ck1}", {}), (f"/examples?ck={fresh.ck1}&correct=wrong", HTMX),
              (f"/traces/{ident}?ck={fresh.ck1}", {}), (f"/compare?a={fresh.ck1}&b={fresh.ck2}", {})]

    def get(path, headers):
        r = c.get(path, headers=headers)
        assert r.status_code == 200, (path, r.text[:300])
        assert "<!--ls:" not in r.text and "x-lambdascope-pickers" not in r.headers, path
        assert int(r.headers["content-length"]) == len(r.content), path
        return r

    first = {p: get(p, h) for p, h in picked}
    assert f'<option value="{fresh.ck1}" selected>' in first[picked[0][0]].text
    assert f'<option value="{fresh.ck2}">' in first[picked[0][0]].text
    assert f'<option value="{fresh.ck2}" selected>' in first[picked[3][0]].text  # compare: b
    engine, Session = open_store(fresh.url)
    with Session() as s, s.begin():  # a checkpoint of the other run, on the same evaluation set
        es = s.get(Checkpoint, fresh.ck2).eval_set_id
        ck3 = write_evaluation(s, run_id=fresh.run_b, eval_set_id=es, step=50, path="runs/run-b/ckpt-50.pt",
                               metrics={"exact": 0.5}, predictions=[], rollouts=[])
    for path, headers in picked:
        hits = stats()["hits"]
        r = get(path, headers)
        assert stats()["hits"] == hits + 1, path  # kept through the new checkpoint
        assert (f'<option value="{ck3}">' in r.text) == ("<select" in first[path].text), path
        assert r.headers["etag"] != first[path].headers["etag"], path  # its body changed
        assert r.content.replace(f'<option value="{ck3}">'.encode(), b"", 1) != r.content or "<select" not in r.text

    # a checkpoint page depends on its own run's checkpoints only (its previous and next links)
    page = f"/checkpoints/{fresh.ck2}"
    assert "data-next" not in get(page, {}).text
    with Session() as s, s.begin():
        write_evaluation(s, run_id=fresh.run_b, eval_set_id=es, step=60, path="runs/run-b/ckpt-60.pt",
                         metrics={"exact": 0.5}, predictions=[], rollouts=[])
    hits = stats()["hits"]
    get(page, {})
    assert stats()["hits"] == hits + 1  # another run's checkpoint: still kept
    with Session() as s, s.begin():
        ck5 = write_evaluation(s, run_id=fresh.run_a, eval_set_id=es, step=300, path="runs/run-a/ckpt-300.pt",
                               metrics={"exact": 0.9}, predictions=[], rollouts=[])
    assert f'href="/checkpoints/{ck5}" data-next' in get(page, {}).text

    # a run deleted: its checkpoints leave the pickers of the pages kept before
    with Session() as s, s.begin():
        s.execute(delete(Run).where(Run.id == fresh.run_b))  # its checkpoints cascade
    r = get(picked[0][0], {})
    assert f'<option value="{ck3}">' not in r.text and f'<option value="{fresh.ck2}">' in r.text
    engine.dispose()


def test_pickers_are_filled_with_the_cache_off_and_empty_when_the_store_cannot_be_read(fresh, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import app.pickers as pickers

    c = make_client(fresh.url, page_cache_mb=0)
    r = c.get(f"/examples?ck={fresh.ck2}")
    assert "<!--ls:" not in r.text and f'<option value="{fresh.ck2}" selected>' in r.text
    assert int(r.headers["content-length"]) == len(r.content)

    def unreadable(*a, **k):
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(pickers.PickerOptions, "get", unreadable)
    r = c.get(f"/examples?ck={fresh.ck2}")
    assert r.status_code == 200 and "<!--ls:" not in r.text and '<option value="' not in r.text.split('name="ck"')[1][:200]


def test_a_marker_says_which_options_and_fill_marks_the_chosen_one():
    from app.pickers import fill, marker

    seen = []

    def options(es, suite):
        seen.append((es, suite))
        return b'<option value="7">#7 a</option><option value="12">#12 b</option>'

    for suite in (None, "longer", "odd name -->"):
        body = f"<select>{marker(3, suite, 12)}</select>|<select>{marker(3, suite, None)}</select>".encode()
        assert fill(body, options) == (b'<select><option value="7">#7 a</option><option value="12" selected>#12 b'
                                       b'</option></select>|<select><option value="7">#7 a</option>'
                                       b'<option value="12">#12 b</option></select>')
        assert seen[-2:] == [(3, suite), (3, suite)]
    assert fill(b"no markers", options) == b"no markers"


def test_requests_for_a_page_being_made_wait_for_it_and_are_answered_from_it(fresh):
    """Five requests at once for a page no one has kept: the handler makes it once, one answer
    says miss and four say hit, all the same body. A page that is not kept (a 404) is made by
    each of them, after the first is done."""
    import asyncio

    from app.page_cache import PageCacheMiddleware

    state = make_client(fresh.url).app.state
    calls = []

    def handler(status: int):
        async def app(scope, receive, send):
            calls.append(scope["path"])
            await asyncio.sleep(0.2)
            await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"made %d" % len(calls)})
        return app

    async def get(middleware, path):
        out = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            out.append(message)

        await middleware({"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []},
                         receive, send)
        return out[0]["status"], dict(out[0]["headers"]).get(b"x-lambdascope-cache"), out[1]["body"]

    async def five(middleware, path):
        return await asyncio.gather(*(get(middleware, path) for _ in range(5)))

    answers = asyncio.run(five(PageCacheMiddleware(handler(200), state=state), "/labels"))
    assert calls == ["/labels"]
    assert sorted(answers) == [(200, b"hit", b"made 1")] * 4 + [(200, b"miss", b"made 1")]
    calls.clear()
    answers = asyncio.run(five(PageCacheMiddleware(handler(404), state=state), "/compare"))
    assert len(calls) == 5 and all(status == 404 and kept is None for status, kept, _ in answers)
