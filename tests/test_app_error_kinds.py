"""Error kinds and rollout outcomes on the dashboard (issue 13, section 2), over the small seeded
store, checked against a brute-force reading of the seeded predictions (``diagnosis.error_kind``
of each): the JSON twins' ``error_kind`` on every example row, comparison row, queue item and
trace step; the checkpoint's counts by kind and by rollout outcome; the examples page's ``kind``
filter (repeated for several) with the other filters, sorts and keyset pages; every kind count's
link; the compare page's kind transition matrix and its cells' lists; the run page's stacked
chart (``kinds_by_checkpoint``), computed once a checkpoint; bad kinds answered 400."""

from __future__ import annotations

import html
import re
import sqlite3
from urllib.parse import parse_qsl, urlsplit

import pytest

from app.errors import BadRequest
from app.filters import ExampleFilter, count_sql, list_sql, parse_filter, parse_kinds, where_sql
from app.rendering import url
from lambdascope.diagnosis import error_kind, rollout_outcome
from lambdascope.spans import span_iou
from lambdascope.vocabulary import ERROR_KIND_TITLES, ERROR_KINDS, ROLLOUT_OUTCOMES, WRONG_KINDS
from tests.app_helpers import SORT_KEYS, matches, walk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---------------------------------------------------------------------------------------------
# brute force


def kind_rows(seeded, ck):
    """Every example with the prediction of ``ck`` and its error kind, computed here."""
    con = sqlite3.connect(seeded.url.removeprefix("sqlite:///"))
    conf = dict(con.execute("SELECT example_id, start_conf * end_conf FROM predictions "
                            "WHERE checkpoint_id = ?", (ck,)))
    con.close()
    return kind_rows_of(seeded, ck, conf)


def kind_rows_of(seeded, ck, conf=None):
    """``kind_rows`` of any store (the confidence, which only the store knows, when given)."""
    conf = conf or {}
    rows = []
    for tr in seeded.traces:
        for r in tr.records:
            eid = seeded.example_ids[(tr.identity, r.step_k)]
            pred = seeded.preds[ck][(tr.identity, r.step_k)]
            rows.append({"id": eid, "identity": tr.identity, "k": r.step_k, "term": r.term,
                         "gold": r.span, "pred": pred, "iou": span_iou(*pred, *r.span),
                         "exact": pred == r.span, "len": len(r.term), "togo": r.steps_total - r.step_k,
                         "conf": conf.get(eid), "kind": error_kind(r.term, pred)})
    return rows


def kind_matches(row, f: dict) -> bool:
    kinds = f.get("kind")
    if kinds is not None and row["kind"] not in ([kinds] if isinstance(kinds, str) else kinds):
        return False
    return matches(row, f)


def links(page_html: str, pattern: str) -> list[tuple[str, ...]]:
    return [tuple(html.unescape(g) for g in ((m,) if isinstance(m, str) else m))
            for m in re.findall(pattern, page_html)]


def query_of(link: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(link).query, keep_blank_values=True)


def compare_ids(client, params: list[tuple[str, str]]) -> tuple[list[int], int]:
    """Every example id of a comparison list, following its Next cursors; and its ``listed``."""
    ids, after, listed = [], None, None
    for _ in range(1000):
        q = params + ([("after", after)] if after else [])
        d = client.get("/compare.json", params=q).json()
        listed = d["listed"] if listed is None else listed
        ids += [r["example_id"] for r in d["rows"]]
        after = d["next"]
        if after is None:
            return ids, listed
    raise AssertionError("pagination does not end")


# ---------------------------------------------------------------------------------------------
# the filter as pure functions


def test_kind_filter_parses_once_or_repeated_in_vocabulary_order():
    assert parse_filter({"kind": "not_redex"}) == ExampleFilter(kind=("not_redex",))
    f = parse_filter({"ck": "3", "kind": ["not_subterm", "inner_redex", "", " not_subterm "]})
    assert f == ExampleFilter(ck=3, kind=("inner_redex", "not_subterm"))
    assert parse_filter({"kind": ["", " "]}) == ExampleFilter()  # a form's nothing ticked
    assert parse_kinds(list(reversed(ERROR_KINDS))) == tuple(ERROR_KINDS)
    # the wire format: the parameter repeated, and back
    params = f.params()
    assert params == {"ck": "3", "kind": ["inner_redex", "not_subterm"]}
    assert url("/examples", params) == "/examples?ck=3&kind=inner_redex&kind=not_subterm"
    back = {}
    for k, v in query_of(url("/examples", params)):
        back.setdefault(k, []).append(v)
    assert parse_filter({k: v if k == "kind" else v[0] for k, v in back.items()}) == f
    assert f.active() == [("kind", "kind: inner redex or not a subterm")]
    assert f.params_without("kind") == {"ck": "3"}


def test_kind_filter_is_a_bound_in_list():
    f = ExampleFilter(ck=1, kind=("false_nf", "not_redex"), correct="wrong", len_min=3)
    conds, params = where_sql(f)
    assert "p.error_kind IN (:kind_0, :kind_1)" in conds
    assert params["kind_0"] == "false_nf" and params["kind_1"] == "not_redex"
    for sql, _ in (count_sql(f), list_sql(f)[:2]):
        assert "false_nf" not in sql and "not_redex" not in sql  # values are bound, never spliced
    # a predictions-only kind filter counts along the (checkpoint, error kind) index
    assert "JOIN" not in count_sql(ExampleFilter(ck=1, kind=("exact",)))[0]


@pytest.mark.parametrize("value", ["bogus", "not_redex,inner_redex", "EXACT", ["exact", "nope"], "x" * 500])
def test_an_unknown_kind_is_refused_naming_the_parameter_and_the_kinds(value):
    with pytest.raises(BadRequest) as e:
        parse_filter({"kind": value})
    assert e.value.message.startswith("kind: ") and all(k in e.value.message for k in ERROR_KINDS)
    assert "kind=not_redex&kind=inner_redex" in e.value.message  # how to ask for several


def test_too_many_kind_values_are_refused():
    with pytest.raises(BadRequest, match="kind: at most 7"):
        parse_filter({"kind": ["exact"] * 15})


# ---------------------------------------------------------------------------------------------
# JSON twins


def test_every_example_row_carries_its_error_kind(client, seeded):
    for ck in (seeded.ck1, seeded.ck2):
        want = {r["id"]: r["kind"] for r in kind_rows(seeded, ck)}
        d = client.get("/examples.json", params={"ck": ck, "limit": 200}).json()
        got, after = {}, None
        while True:
            got |= {r["example_id"]: r["error_kind"] for r in d["rows"]}
            if not d["next"]:
                break
            d = client.get("/examples.json", params={"ck": ck, "limit": 200, "after": d["next"]}).json()
        assert got == want
        assert d["error_kinds"] == ERROR_KINDS and "kind=not_redex&kind=inner_redex" in d["kind_help"]
    # the seeded store has every kind at the first checkpoint, so each is exercised below
    assert set(want.values()) <= set(ERROR_KINDS)
    assert {r["kind"] for r in kind_rows(seeded, seeded.ck1)} == set(ERROR_KINDS)


def test_trace_steps_compare_rows_and_the_queue_carry_error_kinds(client, seeded):
    kinds = {ck: {(r["identity"], r["k"]): r["kind"] for r in kind_rows(seeded, ck)}
             for ck in (seeded.ck1, seeded.ck2)}
    for tr in seeded.traces[:12]:
        d = client.get(f"/traces/{tr.identity}.json", params={"ck": seeded.ck1}).json()
        assert [s["error_kind"] for s in d["steps"]] == [kinds[seeded.ck1][(tr.identity, r.step_k)]
                                                        for r in tr.records]
        gold_only = client.get(f"/traces/{tr.identity}.json").json()
        assert all(s["error_kind"] is None for s in gold_only["steps"]) and gold_only["rollout"] is None
    ids = {v: k for k, v in seeded.example_ids.items()}
    for kind in ("all", "regressions", "fixed"):
        d = client.get("/compare.json", params={"a": seeded.ck1, "b": seeded.ck2, "kind": kind}).json()
        assert d["rows"]
        for row in d["rows"]:
            key = ids[row["example_id"]]
            assert row["a"]["error_kind"] == kinds[seeded.ck1][key]
            assert row["b"]["error_kind"] == kinds[seeded.ck2][key]
    q = client.get("/queue.json", params={"ck": seeded.ck1}).json()["next"]
    assert q["error_kind"] == kinds[seeded.ck1][(q["identity"], q["step_k"])] != "exact"


def test_rollouts_carry_their_outcome(client, seeded):
    """The trace's rollout says how it ended: the stored outcome, which is what
    ``diagnosis.rollout_outcome`` makes of its path."""
    seen = set()
    for tr in seeded.traces:
        ro = client.get(f"/traces/{tr.identity}.json", params={"ck": seeded.ck1}).json()["rollout"]
        path = [[p["term"], p["span"]] for p in ro["path"]]
        assert ro["outcome"] == rollout_outcome(path, success=ro["success"], gold_steps=ro["gold_steps"],
                                                gold_normal_form=tr.records[-1].term)
        assert (ro["outcome"] == "success") == ro["success"]
        seen.add(ro["outcome"])
    assert {"success", "not_redex", "other_path"} <= seen  # the seeded rollouts end in several ways


def test_seeded_rollouts_follow_the_trainers_rules(seeded):
    """tests/app_store.py's rollouts are those lambdascope.metrics.rollout makes with a predictor that
    gives the seeded span on the gold trace and the normal-order redex off it."""
    from lambdascope.terms import parse, redex_span
    from tests.app_store import rollout_of
    from lambdascope.metrics import GoldTrace, rollout

    for ck in (seeded.ck1, seeded.ck2):
        for tr in seeded.traces:
            preds = {r.step_k: seeded.preds[ck][(tr.identity, r.step_k)] for r in tr.records}
            mine = rollout_of(tr, preds)
            state = {"k": 0, "on_gold": True}

            def predict(terms, tr=tr, preds=preds, state=state):
                t, k = terms[0], state["k"]
                state["k"] += 1
                state["on_gold"] = state["on_gold"] and k < len(tr.records) and t == tr.records[k].term
                return [preds[k] if state["on_gold"] else redex_span(parse(t))]

            gold = GoldTrace(tr.identity, tuple(r.term for r in tr.records), tuple(r.span for r in tr.records))
            theirs = rollout([gold], predict)[0]
            assert mine["path"] == theirs.path, tr.identity
            assert (mine["success"], mine["reached_normal_form"], mine["steps"], mine["first_divergent_step"]) == (
                theirs.success, theirs.reached_normal_form, theirs.steps, theirs.first_divergent_step)


def test_checkpoint_counts_every_kind_and_outcome(client, seeded):
    for ck in (seeded.ck1, seeded.ck2):
        s = client.get(f"/checkpoints/{ck}.json").json()["summary"]
        rows = kind_rows(seeded, ck)
        assert list(s["error_kinds"]) == list(ERROR_KINDS)  # all seven, in order, zeros included
        assert s["error_kinds"] == {k: sum(r["kind"] == k for r in rows) for k in ERROR_KINDS}
        assert sum(s["error_kinds"].values()) == s["n"] and s["error_kinds"]["exact"] == s["exact"]
        assert list(s["rollout_outcomes"]) == list(ROLLOUT_OUTCOMES)
        assert sum(s["rollout_outcomes"].values()) == s["rollouts"] == len(seeded.traces)
        assert s["rollout_outcomes"]["success"] == s["rollout_success"]
        con = sqlite3.connect(seeded.url.removeprefix("sqlite:///"))
        stored = dict(con.execute("SELECT outcome, count(*) FROM rollouts WHERE checkpoint_id = ? "
                                  "GROUP BY outcome", (ck,)))
        con.close()
        assert {k: v for k, v in s["rollout_outcomes"].items() if v} == stored
    assert 0 in s["error_kinds"].values() or 0 in s["rollout_outcomes"].values()  # zeros are kept


# ---------------------------------------------------------------------------------------------
# pages and links


def test_each_kind_count_links_to_exactly_its_examples(client, seeded):
    ck = seeded.ck1
    page = client.get(f"/checkpoints/{ck}").text
    counts = client.get(f"/checkpoints/{ck}.json").json()["summary"]["error_kinds"]
    found = links(page, r'<a class="kind-count" href="([^"]+)" data-kind="([a-z_]+)" data-count="(\d+)"')
    assert [k for _, k, _ in found] == list(ERROR_KINDS)
    rows = kind_rows(seeded, ck)
    for link, kind, n in found:
        assert dict(query_of(link)) == {"ck": str(ck), "kind": kind}
        ids, total = walk(client, dict(query_of(link)))
        want = sorted(r["id"] for r in rows if r["kind"] == kind)
        assert total == int(n) == counts[kind] == len(ids) and sorted(ids) == want, kind
    # each kind's title and one-line explanation are on the page; the outcomes too
    for k, why in ERROR_KINDS.items():
        assert html.escape(ERROR_KIND_TITLES[k]) in page and html.escape(why) in page
    for o, why in ROLLOUT_OUTCOMES.items():
        assert f'data-outcome="{o}"' in page and html.escape(why) in page


KIND_FILTERS = [
    {"kind": ["inner_redex", "right_redex"]},
    {"kind": ["not_redex", "not_subterm"], "len_min": "20"},
    {"kind": "false_nf", "togo_min": "1", "togo_max": "4"},
    {"kind": ["exact", "missed_nf"], "nf": "1"},
    {"kind": ["not_subterm", "false_nf", "inner_redex"], "correct": "wrong", "iou_max": "0.5"},
    {"kind": ["exact"], "correct": "wrong"},  # nothing
    {"kind": list(WRONG_KINDS), "q": "λ"},
]


@pytest.mark.parametrize("sort", ["example", "-iou", "conf", "len", "-togo"])
@pytest.mark.parametrize("f", KIND_FILTERS, ids=[str(f) for f in KIND_FILTERS])
def test_kind_filter_composes_with_filters_sorts_and_keyset_pages(client, seeded, f, sort):
    rows = kind_rows(seeded, seeded.ck1)
    want = [r["id"] for r in sorted((r for r in rows if kind_matches(r, f)), key=SORT_KEYS[sort])]
    ids, total = walk(client, {"ck": seeded.ck1, "sort": sort, "limit": "20", **f})
    assert total == len(want) and ids == want


def test_examples_page_with_kinds(client, seeded):
    ck = seeded.ck1
    page = client.get("/examples", params=[("ck", ck), ("kind", "inner_redex"), ("kind", "not_redex")]).text
    # the form ticks what is chosen and says how to ask for several
    ticked = re.findall(r'<input type="checkbox" name="kind" value="([a-z_]+)" checked>', page)
    assert ticked == ["inner_redex", "not_redex"]
    assert len(re.findall(r'<input type="checkbox" name="kind"', page)) == len(ERROR_KINDS)
    assert "kind=not_redex&amp;<wbr>kind=inner_redex" in page
    # the chip that removes the filter, and a kind badge on each (wrong) row
    chip = links(page, r'<a class="chip" href="([^"]+)" title="remove this filter">kind: ')
    assert chip == [(f"/examples?ck={ck}",)]
    n = client.get("/examples.json", params=[("ck", ck), ("kind", "inner_redex"), ("kind", "not_redex")]).json()
    assert len(re.findall(r'<span class="badge kind kind-(inner_redex|not_redex)"', page)) == len(n["rows"]) > 0
    assert n["filter"]["kind"] == ["inner_redex", "not_redex"]
    # htmx: the canonical address with the parameter repeated
    r = client.get(f"/examples?ck={ck}&kind=not_redex&kind=inner_redex&kind=&iou_min=",
                   headers={"HX-Request": "true", "HX-Target": "results"})
    assert r.headers["HX-Push-Url"] == f"/examples?ck={ck}&kind=inner_redex&kind=not_redex"


def brute_transitions(seeded, rows=None):
    rows_a, rows_b = rows or (kind_rows(seeded, seeded.ck1), kind_rows(seeded, seeded.ck2))
    a = {r["id"]: r["kind"] for r in rows_a}
    b = {r["id"]: r["kind"] for r in rows_b}
    return {eid: (a[eid], b[eid]) for eid in a}


def test_transition_matrix_counts_examples_by_kind_at_a_and_at_b(client, seeded):
    d = client.get("/compare.json", params={"a": seeded.ck1, "b": seeded.ck2}).json()
    kt = d["kind_transitions"]
    assert kt["kinds"] == list(ERROR_KINDS)
    pairs = list(brute_transitions(seeded).values())
    assert kt["counts"] == [[pairs.count((ka, kb)) for kb in ERROR_KINDS] for ka in ERROR_KINDS]
    assert sum(map(sum, kt["counts"])) == d["counts"]["n"]
    # its rows and columns are the two checkpoints' counts by kind
    for ck, counts in ((seeded.ck1, [sum(r) for r in kt["counts"]]),
                       (seeded.ck2, [sum(col) for col in zip(*kt["counts"])])):
        s = client.get(f"/checkpoints/{ck}.json").json()["summary"]
        assert counts == list(s["error_kinds"].values())
    assert d["kind"] == "regressions" and d["kind_a"] is None and d["kind_b"] is None


def test_each_transition_cell_lists_exactly_those_pairs(client, seeded):
    page = client.get("/compare", params={"a": seeded.ck1, "b": seeded.ck2}).text
    cells = links(page, r'<a href="([^"]+)" data-kind-a="([a-z_]+)" data-kind-b="([a-z_]+)" data-count="(\d+)"')
    d = client.get("/compare.json", params={"a": seeded.ck1, "b": seeded.ck2}).json()
    nonzero = [(ka, kb) for i, ka in enumerate(ERROR_KINDS) for j, kb in enumerate(ERROR_KINDS)
               if d["kind_transitions"]["counts"][i][j]]
    assert [(ka, kb) for _, ka, kb, _ in cells] == nonzero and len(nonzero) > 7
    pairs = brute_transitions(seeded)
    for link, ka, kb, n in cells:
        params = query_of(link)
        assert dict(params) == {"a": str(seeded.ck1), "b": str(seeded.ck2), "kind": "all",
                                "kind_a": ka, "kind_b": kb}
        ids, listed = compare_ids(client, params)
        want = sorted(eid for eid, p in pairs.items() if p == (ka, kb))
        assert len(ids) == listed == int(n) and sorted(ids) == want, (ka, kb)
    # a row's or a column's total lists that kind at A (at B) alone; filters compose with a list
    ids, listed = compare_ids(client, [("a", seeded.ck1), ("b", seeded.ck2), ("kind_a", "not_subterm")])
    assert sorted(ids) == sorted(e for e, (ka, _) in pairs.items() if ka == "not_subterm") and listed == len(ids)
    fixed, listed = compare_ids(client, [("a", seeded.ck1), ("b", seeded.ck2), ("kind", "fixed"),
                                         ("kind_b", "exact")])
    assert listed == len(fixed) == len(seeded.fixed)  # a fixed example is exact at B
    none, listed = compare_ids(client, [("a", seeded.ck1), ("b", seeded.ck2), ("kind", "broken"),
                                        ("kind_a", "not_redex")])
    assert none == [] and listed == 0  # broken: exact at A
    # the filtered list's page shows what it lists, and a way back
    page = client.get("/compare", params={"a": seeded.ck1, "b": seeded.ck2, "kind": "all",
                                          "kind_a": "not_subterm", "kind_b": "exact"}).text
    assert "not a subterm at A → exact at B" in page and 'class="tcell better active"' in page
    assert f'href="/compare?a={seeded.ck1}&amp;b={seeded.ck2}&amp;kind=all&amp;order=change"' in page


def test_trace_page_badges_each_wrong_step_and_the_rollout(client, seeded):
    for tr in seeded.traces[:15]:
        d = client.get(f"/traces/{tr.identity}.json", params={"ck": seeded.ck1}).json()
        page = client.get(f"/traces/{tr.identity}", params={"ck": seeded.ck1}).text
        wrong = [s["error_kind"] for s in d["steps"] if s["error_kind"] != "exact"]
        badges = re.findall(r'<div class="why small"><span class="badge kind kind-([a-z_]+)" data-kind="[a-z_]+" '
                            r'title="([^"]+)">[^<]+</span> <span class="muted">([^<]+)</span></div>', page)
        assert [k for k, _, _ in badges] == wrong
        for k, title, text in badges:
            assert html.unescape(title) == html.unescape(text) == ERROR_KINDS[k]
        o = d["rollout"]["outcome"]
        assert f'<span class="badge outcome outcome-{o}' in page
        assert html.escape(ROLLOUT_OUTCOMES[o]) in page


def test_run_page_stacks_each_checkpoints_kinds(client, seeded):
    d = client.get(f"/runs/{seeded.run_a}.json").json()
    kb = d["kinds_by_checkpoint"]
    assert [k["id"] for k in kb] == [ck["id"] for ck in d["checkpoints"]] == [seeded.ck1, seeded.ck2]
    for k in kb:
        s = client.get(f"/checkpoints/{k['id']}.json").json()["summary"]
        assert k["counts"] == s["error_kinds"] and k["n"] == s["n"]
        assert sum(k["shares"].values()) == pytest.approx(1.0)
        assert all(k["shares"][x] == pytest.approx(k["counts"][x] / k["n"]) for x in ERROR_KINDS)
    page = client.get(f"/runs/{seeded.run_a}").text
    assert '<svg class="stacked"' in page
    segments = links(page, r'<a href="([^"]+)" data-kind="([a-z_]+)" data-count="(\d+)"><rect class="seg kind-\2"')
    want = [(url("/examples", ck=k["id"], kind=x), x, str(n)) for k in kb for x, n in k["counts"].items() if n]
    assert segments == want
    legend = re.search(r'<figcaption class="kind-legend">(.*?)</figcaption>', page, re.S).group(1)
    assert all(html.escape(t) in legend for t in ERROR_KIND_TITLES.values())
    # a run without checkpoints has none
    assert client.get(f"/runs/{seeded.run_b}.json").json()["kinds_by_checkpoint"] == []
    assert '<svg class="stacked"' not in client.get(f"/runs/{seeded.run_b}").text


def test_kind_counts_are_computed_once_a_checkpoint(fresh_client, fresh, monkeypatch):
    import app.cache

    calls = []
    real = app.cache.kind_counts
    monkeypatch.setattr(app.cache, "kind_counts", lambda session, ck: calls.append(ck) or real(session, ck))
    for _ in range(3):
        assert fresh_client.get(f"/runs/{fresh.run_a}").status_code == 200
        assert fresh_client.get(f"/runs/{fresh.run_a}.json").status_code == 200
        for ck in (fresh.ck1, fresh.ck2):
            assert fresh_client.get(f"/checkpoints/{ck}.json").status_code == 200
    assert sorted(calls) == [fresh.ck1, fresh.ck2]


# ---------------------------------------------------------------------------------------------
# bad input


BAD = [
    ("/examples.json?ck={ck1}&kind=bogus", "kind: unknown error kind 'bogus'"),
    ("/examples?ck={ck1}&kind=bogus", "kind: unknown error kind 'bogus'"),
    ("/examples.json?ck={ck1}&kind=not_redex,inner_redex", "kind: unknown error kind"),
    ("/examples?ck={ck1}&kind=exact&kind=" + "x" * 300, "kind: unknown error kind"),
    ("/examples.json?kind=nope", "kind: unknown error kind"),  # refused before the redirect
    ("/compare.json?a={ck1}&b={ck2}&kind_a=bogus", "kind_a: unknown error kind 'bogus'"),
    ("/compare?a={ck1}&b={ck2}&kind_b=Exact", "kind_b: unknown error kind 'Exact'"),
    ("/compare.json?a={ck1}&b={ck2}&kind=all&kind_a=exact,false_nf", "kind_a: unknown error kind"),
]


@pytest.mark.parametrize("address, message", BAD, ids=[a[:70] for a, _ in BAD])
def test_an_unknown_kind_is_a_400_with_a_message(client, seeded, address, message):
    address = address.replace("{ck1}", str(seeded.ck1)).replace("{ck2}", str(seeded.ck2))
    r = client.get(address, follow_redirects=False)
    assert r.status_code == 400, r.text[:300]
    if ".json" in address:
        text = r.json()["error"]
    else:
        assert r.headers["content-type"].startswith("text/html")
        text = html.unescape(re.search(r'<p class="error-message">(.*?)</p>', r.text, re.S).group(1))
    assert message in text and ", ".join(ERROR_KINDS) in text, text


def test_kinds_over_postgres(pg_seeded, pg_client):
    """The kind filter's IN list, the counts and the transition matrix on PostgreSQL."""
    seeded, c = pg_seeded, pg_client
    rows = kind_rows_of(seeded, seeded.ck1)
    for f in ({"kind": ["inner_redex", "not_subterm"], "correct": "wrong"}, {"kind": "false_nf", "len_min": "30"}):
        for sort in ("example", "-iou"):
            want = [r["id"] for r in sorted((r for r in rows if kind_matches(r, f)), key=SORT_KEYS[sort])]
            ids, total = walk(c, {"ck": seeded.ck1, "sort": sort, "limit": "10", **f})
            assert total == len(want) and ids == want
    s = c.get(f"/checkpoints/{seeded.ck1}.json").json()["summary"]
    assert s["error_kinds"] == {k: sum(r["kind"] == k for r in rows) for k in ERROR_KINDS}
    assert sum(s["rollout_outcomes"].values()) == len(seeded.traces)
    d = c.get("/compare.json", params={"a": seeded.ck1, "b": seeded.ck2}).json()
    pairs = list(brute_transitions(seeded, rows=(rows, kind_rows_of(seeded, seeded.ck2))).values())
    assert d["kind_transitions"]["counts"] == [[pairs.count((ka, kb)) for kb in ERROR_KINDS] for ka in ERROR_KINDS]
    ids, listed = compare_ids(c, [("a", seeded.ck1), ("b", seeded.ck2), ("kind", "all"),
                                  ("kind_a", "not_subterm"), ("kind_b", "exact")])
    assert listed == len(ids) == pairs.count(("not_subterm", "exact"))
    assert c.get(f"/runs/{seeded.run_a}").status_code == 200
