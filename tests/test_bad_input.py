"""Bad input: the trainer over the bad-input corpus (tests/data/bad/), and bad URL parameters on
every route of the dashboard (a 4xx with a message, never a 500)."""

import html
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from lambdascope.cli import main
from lambdascope.store import DataProblem, Label, Run, open_store
from tests.data.make_bad_corpus import EXPECTED, good_lines

BAD = Path(__file__).parent / "data" / "bad"
GOOD_RECORDS = len(good_lines())
TINY_ARGS = ["--steps", "1", "--threads", "1", "--n-layer", "1", "--n-head", "2", "--d-model", "16",
             "--d-ff", "32", "--batch-tokens", "1024"]


# ---------------------------------------------------------------------------------------------
# The trainer over the bad corpus


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trainer_counts_each_defect_with_its_line_and_loses_nothing_valid(name):
    from trainer.data import Vocab, load_dataset

    reason, line = EXPECTED[name]
    # no held-out split: every valid record must reach the training set
    data = load_dataset([BAD / f"{name}.jsonl"], Vocab(), val_frac=0.0, eval_frac=0.0)
    rep = data.report
    assert [(p.reason, p.line, Path(p.source).name) for p in data.validator.problems] == \
        [(reason, line, f"{name}.jsonl")]
    assert rep["problems_by_reason"] == {reason: 1}
    assert rep["valid_records"] == len(data.train) == GOOD_RECORDS - 1
    assert rep["invalid_records"] == rep["lines"] - rep["valid_records"]


def test_train_command_refuses_a_bad_file_and_records_each_problem_with_its_line(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/store.db"
    for name, (reason, line) in sorted(EXPECTED.items()):
        path = BAD / f"{name}.jsonl"
        rc = main(["train", "--data", str(path), "--db", db, "--run-name", name,
                   "--out-dir", str(tmp_path / name), *TINY_ARGS])
        err = capsys.readouterr().err
        assert re.search(rf"^\s+{reason}\s+1$", err, re.M), (name, err)  # counted by reason
        if reason == "missing_steps":  # every record is valid; only the trace is incomplete
            assert rc == 0 and "14 valid records, 0 invalid" in err, (name, err)
            continue
        # 1 bad record of about 15 is above the default --max-invalid of 1%: nothing is trained,
        # and the message sends the person to `lambdascope check`
        assert rc == 1, (name, err)
        assert "above --max-invalid" in err and f"lambdascope check {path}" in err, (name, err)
        assert not list((tmp_path / name).glob("ckpt_*.pt"))
    engine, Session = open_store(db)
    with Session() as s:
        for name, (reason, line) in EXPECTED.items():
            run = s.scalar(select(Run).where(Run.name == name))
            assert (run.status, reason == "missing_steps") in (("failed", False), ("finished", True))
            problems = s.execute(select(DataProblem.file, DataProblem.line, DataProblem.reason)
                                 .where(DataProblem.run_id == run.id)).all()
            assert [(Path(f).name, ln, r) for f, ln, r in problems] == [(f"{name}.jsonl", line, reason)]
    engine.dispose()
    # and the dashboard's run page shows each with its file and line
    from tests.app_store import make_client

    c = make_client(db)
    runs = {r["name"]: r["id"] for r in c.get("/runs.json").json()["runs"]}
    for name, (reason, line) in EXPECTED.items():
        probs = c.get(f"/runs/{runs[name]}.json").json()["problems"]
        assert [(p["line"], p["reason"]) for p in probs] == [(line, reason)]


def test_train_command_on_an_empty_file_is_a_clear_error(tmp_path, capsys):
    rc = main(["train", "--data", str(BAD / "empty.jsonl"), "--db", f"sqlite:///{tmp_path}/s.db",
               "--run-name", "e", "--out-dir", str(tmp_path / "e"), *TINY_ARGS])
    err = capsys.readouterr().err
    assert rc == 2 and "empty.jsonl: the file is empty (no trace records)" in err, err
    assert not (tmp_path / "e").exists()
    # an empty file among others is only reported by `check`, and loses nothing
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(good_lines()) + "\n", encoding="utf-8")
    from lambdascope.traces import expand_data_paths

    assert expand_data_paths([str(BAD / "empty.jsonl"), str(good)]) == [BAD / "empty.jsonl", good]


def test_trainer_rejects_a_ten_megabyte_line_and_keeps_the_rest(tmp_path):
    from trainer.data import Vocab, load_dataset

    lines = good_lines()
    huge = json.dumps({"trace_id": "huge", "step_k": 0, "steps_total": 0,
                       "term": "x" * (10 * 1024 * 1024), "target_span": [0, 0]})
    p = tmp_path / "huge.jsonl"
    p.write_text("\n".join(lines[:5] + [huge] + lines[5:]) + "\n", encoding="utf-8")
    data = load_dataset([p], Vocab(), val_frac=0.0, eval_frac=0.0)
    assert [(x.reason, x.line) for x in data.validator.problems] == [("line_too_long", 6)]
    assert len(data.train) == GOOD_RECORDS


# ---------------------------------------------------------------------------------------------
# Bad URL parameters: every route answers 4xx with a message


KB10 = "x" * 10240
# (method, address, form data or None, expected status, a word the message must hold)
CASES = [
    ("GET", "/runs.json?x=%00", None, 400, "NUL"),
    ("GET", "/?q=%00", None, 400, "NUL"),
    ("GET", "/runs/999999", None, 404, "no run 999999"),
    ("GET", "/runs/999999.json", None, 404, "no run 999999"),
    ("GET", "/runs/abc.json", None, 404, "nothing at"),
    ("GET", "/runs/{run}?problems_reason=" + KB10, None, 400, "problems_reason"),
    ("GET", "/runs/{run}.json?problems_reason=" + KB10, None, 400, "problems_reason"),
    ("GET", "/checkpoints/999999", None, 404, "no checkpoint 999999"),
    ("GET", "/checkpoints/999999.json", None, 404, "no checkpoint 999999"),
    ("GET", "/checkpoints/-1.json", None, 404, "nothing at"),
    ("GET", "/checkpoints/99999999999999999999999999.json", None, 404, "no checkpoint"),
    ("GET", "/checkpoints/999999/generalisation", None, 404, "no checkpoint 999999"),
    ("GET", "/checkpoints/999999/generalisation.json", None, 404, "no checkpoint 999999"),
    ("GET", "/checkpoints/1/generalisation.json?suite=../x", None, 400, "suite: a suite name is"),
    ("GET", "/checkpoints/1.json?suite=a%20b", None, 400, "suite: a suite name is"),
    ("GET", "/checkpoints/1.json?suite=nosuch", None, 404, "no evaluation on suite 'nosuch'"),
    ("GET", "/examples.json?ck=1&suite=<b>", None, 400, "suite: a suite name is"),
    ("GET", "/compare.json?a=1&b=2&suite=nosuch", None, 404, "no evaluation on suite"),
    ("GET", "/examples?ck=999999", None, 404, "no checkpoint 999999"),
    ("GET", "/examples.json?ck=999999", None, 404, "no checkpoint 999999"),
    ("GET", "/examples.json?ck=abc", None, 400, "ck"),
    ("GET", "/examples?ck={ck1}&iou_min=0.9&iou_max=0.1", None, 400, "iou_min"),
    ("GET", "/examples.json?ck={ck1}&iou_min=0.9&iou_max=0.1", None, 400, "iou_min"),
    ("GET", "/examples.json?ck={ck1}&iou_min=nan", None, 400, "iou_min"),
    ("GET", "/examples?ck={ck1}&page=-1", None, 400, "page"),
    ("GET", "/examples.json?ck={ck1}&page=-1", None, 400, "page"),
    ("GET", "/examples.json?ck={ck1}&limit=-1", None, 400, "limit"),
    ("GET", "/examples.json?ck={ck1}&after=-1", None, 400, "cursor"),
    ("GET", "/examples.json?ck={ck1}&sort=iou&before=abc", None, 400, "cursor"),
    ("GET", "/examples.json?ck={ck1}&len_min=9&len_max=3", None, 400, "len_min"),
    ("GET", "/examples?ck={ck1}&q=" + KB10, None, 400, "q:"),
    ("GET", "/examples.json?ck={ck1}&q=" + KB10, None, 400, "q:"),
    ("GET", "/examples.json?ck={ck1}&sort=" + KB10, None, 400, "sort"),
    ("GET", "/examples.json?ck={ck1}&correct=" + KB10, None, 400, "correct"),
    ("GET", "/examples?ck={ck1}&kind=bogus", None, 400, "kind: unknown error kind 'bogus'; the kinds are exact,"),
    ("GET", "/examples.json?ck={ck1}&kind=not_redex,inner_redex", None, 400, "kind: unknown error kind"),
    ("GET", "/examples.json?ck={ck1}&kind=" + KB10, None, 400, "kind: unknown error kind"),
    ("GET", "/traces/{ident}?ck=999999", None, 404, "no checkpoint 999999"),
    ("GET", "/traces/{ident}.json?ck=abc", None, 400, "ck"),
    ("GET", "/traces/{ident}.json?step=-1", None, 400, "step"),
    ("GET", "/traces/{ident}.json?step=abc", None, 400, "step"),
    ("GET", "/traces/" + KB10, None, 400, "trace identity"),
    ("GET", "/traces/" + KB10 + ".json", None, 400, "trace identity"),
    ("GET", "/traces/zzzz.json", None, 404, "no trace"),
    ("GET", "/queue?ck=999999", None, 404, "no checkpoint 999999"),
    ("GET", "/queue.json?ck=999999", None, 404, "no checkpoint 999999"),
    ("GET", "/queue.json?after=-1", None, 400, "after"),
    ("GET", "/queue.json?after=" + KB10, None, 400, "after"),
    ("GET", "/compare?a={ck1}&b=999999", None, 404, "no checkpoint 999999"),
    ("GET", "/compare.json?a={ck1}&b=999999", None, 404, "no checkpoint 999999"),
    ("GET", "/compare.json?a=abc&b={ck2}", None, 400, "a:"),
    ("GET", "/compare.json?a={ck1}", None, 400, "a and b"),
    ("GET", "/compare.json?a={ck1}&b={ck2}&kind=" + KB10, None, 400, "kind"),
    ("GET", "/compare.json?a={ck1}&b={ck2}&order=up", None, 400, "order"),
    ("GET", "/compare?a={ck1}&b={ck2}&kind_a=nope", None, 400, "kind_a: unknown error kind 'nope'"),
    ("GET", "/compare.json?a={ck1}&b={ck2}&kind_b=" + KB10, None, 400, "kind_b: unknown error kind"),
    ("GET", "/compare.json?a={ck1}&b={ck2}&after=-1", None, 400, "after"),
    ("GET", "/compare?a={ck1}&b={ck2}&page=-1", None, 400, "page"),
    ("GET", "/labels?category=" + KB10, None, 400, "category"),
    ("GET", "/labels.json?category=nope", None, 400, "category"),
    ("GET", "/labels/export.xml", None, 404, ".jsonl or .csv"),
    ("GET", "/labels/export." + KB10, None, 404, ".jsonl or .csv"),
    ("GET", "/playground?term=" + KB10, None, 400, "term"),
    ("GET", "/playground.json?term=" + KB10, None, 400, "term"),
    ("GET", "/playground.json?term=x&ck=999999", None, 404, "no checkpoint 999999"),
    ("GET", "/playground.json?ck=-1", None, 400, "ck"),
    ("GET", "/traces/{ident}/attention.json?ck={ck1}&step=0&char=99999", None, 400, "no character 99999"),
    ("GET", "/traces/{ident}/attention.json?ck={ck1}&step=0&char=abc", None, 400, "char"),
    ("GET", "/traces/{ident}/attention.json?ck=abc&char=0", None, 400, "ck"),
    ("GET", "/traces/{ident}/attention.json?char=0", None, 400, "ck"),
    ("GET", "/traces/{ident}/attention.json?ck={ck1}&step=99999&char=0", None, 404, "no step 99999"),
    ("GET", "/playground/attention.json?term=(λx.x) y&ck={ck1}&step=0&char=-1", None, 400, "char"),
    ("GET", "/playground/attention.json?term=(λx.x&ck={ck1}&char=0", None, 400, "term"),
    ("GET", "/checkpoints/{ck1}/heads.json?sort=nope", None, 400, "sort"),
    ("GET", "/shrink.json?term=x", None, 400, "ck"),
    ("GET", "/shrink.json?ck={ck1}", None, 400, "term"),
    ("GET", "/shrink.json?ck={ck1}&term=(λx.x", None, 400, "term: at position 5"),
    ("GET", "/shrink.json?ck={ck1}&term=" + KB10, None, 400, "term"),
    ("GET", "/shrink.json?ck={ck1}&term=x&any=maybe", None, 400, "any"),
    ("GET", "/shrink.json?ck=999999&term=x", None, 404, "no checkpoint 999999"),
    ("GET", "/checkpoints/999999/heads", None, 404, "no checkpoint 999999"),
    ("POST", "/labels", {"identity": "{ident}", "category": "other", "ck": "999999"}, 404, "no checkpoint"),
    ("POST", "/labels", {"identity": "{ident}", "category": "other", "ck": "abc"}, 400, "ck"),
    ("POST", "/labels", {"identity": "{ident}", "category": "other", "step": "-1"}, 400, "step"),
    ("POST", "/labels", {"identity": "{ident}", "category": "other", "step": "abc"}, 400, "step"),
    ("POST", "/labels", {"identity": "{ident}", "category": KB10}, 422, "category"),
    ("POST", "/labels", {"identity": "{ident}", "category": "nope"}, 400, "category"),
    ("POST", "/labels", {"identity": KB10, "category": "other"}, 422, "identity"),
    ("POST", "/labels", {"identity": "{ident}", "category": "other", "note": "n" * 10240}, 422, "note"),
    ("POST", "/labels", {"identity": "{ident}", "category": "other", "note": "a\x00b"}, 400, "NUL"),
    ("POST", "/labels", {"identity": "0" * 16, "category": "other"}, 400, "no trace"),
    ("POST", "/labels/999999/delete", {}, 404, "no label 999999"),
    ("POST", "/labels/9223372036854775808/delete", {}, 404, "no label"),  # was a 500
    ("POST", "/labels/99999999999999999999999/delete", {}, 404, "no label"),
    ("POST", "/labels/abc/delete", {}, 404, "nothing at"),
]


def message_of(r) -> str:
    ctype = r.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return r.json()["error"]
    if ctype.startswith("text/html"):
        m = re.search(r'<p class="error-message">(.*?)</p>', r.text, re.S)
        return html.unescape(m.group(1)) if m else ""
    return r.text


@pytest.mark.parametrize("method,address,form,status,word", CASES,
                         ids=[f"{m} {a[:60]}{' ' + str(f)[:60] if f else ''}" for m, a, f, _, _ in CASES])
def test_bad_parameters_get_a_4xx_with_a_message(client, seeded, method, address, form, status, word):
    fill = {"{run}": str(seeded.run_a), "{ck1}": str(seeded.ck1), "{ck2}": str(seeded.ck2),
            "{ident}": seeded.traces[0].identity}
    for k, v in fill.items():
        address = address.replace(k, v)
    before = client.get("/labels.json").json()["total"]
    if method == "GET":
        r = client.get(address, follow_redirects=False)
    else:
        data = {k: fill.get(v, v) for k, v in form.items()}
        token = re.search(r'name="csrf" value="([0-9a-f]+)"',
                          client.get(f"/traces/{seeded.traces[0].identity}").text).group(1)
        r = client.post(address, data={"csrf": token, **data}, follow_redirects=False)
    assert r.status_code == status, (r.status_code, r.text[:300])
    msg = message_of(r)
    assert word in msg, (word, msg[:300])
    assert client.get("/labels.json").json()["total"] == before  # a refused write wrote nothing


def test_every_route_has_bad_parameter_cases(client):
    """A new route must get its cases above."""
    spec = client.get("/api/openapi.json").json()
    addresses = [(m, a.split("?")[0]) for m, a, *_ in CASES]
    for path, ops in spec["paths"].items():
        shape = re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]*", re.escape(path)))
        for method in ops:
            assert any(m == method.upper() and shape.fullmatch(a) for m, a in addresses), (method, path)


def test_a_refused_ck_on_a_label_post_writes_nothing(fresh_client, fresh):
    """Before: the label was committed, then the bad ``ck`` of the htmx reply made a 4xx."""
    from tests.app_helpers import csrf

    ident = fresh.traces[0].identity
    for ck, status in (("abc", 400), ("999999", 404)):
        r = fresh_client.post("/labels", data={"csrf": csrf(fresh_client, ident), "identity": ident,
                                               "category": "other", "ck": ck},
                              headers={"HX-Request": "true"})
        assert r.status_code == status
    assert fresh_client.get("/labels.json").json()["total"] == 0


def test_nul_in_label_text_is_refused_on_import(tmp_path, fresh, capsys):
    rec = {"trace_identity": fresh.traces[0].identity, "step_k": None, "category": "other",
           "note": "a\u0000b", "term": "", "created_at": "2026-01-01T00:00:00.000000"}
    p = tmp_path / "nul.jsonl"
    p.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    assert main(["labels", "import", str(p), "--db", fresh.url]) == 2
    assert "line 1: note: must not contain a NUL" in capsys.readouterr().err
    engine, Session = open_store(fresh.url)
    with Session() as s:
        assert s.scalar(select(Label.id)) is None
    engine.dispose()

