"""`lambdascope import` and `lambdascope export` (issue 15): any model's predictions in the store, with
the offset convention explicit. BOS-token spans land as the right character spans (a non-ASCII
term and normal form included); a span out of range for its convention is refused with its line
and a hint, the one-end off-by-one of the tool lambdascope replaces included; every bad field gets
a line-numbered error and nothing is written; what is stored is computed by the trainer's code;
every page works for an imported run; export, import into a new store, export gives the same
bytes."""

from __future__ import annotations

import html
import json
import re
import warnings
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lambdascope.cli import main
from lambdascope.spans import char_to_token_span, span_iou
from lambdascope.store import Checkpoint, EvalSet, Example, MetricPoint, Prediction, Rollout, Run, open_store
from lambdascope.traces import trace_identity

from .trainer_helpers import TINY, trace_of, write_generated, write_records

NON_ASCII = ["λz.z ((λx.x) z)", "(λx.x) y", "f ((λx.x) y)", "λf.λx.f ((λy.y) x)"]


def lines_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def counts(url: str) -> tuple[int, ...]:
    engine, Session = open_store(url)
    with Session() as s:
        out = tuple(s.scalar(select(func.count()).select_from(t))
                    for t in (Run, EvalSet, Example, Checkpoint, Prediction, Rollout, MetricPoint))
    engine.dispose()
    return out


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    return rc, capsys.readouterr().err


def client_for(url: str):
    """The dashboard over ``url`` with the trainer's model loader, as `lambdascope serve` has it
    (an imported checkpoint has no model file: the pages that want a model say so)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
        from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings
    from trainer.predict import load_predictor

    return TestClient(create_app(Settings(db_url=url, warm_caches=False), model_loader=load_predictor),
                      base_url="http://testserver")


def highlighted(page: str, term: str) -> list[tuple[str, str]]:
    """(tag, text) of each highlighted piece of every ``<code class="term">`` of ``term`` on the page."""
    out = []
    for code in re.findall(r'<code class="term">(.*?)</code>', page):
        pieces = re.findall(r'<span class="hl hl-(\w+)"[^>]*>([^<]*)</span>', code)
        if html.unescape("".join(t for _, t in pieces)) == term:
            out.append([(tag, html.unescape(t)) for tag, t in pieces])
    return out


# ---------------------------------------------------------------------------------------------
# BOS-token spans become the right character spans


@pytest.fixture
def bos_file(tmp_path) -> Path:
    """Four hand-written traces (λ before the span, a redex ending at EOS), their predictions as
    BOS-token spans, rollouts in BOS tokens too."""
    traces = [trace_of(t, f"t{i}") for i, t in enumerate(NON_ASCII)]
    chars = {  # (trace, step) -> the model's character span
        (0, 0): (6, 14), (0, 1): (0, 0),  # '(λx.x) z' after 'λz.z ', then normal form
        (1, 0): (0, 8), (1, 1): (0, 1),  # the redex ends the term: token end at EOS; then pointing at 'y'
        (2, 0): (4, 8), (2, 1): (0, 0),  # 'λx.x', the redex's function: not a redex
        (3, 0): (9, 17), (3, 1): (0, 0),
    }
    rollouts = {0: [(6, 14), (0, 0)], 1: [(0, 8), (0, 1)], 2: [(4, 8)]}
    for i, tr in enumerate(traces):
        for r in tr:
            r["pred_span"] = list(char_to_token_span(*chars[(i, r["step_k"])]))
            r["start_conf"], r["end_conf"] = 0.75, 0.5
        if i in rollouts:
            tr[0]["rollout"] = [list(char_to_token_span(*s)) for s in rollouts[i]]
    path = tmp_path / "bos.jsonl"
    write_records(path, traces)
    return path


def test_bos_token_spans_are_stored_and_shown_as_character_spans(tmp_path, bos_file, capsys):
    recs = lines_of(bos_file)
    assert recs[0]["pred_span"] == [7, 15] and recs[2]["pred_span"] == [1, 9] and recs[1]["pred_span"] == [0, 0]
    url = f"sqlite:///{tmp_path}/store.db"
    rc, err = run_cli(["import", str(bos_file), "--db", url, "--run", "mine", "--step", "7",
                       "--offsets", "bos-tokens"], capsys)
    assert rc == 0, err
    assert "8 lines, 4 traces imported as checkpoint 1 of run 'mine' at step 7 (a new run" in err
    _, Session = open_store(url)
    with Session() as s:
        rows = {(e.term, e.step_k): p for p, e in s.execute(
            select(Prediction, Example).join(Example, Example.id == Prediction.example_id))}
        kinds = {term: p.error_kind for (term, k), p in rows.items() if k == 0}
        p = rows[("λz.z ((λx.x) z)", 0)]
        assert (p.pred_start, p.pred_end, p.exact, p.iou) == (6, 14, True, 1.0)
        assert "λz.z ((λx.x) z)"[6:14] == "(λx.x) z"
        assert (rows[("λz.z z", 1)].pred_start, rows[("λz.z z", 1)].pred_end) == (0, 0)  # normal form
        assert (rows[("(λx.x) y", 0)].pred_start, rows[("(λx.x) y", 0)].pred_end) == (0, 8)  # EOS end
        c = rows[("f ((λx.x) y)", 0)]
        assert (c.pred_start, c.pred_end, c.iou) == (4, 8, span_iou(4, 8, 3, 11)) and c.iou == 0.5
        assert kinds == {"λz.z ((λx.x) z)": "exact", "(λx.x) y": "exact", "f ((λx.x) y)": "not_redex",
                         "λf.λx.f ((λy.y) x)": "exact"}
        assert rows[("y", 1)].error_kind == "missed_nf" and (rows[("y", 1)].pred_start, rows[("y", 1)].pred_end) == (0, 1)
        assert (p.start_conf, p.end_conf) == (0.75, 0.5)
        outs = {ro.trace_identity: (ro.outcome, ro.success, ro.path) for ro in s.scalars(select(Rollout))}
        ck = s.scalar(select(Checkpoint))
        run = s.get(Run, ck.run_id)
    assert outs[trace_identity(NON_ASCII[0])] == ("success", True, [["λz.z ((λx.x) z)", [6, 14]], ["λz.z z", [0, 0]]])
    assert outs[trace_identity(NON_ASCII[1])][0] == "not_redex" and outs[trace_identity(NON_ASCII[1])][2][1] == ["y", [0, 1]]
    assert outs[trace_identity(NON_ASCII[2])] == ("not_redex", False, [["f ((λx.x) y)", [4, 8]]])
    assert trace_identity(NON_ASCII[3]) not in outs  # no rollout given: none stored
    assert ck.step == 7 and ck.metrics["exact"] == 6 / 8 and ck.metrics["rollouts"] == 3
    assert ck.metrics["source"] == {"by": "lambdascope import", "file": str(bos_file), "offsets": "bos-tokens",
                                    "confidences": True}
    assert run.status == "finished" and run.data_files == [str(bos_file)]

    c = client_for(url)
    ident = trace_identity(NON_ASCII[0])
    steps = c.get(f"/traces/{ident}.json?ck={ck.id}").json()["steps"]
    assert [(st["gold"], st["pred"], st["error_kind"]) for st in steps] == [([6, 14], [6, 14], "exact"),
                                                                          ([0, 0], [0, 0], "exact")]
    page = c.get(f"/traces/{ident}?ck={ck.id}").text
    pieces = highlighted(page, "λz.z ((λx.x) z)")
    assert [("both", "(λx.x) z")] == [pc for pc in pieces[0] if pc[0] != "plain"]  # gold and predicted alike
    wrong = c.get(f"/traces/{trace_identity(NON_ASCII[2])}?ck={ck.id}").text
    shown = highlighted(wrong, "f ((λx.x) y)")[0]
    assert "".join(t for tag, t in shown if tag in ("pred", "both")) == "λx.x"
    assert "".join(t for tag, t in shown if tag in ("gold", "both")) == "(λx.x) y"


# ---------------------------------------------------------------------------------------------
# The old tool's bug: one end of the span shifted past BOS, the other not


def shifted_start(span) -> list[int]:
    """The seed tool's conversion: only the start moved past BOS."""
    s, e = span
    return [s + 1, e]


def test_the_one_end_off_by_one_is_caught_with_its_line(tmp_path, capsys):
    traces = write_generated(tmp_path / "t.jsonl", 6, seed=3)
    for tr in traces:
        for r in tr:
            r["pred_span"] = shifted_start(r["target_span"])
    bad = tmp_path / "shifted.jsonl"
    write_records(bad, traces)
    url = f"sqlite:///{tmp_path}/store.db"
    rc, err = run_cli(["import", str(bad), "--db", url, "--run", "r", "--step", "1", "--offsets", "bos-tokens"], capsys)
    nf_lines = [n for n, r in enumerate((r for tr in traces for r in tr), 1) if r["target_span"] == [0, 0]]
    assert rc == 2 and len(nf_lines) == 6
    for n in nf_lines:  # normal form [0,0] became [1,0]
        assert (f"{bad}:{n}: pred_out_of_range: pred_span [1,0] is outside a term of" in err
                and "only one end looks shifted by one" in err), err
    assert err.strip().splitlines()[-1] == (f"lambdascope import: error: {bad}: 6 problems (pred_out_of_range 6); "
                                            "nothing was imported")
    assert counts(url)[0] == 0

    # the same bug with normal form handled right: every span fits, so it is a warning, with a line
    for tr in traces:
        tr[-1]["pred_span"] = [0, 0]
    write_records(bad, traces)
    rc, err = run_cli(["import", str(bad), "--db", url, "--run", "r", "--step", "1", "--offsets", "bos-tokens"], capsys)
    assert rc == 0, err
    assert re.search(r"warning: \d+ of \d+ predictions on terms with a redex are the gold span with one end moved "
                     r"by one \(line 1: \[\d+,\d+\] as characters, gold \[\d+,\d+\]\)", err), err

    # the bug on the gold side: target_span shifted at one end is not the redex (as `check` says)
    traces[0][0]["target_span"] = shifted_start(traces[0][0]["target_span"])
    write_records(bad, traces)
    rc, err = run_cli(["import", str(bad), "--db", url, "--run", "r2", "--step", "1"], capsys)
    assert rc == 2 and f"{bad}:1: wrong_span: " in err and "but the normal-order redex is" in err


def test_a_bos_token_span_declared_as_characters_gets_the_hint(tmp_path, capsys):
    tr = trace_of("(λx.x) y", "a")
    for r in tr:
        r["pred_span"] = list(char_to_token_span(*r["target_span"]))  # [1, 9]: past the end in characters
    path = tmp_path / "p.jsonl"
    write_records(path, [tr])
    rc, err = run_cli(["import", str(path), "--db", str(tmp_path / "s.db"), "--run", "r", "--step", "0"], capsys)
    assert rc == 2
    assert (f"{path}:1: pred_out_of_range: pred_span [1,9] is outside a term of 8 code points counted in "
            "characters (looks like a BOS-token span; pass --offsets bos-tokens)") in err
    # and the reverse: a character span declared as BOS tokens
    for r in tr:
        r["pred_span"] = r["target_span"]
    write_records(path, [tr])
    rc, err = run_cli(["import", str(path), "--db", str(tmp_path / "s.db"), "--run", "r", "--step", "0",
                       "--offsets", "bos-tokens"], capsys)
    assert rc == 2 and f"{path}:1: pred_out_of_range: pred_span [0,8]" in err
    assert "(looks like a character span; pass --offsets chars)" in err


def test_bos_token_spans_that_all_fit_as_characters_get_a_warning(tmp_path, capsys):
    """No span reaches EOS, so every one fits as characters: the file imports, with a warning
    that the spans sit one to the right of the gold at both ends."""
    traces = [trace_of(t, f"t{i}") for i, t in enumerate(["λz.z ((λx.x) z)", "f ((λx.x) y)", "λf.λx.f ((λy.y) x)",
                                                          "a ((λx.x) b) c"])]
    for tr in traces:
        for r in tr:
            r["pred_span"] = list(char_to_token_span(*r["target_span"]))
    path = tmp_path / "p.jsonl"
    write_records(path, traces)
    rc, err = run_cli(["import", str(path), "--db", str(tmp_path / "s.db"), "--run", "r", "--step", "0"], capsys)
    assert rc == 0, err
    assert ("warning: 4 of 4 predictions on terms with a redex are the gold span moved one to the right at both "
            "ends (line 1: [7,15] as characters, gold [6,14]): are they BOS-token spans? (pass --offsets "
            "bos-tokens)") in err


# ---------------------------------------------------------------------------------------------
# Every bad field: its line, its reason, nothing written


def _base(tmp_path) -> list[list[dict]]:
    traces = [trace_of(t, f"t{i}") for i, t in enumerate(NON_ASCII[:3])]
    for tr in traces:
        for r in tr:
            r["pred_span"] = list(r["target_span"])
            r["start_conf"], r["end_conf"] = 0.9, 0.8
        tr[0]["rollout"] = [list(r["target_span"]) for r in tr]
    return traces


def _set(**changes):
    def change(traces, line):
        r = [r for tr in traces for r in tr][line - 1]
        for k, v in changes.items():
            if v is None:
                r.pop(k, None)
            else:
                r[k] = v
    return change


def _conf_on_first_only(traces, line):
    for tr in traces:
        for r in tr:
            r.pop("start_conf"), r.pop("end_conf")
    traces[0][0].update(start_conf=0.5, end_conf=0.5)


# (what, change, line, reason, words in the message); the base file: 3 traces of 2 steps, lines 1-6
BAD = [
    ("pred_span missing", _set(pred_span=None), 3, "missing_field", "pred_span"),
    ("pred_span a string", _set(pred_span="3,11"), 5, "wrong_type", 'pred_span is "3,11"'),
    ("pred_span one number", _set(pred_span=[3]), 5, "wrong_type", "pred_span is [3]"),
    ("pred_span floats", _set(pred_span=[3.0, 11.0]), 5, "wrong_type", "pred_span is [3.0, 11.0]"),
    ("pred_span booleans", _set(pred_span=[False, True]), 5, "wrong_type", "pred_span is [false, true]"),
    ("pred_span past the end", _set(pred_span=[3, 13]), 5, "pred_out_of_range",
     "pred_span [3,13] is outside a term of 12 code points"),
    ("pred_span reversed", _set(pred_span=[8, 3]), 5, "pred_out_of_range", "pred_span [8,3]"),
    ("pred_span negative", _set(pred_span=[-2, 3]), 5, "pred_out_of_range", "pred_span [-2,3]"),
    ("pred_span empty", _set(pred_span=[4, 4]), 5, "pred_empty", "normal form is [0,0]"),
    ("start_conf above 1", _set(start_conf=1.5), 2, "conf_out_of_range", "start_conf is 1.5"),
    ("end_conf negative", _set(end_conf=-0.1), 2, "conf_out_of_range", "end_conf is -0.1"),
    ("end_conf a string", _set(end_conf="high"), 2, "wrong_type", 'end_conf is "high"'),
    ("end_conf without start_conf", _set(start_conf=None), 4, "conf_mixed", "start_conf is missing"),
    ("confidences on one line only", _conf_on_first_only, 3, "conf_mixed", "missing here but given on line 1"),
    ("rollout on step 1", _set(rollout=[[0, 0]]), 2, "rollout_misplaced", "a rollout on step 1"),
    ("rollout not spans", _set(rollout=[3, 11]), 5, "wrong_type", "rollout is [3, 11]"),
    ("rollout empty", _set(rollout=[]), 5, "wrong_type", "rollout is []"),
    ("rollout too short", _set(rollout=[[3, 11]]), 5, "rollout_mismatch", "ends after 1 spans, but its reduction goes on"),
    ("rollout too long", _set(rollout=[[3, 11], [0, 0], [0, 0]]), 5, "rollout_mismatch",
     "has 3 spans, but its reduction stopped after 2"),
    ("rollout span out of range", _set(rollout=[[3, 11], [0, 9]]), 5, "rollout_out_of_range",
     "rollout span [0,9] is outside a term of 3 code points"),
    ("target_span wrong", _set(target_span=[4, 11]), 5, "wrong_span", "the normal-order redex is [3,11]"),
    ("term missing", _set(term=None), 1, "missing_field", "term"),
    ("steps out of order", _set(step_k=0), 2, "missing_steps", "step 0 follows step 0"),
]


@pytest.mark.parametrize("what,change,line,reason,words", BAD, ids=[b[0] for b in BAD])
def test_each_bad_field_is_refused_with_its_line_and_nothing_is_written(tmp_path, capsys, what, change, line,
                                                                        reason, words):
    url = f"sqlite:///{tmp_path}/store.db"
    good = tmp_path / "good.jsonl"
    write_records(good, _base(tmp_path))
    assert run_cli(["import", str(good), "--db", url, "--run", "r", "--step", "1"], capsys)[0] == 0
    before = counts(url)
    traces = _base(tmp_path)
    change(traces, line)
    bad = tmp_path / "bad.jsonl"
    write_records(bad, traces)
    for run, step in (("r", 2), ("new", 0)):  # appending to a run, or a new one
        rc, err = run_cli(["import", str(bad), "--db", url, "--run", run, "--step", str(step)], capsys)
        assert rc == 2, err
        assert f"{bad}:{line}: {reason}: " in err and words in err, err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"lambdascope import: error: {bad}: ") and re.search(rf"[(, ]{reason} \d+[,)]", last), last
        assert last.endswith("; nothing was imported")
        assert counts(url) == before


def test_a_trace_given_twice_is_stored_once_with_a_warning(tmp_path, capsys):
    """The generators may draw the same first term twice: the same trace, kept once (the first,
    with its predictions), as the trainer's evaluation set keeps it."""
    traces = _base(tmp_path)
    again = [dict(r, trace_id="again", pred_span=[0, 0]) for r in traces[0]]
    path = tmp_path / "twice.jsonl"
    write_records(path, traces + [again])
    url = f"sqlite:///{tmp_path}/s.db"
    rc, err = run_cli(["import", str(path), "--db", url, "--run", "r", "--step", "1"], capsys)
    assert rc == 0, err
    assert ("warning: 1 trace repeats an earlier trace's first term (line 7: trace 'again' is trace 't0' of "
            "line 1): only the first of each is stored") in err
    # the summary counts every line read (8), not the lines kept (7); a rate such as "597 lines/s" is not a count
    assert not re.search(r"(?<![\d,])7 lines", err) and "8 lines, 3 traces imported" in err
    assert counts(url)[2:5] == (6, 1, 6)
    _, Session = open_store(url)
    with Session() as s:
        assert set(s.scalars(select(Example.trace_id))) == {"t0", "t1", "t2"}
        assert s.scalar(select(Checkpoint.metrics)).get("exact") == 1.0  # t0's own predictions


def test_problems_are_counted_by_reason(tmp_path, capsys):
    traces = _base(tmp_path)
    for k, tr in enumerate(traces):
        tr[0]["pred_span"] = [0, 99]
    traces[1][1]["start_conf"] = 7
    path = tmp_path / "bad.jsonl"
    write_records(path, traces)
    rc, err = run_cli(["import", str(path), "--db", str(tmp_path / "s.db"), "--run", "r", "--step", "1"], capsys)
    assert rc == 2
    assert "problems by reason:" in err and re.search(r"pred_out_of_range\s+3", err) and re.search(r"conf_out_of_range\s+1", err)
    assert err.strip().splitlines()[-1] == (f"lambdascope import: error: {path}: 4 problems (pred_out_of_range 3, "
                                            "conf_out_of_range 1); nothing was imported")


def test_a_run_and_step_imported_twice_is_refused_unless_replace(tmp_path, bos_file, capsys):
    url = f"sqlite:///{tmp_path}/store.db"
    args = ["import", str(bos_file), "--db", url, "--run", "mine", "--offsets", "bos-tokens"]
    assert run_cli(args + ["--step", "1"], capsys)[0] == 0
    assert counts(url)[:4] == (1, 1, 8, 1)
    rc, err = run_cli(args + ["--step", "1"], capsys)
    assert rc == 2 and err.strip() == ("lambdascope import: error: run 'mine' already has an evaluation at step 1 "
                                       "(checkpoint 1): pass --replace to replace it, or another --step")
    rc, err = run_cli(args + ["--step", "2"], capsys)  # another step: appended, the same evaluation set
    assert rc == 0 and "(appended to the run" in err
    assert counts(url)[:5] == (1, 1, 8, 2, 16)
    rc, err = run_cli(args + ["--step", "1", "--replace"], capsys)
    assert rc == 0 and "(replacing 1 evaluation" in err
    n_runs, n_sets, n_examples, n_cks, n_preds, n_rollouts, n_points = counts(url)
    assert (n_runs, n_sets, n_examples, n_cks, n_preds, n_rollouts) == (1, 1, 8, 2, 16, 6)
    _, Session = open_store(url)
    with Session() as s:
        assert sorted(s.scalars(select(Checkpoint.step))) == [1, 2]
        assert n_points == s.scalar(select(func.count(func.distinct(MetricPoint.name)))) * 2


def cli_rc(argv: list[str]) -> int:
    """The exit status, whether the command returned it or argparse exited with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    for argv, words in [
        (["import", str(tmp_path / "none.jsonl"), "--run", "r", "--step", "1"], "none.jsonl: no such file"),
        (["import", "x.jsonl", "--run", "r", "--step", "-1"], "expected an integer >= 0"),
        (["import", "x.jsonl", "--run", "r", "--step", "1", "--offsets", "bytes"], "invalid choice: 'bytes'"),
        (["import", "x.jsonl", "--step", "1"], "the following arguments are required: --run"),
        (["export", "0", "out.jsonl"], "expected a checkpoint id between 1 and"),
        (["import", "x.jsonl", "--run", "r", "--step", str(2 ** 63)], "expected an integer >= 0 (at most 9223372036854775807)"),
        (["export", "5", str(tmp_path / "out.jsonl"), "--db", str(tmp_path / "s.db")], "no checkpoint 5 in the store"),
    ]:
        assert cli_rc(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (argv, err)
    assert not (tmp_path / "out.jsonl").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    rc, err = run_cli(["import", str(empty), "--db", str(tmp_path / "s.db"), "--run", "r", "--step", "1"], capsys)
    assert rc == 2 and f"{empty}:0: empty_file: the file is empty" in err


def test_help_explains_the_format_and_the_offsets(capsys):
    for cmd in ("import", "export"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        for words in ("pred_span", "start_conf, end_conf", "rollout", "bos-tokens", "BOS at 0",
                      'docs/DESIGN.md, "Spans and offsets"', "token_to_char_span", "validated exactly as `lambdascope check`"):
            assert words in out, (cmd, words)


# ---------------------------------------------------------------------------------------------
# A trainer's checkpoint: export, import into a new store, export; the same bytes, the same figures


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from trainer.config import TrainConfig
    from trainer.train import train

    tmp = tmp_path_factory.mktemp("trained")
    data = tmp / "traces.jsonl"
    write_generated(data, 120, seed=11)
    cfg = TrainConfig(**dict(TINY, data=[str(data)], db=str(tmp / "store.db"), run_name="trained",
                             out_dir=str(tmp / "run"), steps=6, eval_every="3", peak_file=str(tmp / "none.json")))
    train(cfg)
    return f"sqlite:///{tmp}/store.db"


def _rows(url: str, ck_id: int) -> tuple[dict, dict, dict]:
    _, Session = open_store(url)
    with Session() as s:
        preds = {(e.trace_identity, e.step_k): (p.pred_start, p.pred_end, p.start_conf, p.end_conf, p.iou, p.exact,
                                                 p.error_kind)
                 for p, e in s.execute(select(Prediction, Example).join(Example, Example.id == Prediction.example_id)
                                       .where(Prediction.checkpoint_id == ck_id))}
        rolls = {r.trace_identity: (r.success, r.reached_normal_form, r.steps, r.gold_steps, r.first_divergent_step,
                                    r.path, r.outcome)
                 for r in s.scalars(select(Rollout).where(Rollout.checkpoint_id == ck_id))}
        return preds, rolls, s.get(Checkpoint, ck_id).metrics


@pytest.mark.parametrize("offsets", ["chars", "bos-tokens"])
def test_export_import_export_gives_the_same_bytes_and_the_trainers_figures(tmp_path, trained, capsys, offsets):
    _, Session = open_store(trained)
    with Session() as s:
        ck = s.scalars(select(Checkpoint).order_by(Checkpoint.step.desc())).first()
        n_examples = s.scalar(select(func.count()).select_from(Example).where(Example.eval_set_id == ck.eval_set_id))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    other = f"sqlite:///{tmp_path}/other.db"
    rc, err = run_cli(["export", str(ck.id), str(first), "--db", trained, "--offsets", offsets], capsys)
    assert rc == 0 and f"{first}: {n_examples:,} lines of checkpoint {ck.id} (run 'trained' at step {ck.step})" in err
    recs = lines_of(first)
    assert len(recs) == n_examples and all("rollout" in r for r in recs if r["step_k"] == 0)
    rc, err = run_cli(["check", str(first)], capsys)  # an export is a valid trace file
    assert rc == 0, err
    rc, err = run_cli(["import", str(first), "--db", other, "--run", "again", "--step", str(ck.step),
                       "--offsets", offsets], capsys)
    assert rc == 0, err
    rc, err = run_cli(["export", "1", str(second), "--db", other, "--offsets", offsets], capsys)
    assert rc == 0, err
    assert first.read_bytes() == second.read_bytes()

    # what the import computed is what the trainer computed: every row, every figure
    preds_a, rolls_a, m_a = _rows(trained, ck.id)
    preds_b, rolls_b, m_b = _rows(other, 1)
    assert preds_a == preds_b and rolls_a == rolls_b
    # each side's own: timings, the training's figures, where it came from, and the trainer's decoder
    # (trainer.config.DECODES; an imported file's predictions were decoded by whatever made them)
    own = {"eval_seconds", "val_loss", "tokens", "train_minutes", "step", "source", "decode"}
    assert {k: v for k, v in m_a.items() if k not in own} == {k: v for k, v in m_b.items() if k not in own}
    assert m_b["step"] == ck.step and m_b["source"]["offsets"] == offsets


def test_every_page_works_for_an_imported_run(tmp_path, trained, capsys):
    _, Session = open_store(trained)
    with Session() as s:
        cks = list(s.scalars(select(Checkpoint).order_by(Checkpoint.step)))
        ident = s.scalar(select(Example.trace_identity).where(Example.eval_set_id == cks[0].eval_set_id))
    url = f"sqlite:///{tmp_path}/imported.db"
    for ck in cks:  # two checkpoints of one run, on one evaluation set
        out = tmp_path / f"ck{ck.id}.jsonl"
        assert run_cli(["export", str(ck.id), str(out), "--db", trained], capsys)[0] == 0
        assert run_cli(["import", str(out), "--db", url, "--run", "imported", "--step", str(ck.step)], capsys)[0] == 0
    c = client_for(url)
    runs = c.get("/runs.json").json()["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [("imported", "finished")]
    run_id = runs[0]["id"]
    a, b = 1, 2
    for page, twin in [
        ("/", "/runs.json"), (f"/runs/{run_id}", f"/runs/{run_id}.json"),
        (f"/checkpoints/{b}", f"/checkpoints/{b}.json"),
        (f"/examples?ck={b}", f"/examples.json?ck={b}"),
        (f"/examples?ck={b}&correct=wrong&kind=not_subterm&kind=not_redex",
         f"/examples.json?ck={b}&correct=wrong&kind=not_subterm&kind=not_redex"),
        (f"/traces/{ident}?ck={b}", f"/traces/{ident}.json?ck={b}"), (f"/traces/{ident}", f"/traces/{ident}.json"),
        (f"/compare?a={a}&b={b}", f"/compare.json?a={a}&b={b}"),
        (f"/playground?ck={b}&term=(λx.x x) (λy.y)", f"/playground.json?ck={b}&term=(λx.x x) (λy.y)"),
        ("/labels", "/labels.json"),
    ]:
        r = c.get(page)
        assert r.status_code == 200 and "<html" in r.text, (page, r.status_code, r.text[:300])
        j = c.get(twin)
        assert j.status_code == 200, (twin, j.text[:300])
    run = c.get(f"/runs/{run_id}.json").json()
    assert [ck["step"] for ck in run["checkpoints"]] == [ck.step for ck in cks]
    trace = c.get(f"/traces/{ident}.json?ck={b}").json()
    assert trace["rollout"] is not None and trace["rollout"]["outcome"]
    assert all(st["pred"] is not None and st["error_kind"] for st in trace["steps"])


def test_import_replace_and_export_on_postgresql(pg_url, bos_file, tmp_path, capsys):
    args = ["import", str(bos_file), "--db", pg_url, "--run", "pg", "--step", "3", "--offsets", "bos-tokens"]
    assert run_cli(args, capsys)[0] == 0
    assert run_cli(args, capsys)[0] == 2
    rc, err = run_cli(args + ["--replace"], capsys)
    assert rc == 0 and "(replacing 1 evaluation" in err
    assert counts(pg_url)[:6] == (1, 1, 8, 1, 8, 3)
    out = tmp_path / "out.jsonl"
    _, Session = open_store(pg_url)
    with Session() as s:
        ck = s.scalar(select(Checkpoint.id))
    assert run_cli(["export", str(ck), str(out), "--db", pg_url, "--offsets", "bos-tokens"], capsys)[0] == 0
    assert out.read_bytes() == bos_file.read_bytes()  # written as the generators write: the same bytes
