"""The dashboard in a real browser (Playwright driving Debian's Chromium) against a uvicorn server
on a free 127.0.0.1 port: highlighted text in the DOM, histogram bars, keyboard labelling, the
compare page, live curves and the filter form. Screenshots of each page go to
artifacts/screenshots/. Skipped, with the reason, only when Chromium cannot be launched."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import pytest

from lambdascope.spans import span_iou

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips
    expect = None
from tests.app_store import build_small_store
from tests.net import free_port as _free_port

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]



@contextlib.contextmanager
def serving(app):
    """``app`` served by uvicorn in a thread on a free loopback port; its base URL."""
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"playwright is not installed: {e}")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    except Exception as e:  # no chromium, or it cannot start here
        pw.stop()
        pytest.skip(f"chromium cannot be launched ({CHROMIUM}): {str(e).splitlines()[0]}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from app.settings import Settings
    from app.main import create_app

    seeded = build_small_store(f"sqlite:///{tmp_path_factory.mktemp('browser')}/store.db")
    app = create_app(Settings(db_url=seeded.url, warm_caches=False,
                              allowed_hosts=("127.0.0.1", "localhost")))
    with serving(app) as base:
        yield base, seeded


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    p = ctx.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield p
    ctx.close()
    assert not errors, errors  # no script errors, no CSP violations, no failed loads


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def get_json(page, url: str):
    return json.loads(page.request.get(url).text())


HIGHLIGHTS_JS = """() => Array.from(document.querySelectorAll('code.term')).map(c => ({
  text: c.textContent,
  rollout: !!c.closest('td.rollout-cell'),
  gold: Array.from(c.querySelectorAll('.hl-gold, .hl-both')).map(s => s.textContent).join(''),
  pred: Array.from(c.querySelectorAll('.hl-pred, .hl-both')).map(s => s.textContent).join(''),
}))"""


def test_highlighted_text_in_the_dom_is_the_span(page, server):
    base, seeded = server
    for query in (f"ck={seeded.ck1}&limit=100", f"ck={seeded.ck1}&correct=wrong&limit=100"):
        page.goto(f"{base}/examples?{query}")
        rows = get_json(page, f"{base}/examples.json?{query}")["rows"]
        dom = page.evaluate(HIGHLIGHTS_JS)
        assert len(dom) == len(rows) > 10
        lam = 0
        for row, d in zip(rows, dom):
            term = row["term"]
            assert d["text"].startswith(term)  # (an NF badge may follow, outside the code)
            assert d["gold"] == term[row["gold_start"]:row["gold_end"]]
            assert d["pred"] == term[row["pred_start"]:row["pred_end"]]
            lam += "λ" in d["gold"] + d["pred"]
        assert lam > 5
    shot(page, "examples")
    ident, _ = seeded.regression
    page.goto(f"{base}/traces/{ident}?ck={seeded.ck2}")
    steps = get_json(page, f"{base}/traces/{ident}.json?ck={seeded.ck2}")["steps"]
    dom = [d for d in page.evaluate(HIGHLIGHTS_JS) if not d["rollout"]]
    assert len(dom) == len(steps)
    for s, d in zip(steps, dom):
        assert d["gold"] == s["term"][s["gold"][0]:s["gold"][1]]
        assert d["pred"] == s["term"][s["pred"][0]:s["pred"][1]]
    # the offsets are on hover
    title = page.locator("table.trace code.term .hl-gold, table.trace code.term .hl-both").first.get_attribute("title")
    assert title.startswith("chars ") and "gold [" in title
    shot(page, "trace")


def test_clicking_a_histogram_bar_lists_exactly_that_bin(page, server):
    base, seeded = server
    ck = seeded.ck1
    page.goto(f"{base}/checkpoints/{ck}")
    shot(page, "checkpoint")
    hist = get_json(page, f"{base}/checkpoints/{ck}.json")["summary"]["iou_histogram"]
    # the fullest bin below 1, then the exact-match bin
    partial = max(range(10), key=lambda i: hist[i]["n"])
    for i in (partial, 10):
        page.goto(f"{base}/checkpoints/{ck}")
        page.locator(f'a.bar-link[data-bin="{i}"] rect.slot').click()
        page.wait_for_url("**/examples?*")
        lo, hi = hist[i]["lo"], hist[i]["hi"]
        listed = []
        while True:
            listed += page.eval_on_selector_all("table.examples tbody tr", "rs => rs.map(r => +r.dataset.example)")
            nxt = page.locator("nav.pager a[data-next]")
            if nxt.count() == 0:
                break
            nxt.click()
            page.wait_for_load_state()
        want = []
        for tr in seeded.traces:
            for r in tr.records:
                iou = span_iou(*seeded.preds[ck][(tr.identity, r.step_k)], *r.span)
                if iou >= lo and (hi is None or iou < hi):
                    want.append(seeded.example_ids[(tr.identity, r.step_k)])
        assert sorted(listed) == sorted(want) and len(want) == hist[i]["n"]
        assert page.locator(".results-head strong").inner_text().replace(",", "") == str(len(want))


def listed_examples(page) -> list[int]:
    """The example ids of a list (examples or a comparison), page after page by its Next link."""
    listed = []
    while True:
        listed += page.eval_on_selector_all("table.examples tbody tr, table.compare-rows tbody tr",
                                            "rs => rs.map(r => +r.dataset.example)")
        nxt = page.locator("nav.pager a[data-next]")
        if nxt.count() == 0:
            return listed
        nxt.click()
        page.wait_for_load_state()


def kinds_of(seeded, ck) -> dict[int, str]:
    from lambdascope.diagnosis import error_kind

    return {seeded.example_ids[(tr.identity, r.step_k)]: error_kind(r.term, seeded.preds[ck][(tr.identity, r.step_k)])
            for tr in seeded.traces for r in tr.records}


def test_clicking_a_kind_count_lists_exactly_those_examples(page, server):
    base, seeded = server
    ck = seeded.ck1
    counts = get_json(page, f"{base}/checkpoints/{ck}.json")["summary"]["error_kinds"]
    kinds = kinds_of(seeded, ck)
    # the commonest wrong kind (more than a page of 50), and a rare one
    wrong = sorted((n, k) for k, n in counts.items() if k != "exact" and n)
    for kind in (wrong[-1][1], wrong[0][1], "exact"):
        page.goto(f"{base}/checkpoints/{ck}")
        page.locator(f'#error-kinds a.kind-count[data-kind="{kind}"]').click()
        page.wait_for_url("**/examples?*kind=*")
        assert page.locator(f'input[name="kind"][value="{kind}"]').is_checked()
        listed = listed_examples(page)
        want = sorted(eid for eid, k in kinds.items() if k == kind)
        assert sorted(listed) == want and len(want) == counts[kind], kind
        assert page.locator(".results-head strong").inner_text().replace(",", "") == str(len(want))
    # ticking a second kind in the form lists both
    page.goto(f"{base}/examples?ck={ck}&kind={wrong[-1][1]}")
    page.locator(f'input[name="kind"][value="{wrong[-2][1]}"]').check()
    page.wait_for_url(f"**kind={wrong[-1][1]}**kind={wrong[-2][1]}**" if list(counts).index(wrong[-1][1])
                      < list(counts).index(wrong[-2][1]) else f"**kind={wrong[-2][1]}**kind={wrong[-1][1]}**")
    both = {wrong[-1][1], wrong[-2][1]}
    assert sorted(listed_examples(page)) == sorted(eid for eid, k in kinds.items() if k in both)
    shot(page, "examples-kinds")


def test_clicking_a_transition_cell_lists_exactly_those_pairs(page, server):
    base, seeded = server
    page.goto(f"{base}/compare?a={seeded.ck1}&b={seeded.ck2}")
    shot(page, "compare-kinds")
    ka_of, kb_of = kinds_of(seeded, seeded.ck1), kinds_of(seeded, seeded.ck2)
    cells = page.eval_on_selector_all("#kind-transitions a[data-kind-a]", """as => as.map(a => [
        a.dataset.kindA, a.dataset.kindB, +a.dataset.count])""")
    assert len(cells) > 7
    # an off-diagonal cell of more than a page (25 rows), one of a few, and the diagonal's exact -> exact
    off = sorted((n, ka, kb) for ka, kb, n in cells if ka != kb)
    exact = next(c for c in cells if c[0] == c[1] == "exact")
    for ka, kb, n in ((off[-1][1], off[-1][2], off[-1][0]), (off[0][1], off[0][2], off[0][0]), exact):
        page.goto(f"{base}/compare?a={seeded.ck1}&b={seeded.ck2}")
        page.locator(f'#kind-transitions a[data-kind-a="{ka}"][data-kind-b="{kb}"]').click()
        page.wait_for_url(f"**kind_a={ka}&kind_b={kb}")
        assert page.locator("#kind-transitions td.active").count() == 1
        listed = listed_examples(page)
        want = sorted(eid for eid in ka_of if (ka_of[eid], kb_of[eid]) == (ka, kb))
        assert sorted(listed) == want and len(want) == n, (ka, kb)
    page.goto(f"{base}/compare?a={seeded.ck1}&b={seeded.ck2}&kind=all&kind_a={off[-1][1]}&kind_b={off[-1][2]}")
    shot(page, "compare-kind-cell")


def test_trace_and_run_pages_show_kinds_and_outcomes(page, server):
    base, seeded = server
    # a trace with a wrong step of a redex kind, if the seeded store has one
    rows = get_json(page, f"{base}/examples.json?ck={seeded.ck1}&kind=inner_redex&kind=right_redex")["rows"]
    ident = rows[0]["trace_identity"]
    page.goto(f"{base}/traces/{ident}?ck={seeded.ck1}&step={rows[0]['step_k']}")
    d = get_json(page, f"{base}/traces/{ident}.json?ck={seeded.ck1}")
    badges = page.eval_on_selector_all("table.trace .why .badge.kind", "bs => bs.map(b => [b.dataset.kind, b.title])")
    assert [k for k, _ in badges] == [s["error_kind"] for s in d["steps"] if s["error_kind"] != "exact"]
    assert page.locator(f'.rollout-summary .badge.outcome[data-outcome="{d["rollout"]["outcome"]}"]').count() == 1
    shot(page, "trace-kinds")
    page.goto(f"{base}/runs/{seeded.run_a}")
    segs = page.locator("svg.stacked rect.seg")
    assert segs.count() == sum(1 for k in get_json(page, f"{base}/runs/{seeded.run_a}.json")["kinds_by_checkpoint"]
                               for n in k["counts"].values() if n)
    shot(page, "run-kinds")


def test_keyboard_labels_a_trace_and_a_step(page, server):
    base, seeded = server
    tr = seeded.traces[7]
    page.goto(f"{base}/traces/{tr.identity}?ck={seeded.ck1}")
    page.keyboard.press("2")  # model error, on the whole trace
    page.wait_for_selector("#labels .label-item")
    page.keyboard.press("j")
    page.keyboard.press("j")  # step 1
    assert page.locator("tr.step.is-current").get_attribute("data-step") == "1"
    assert "step=1" in page.url  # the selected step is in the address
    page.keyboard.press("e")
    page.keyboard.type("spotted from the keyboard")
    page.keyboard.press("Escape")
    page.keyboard.press("3")  # interesting, on step 1, with the note
    expect(page.locator("#labels .label-item")).to_have_count(2)
    shot(page, "trace-labelled")
    labels = get_json(page, f"{base}/labels.json")["labels"]
    mine = sorted(((lb["step_k"] if lb["step_k"] is not None else -1), lb["category"], lb["note"])
                  for lb in labels if lb["trace_identity"] == tr.identity)
    assert mine == [(-1, "model_error", ""), (1, "interesting", "spotted from the keyboard")]
    export = page.request.get(f"{base}/labels/export.jsonl").text()
    exported = [json.loads(line) for line in export.splitlines()]
    assert {(r["trace_identity"], r["step_k"], r["category"]) for r in exported} >= {
        (tr.identity, None, "model_error"), (tr.identity, 1, "interesting")}
    csv = page.request.get(f"{base}/labels/export.csv").text()
    assert "spotted from the keyboard" in csv
    page.goto(f"{base}/labels")
    shot(page, "labels")


def test_label_queue_moves_on_after_a_keyboard_label(page, server):
    base, seeded = server
    page.goto(f"{base}/queue?ck={seeded.ck2}")
    page.wait_for_url("**/traces/**queue=1")
    first = page.url
    page.keyboard.press("1")
    page.wait_for_url(lambda u: u != first and "queue=1" in u)
    assert page.url != first
    shot(page, "queue")


def test_compare_page_lists_the_known_regression(page, server):
    base, seeded = server
    page.goto(f"{base}/compare")
    page.wait_for_url(f"**/compare?a={seeded.ck1}&b={seeded.ck2}")
    rows = page.locator("table.compare-rows tbody tr")
    assert rows.count() == 1
    ident, k = seeded.regression
    assert rows.first.locator("a").first.inner_text() == ident[:8]
    assert f"{k}/" in rows.first.inner_text() and "-1.00" in rows.first.inner_text()
    assert page.locator("svg.hist.overlay rect.bar.b").count() == 11
    shot(page, "compare")
    page.locator("ul.tabs a", has_text="improvements").click()
    page.wait_for_url("**kind=improvements**")
    assert page.locator("table.compare-rows tbody tr").count() > 0


def test_run_curves_update_live(page, server):
    from lambdascope.store import MetricPoint, open_store

    base, seeded = server
    page.goto(f"{base}/runs/{seeded.run_b}")
    before = page.locator("figure.chart figcaption .last").first.inner_text()
    engine, Session = open_store(seeded.url)
    with Session() as s:
        s.add(MetricPoint(run_id=seeded.run_b, step=500, name="loss", value=123.0))
        s.commit()
    engine.dispose()
    # (no wait_for_function: evaluating strings is what the page's CSP forbids)
    expect(page.locator("figure.chart figcaption .last").first).to_have_text("123.0", timeout=12_000)
    assert before != "123.0"
    shot(page, "run-live")
    page.goto(f"{base}/runs/{seeded.run_a}")
    shot(page, "run")
    page.goto(f"{base}/")
    shot(page, "runs")


def test_filter_form_updates_results_and_address(page, server):
    base, seeded = server
    page.goto(f"{base}/examples?ck={seeded.ck1}")
    total = page.locator(".results-head strong").inner_text()
    page.locator('input[name="correct"][value="wrong"]').check()
    page.wait_for_url("**correct=wrong**")
    assert "iou_min" not in page.url  # empty fields stay out of the address
    assert page.locator(".results-head strong").inner_text() != total
    assert page.locator("table.examples tr.right").count() == 0
    page.keyboard.press("Escape")  # leave the form; the keys now move through the rows
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url("**/traces/**")


def test_playground_page(page, server):
    base, seeded = server
    page.goto(f"{base}/playground")
    page.fill("input[name=term]", r"(\x.\y.x y) (\z.z) w")
    page.click("form.playground-form button[type=submit]")
    page.wait_for_url("**term=**")
    assert page.locator("table.trace tbody tr").count() == 4
    shot(page, "playground")
    page.goto(f"{base}/playground?term=(λx.x")
    assert "expected ')'" in page.locator("pre.caret").inner_text()
    shot(page, "playground-error")


# ---------------------------------------------------------------------------------------------
# beliefs: a dashboard with the trainer's loader over a checkpoint whose file is real


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    from app.settings import Settings
    from lambdascope.commands.dashboard import create_dashboard
    from tests.beliefs_store import build_model_store

    folder = tmp_path_factory.mktemp("browser-beliefs")
    ms = build_model_store(f"sqlite:///{folder}/store.db", folder)
    app = create_dashboard(Settings(db_url=ms.seeded.url, warm_caches=False,
                                    allowed_hosts=("127.0.0.1", "localhost")))
    with serving(app) as base:
        yield base, ms


START_CELLS_JS = """() => Array.from(document.querySelectorAll('#beliefs svg.start-heat .cell')).map(c => ({
  i: c.dataset.i, p: +c.dataset.p, chosen: c.classList.contains('chosen'), gold: c.classList.contains('gold'),
}))"""


def test_the_start_heatmap_marks_the_predicted_start_at_its_largest_probability(page, model_server):
    from tests.beliefs_store import N_HEAD, N_LAYER

    base, ms = model_server
    # a trace of a few steps where, at every step, the model's choice starts where its start
    # pointer is surest (as for a trained model; this one is only sharpened)
    for tr in ms.seeded.traces:
        steps = get_json(page, f"{base}/traces/{tr.identity}.json?ck={ms.ck}")["steps"]
        if len(steps) < 3:
            continue
        surest = []
        for s in steps:
            b = s["beliefs"]
            cells = [b["nf_prob"]] + b["start_probs"]
            surest.append(max(range(len(cells)), key=cells.__getitem__) == (0 if b["start"] is None else b["start"] + 1))
        if all(surest):
            break
    else:
        raise AssertionError("no trace whose every step's choice is its surest start")
    page.goto(f"{base}/traces/{tr.identity}?ck={ms.ck}")
    for s in steps:
        k = s["step_k"]
        page.locator(f"tr#step-{k} td.k").click()
        page.wait_for_selector(f'#beliefs .beliefs[data-step="{k}"] svg.start-heat')
        cells = page.evaluate(START_CELLS_JS)
        assert [c["i"] for c in cells] == ["nf"] + [str(i) for i in range(len(s["term"]))]
        chosen = [c for c in cells if c["chosen"]]
        assert len(chosen) == 1
        assert chosen[0]["p"] == max(c["p"] for c in cells)  # the predicted start holds the largest
        assert chosen[0]["i"] == ("nf" if s["pred"] == [0, 0] else str(s["pred"][0]))  # the stored prediction's
        gold = [c["i"] for c in cells if c["gold"]]
        assert gold == ["nf" if s["gold"] == [0, 0] else str(s["gold"][0])]
        if k == 1:
            shot(page, "trace-beliefs")
    # the end pointer given the gold start, then the attention of a character
    end_chosen = page.locator("#beliefs .ends-chosen")
    page.locator("#beliefs label.ends-gold-label").click()
    expect(page.locator("#beliefs .ends-gold")).to_be_visible()
    expect(end_chosen).to_be_hidden()
    page.locator('#beliefs svg.start-heat .cell[data-i="2"]').click()
    page.wait_for_selector("#beliefs .attention-panel table.attention-grid")
    assert page.locator("#beliefs .attention-panel table.attention-grid tr").count() == N_LAYER * N_HEAD
    assert page.locator("#beliefs .attention-panel .cell.query").count() == N_LAYER * N_HEAD
    shot(page, "trace-attention")


def test_playground_beliefs_and_the_heads_page(page, model_server):
    base, ms = model_server
    page.goto(f"{base}/playground?term=(λx.λy.x y) (λz.z) w&ck={ms.ck}")
    page.wait_for_selector('#beliefs .beliefs[data-step="0"] svg.start-heat')
    page.locator("tr#step-2 td.k").click()
    page.wait_for_selector('#beliefs .beliefs[data-step="2"] svg.start-heat')
    assert page.locator("#beliefs table.top-spans tbody tr").count() >= 1
    shot(page, "playground-beliefs")
    page.goto(f"{base}/checkpoints/{ms.ck}")
    page.locator("a", has_text="attention heads").click()
    page.wait_for_url(f"**/checkpoints/{ms.ck}/heads")
    scores = page.eval_on_selector_all("table.heads tbody tr td[data-score]:nth-child(3)", "cs => cs.map(c => +c.dataset.score)")
    assert scores and scores == sorted(scores, reverse=True)
    shot(page, "heads")
    page.goto(f"{base}/traces/{ms.seeded.traces[0].identity}?ck={ms.seeded.ck1}")  # no such file
    page.wait_for_selector("#beliefs .beliefs-error")
    assert "cannot load" in page.locator("#beliefs .beliefs-error").inner_text()


def test_suites_picker_curves_and_generalisation_chart(page, suite_store):
    """The suite picker switches the checkpoint page to a suite's row, the run page draws a
    coloured line per suite, and the htmx-loaded generalisation chart shades past the training
    data's longest (no CSP violation: the series' colours are classes)."""
    from app.settings import Settings
    from app.main import create_app

    seeded, _ = suite_store
    app = create_app(Settings(db_url=seeded.url, warm_caches=False, allowed_hosts=("127.0.0.1", "localhost")))
    with serving(app) as base:
        page.goto(f"{base}/runs/{seeded.run}")
        lines = page.locator(".suite-chart[data-metric=exact] polyline.series-line")
        expect(lines).to_have_count(3)
        strokes = {lines.nth(i).evaluate("e => getComputedStyle(e).stroke") for i in range(3)}
        assert len(strokes) == 3 and "none" not in strokes
        shot(page, "run-suites")
        page.goto(f"{base}/checkpoints/{seeded.main[200]}")
        page.locator(".suite-picker a[data-suite=longer]").click()
        page.wait_for_url(f"**/checkpoints/{seeded.main[200]}?suite=longer")
        expect(page.locator("h1")).to_contain_text("suite longer")
        expect(page.locator("#generalisation .gen-chart")).to_have_count(3)
        expect(page.locator("#generalisation rect.unseen")).to_have_count(3)
        expect(page.locator("#generalisation .unseen-label").first).to_contain_text("beyond training")
        page.locator("#generalisation").scroll_into_view_if_needed()
        shot(page, "checkpoint-suite-generalisation")
