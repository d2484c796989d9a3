"""Every stored prediction carries its error kind and every rollout its outcome: judged when an
evaluation is written, and for what a store held before (migration 0003)."""

import random

from sqlalchemy import select, text

from lambdascope.diagnosis import error_kind
from lambdascope.generate import Options, generate
from lambdascope.migrate import downgrade, upgrade
from lambdascope.spans import span_iou
from lambdascope.store import Example, Prediction, Rollout, Run, ensure_eval_set, open_store, write_evaluation
from lambdascope.terms import parse, redex_spans
from lambdascope.traces import Record, TraceResult
from lambdascope.metrics import GoldTrace, rollout

STOP_OUTCOMES = {"not_a_redex": {"not_redex"}, "step_cap": {"step_cap"}, "too_long": {"too_long"},
                 "normal_form": {"success", "other_path", "other_nf", "false_nf"}}


def traces(n=30, seed=5):
    out = []
    for tr in generate(Options(seed=seed), n):
        tid = f"{seed}-{tr.index}"
        recs = [Record(0, tid, k, len(tr.terms) - 1, t, s) for k, (t, s) in enumerate(zip(tr.terms, tr.spans))]
        out.append(TraceResult(tid, recs, True))
    seen = set()
    return [t for t in out if not (t.identity in seen or seen.add(t.identity))]


def wrong(rng, term, gold):
    """A prediction of every kind: gold, normal form, another redex, a random span."""
    spans = redex_spans(parse(term))
    choice = rng.random()
    if choice < 0.3 or len(term) < 2:
        return gold
    if choice < 0.45:
        return (0, 0)
    if choice < 0.7 and len(spans) > 1:
        return rng.choice(spans[1:])
    s = rng.randrange(0, len(term) - 1)
    return s, rng.randrange(s + 1, len(term) + 1)


def write_one(Session, trs, rng):
    with Session() as s, s.begin():
        run = Run(name="r", config={}, data_files=[], data_hash="")
        s.add(run)
        s.flush()
        es, ids = ensure_eval_set(s, "e", "f", trs)
        run_id = run.id
    choice = {r.term: wrong(rng, r.term, r.span) for tr in trs for r in tr.records}
    preds = [dict(example_id=ids[(tr.identity, r.step_k)], pred_start=choice[r.term][0],
                  pred_end=choice[r.term][1], start_conf=0.5, end_conf=0.5,
                  iou=span_iou(*choice[r.term], *r.span), exact=choice[r.term] == r.span)
             for tr in trs for r in tr.records]
    gold = [GoldTrace(tr.identity, tuple(r.term for r in tr.records), tuple(r.span for r in tr.records))
            for tr in trs]

    def predict(terms):  # the same wrong choices where the gold trace goes, the true redex elsewhere
        return [choice.get(t) or (redex_spans(parse(t)) or [(0, 0)])[0] for t in terms]

    results = rollout(gold, predict, max_len=60)
    with Session() as s, s.begin():
        ck = write_evaluation(s, run_id=run_id, eval_set_id=es, step=1, path="p", metrics={},
                              predictions=preds, rollouts=[r.row() for r in results])
    return ck, {r.identity: r.stop for r in results}


def stored(Session, ck):
    with Session() as s:
        kinds = s.execute(select(Example.term, Prediction.pred_start, Prediction.pred_end, Prediction.error_kind)
                          .join(Example, Example.id == Prediction.example_id)
                          .where(Prediction.checkpoint_id == ck)).all()
        outcomes = dict(s.execute(select(Rollout.trace_identity, Rollout.outcome)
                                  .where(Rollout.checkpoint_id == ck)).all())
    return kinds, outcomes


def test_an_evaluation_is_written_with_kinds_and_outcomes_and_an_old_store_gets_them(tmp_path):
    engine, Session = open_store(f"sqlite:///{tmp_path / 's.db'}")
    trs = traces()
    ck, stops = write_one(Session, trs, random.Random(3))
    kinds, outcomes = stored(Session, ck)
    assert kinds and all(k == error_kind(term, (a, b)) for term, a, b, k in kinds)
    assert {"exact", "false_nf", "not_subterm"} <= {k for *_, k in kinds}
    assert outcomes and all(outcomes[i] in STOP_OUTCOMES[stop] for i, stop in stops.items()), (outcomes, stops)
    assert len(set(outcomes.values())) >= 2
    # a store from before error kinds: the columns go, then come back judged the same way
    downgrade(engine, "0002")
    with engine.connect() as c:
        assert "error_kind" not in [r[1] for r in c.execute(text("PRAGMA table_info(predictions)"))]
    upgrade(engine)
    assert stored(Session, ck) == (kinds, outcomes)
