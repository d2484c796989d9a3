"""Shrinking with a real checkpoint file (tests/beliefs_store.py: a tiny sharpened model, wrong on
most terms): `lambdascope shrink` (its text and --json outputs, a checkpoint given by file or by
id, the bad-input errors) and the dashboard's /shrink fragment and JSON twin (with the trainer's
loader, without one, an unloadable checkpoint, the time budget) and the trace page's "shrink"
button on its wrong steps only."""

import html
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from lambdascope.cli import main
from lambdascope.diagnosis import error_kind
from lambdascope.shrink import shrink
from lambdascope.terms import parse, print_term, redex_span

from tests.beliefs_store import build_model_store, make_dashboard_client


@pytest.fixture(scope="module")
def shrink_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shrink")
    return build_model_store(f"sqlite:///{folder}/store.db", folder)


@pytest.fixture(scope="module")
def shrink_client(shrink_store):
    return make_dashboard_client(shrink_store.seeded.url, model_budget=60)


@pytest.fixture(scope="module")
def predictor(shrink_store):
    from trainer.predict import load_predictor

    return load_predictor(shrink_store.path)


def live_terms(shrink_store, predictor):
    """(wrong, right): the evaluation set's terms the model, run here, gets wrong and right."""
    terms = list(dict.fromkeys(r.term for tr in shrink_store.seeded.traces for r in tr.records))
    preds = predictor.predict_many(terms)
    wrong = [t for t, p in zip(terms, preds) if error_kind(t, (p[0], p[1])) != "exact"]
    right = [t for t, p in zip(terms, preds) if error_kind(t, (p[0], p[1])) == "exact"]
    assert len(wrong) >= 3 and right
    return wrong, right


def a_wrong_term(shrink_store, predictor) -> str:
    """A wrong term whose shrinking takes a few moves."""
    wrong, _ = live_terms(shrink_store, predictor)
    return max(wrong[:20], key=len)


def run(capsys, *argv):
    rc = main(["shrink", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def check_chain(d: dict):
    chain = d["chain"]
    assert [s["length"] for s in chain] == sorted({s["length"] for s in chain}, reverse=True)
    for s in chain:
        assert s["length"] == len(s["term"]) and print_term(parse(s["term"])) == s["term"]
        assert tuple(s["gold"]) == redex_span(parse(s["term"]))
        assert s["kind"] == error_kind(s["term"], tuple(s["pred"])) != "exact"
        assert d["target"] == "any" or s["kind"] == d["target"]
    assert d["minimal"] == chain[-1] and chain[0]["move"] == "original"
    assert d["calls"] <= d["budget"]


# ---------------------------------------------------------------------------------------------
# the command line


def test_shrink_json_by_file_and_by_id(capsys, shrink_store, predictor):
    term = a_wrong_term(shrink_store, predictor)
    rc, out, err = run(capsys, str(shrink_store.path), term, "--json")
    assert rc == 0, err
    d = json.loads(out)
    check_chain(d)
    assert d["original"] == term == d["chain"][0]["term"] and len(d["chain"]) >= 2
    assert d["checkpoint"] == str(shrink_store.path) and d["budget"] == 300
    assert d["stopped"] in ("minimal", "budget") and "model calls in" in err
    # the same search in the core, with the same predictor: the same chain
    assert shrink(predictor, term).to_dict() == {k: v for k, v in d.items() if k != "checkpoint"}
    # the same again, and by the checkpoint's id in the store
    assert run(capsys, str(shrink_store.path), term, "--json")[1] == out
    rc, by_id, err = run(capsys, str(shrink_store.ck), term, "--json", "--db", shrink_store.seeded.url)
    assert rc == 0 and by_id == out, err


def test_shrink_text_output_any_and_budget(capsys, shrink_store, predictor):
    term = a_wrong_term(shrink_store, predictor)
    d = json.loads(run(capsys, str(shrink_store.path), term, "--json")[1])
    rc, out, err = run(capsys, str(shrink_store.path), term)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"shrinking {term} with {shrink_store.path}: keeping the error kind {d['target']}"
    assert len(lines) == len(d["chain"]) + 2
    for i, (line, s) in enumerate(zip(lines[1:], d["chain"])):
        assert re.match(rf"\s*{i}\s+{s['length']}\s+gold ", line) and s["kind"] in line and s["term"] in line
        assert i == 0 or f"({s['move']})" in line
    n = len(d["chain"]) - 1
    assert re.fullmatch(rf"from {len(term)} to {d['minimal']['length']} code points in {n} moves? and "
                        rf"{d['calls']} model calls? of 300 \(.*\)", lines[-1]), lines[-1]
    # any error: every term of the chain is wrong, whatever its kind
    a = json.loads(run(capsys, str(shrink_store.path), term, "--json", "--any")[1])
    check_chain(a)
    assert a["target"] == "any" and a["chain"][0] == d["chain"][0]
    # a budget of 2 calls: the original and one candidate, then it says so
    rc, out, _ = run(capsys, str(shrink_store.path), term, "--budget", "2")
    assert rc == 0 and "and 2 model calls of 2 (stopped: the budget of 2 model calls was used)" in out
    b = json.loads(run(capsys, str(shrink_store.path), term, "--json", "--budget", "2")[1])
    assert b["calls"] == 2 and b["budget_exhausted"] and b["stopped"] == "budget"


def test_a_term_the_model_gets_right_is_a_failure_with_a_message(capsys, shrink_store, predictor):
    _, right = live_terms(shrink_store, predictor)
    rc, out, err = run(capsys, str(shrink_store.path), right[0])
    assert rc == 1 and out == ""
    assert f"the model is right on {print_term(parse(right[0]))}" in err and "no error to shrink" in err


@pytest.mark.parametrize("argv,message", [
    (["{path}", "(λx.x"], "TERM '(λx.x' does not parse: at position 5: expected ')'"),
    (["{path}", ""], "TERM '' does not parse"),
    (["{dir}/nope.pt", "x"], "nope.pt: no such checkpoint file"),
    (["999999", "x", "--db", "{url}"], "checkpoint 999999: not in the store"),
    (["{ck1}", "x", "--db", "{url}"], "runs/run-a/ckpt-100.pt does not exist"),
    (["7", "x", "--db", "{dir}/none.db"], "no store at"),
    (["{store_file}", "x"], "cannot load the checkpoint"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, shrink_store, argv, message):
    url = shrink_store.seeded.url
    fill = {"{path}": str(shrink_store.path), "{dir}": str(shrink_store.path.parent), "{url}": url,
            "{ck1}": str(shrink_store.seeded.ck1), "{store_file}": url.removeprefix("sqlite:///")}
    for k, v in fill.items():
        argv = [a.replace(k, v) for a in argv]
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == "", err
    assert err.startswith("lambdascope shrink: error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("budget", ["0", "abc", "-3"])
def test_a_bad_budget_is_a_usage_error(capsys, shrink_store, budget):
    with pytest.raises(SystemExit) as e:
        main(["shrink", str(shrink_store.path), "x", "--budget", budget])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--budget" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# the dashboard


def test_the_json_twin_is_the_cores_chain(shrink_client, shrink_store, predictor):
    term = a_wrong_term(shrink_store, predictor)
    d = shrink_client.get("/shrink.json", params={"ck": shrink_store.ck, "term": term}).json()
    assert d["shrink_error"] is None and d["nothing"] is None and not d["cached"]
    check_chain(d["shrink"])
    assert d["shrink"] == shrink(predictor, term).to_dict()
    assert d["checkpoint"]["id"] == shrink_store.ck and d["term"] == term and d["any"] is False
    again = shrink_client.get("/shrink.json", params={"ck": shrink_store.ck, "term": term}).json()
    assert again["cached"] and again["shrink"] == d["shrink"]
    a = shrink_client.get("/shrink.json", params={"ck": shrink_store.ck, "term": term, "any": "1"}).json()
    assert a["any"] is True and a["shrink"]["target"] == "any"


def test_the_fragment_shows_the_chain(shrink_client, shrink_store, predictor):
    term = a_wrong_term(shrink_store, predictor)
    d = shrink(predictor, term).to_dict()
    r = shrink_client.get("/shrink", params={"ck": shrink_store.ck, "term": term})
    assert r.status_code == 200
    page = r.text
    assert f"Shrunk from {len(term)} to {d['minimal']['length']} characters" in page
    assert page.count('<li class="shrink-step') == len(d["chain"]) and "is-minimal" in page
    for s in d["chain"][1:]:
        assert html.escape(s["move"]) in page
    assert f'data-kind="{d["target"]}"' in page
    assert "/playground?term=" in page and "shrink keeping any error" in page
    # the model is right on a term: the fragment says so
    _, right = live_terms(shrink_store, predictor)
    page = shrink_client.get("/shrink", params={"ck": shrink_store.ck, "term": right[0]}).text
    assert "Nothing to shrink: the model is right on" in page


def test_without_a_model_the_fragment_says_why(shrink_store):
    from tests.app_store import make_client

    c = make_client(shrink_store.seeded.url)  # no model loader
    for path in ("/shrink", "/shrink.json"):
        r = c.get(path, params={"ck": shrink_store.ck, "term": "(λx.x) y"})
        assert r.status_code == 200 and "without a model loader" in r.text
    d = c.get("/shrink.json", params={"ck": shrink_store.ck, "term": "(λx.x) y"}).json()
    assert d["shrink"] is None and "without a model loader" in d["shrink_error"]


def test_an_unloadable_checkpoint_and_bad_parameters(shrink_client, shrink_store):
    d = shrink_client.get("/shrink.json", params={"ck": shrink_store.seeded.ck1, "term": "(λx.x) y"}).json()
    assert d["shrink"] is None and "cannot load runs/run-a/ckpt-100.pt" in d["shrink_error"]
    page = shrink_client.get("/shrink", params={"ck": shrink_store.seeded.ck1, "term": "(λx.x) y"}).text
    assert "shrinking unavailable: cannot load" in page
    for params, status, word in [({"term": "x"}, 400, "ck:"), ({"ck": shrink_store.ck}, 400, "term:"),
                                 ({"ck": shrink_store.ck, "term": "(λx.x"}, 400, "term: at position 5"),
                                 ({"ck": shrink_store.ck, "term": "x", "any": "maybe"}, 400, "any:"),
                                 ({"ck": 999999, "term": "x"}, 404, "no checkpoint 999999")]:
        r = shrink_client.get("/shrink.json", params=params)
        assert r.status_code == status and word in r.json()["error"], (params, r.text)
        r = shrink_client.get("/shrink", params=params)
        assert r.status_code == status and word in html.unescape(r.text), (params, r.text)


def test_the_time_budget_stops_the_search_and_the_page_says_so(shrink_store, predictor):
    c = make_dashboard_client(shrink_store.seeded.url, model_budget=1e-9)
    term = a_wrong_term(shrink_store, predictor)
    d = c.get("/shrink.json", params={"ck": shrink_store.ck, "term": term}).json()
    assert d["shrink_error"].startswith("stopped: the model's time budget")
    assert [s["move"] for s in d["shrink"]["chain"]] == ["original"] and d["shrink"]["stopped"] == "deadline"
    page = c.get("/shrink", params={"ck": shrink_store.ck, "term": term}).text
    assert "stopped: the model&#39;s time budget" in page or "stopped: the model's time budget" in page
    assert "kept from before" not in page  # a result cut short is not kept


def test_the_trace_page_has_a_shrink_button_on_wrong_steps_only(shrink_client, shrink_store):
    seen = 0
    for tr in shrink_store.seeded.traces[:8]:
        d = shrink_client.get(f"/traces/{tr.identity}.json", params={"ck": shrink_store.ck}).json()
        page = shrink_client.get(f"/traces/{tr.identity}", params={"ck": shrink_store.ck}).text
        wrong = [s["term"] for s in d["steps"] if s["error_kind"] not in (None, "exact")]
        gets = re.findall(r'class="link-button shrink-button" hx-get="([^"]+)"', page)
        assert len(gets) == len(wrong) == page.count('class="shrink-panel"')
        for g, term in zip(gets, wrong):
            q = parse_qs(urlsplit(html.unescape(g)).query)
            assert urlsplit(html.unescape(g)).path == "/shrink"
            assert q == {"ck": [str(shrink_store.ck)], "term": [term]}
        seen += len(wrong)
        # without a checkpoint nothing is wrong, and there is no button
        assert "shrink-button" not in shrink_client.get(f"/traces/{tr.identity}").text
    assert seen > 0
