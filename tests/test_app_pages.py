"""Every page and its JSON twin over a small seeded store; filters, sorts and keyset pagination
checked against a brute-force reading of the seeded data; bad parameters answered 4xx."""

import re
import sqlite3
from html.parser import HTMLParser

import pytest

from lambdascope.spans import span_iou
from tests.app_helpers import SORT_KEYS, matches, pages, walk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---------------------------------------------------------------------------------------------
# helpers


class Terms(HTMLParser):
    """The highlighted terms of a page: for each <code class="term">, its pieces (class, text)."""

    def __init__(self):
        super().__init__()
        self.terms: list[list[tuple[str, str]]] = []
        self.in_rollout: list[bool] = []
        self._in_term = False
        self._rollout_cell = False
        self._cls: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td":
            self._rollout_cell = "rollout-cell" in (a.get("class") or "")
        if tag == "code" and "term" in (a.get("class") or "").split():
            self._in_term = True
            self.terms.append([])
            self.in_rollout.append(self._rollout_cell)
        elif self._in_term and tag == "span":
            self._cls = next((c for c in (a.get("class") or "").split() if c.startswith("hl-")), None)

    def handle_endtag(self, tag):
        if tag == "code":
            self._in_term = False
        elif tag == "span":
            self._cls = None

    def handle_data(self, data):
        if self._in_term and self._cls:
            self.terms[-1].append((self._cls, data))


def highlighted(html: str) -> list[dict[str, str]]:
    p = Terms()
    p.feed(html)
    out = []
    for pieces, rollout in zip(p.terms, p.in_rollout):
        out.append({"rollout": rollout, "text": "".join(t for _, t in pieces),
                    "gold": "".join(t for c, t in pieces if c in ("hl-gold", "hl-both")),
                    "pred": "".join(t for c, t in pieces if c in ("hl-pred", "hl-both"))})
    return out


def reference_rows(seeded, ck):
    """Every example with the prediction of ``ck``, as the store should report it."""
    con = sqlite3.connect(seeded.url.removeprefix("sqlite:///"))
    conf = dict(con.execute("SELECT example_id, start_conf * end_conf FROM predictions "
                            "WHERE checkpoint_id = ?", (ck,)))
    rows = []
    for tr in seeded.traces:
        for r in tr.records:
            eid = seeded.example_ids[(tr.identity, r.step_k)]
            pred = seeded.preds[ck][(tr.identity, r.step_k)]
            rows.append({"id": eid, "identity": tr.identity, "k": r.step_k, "term": r.term,
                         "gold": r.span, "pred": pred, "iou": span_iou(*pred, *r.span),
                         "exact": pred == r.span, "len": len(r.term),
                         "togo": r.steps_total - r.step_k, "conf": conf[eid]})
    return rows


# ---------------------------------------------------------------------------------------------
# pages and their JSON twins


def test_every_page_links_its_json_twin(client, seeded):
    for page, twin in pages(seeded):
        r = client.get(page)
        assert r.status_code == 200, (page, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert "<html" in r.text and "λ" in r.text
        href = re.search(r'class="json-link" href="([^"]+)"', r.text).group(1)
        j = client.get(href.replace("&amp;", "&"))
        assert j.status_code == 200 and j.headers["content-type"].startswith("application/json"), page
        assert j.json() == client.get(twin).json()


def test_runs_json(client, seeded):
    d = client.get("/runs.json").json()
    runs = {r["name"]: r for r in d["runs"]}
    assert set(runs) == {"run-a", "run-b <b>live</b>"}
    a = runs["run-a"]
    assert a["status"] == "finished" and a["checkpoints"] == 2
    assert a["latest_checkpoint"]["id"] == seeded.ck2
    assert a["sparkline"]["metric"] == "loss" and len(a["sparkline"]["points"]) == 40
    assert runs["run-b <b>live</b>"]["status"] == "running"


def test_nan_metrics_become_null(client, seeded):
    d = client.get(f"/checkpoints/{seeded.ck1}.json").json()
    assert d["checkpoint"]["metrics"]["loss"] is None  # stored as NaN


def test_run_page_curves_validation_and_live_fragment(client, seeded):
    d = client.get(f"/runs/{seeded.run_a}.json").json()
    names = [c["name"] for c in d["curves"]]
    assert names[:3] == ["loss", "exact", "mean_iou"] and "tokens_per_s" in names and "mfu" in names
    assert d["problem_counts"] == [{"reason": "bad_json", "n": 1}, {"reason": "wrong_span", "n": 1}]
    assert d["validation"]["problems_by_reason"] == {"bad_json": 1, "wrong_span": 1}
    only = client.get(f"/runs/{seeded.run_a}.json?problems_reason=wrong_span").json()
    assert [p["line"] for p in only["problems"]] == [42]
    # the running run's page polls a fragment: a block of its own template
    page = client.get(f"/runs/{seeded.run_b}").text
    assert 'id="live"' in page and 'hx-trigger="every 4s"' in page
    frag = client.get(f"/runs/{seeded.run_b}", headers={"HX-Request": "true", "HX-Target": "live"})
    assert frag.status_code == 200 and frag.text.lstrip().startswith('<section id="live"')
    assert "<html" not in frag.text and "<svg" in frag.text
    assert "hx-trigger" not in client.get(f"/runs/{seeded.run_a}").text  # finished: no polling


def test_checkpoint_summary_matches_the_predictions(client, seeded):
    for ck in (seeded.ck1, seeded.ck2):
        rows = reference_rows(seeded, ck)
        s = client.get(f"/checkpoints/{ck}.json").json()["summary"]
        assert s["n"] == len(rows) and s["exact"] == sum(r["exact"] for r in rows)
        assert s["mean_iou"] == pytest.approx(sum(r["iou"] for r in rows) / len(rows))
        hist = s["iou_histogram"]
        assert len(hist) == 11 and sum(b["n"] for b in hist) == len(rows)
        assert hist[-1]["n"] == sum(r["iou"] == 1.0 for r in rows)
        c = s["nf_confusion"]
        assert c["nf_nf"] == sum(r["gold"] == (0, 0) and r["pred"] == (0, 0) for r in rows)
        assert c["redex_nf"] == sum(r["gold"] != (0, 0) and r["pred"] == (0, 0) for r in rows)
        assert s["rollouts"] == len(seeded.traces)


def test_histogram_bars_confusion_cells_and_slices_link_to_exactly_their_examples(client, seeded):
    ck = seeded.ck1
    html = client.get(f"/checkpoints/{ck}").text
    s = client.get(f"/checkpoints/{ck}.json").json()["summary"]
    bar_links = re.findall(r'<a class="bar-link" href="([^"]+)" data-bin="(\d+)" data-count="(\d+)"', html)
    assert len(bar_links) == 11
    links = [h.replace("&amp;", "&") for h, _, _ in bar_links]
    cells = re.findall(r'<td class="cell [a-z]+"><a href="([^"]+)"', html)
    assert len(cells) == 4
    links += [h.replace("&amp;", "&") for h in cells]
    expected = [b["n"] for b in s["iou_histogram"]]
    c = s["nf_confusion"]
    expected += [c["redex_redex"], c["redex_nf"], c["nf_redex"], c["nf_nf"]]
    slice_links = re.findall(r'<td><a href="(/examples\?[^"]+)">', html)
    assert len(slice_links) == len(s["by_term_length"]) + len(s["by_steps_to_go"])
    links += [h.replace("&amp;", "&") for h in slice_links]
    expected += [x["n"] for x in s["by_term_length"] + s["by_steps_to_go"]]
    rows = reference_rows(seeded, ck)
    for link, n in zip(links, expected):
        params = dict(p.split("=", 1) for p in link.split("?", 1)[1].split("&"))
        ids, total = walk(client, params)
        want = sorted(r["id"] for r in rows if matches(r, params))
        assert total == n == len(ids) == len(want), link
        assert sorted(ids) == want, link


FILTERS = [
    {}, {"correct": "wrong"}, {"correct": "right"}, {"iou_min": "0.5", "iou_max": "1"},
    {"iou_min": "1"}, {"nf": "1"}, {"nf": "0", "pred_nf": "1"}, {"len_min": "20", "len_max": "60"},
    {"togo_min": "2", "togo_max": "4"}, {"q": "λx.x"}, {"q": "(λ"}, {"correct": "wrong", "len_min": "30"},
]


@pytest.mark.parametrize("sort", list(SORT_KEYS))
@pytest.mark.parametrize("f", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_sorts_and_keyset_pages_match_brute_force(client, seeded, f, sort):
    rows = reference_rows(seeded, seeded.ck1)
    want = [r["id"] for r in sorted((r for r in rows if matches(r, f)), key=SORT_KEYS[sort])]
    ids, total = walk(client, {"ck": seeded.ck1, "sort": sort, "limit": "20", **f})
    assert total == len(want)
    assert ids == want


@pytest.mark.parametrize("sort", ["-iou", "example", "len", "-togo", "conf"])
def test_previous_pages_walk_back(client, seeded, sort):
    params = {"ck": seeded.ck2, "sort": sort, "limit": "20", "nf": "0"}
    forward, pages_ = [], []
    after = None
    while True:
        d = client.get("/examples.json", params={**params, **({"after": after} if after else {})}).json()
        pages_.append([r["example_id"] for r in d["rows"]])
        if not d["next"]:
            break
        after = d["next"]
    assert len(pages_) > 3
    before = d["prev"]
    back = [pages_[-1]]
    while before:
        d = client.get("/examples.json", params={**params, "before": before}).json()
        back.append([r["example_id"] for r in d["rows"]])
        before = d["prev"]
    assert back[::-1] == pages_


def test_examples_without_checkpoint_redirect_to_the_latest(client, seeded):
    r = client.get("/examples?correct=wrong", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/examples?ck={seeded.ck2}&correct=wrong"


def test_examples_fragment_for_htmx(client, seeded):
    r = client.get(f"/examples?ck={seeded.ck1}&correct=wrong&iou_min=&len_max=",
                   headers={"HX-Request": "true", "HX-Target": "results"})
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<section id="results"') and "<form" not in r.text
    assert r.headers["HX-Push-Url"] == f"/examples?ck={seeded.ck1}&correct=wrong"


def test_highlighted_text_is_exactly_the_span(client, seeded):
    """On the examples and trace pages, the gold and predicted pieces join to term[s:e]."""
    seen = 0
    for page in (f"/examples?ck={seeded.ck1}&limit=200", f"/examples?ck={seeded.ck1}&correct=wrong&limit=200"):
        rows = client.get(page.replace("/examples", "/examples.json")).json()["rows"]
        terms = highlighted(client.get(page).text)
        assert len(terms) == len(rows)
        for row, t in zip(rows, terms):
            term = row["term"]
            assert t["text"] == term
            gs, ge, ps, pe = row["gold_start"], row["gold_end"], row["pred_start"], row["pred_end"]
            assert t["gold"] == term[gs:ge] and t["pred"] == term[ps:pe]
            seen += "λ" in t["gold"]
    assert seen > 10
    ident = seeded.regression[0]
    d = client.get(f"/traces/{ident}.json?ck={seeded.ck2}").json()
    html = client.get(f"/traces/{ident}?ck={seeded.ck2}").text
    terms = [t for t in highlighted(html) if not t["rollout"]]
    assert len(terms) == len(d["steps"])
    for step, t in zip(d["steps"], terms):
        assert t["gold"] == step["term"][slice(*step["gold"])]
        assert t["pred"] == step["term"][slice(*step["pred"])]


def test_trace_page(client, seeded):
    ident, k = seeded.regression
    d = client.get(f"/traces/{ident}.json?ck={seeded.ck2}").json()
    tr = next(t for t in seeded.traces if t.identity == ident)
    assert [s["term"] for s in d["steps"]] == [r.term for r in tr.records]
    assert [tuple(s["gold"]) for s in d["steps"]] == [r.span for r in tr.records]
    assert d["steps"][k]["pred"] == [0, 0] and d["steps"][k]["exact"] is False
    ro = d["rollout"]
    assert ro is not None and ro["success"] is False
    assert ro["first_divergent_step"] == next(r.step_k for r in tr.records
                                             if seeded.preds[seeded.ck2][(ident, r.step_k)] != r.span)
    html = client.get(f"/traces/{ident}?ck={seeded.ck2}&step={k}").text
    assert f'id="step-{ro["first_divergent_step"]}" class="step diverged' in html
    assert "first divergence" in html
    assert re.search(r'title="chars \d+–\d+ · gold \[\d+, \d+\)', html)  # offsets on hover
    assert 'class="badge nf nf-' in html  # the last step is normal form
    assert 'data-next' in html or 'data-prev' in html
    # without a checkpoint: the gold trace alone
    gold_only = client.get(f"/traces/{ident}.json").json()
    assert gold_only["checkpoint"] is None and all(s["pred"] is None for s in gold_only["steps"])


def test_a_rollouts_true_spans_are_the_cores_on_and_off_the_gold_trace(client, seeded):
    """The trace page takes a rollout term's true redex from the gold trace when the term is
    one of its steps, and parses it otherwise: both must be the core's normal-order redex."""
    from lambdascope.terms import parse, redex_span

    on_gold = off_gold = 0
    for tr in seeded.traces[:20] + [next(t for t in seeded.traces if t.identity == seeded.regression[0])]:
        d = client.get(f"/traces/{tr.identity}.json?ck={seeded.ck2}").json()
        if d["rollout"] is None:
            continue
        gold_terms = {r.term for r in tr.records}
        html = client.get(f"/traces/{tr.identity}?ck={seeded.ck2}").text
        for item in d["rollout"]["path"]:
            truth = list(redex_span(parse(item["term"])))
            assert item["true_span"] == truth, (tr.identity, item)
            on_gold += item["term"] in gold_terms
            off_gold += item["term"] not in gold_terms
            label = "NF" if truth == [0, 0] else f"[{truth[0]}, {truth[1]})"
            assert f"· true redex {label}</div>" in html
    assert on_gold and off_gold  # both ways were taken


def test_checkpoint_pickers_mark_the_checkpoint_shown(client, seeded):
    """Every checkpoint picker lists each checkpoint once, the one shown selected, labels escaped."""
    import html as html_lib

    ident = seeded.regression[0]

    def picked(page: str, name: str) -> list[tuple[int, bool, str]]:
        select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', page, re.S)[1]
        return [(int(v), bool(sel), html_lib.unescape(label)) for v, sel, label in
                re.findall(r'<option value="(\d+)"( selected)?>#\d+ ([^<]*)</option>', select)]

    for address, name, shown in [(f"/traces/{ident}?ck={seeded.ck1}", "ck", seeded.ck1),
                                 (f"/examples?ck={seeded.ck2}", "ck", seeded.ck2),
                                 (f"/compare?a={seeded.ck2}&b={seeded.ck1}", "a", seeded.ck2),
                                 (f"/compare?a={seeded.ck2}&b={seeded.ck1}", "b", seeded.ck1)]:
        options = picked(client.get(address).text, name)
        assert {ck for ck, _, _ in options} >= {seeded.ck1, seeded.ck2}, address
        assert [ck for ck, sel, _ in options if sel] == [shown], address
        assert len({ck for ck, _, _ in options}) == len(options)
    gold_only = picked(client.get(f"/traces/{ident}").text, "ck")
    assert not any(sel for _, sel, _ in gold_only)


def test_compare_lists_the_known_regression(client, seeded):
    d = client.get(f"/compare.json?a={seeded.ck1}&b={seeded.ck2}").json()
    c = d["counts"]
    assert c["broken"] == 1 and c["fixed"] == len(seeded.fixed)
    assert c["both_right"] + c["both_wrong"] + c["fixed"] + c["broken"] == c["n"]
    assert [(r["identity"], r["step_k"]) for r in d["rows"]] == [seeded.regression]
    assert d["rows"][0]["change"] == -1.0
    html = client.get(f"/compare?a={seeded.ck1}&b={seeded.ck2}").text
    assert seeded.regression[0][:8] in html and "-1.00" in html
    # improvements: sorted by change, both ways, with keyset pages
    big = client.get(f"/compare.json?a={seeded.ck1}&b={seeded.ck2}&kind=improvements&limit=5").json()
    changes, after = [], None
    while True:
        q = f"/compare.json?a={seeded.ck1}&b={seeded.ck2}&kind=improvements" + (f"&after={after}" if after else "")
        page = client.get(q).json()
        changes += [r["change"] for r in page["rows"]]
        after = page["next"]
        if not after:
            break
    assert len(changes) == big["counts"]["improvements"] and changes == sorted(changes, reverse=True)
    small = client.get(f"/compare.json?a={seeded.ck1}&b={seeded.ck2}&kind=improvements&order=-change").json()
    assert [r["change"] for r in small["rows"]] == sorted(changes)[:len(small["rows"])]
    fixed = client.get(f"/compare.json?a={seeded.ck1}&b={seeded.ck2}&kind=fixed").json()
    assert fixed["counts"]["fixed"] == len(seeded.fixed)
    assert len(d["histograms"]) == 11 and sum(h["a"] for h in d["histograms"]) == c["n"]


def test_compare_without_parameters_picks_the_latest_pair(client, seeded):
    r = client.get("/compare", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/compare?a={seeded.ck1}&b={seeded.ck2}"


def test_playground(client, seeded):
    d = client.get("/playground.json", params={"term": "(λx.λy.x y) (λz.z) w"}).json()
    assert d["canonical"] == "(λx.λy.x y) (λz.z) w"
    assert [s["term"] for s in d["reduction"]] == ["(λx.λy.x y) (λz.z) w", "(λy.(λz.z) y) w", "(λz.z) w", "w"]
    assert d["reduction_end"] == "normal form"
    err = client.get("/playground.json", params={"term": "(λx.x"}).json()["error"]
    assert err["position"] == 5 and "')'" in err["expected"]
    html = client.get("/playground", params={"term": "(λx.x"}).text
    assert "     ^ expected &#39;)&#39;" in html
    # no model loader (a dashboard without the trainer): the true reduction, and why
    d = client.get("/playground.json", params={"term": "(λx.x) y", "ck": seeded.ck1}).json()
    assert d["model"] is None and "unavailable" in d["model_error"] and len(d["reduction"]) == 2
    assert "without a model loader" in d["model_error"]

    def missing_file(path):
        raise FileNotFoundError(path)

    # a loader that cannot load the checkpoint's file: the same, saying so
    state = client.app.state
    try:
        state.model_loader = missing_file
        d = client.get("/playground.json", params={"term": "(λx.x) y", "ck": seeded.ck1}).json()
        assert d["model"] is None and len(d["reduction"]) == 2
        assert "unavailable: cannot load runs/run-a/" in d["model_error"] and "FileNotFoundError" in d["model_error"]

        class Predictor:  # points at the true redex, except at step 1 where it claims normal form
            def predict(self, term):
                from lambdascope.terms import parse, redex_span

                s, e = redex_span(parse(term))
                return (0, 0, 0.9, 0.9) if term == "(λy.(λz.z) y) w" else (s, e, 0.8, 0.7)

        state.model_loader = lambda path: Predictor()
        d = client.get("/playground.json", params={"term": "(λx.λy.x y) (λz.z) w", "ck": seeded.ck1}).json()
        m = d["model"]
        assert m["first_divergent_step"] == 1 and m["end"] == "claimed normal form too early"
        assert [s["term"] for s in m["steps"]] == ["(λx.λy.x y) (λz.z) w", "(λy.(λz.z) y) w"]
        html = client.get("/playground", params={"term": "(λx.λy.x y) (λz.z) w", "ck": seeded.ck1}).text
        assert 'class="step diverged"' in html and "first divergence" in html
    finally:
        state.model_loader = None  # the session's client, as it was


def test_playground_refuses_huge_or_deep_input(client):
    assert client.get("/playground", params={"term": "x" * 3000}).status_code == 400
    d = client.get("/playground.json", params={"term": "(" * 1500 + "x" + ")" * 1500}).json()
    assert d["error"] is not None  # too deep or too long, never a crash
    r = client.get("/playground.json", params={"term": "λ" * 900})
    assert r.status_code == 200 and r.json()["error"]["position"] == 1


def test_queue_walks_unlabelled_wrong_predictions(client, seeded):
    r = client.get(f"/queue?ck={seeded.ck1}", follow_redirects=False)
    assert r.status_code == 303
    loc = r.headers["location"]
    first = client.get(f"/queue.json?ck={seeded.ck1}").json()
    rows = reference_rows(seeded, seeded.ck1)
    wrong = sorted(r["id"] for r in rows if not r["exact"])
    assert first["remaining"] == len(wrong) and first["next"]["example_id"] == wrong[0]
    assert loc == f"/traces/{first['next']['identity']}?ck={seeded.ck1}&step={first['next']['step_k']}&queue=1"
    page = client.get(loc).text
    assert "label queue" in page and f"/queue?ck={seeded.ck1}&amp;after={wrong[0]}" in page
    nxt = client.get(f"/queue.json?ck={seeded.ck1}&after={wrong[0]}").json()
    assert nxt["next"]["example_id"] == wrong[1]


def test_htmx_is_served_from_the_installed_package(client):
    import importlib.resources
    from pathlib import Path

    r = client.get("/static/vendor/htmx.min.js")
    pkg = (importlib.resources.files("js_lib_htmx") / "static" / "htmx" / "htmx.min.js").read_bytes()
    assert r.status_code == 200 and r.content == pkg
    root = Path(__file__).resolve().parent.parent
    assert not [p for p in (root / "static").rglob("htmx*")], "htmx must not be copied into static/"
    assert "/static/vendor/htmx.min.js" in client.get("/").text


# ---------------------------------------------------------------------------------------------
# bad parameters: 4xx with a message, never 5xx


def bad_requests(seeded):
    ck = seeded.ck1
    return [
        f"/examples?ck=abc", f"/examples?ck=-1", f"/examples?ck=0", f"/examples?ck=999999",
        f"/examples?ck={'9' * 40}", f"/examples?ck={ck}&iou_min=0.8&iou_max=0.2",
        f"/examples?ck={ck}&iou_min=2", f"/examples?ck={ck}&iou_min=nan", f"/examples?ck={ck}&limit=-1",
        f"/examples?ck={ck}&limit=1000000", f"/examples?ck={ck}&sort=1;drop", f"/examples?ck={ck}&after=x,y",
        f"/examples?ck={ck}&sort=iou&after=1e999,3", f"/examples?ck={ck}&q={'x' * 10_000}",
        f"/examples?ck={ck}&len_min=9&len_max=1", f"/examples?ck={ck}&labelled=perhaps",
        f"/examples?ck={ck}&correct=<script>", f"/examples?ck={ck}&page=-1&togo_min=-1",
        "/checkpoints/0", "/checkpoints/999999", f"/checkpoints/{'9' * 30}", "/runs/999999",
        "/traces/nope", "/traces/" + "a" * 40, "/traces/x%3Cy", f"/traces/{seeded.regression[0]}?ck=abc",
        f"/traces/{seeded.regression[0]}?ck=999", f"/traces/{seeded.regression[0]}?step=-3",
        f"/compare?a={ck}&b=999999", f"/compare?a=x&b={ck}", f"/compare?a={ck}&b={seeded.ck2}&kind=bogus",
        f"/compare?a={ck}&b={seeded.ck2}&after=zz", f"/compare?a={ck}&b={seeded.ck2}&order=sideways",
        "/compare.json?a=1", "/queue?ck=abc", "/queue?ck=999999", "/labels?category=nope",
        f"/playground?term=x&ck=abc", f"/playground?term={'x' * 5000}", "/labels/export.xml",
        "/nowhere", f"/runs/{seeded.run_a}?problems_reason={'x' * 100}",
    ]


def test_bad_parameters_get_4xx_with_a_message(client, seeded):
    for url in bad_requests(seeded):
        r = client.get(url)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
        assert "error-message" in r.text or "error" in r.text, url
        j = client.get(url.replace("?", ".json?", 1) if "?" in url and not url.startswith("/labels/")
                       else url)
        assert j.status_code < 500, url


def test_json_errors_are_json(client):
    r = client.get("/examples.json?ck=abc")
    assert r.status_code == 400 and r.json()["error"].startswith("ck:")
    r = client.get("/checkpoints/424242.json")
    assert r.status_code == 404 and "no checkpoint 424242" in r.json()["error"]


def test_warmer_precomputes_new_checkpoints(seeded):
    from app.cache import Warmer
    from tests.app_store import make_client

    c = make_client(seeded.url)
    agg = c.app.state.aggregates
    Warmer(c.app.state.read_sessions, agg, newest=1).warm_once()  # the newest only: no pair
    assert [ck for ck, _ in agg.summaries._data] == [max(seeded.ck1, seeded.ck2)]
    assert len(agg.comparisons._data) == 0
    Warmer(c.app.state.read_sessions, agg).warm_once()  # every checkpoint, by default
    assert len(agg.summaries._data) == 2 and len(agg.comparisons._data) == 1
    assert len(agg.generalisation._data) == 2
    assert len(agg.sets._data) == 1 and len(agg.vectors._data) == 2  # what the examples page counts with
    # the pages then use what was computed
    assert c.get(f"/compare.json?a={seeded.ck1}&b={seeded.ck2}").json()["counts"]["broken"] == 1
    assert len(agg.comparisons._data) == 1
    assert c.get(f"/examples.json?ck={seeded.ck1}&nf=1&correct=wrong").json()["total"] >= 0
    assert len(agg.sets._data) == 1 and len(agg.vectors._data) == 2


def test_runs_table_polls_while_a_run_is_running(client):
    html = client.get("/").text
    assert 'id="runs_table" hx-get="/" hx-trigger="every 10s"' in html
    frag = client.get("/", headers={"HX-Request": "true", "HX-Target": "runs_table"})
    assert frag.text.lstrip().startswith('<div id="runs_table"') and "<html" not in frag.text


def test_a_running_run_not_heard_from_for_90_s_is_lost(fresh_client, fresh):
    """A killed trainer cannot mark its run: a 'running' run is shown lost once it has not been
    heard from for 90 s: its heartbeat, or for a row from before heartbeats (the seeded one), its
    row, its newest checkpoint and its newest loss point (tests/test_store_truth.py: a real trainer)."""
    import datetime as dt

    from lambdascope.store import utcnow

    c = fresh_client
    runs = {r["id"]: r for r in c.get("/runs.json").json()["runs"]}
    assert runs[fresh.run_b]["status"] == "running" and runs[fresh.run_b]["last_heard_at"] is not None
    assert runs[fresh.run_a]["status"] == "finished" and runs[fresh.run_a]["last_heard_at"] is None
    assert "no sign of life" not in c.get("/").text

    long_ago = utcnow() - dt.timedelta(minutes=42)
    db = sqlite3.connect(fresh.url.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE runs SET started_at = ?, updated_at = ? WHERE id = ?",
                   (str(long_ago), str(long_ago), fresh.run_b))
        db.execute("UPDATE metric_points SET time = ? WHERE run_id = ?", (str(long_ago), fresh.run_b))
        db.execute("UPDATE checkpoints SET created_at = ? WHERE run_id = ?", (str(long_ago), fresh.run_b))
    run = next(r for r in c.get("/runs.json").json()["runs"] if r["id"] == fresh.run_b)
    assert run["status"] == "lost" and run["last_heard_at"].startswith(long_ago.isoformat()[:16])
    assert run["silent_s"] // 60 in (41, 42)
    for page in ("/", f"/runs/{fresh.run_b}"):
        html = c.get(page).text
        assert re.search(r"no sign of life for 4[12] min", html) and "status-lost" in html, page
    assert c.get(f"/runs/{fresh.run_b}.json").json()["run"]["status"] == "lost"
    assert 'class="live-dot"' not in c.get(f"/runs/{fresh.run_b}").text
    assert 'hx-trigger="every 10s"' in c.get("/").text  # still polled: a resume shows by itself

    # a new loss point: heard from again
    with db:
        db.execute("INSERT INTO metric_points (run_id, step, name, value, time) VALUES (?, ?, 'loss', 1.0, ?)",
                   (fresh.run_b, 10**6, str(utcnow())))
    run = next(r for r in c.get("/runs.json").json()["runs"] if r["id"] == fresh.run_b)
    assert run["status"] == "running"

    # a heartbeat is the word once there is one: 2 min old is lost, whatever else is new
    with db:
        db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?",
                   (str(utcnow() - dt.timedelta(minutes=2)), fresh.run_b))
    db.close()
    run = next(r for r in c.get("/runs.json").json()["runs"] if r["id"] == fresh.run_b)
    assert run["status"] == "lost" and run["silent_s"] >= 120
    assert "no sign of life for 2 min" in c.get(f"/runs/{fresh.run_b}").text
