"""Evaluation suites on the dashboard: suite rows (``checkpoints.suite``) never listed as
checkpoints of their own, curves per suite on the run page, ``?suite=`` on the checkpoint,
examples, trace and compare pages, and the generalisation chart (its buckets against a brute
count over the predictions, the shaded region from the training data's longest)."""

from __future__ import annotations

import html
import re
from collections import defaultdict

from tests.app_store import SUITES, TRAIN_SHAPE


def test_suite_rows_are_not_listed_as_checkpoints(suite_store):
    seeded, c = suite_store
    suite_ids = set(seeded.rows.values())
    runs = c.get("/runs.json").json()["runs"]
    mine = next(r for r in runs if r["id"] == seeded.run)
    assert mine["checkpoints"] == 2
    assert mine["latest_checkpoint"]["id"] == seeded.main[200]
    run = c.get(f"/runs/{seeded.run}.json").json()
    assert [ck["id"] for ck in run["checkpoints"]] == [seeded.main[100], seeded.main[200]]
    assert [k["id"] for k in run["kinds_by_checkpoint"]] == [seeded.main[100], seeded.main[200]]
    html = c.get(f"/runs/{seeded.run}").text
    for i in suite_ids:
        assert f'href="/checkpoints/{i}"' not in html
    # compare's default pair and pickers
    r = c.get("/compare", follow_redirects=False)
    assert r.status_code == 303
    a, b = map(int, re.search(r"a=(\d+)&b=(\d+)", r.headers["location"]).groups())
    assert a not in suite_ids and b not in suite_ids
    picker = c.get("/compare?a=&b=").text
    for i in suite_ids:
        assert f'value="{i}"' not in picker
    cmp = c.get(f"/compare.json?a={seeded.main[100]}&b={seeded.main[200]}").json()
    assert not {ck["id"] for ck in cmp["checkpoints"]} & suite_ids
    # the latest checkpoint the examples page and the queue pick by default is a main row
    r = c.get("/examples", follow_redirects=False)
    assert int(re.search(r"ck=(\d+)", r.headers["location"]).group(1)) not in suite_ids
    assert c.get("/queue.json").json()["checkpoint"]["id"] not in suite_ids
    # prev/next on a main checkpoint page skip the suite rows
    d = c.get(f"/checkpoints/{seeded.main[100]}.json").json()
    assert d["next_id"] == seeded.main[200] and d["previous_id"] is None


def test_run_page_curves_per_suite(suite_store):
    seeded, c = suite_store
    d = c.get(f"/runs/{seeded.run}.json").json()
    by_name = {sc["name"]: sc for sc in d["suite_curves"]}
    assert set(by_name) == {"exact", "rollout_success"}
    series = by_name["exact"]["series"]
    assert [s["suite"] for s in series] == [None] + sorted(SUITES)
    run_cks = {ck["id"]: ck for ck in d["checkpoints"]}
    assert [p[0] for p in series[0]["points"]] == [100, 200]
    assert series[0]["points"][0][1] == run_cks[seeded.main[100]]["metrics"]["exact"]
    for s in series[1:]:
        rows = [c.get(f"/checkpoints/{seeded.rows[(step, s['suite'])]}.json").json()["checkpoint"]
                for step in (100, 200)]
        assert s["points"] == [[r["step"], r["metrics"]["exact"]] for r in rows]
    assert len({s["colour"] for s in series}) == len(series)
    html = c.get(f"/runs/{seeded.run}").text
    assert html.count('class="chart suite-chart"') == 2
    for name in SUITES:
        assert f'data-suite="{name}"' in html
    # a run without suites has none
    assert c.get(f"/runs/{seeded.old_run}.json").json()["suite_curves"] == []
    assert "By evaluation suite" not in c.get(f"/runs/{seeded.old_run}").text


def test_checkpoint_suite_picker_and_parameter(suite_store):
    seeded, c = suite_store
    main = seeded.main[200]
    d = c.get(f"/checkpoints/{main}.json").json()
    assert [(s["suite"], s["id"], s["current"]) for s in d["suites"]] == \
        [(None, main, True)] + [(n, seeded.rows[(200, n)], False) for n in sorted(SUITES)]
    assert d["suites"][1]["href"] == f"/checkpoints/{main}?suite={sorted(SUITES)[0]}"
    html = c.get(f"/checkpoints/{main}").text
    for n in SUITES:
        assert f'href="/checkpoints/{main}?suite={n}"' in html
    for n in SUITES:
        row = seeded.rows[(200, n)]
        d = c.get(f"/checkpoints/{main}.json?suite={n}").json()
        assert d["checkpoint"]["id"] == row and d["checkpoint"]["suite"] == n
        assert d["summary"]["n"] == sum(len(t.records) for t in seeded.traces[n])
        exact = sum(seeded.exact[row].values())
        assert d["summary"]["exact"] == exact
        assert d["previous_id"] == seeded.rows[(100, n)] and d["next_id"] is None
        assert [s["current"] for s in d["suites"]].count(True) == 1
        page = c.get(f"/checkpoints/{main}?suite={n}").text
        assert f"suite <b>{n}</b>" in page and f'href="/examples?ck={row}"' in page
    # idempotent: a suite row asked for its own suite
    row = seeded.rows[(100, "longer")]
    assert c.get(f"/checkpoints/{row}.json?suite=longer").json()["checkpoint"]["id"] == row


def test_examples_trace_and_compare_take_the_suite(suite_store):
    seeded, c = suite_store
    main, row = seeded.main[200], seeded.rows[(200, "longer")]
    d = c.get(f"/examples.json?ck={main}&suite=longer&limit=200").json()
    identities = {t.identity for t in seeded.traces["longer"]}
    assert d["checkpoint"]["id"] == row and d["checkpoint"]["suite"] == "longer"
    assert d["rows"] and {r["trace_identity"] for r in d["rows"]} <= identities
    assert d["checkpoint_total"] == sum(len(t.records) for t in seeded.traces["longer"])
    assert {ck["id"] for ck in d["checkpoints"]} == {seeded.rows[(100, "longer")], row}
    html = c.get(f"/examples?ck={main}&suite=longer").text
    assert f"ck={row}" in html and "suite longer" in html
    # trace
    tr = seeded.traces["church"][0]
    t = c.get(f"/traces/{tr.identity}.json?ck={main}&suite=church").json()
    assert t["checkpoint"]["id"] == seeded.rows[(200, "church")] and t["checkpoint"]["suite"] == "church"
    assert [s["exact"] for s in t["steps"]] == [seeded.exact[t["checkpoint"]["id"]][(tr.identity, r.step_k)]
                                                 for r in tr.records]
    assert c.get(f"/traces/{tr.identity}?ck={main}&suite=church").status_code == 200
    # compare: both on the suite
    cmp = c.get(f"/compare.json?a={seeded.main[100]}&b={main}&suite=longer&kind=all").json()
    assert (cmp["a"]["id"], cmp["b"]["id"]) == (seeded.rows[(100, "longer")], row)
    assert cmp["suite"] == "longer"
    assert cmp["counts"]["n"] == sum(len(t.records) for t in seeded.traces["longer"])
    assert c.get(f"/compare?a={seeded.main[100]}&b={main}&suite=longer").status_code == 200


def test_bad_and_unknown_suites(suite_store):
    seeded, c = suite_store
    main = seeded.main[200]
    for path in (f"/checkpoints/{main}", f"/checkpoints/{main}/generalisation", f"/examples?ck={main}",
                 f"/compare?a={seeded.main[100]}&b={main}",
                 f"/traces/{seeded.traces[None][0].identity}?ck={main}"):
        sep = "&" if "?" in path else "?"
        for bad in ("../x", "a b", "x" * 65, "<script>", "-lead"):
            r = c.get(f"{path}{sep}suite={bad}")
            assert r.status_code == 400, (path, bad, r.status_code)
            assert "suite: a suite name is" in r.text
        r = c.get(f"{path}{sep}suite=nosuch")
        assert r.status_code == 404, (path, r.status_code)
        text = html.unescape(r.text)
        assert "no evaluation on suite 'nosuch'" in text and "its suites: church, longer" in text
    j = c.get(f"/checkpoints/{main}.json?suite=nosuch")
    assert j.status_code == 404 and "nosuch" in j.json()["error"]
    assert c.get(f"/checkpoints/{main}.json?suite=").status_code == 200  # empty: the main set
    r = c.get(f"/traces/{seeded.traces[None][0].identity}.json?suite=longer")
    assert r.status_code == 400 and "ck" in r.json()["error"]


def _brute(buckets_of, width):
    out = defaultdict(lambda: [0, 0])
    for value, hit in buckets_of:
        out[value // width][0] += 1
        out[value // width][1] += int(hit)
    return {i * width: tuple(v) for i, v in out.items()}


def test_generalisation_buckets_match_a_brute_count(suite_store):
    seeded, c = suite_store
    main = seeded.main[200]
    d = c.get(f"/checkpoints/{main}/generalisation.json").json()
    assert d["train_shape"] is True and d["note"] is None
    panels = {p["name"]: p for p in d["panels"]}
    assert set(panels) == {"exact_by_length", "exact_by_steps", "rollout_by_steps"}
    for name, p in panels.items():
        assert [s["suite"] for s in p["series"]] == [None] + sorted(SUITES)
        train = TRAIN_SHAPE["length" if name == "exact_by_length" else "steps"]
        assert p["width"] == train["width"] and p["train_max"] == train["max"]
        assert p["unseen_from"] == train["max"] + 1
        assert [b["n"] for b in p["train"]] == train["counts"]
        for s in p["series"]:
            row = main if s["suite"] is None else seeded.rows[(200, s["suite"])]
            assert s["checkpoint_id"] == row
            traces = seeded.traces[s["suite"]]
            if name == "rollout_by_steps":
                pairs = [(t.records[0].steps_total, seeded.rollouts[row][t.identity]) for t in traces]
            else:
                pairs = [(len(r.term) if name == "exact_by_length" else r.steps_total,
                          seeded.exact[row][(t.identity, r.step_k)]) for t in traces for r in t.records]
            expected = _brute(pairs, p["width"])
            assert {b["lo"]: (b["n"], b["hits"]) for b in s["buckets"]} == expected
            for b in s["buckets"]:
                assert b["hi"] == b["lo"] + p["width"] - 1 and b["rate"] == b["hits"] / b["n"]
    # the same from a suite's row (the chart is the step's, whichever row it is opened from)
    d2 = c.get(f"/checkpoints/{main}/generalisation.json?suite=church").json()
    assert d2["panels"] == d["panels"]


def test_generalisation_shading_starts_at_the_training_max(suite_store):
    from app.charts import generalisation_chart

    seeded, c = suite_store
    d = c.get(f"/checkpoints/{seeded.main[100]}/generalisation.json").json()
    html = c.get(f"/checkpoints/{seeded.main[100]}/generalisation").text
    for p in d["panels"]:
        g = generalisation_chart(p)
        right = g["left"] + g["plot_w"]
        x1 = (right - g["left"])  # the x axis from 0: px(v) = left + v / x_max * plot_w
        assert g["shade"]["from"] == p["train_max"] + 1
        # px(unseen_from) from the chart's own ticks' scale: the tick at 0 is at left
        ticks = {float(t["label"]): t["x"] for t in g["x_ticks"] if t["label"].replace(".", "").isdigit()}
        (v0, x0), (v1, xa) = sorted(ticks.items())[0], sorted(ticks.items())[-1]
        expect = x0 + (p["unseen_from"] - v0) * (xa - x0) / (v1 - v0)
        assert abs(g["shade"]["x"] - expect) < 0.2 and g["shade"]["x"] + g["shade"]["w"] <= right + 0.1
        assert x1 > 0
        # every bucket past the training max lies in the shade
        for line in g["lines"]:
            for dot in line["dots"]:
                assert (dot["x"] > g["shade"]["x"]) == (dot["b"]["lo"] > p["train_max"])
    assert html.count('class="unseen"') == 3
    assert f'data-from="{TRAIN_SHAPE["length"]["max"] + 1}"' in html
    assert f'beyond training (&gt; {TRAIN_SHAPE["length"]["max"]})' in html


def test_generalisation_without_train_shape(suite_store, client, seeded):
    s, c = suite_store
    for cl, ck in ((c, None), (client, seeded.ck1)):
        ck = ck or c.get(f"/runs/{s.old_run}.json").json()["checkpoints"][0]["id"]
        d = cl.get(f"/checkpoints/{ck}/generalisation.json").json()
        assert d["train_shape"] is False and "did not record" in d["note"]
        assert all(p["train"] is None and p["unseen_from"] is None for p in d["panels"])
        assert [len(p["series"]) for p in d["panels"]] == [1, 1, 1]
        assert sum(b["n"] for b in d["panels"][0]["series"][0]["buckets"]) == \
            cl.get(f"/checkpoints/{ck}.json").json()["summary"]["n"]
        html = cl.get(f"/checkpoints/{ck}/generalisation").text
        assert "training histogram not recorded for this run" in html and 'class="unseen"' not in html
        page = cl.get(f"/checkpoints/{ck}").text
        assert 'id="generalisation"' in page and "suite-picker" not in page
