"""The beliefs views over a real checkpoint file (tests/beliefs_store.py), served as `lambdascope
serve` builds the dashboard (lambdascope.commands.dashboard.create_dashboard, the trainer's
loader): the trace's JSON twin per step, the beliefs and attention fragments, the playground's,
the heads page; what the page says when beliefs are unavailable; bad input; the budget."""

import re

import pytest

from lambdascope.diagnosis import error_kind
from lambdascope.terms import parse, redex_spans

from tests.beliefs_store import N_HEAD, N_LAYER, build_model_store, make_dashboard_client

TERM = "(λx.λy.x y) (λz.z) w"


@pytest.fixture(scope="module")
def model_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("beliefs")
    return build_model_store(f"sqlite:///{folder}/store.db", folder)


@pytest.fixture(scope="module")
def model_client(model_store):
    return make_dashboard_client(model_store.seeded.url)


def a_trace(model_store, min_steps=3):
    return next(tr for tr in model_store.seeded.traces if len(tr.records) >= min_steps)


def cells(html: str, svg_class: str) -> list[tuple[str, float, str]]:
    """(data-i, data-p, classes) of every cell of the first heatmap with ``svg_class``."""
    svg = re.search(rf'<svg class="heat {svg_class}".*?</svg>', html, re.S).group(0)
    return [(i, float(p), cls) for cls, i, p in
            re.findall(r'<g class="cell([^"]*)" data-i="([^"]+)" data-p="([^"]+)"', svg)]


def test_the_trace_json_carries_every_steps_beliefs(model_client, model_store):
    tr = a_trace(model_store)
    d = model_client.get(f"/traces/{tr.identity}.json", params={"ck": model_store.ck}).json()
    assert d["beliefs_error"] is None
    assert len(d["steps"]) == len(tr.records)
    for s in d["steps"]:
        b, term, n = s["beliefs"], s["term"], len(s["term"])
        assert len(b["start_probs"]) == n and b["nf_prob"] + sum(b["start_probs"]) == pytest.approx(1, abs=1e-5)
        # the first top span is the stored prediction: the same constrained decoding
        assert b["top_spans"][0]["span"] == s["pred"]
        assert b["top_spans"][0]["prob"] * b["allowed_mass"] == pytest.approx(s["start_conf"] * s["end_conf"], rel=1e-4)
        assert 1 <= len(b["top_spans"]) <= 5
        for t in b["top_spans"]:
            assert t["kind"] == error_kind(term, tuple(t["span"]))
        assert b["start"] == (None if s["pred"] == [0, 0] else s["pred"][0])
        if b["end_probs"] is not None:  # over the exclusive ends 0 .. n
            assert len(b["end_probs"]) == n + 1 and sum(b["end_probs"]) == pytest.approx(1, abs=1e-5)
        if s["gold"] != [0, 0]:
            assert b["gold_start"] == s["gold"][0] and len(b["gold_end_probs"]) == n + 1
        else:
            assert b["gold_start"] is None and b["gold_end_probs"] is None
        assert 0 <= b["redex_mass"] <= 1 + 1e-9
        want = sum(t["prob"] for t in b["top_spans"] if tuple(t["span"]) in set(redex_spans(parse(term))))
        assert b["redex_mass"] >= want - 1e-9  # at least what the top spans put on redexes


def test_without_a_loadable_checkpoint_the_json_says_why(model_client, model_store):
    tr = a_trace(model_store)
    d = model_client.get(f"/traces/{tr.identity}.json", params={"ck": model_store.seeded.ck1}).json()
    assert all(s["beliefs"] is None for s in d["steps"]) and d["steps"]
    assert "cannot load runs/run-a/ckpt-100.pt" in d["beliefs_error"] and "FileNotFoundError" in d["beliefs_error"]
    d = model_client.get(f"/traces/{tr.identity}.json").json()
    assert all(s["beliefs"] is None for s in d["steps"]) and "no checkpoint" in d["beliefs_error"]


def test_the_beliefs_fragment_of_a_step(model_client, model_store):
    tr = a_trace(model_store)
    d = model_client.get(f"/traces/{tr.identity}.json", params={"ck": model_store.ck}).json()
    page = model_client.get(f"/traces/{tr.identity}", params={"ck": model_store.ck}).text
    assert f'hx-get="/traces/{tr.identity}/beliefs?ck={model_store.ck}&amp;step=0"' in page
    for s in d["steps"]:
        r = model_client.get(f"/traces/{tr.identity}/beliefs", params={"ck": model_store.ck, "step": s["step_k"]})
        assert r.status_code == 200
        html, b = r.text, s["beliefs"]
        start = cells(html, "start-heat")
        assert [i for i, _, _ in start] == ["nf"] + [str(c) for c in range(len(s["term"]))]
        assert [p for _, p, _ in start] == pytest.approx([b["nf_prob"]] + b["start_probs"], rel=1e-5, abs=1e-12)
        chosen = [i for i, _, cls in start if "chosen" in cls.split()]
        assert chosen == ["nf" if b["start"] is None else str(b["start"])]
        assert f'data-attention-base="/traces/{tr.identity}/attention?ck={model_store.ck}&amp;step={s["step_k"]}"' in html
        spans = re.findall(r'<tr data-span="(\d+),(\d+)"', html)
        assert [[int(a), int(e)] for a, e in spans] == [t["span"] for t in b["top_spans"]]
        assert "Which heads track" in html and "ms of model time" in html


def test_beliefs_unavailable_say_why(model_client, model_store):
    tr = a_trace(model_store)
    r = model_client.get(f"/traces/{tr.identity}/beliefs", params={"ck": model_store.seeded.ck1, "step": 0})
    assert r.status_code == 200 and "beliefs unavailable: cannot load runs/run-a/ckpt-100.pt" in r.text

    class Plain:  # a span predictor that cannot say what it thought
        def predict(self, term):
            return (0, 0, 1.0, 1.0)

        def predict_many(self, terms):
            return [self.predict(t) for t in terms]

    state = model_client.app.state
    real = state.model_loader
    try:
        state.model_loader = lambda path: Plain()
        r = model_client.get(f"/traces/{tr.identity}/beliefs", params={"ck": model_store.ck, "step": 0})
        assert r.status_code == 200 and "cannot say what it thought" in r.text
        d = model_client.get(f"/traces/{tr.identity}.json", params={"ck": model_store.ck}).json()
        assert "cannot say what it thought" in d["beliefs_error"] and d["steps"][0]["beliefs"] is None
        r = model_client.get("/playground", params={"term": TERM, "ck": model_store.ck})
        assert r.status_code == 200  # the playground still works with the plain predictor
        state.model_loader = None
        d = model_client.get(f"/traces/{tr.identity}.json", params={"ck": model_store.ck}).json()
        assert "without a model loader" in d["beliefs_error"]
    finally:
        state.model_loader = real


def test_attention_of_a_character(model_client, model_store):
    tr = a_trace(model_store)
    term = tr.records[1].term
    d = model_client.get(f"/traces/{tr.identity}/attention.json",
                         params={"ck": model_store.ck, "step": 1, "char": 2}).json()
    a = d["attention"]
    assert d["term"] == term and d["attention_error"] is None and a["char"] == 2
    assert len(a["layers"]) == N_LAYER and all(len(h) == N_HEAD for h in a["layers"])
    for layer in range(N_LAYER):
        for head in range(N_HEAD):
            row = a["layers"][layer][head]
            assert len(row) == len(term)
            assert sum(row) + a["bos"][layer][head] + a["eos"][layer][head] == pytest.approx(1, abs=1e-5)
    html = model_client.get(f"/traces/{tr.identity}/attention", params={"ck": model_store.ck, "step": 1, "char": 2}).text
    assert len(re.findall(r'<tr data-layer="\d+" data-head="\d+">', html)) == N_LAYER * N_HEAD
    assert len(re.findall(r"class=\"cell query[ \"]", html)) == N_LAYER * N_HEAD  # the clicked character, in every row


@pytest.mark.parametrize("path, params, status, message", [
    ("/traces/{t}/attention", {"step": 1, "char": 999}, 400, "no character 999 in a term of"),
    ("/traces/{t}/attention.json", {"step": 1, "char": -1}, 400, "no character -1"),
    ("/traces/{t}/attention.json", {"step": 1, "char": "x"}, 400, "expected a character index"),
    ("/traces/{t}/attention.json", {"step": 1}, 400, "char: the character"),
    ("/traces/{t}/attention.json", {"step": 999, "char": 0}, 404, "no step 999"),
    ("/traces/{t}/beliefs", {"step": 999}, 404, "no step 999"),
    ("/traces/{t}/beliefs", {"step": "two"}, 400, "step"),
    ("/traces/nosuchtrace/beliefs", {"step": 0}, 404, "no trace nosuchtrace"),
    ("/traces/{t}/beliefs", {"ck": "", "step": 0}, 400, "ck: the checkpoint"),
    ("/traces/{t}/beliefs", {"ck": 999999, "step": 0}, 404, "no checkpoint 999999"),
    ("/playground/attention.json", {"term": TERM, "step": 0, "char": 99}, 400, "no character 99 in a term of 20"),
    ("/playground/beliefs", {"term": "(λx.x", "step": 0}, 400, "expected ')'"),
    ("/playground/beliefs", {"term": TERM, "ck": "", "step": 0}, 400, "ck: the checkpoint"),
    ("/checkpoints/{ck}/heads.json", {"sort": "nope"}, 400, "sort: one of binding, paren"),
])
def test_bad_input_is_a_4xx_with_a_message(model_client, model_store, path, params, status, message):
    tr = a_trace(model_store)
    params = {"ck": model_store.ck, **params}
    r = model_client.get(path.format(t=tr.identity, ck=model_store.ck), params=params)
    assert r.status_code == status, r.text
    text = r.json()["error"] if path.endswith(".json") else r.text
    assert message in text.replace("&#39;", "'")


def test_playground_beliefs_and_attention(model_client, model_store):
    d = model_client.get("/playground.json", params={"term": TERM, "ck": model_store.ck}).json()
    assert d["model"] is not None and d["model"]["budget_stopped"] is False
    html = model_client.get("/playground", params={"term": TERM, "ck": model_store.ck}).text
    assert 'id="beliefs"' in html and "/playground/beliefs?term=" in html
    for k, step in enumerate(d["reduction"]):
        r = model_client.get("/playground/beliefs", params={"term": TERM, "ck": model_store.ck, "step": k})
        assert r.status_code == 200
        start = cells(r.text, "start-heat")
        assert len(start) == len(step["term"]) + 1
        assert sum(p for _, p, _ in start) == pytest.approx(1, abs=1e-4)
        gold = [i for i, _, cls in start if "gold" in cls.split()]
        assert gold == (["nf"] if step["span"] == [0, 0] else [str(step["span"][0])])
    a = model_client.get("/playground/attention.json", params={"term": TERM, "ck": model_store.ck, "step": 1, "char": 0}).json()
    assert a["term"] == d["reduction"][1]["term"] and len(a["attention"]["layers"]) == N_LAYER


def test_heads_page_sorted_by_each_score(model_client, model_store):
    d = model_client.get(f"/checkpoints/{model_store.ck}/heads.json").json()
    assert d["heads_error"] is None and d["terms"] == d["asked_terms"] > 20
    assert d["pairs"]["binding"] > 0 and d["pairs"]["paren"] > 0
    heads = d["heads"]
    assert sorted((h["layer"], h["head"]) for h in heads) == [(la, he) for la in range(N_LAYER) for he in range(N_HEAD)]
    assert [h["binding"] for h in heads] == sorted((h["binding"] for h in heads), reverse=True)
    p = model_client.get(f"/checkpoints/{model_store.ck}/heads.json", params={"sort": "paren"}).json()
    assert [h["paren"] for h in p["heads"]] == sorted((h["paren"] for h in p["heads"]), reverse=True)
    assert p["model_seconds"] == d["model_seconds"]  # computed once, then kept
    html = model_client.get(f"/checkpoints/{model_store.ck}/heads", params={"sort": "paren"}).text
    rows = re.findall(r'<tr data-layer="(\d+)" data-head="(\d+)">', html)
    assert [(int(a), int(b)) for a, b in rows] == [(h["layer"], h["head"]) for h in p["heads"]]
    ck_page = model_client.get(f"/checkpoints/{model_store.ck}").text
    assert f'href="/checkpoints/{model_store.ck}/heads"' in ck_page
    bad = model_client.get(f"/checkpoints/{model_store.seeded.ck1}/heads").text
    assert "head scores unavailable: cannot load runs/run-a/ckpt-100.pt" in bad


def test_past_the_budget_the_page_says_it_stopped(model_store):
    client = make_dashboard_client(model_store.seeded.url, model_budget=1e-9)
    d = client.get("/playground.json", params={"term": TERM, "ck": model_store.ck}).json()
    assert d["model"]["budget_stopped"] and d["model"]["steps"] == []
    assert d["model"]["end"].startswith("stopped: the model's time budget of 1e-09 s per request ran out")
    html = client.get("/playground", params={"term": TERM, "ck": model_store.ck}).text
    assert "stopped: the model&#39;s time budget" in html and 'class="budget-stopped"' in html
    assert len(d["reduction"]) == 4  # the true reduction is all there
    tr = a_trace(model_store)
    j = client.get(f"/traces/{tr.identity}.json", params={"ck": model_store.ck}).json()
    assert j["beliefs_error"].startswith("stopped: the model's time budget")
    assert "0 of" in j["beliefs_error"] and all(s["beliefs"] is None for s in j["steps"])
    r = client.get(f"/traces/{tr.identity}/beliefs", params={"ck": model_store.ck, "step": 0})
    assert r.status_code == 200 and "stopped: the model&#39;s time budget" in r.text


def test_head_scores_cut_short_go_on_at_the_next_visit(model_client, model_store):
    full = model_client.get(f"/checkpoints/{model_store.ck}/heads.json").json()
    client = make_dashboard_client(model_store.seeded.url, model_budget=1e-9)
    seen = []
    for _ in range(20):
        d = client.get(f"/checkpoints/{model_store.ck}/heads.json").json()
        seen.append(d["terms"])
        if d["heads_error"] is None:
            break
        assert "terms scored so far; the next visit goes on" in d["heads_error"]
        html = client.get(f"/checkpoints/{model_store.ck}/heads").text  # the page shows what was done
        assert "terms scored so far" in html and "Computed once" not in html
    assert seen == sorted(seen) and seen[-1] == full["terms"] and len(seen) > 2  # a chunk a visit
    by_head = {(h["layer"], h["head"]): h for h in full["heads"]}
    for h in d["heads"]:
        for k in ("binding", "paren"):
            assert h[k] == pytest.approx(by_head[(h["layer"], h["head"])][k], rel=1e-6)
    assert d["pairs"] == full["pairs"] and d["uniform"]["paren"] == pytest.approx(full["uniform"]["paren"])


def test_an_evaluation_with_the_redex_decoder_is_believed_with_it(model_client, model_store):
    """``lambdascope evaluate --decode redex`` of a freely decoding run's checkpoint: the model
    views of that evaluation decode as it did (its metrics say ``decode``), so each step's first
    top span is its stored prediction, a redex or normal form, while the file's own evaluation
    keeps the free decoder."""
    from lambdascope.store import Checkpoint, open_store, write_evaluation
    from trainer.evaluate import evaluate
    from trainer.predict import Predictor

    from tests.beliefs_store import tiny_model

    seeded = model_store.seeded
    model, vocab = tiny_model()  # the saved file's weights
    ev = evaluate(Predictor(model, vocab, decode="redex"), seeded.traces, seeded.example_ids)
    assert ev.metrics["decode"] == "redex"
    engine, Session = open_store(seeded.url)
    with Session() as s, s.begin():
        es_id = s.get(Checkpoint, model_store.ck).eval_set_id
        ck = write_evaluation(s, run_id=seeded.run_a, eval_set_id=es_id, step=300, path=str(model_store.path),
                              metrics=ev.metrics, predictions=ev.predictions, rollouts=ev.rollouts, name="by redex")
    engine.dispose()
    differ = 0
    for tr in seeded.traces:
        free = model_client.get(f"/traces/{tr.identity}.json", params={"ck": model_store.ck}).json()
        redex = model_client.get(f"/traces/{tr.identity}.json", params={"ck": ck}).json()
        assert redex["beliefs_error"] is None
        for f, r in zip(free["steps"], redex["steps"]):
            assert r["beliefs"]["top_spans"][0]["span"] == r["pred"]
            assert f["beliefs"]["top_spans"][0]["span"] == f["pred"]
            assert r["pred"] == [0, 0] or tuple(r["pred"]) in redex_spans(parse(r["term"]))
            assert all(t["kind"] != "not_subterm" for t in r["beliefs"]["top_spans"])
            differ += f["pred"] != r["pred"]
    assert differ > 0  # the two decoders choose differently somewhere: the views must tell them apart


def test_an_evaluation_naming_an_unknown_decoder_says_so(model_client, model_store):
    """A stored evaluation whose metrics name a decoder this trainer does not have (a newer
    trainer's, or an edited store): its model views say why they are unavailable, and the
    checkpoint's own evaluation is still believed."""
    from lambdascope.store import Checkpoint, open_store, write_evaluation

    seeded = model_store.seeded
    engine, Session = open_store(seeded.url)
    with Session() as s, s.begin():
        own = s.get(Checkpoint, model_store.ck)
        ck = write_evaluation(s, run_id=seeded.run_a, eval_set_id=own.eval_set_id, step=300, path=str(model_store.path),
                              metrics=dict(own.metrics, decode="beam"), predictions=[], rollouts=[], name="beam")
    engine.dispose()
    tr = a_trace(model_store)
    d = model_client.get(f"/traces/{tr.identity}.json", params={"ck": ck}).json()
    assert "decode: one of free, redex, got 'beam'" in d["beliefs_error"]
    assert all(s["beliefs"] is None for s in d["steps"])
    ok = model_client.get(f"/traces/{tr.identity}.json", params={"ck": model_store.ck}).json()
    assert ok["beliefs_error"] is None
