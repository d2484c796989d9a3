"""A seeded store for the dashboard's tests and benchmark: real traces from the reference
generator, synthetic predictions (exact ones, spans that are off, other subterms and redexes,
normal-form mistakes) written through ``store.ensure_eval_set`` and ``store.write_evaluation``
like the trainer writes them (which judges each prediction's error kind and each rollout's
outcome), and rollouts that follow ``lambdascope.metrics.rollout``'s rules.

The two checkpoints of run ``run-a`` differ in a known way: the second fixes some of the
first's mistakes and breaks exactly one example (``Seeded.regression``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from lambdascope.generate import Options, generate
from lambdascope.spans import span_iou
from lambdascope.store import DataProblem, MetricPoint, Run, ensure_eval_set, open_store, write_evaluation
from lambdascope.terms import alpha_equivalent, contract_span, is_redex, parse, print_term, redex_span, subterms
from lambdascope.traces import Record, TraceResult

XSS = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'


def make_traces(n: int, seed: int) -> list[TraceResult]:
    out = []
    for tr in generate(Options(seed=seed), n):
        tid = f"{seed}-{tr.index}"
        total = len(tr.terms) - 1
        recs = [Record(0, tid, k, total, term, span) for k, (term, span) in enumerate(zip(tr.terms, tr.spans))]
        out.append(TraceResult(tid, recs, True))
    return out


def wrong_span(rng: random.Random, term: str, gold: tuple[int, int]) -> tuple[int, int]:
    """A plausible wrong prediction: normal form too early, a redex where there is none, another
    subterm (a redex that is not the normal-order one, or one that is no redex), or a span
    whose ends are off."""
    n = len(term)
    if gold == (0, 0):
        s = rng.randrange(0, max(1, n - 1))
        return s, rng.randrange(s + 1, n + 1)
    r = rng.random()
    if r < 0.2:
        return 0, 0
    if r < 0.45:
        nodes = [(span, is_redex(node)) for span, _, node in subterms(parse(term)) if span != gold]
        redexes = [span for span, redex in nodes if redex]
        if redexes and rng.random() < 0.6:
            return rng.choice(redexes)
        if nodes:
            return rng.choice(nodes)[0]
    for _ in range(20):
        s = min(max(0, gold[0] + rng.randint(-4, 4)), n - 1)
        e = min(max(s + 1, gold[1] + rng.randint(-6, 6)), n)
        if (s, e) != gold:
            return s, e
    return (0, n) if gold != (0, n) else (0, max(1, n - 1))


def prediction(rng: random.Random, eid: int, term: str, gold: tuple[int, int], pred: tuple[int, int]) -> dict:
    exact = pred == gold
    conf = (0.75 + 0.25 * rng.random()) if exact else (0.2 + 0.6 * rng.random())
    return {"example_id": eid, "pred_start": pred[0], "pred_end": pred[1],
            "start_conf": conf, "end_conf": min(1.0, conf + 0.05 * rng.random()),
            "iou": span_iou(pred[0], pred[1], gold[0], gold[1]), "exact": exact}


ROLLOUT_MAX_LEN = 1024  # lambdascope.metrics.rollout's default


def rollout_of(trace: TraceResult, preds: dict[int, tuple[int, int]]) -> dict:
    """The model's own reduction, by ``lambdascope.metrics.rollout``'s rules: on the gold trace it
    predicts the step's seeded span; off it (after contracting another redex) the normal-order
    redex; it stops at a predicted normal form, at a span that is no redex, past twice the gold
    number of steps or past the length cap. The path holds each term it saw and its span."""
    records = trace.records
    total = records[0].steps_total
    term, text = parse(records[0].term), records[0].term
    path: list = []
    first = None
    steps, on_gold = 0, True
    success = reached = False
    while True:
        k = steps
        on_gold = on_gold and k < len(records) and text == records[k].term
        span = preds[k] if on_gold else redex_span(term)
        path.append([text, list(span)])
        if first is None and (k >= len(records) or span != records[k].span):
            first = k
        if span == (0, 0):
            reached = redex_span(term) == (0, 0)
            success = reached and k == total and alpha_equivalent(term, parse(records[-1].term))
            break
        nxt = contract_span(term, span)
        if nxt is None:
            break
        term, text, steps = nxt, print_term(nxt), k + 1
        if steps > 2 * total or len(text) > ROLLOUT_MAX_LEN:
            break
    return {"trace_identity": trace.identity, "success": success, "reached_normal_form": reached,
            "steps": steps, "gold_steps": total, "first_divergent_step": first, "path": path}


@dataclass
class Seeded:
    url: str
    run_a: int
    run_b: int
    ck1: int
    ck2: int
    traces: list[TraceResult]
    example_ids: dict[tuple[str, int], int]
    preds: dict[int, dict[tuple[str, int], tuple[int, int]]] = field(default_factory=dict)
    regression: tuple[str, int] = ("", 0)  # (trace identity, step) right in ck1, wrong in ck2
    fixed: list[tuple[str, int]] = field(default_factory=list)


def build_small_store(url: str, n_traces: int = 40, seed: int = 11) -> Seeded:
    engine, Session = open_store(url)
    seen: set[str] = set()  # one trace per identity, as ensure_eval_set keeps them
    traces = [t for t in make_traces(n_traces, seed) if not (t.identity in seen or seen.add(t.identity))]
    rng = random.Random(seed)
    with Session() as s:
        es_id, ids = ensure_eval_set(s, "eval-small", f"reference generator seed {seed}", traces)
        run_a = Run(name="run-a", config={"d_model": 64, "note": XSS}, data_files=["data/train.jsonl"],
                    data_hash="0" * 64, status="finished", eval_set_id=es_id,
                    validation={"lines": 1000, "valid_records": 998,
                                "problems_by_reason": {"bad_json": 1, "wrong_span": 1}})
        run_b = Run(name="run-b <b>live</b>", config={}, data_files=[], data_hash="1" * 64,
                    status="running", eval_set_id=es_id)
        s.add_all([run_a, run_b])
        s.flush()
        s.add_all([DataProblem(run_id=run_a.id, file="data/train.jsonl", line=17, reason="bad_json",
                               detail="Expecting value at column 1 " + XSS),
                   DataProblem(run_id=run_a.id, file="data/train.jsonl", line=42, reason="wrong_span",
                               detail="span [0, 3) is not the normal-order redex")])
        # checkpoint 1: about 60% exact
        p1: dict[tuple[str, int], tuple[int, int]] = {}
        for tr in traces:
            for r in tr.records:
                p1[(tr.identity, r.step_k)] = r.span if rng.random() < 0.6 else wrong_span(rng, r.term, r.span)
        # checkpoint 2: fixes about half of the mistakes, breaks exactly one right answer
        p2 = dict(p1)
        fixed = []
        for tr in traces:
            for r in tr.records:
                key = (tr.identity, r.step_k)
                if p1[key] != r.span and rng.random() < 0.5:
                    p2[key] = r.span
                    fixed.append(key)
        right = [(tr, r) for tr in traces for r in tr.records
                 if p1[(tr.identity, r.step_k)] == r.span and r.span != (0, 0) and len(tr.records) > 2]
        tr_r, r_r = right[len(right) // 2]
        regression = (tr_r.identity, r_r.step_k)
        p2[regression] = (0, 0)  # stops too early: IoU 1 -> 0
        ck_ids = []
        for step, preds in ((100, p1), (200, p2)):
            rows, rollouts = [], []
            for tr in traces:
                for r in tr.records:
                    rows.append(prediction(rng, ids[(tr.identity, r.step_k)], r.term, r.span,
                                           preds[(tr.identity, r.step_k)]))
                rollouts.append(rollout_of(tr, {r.step_k: preds[(tr.identity, r.step_k)] for r in tr.records}))
            exact = sum(p["exact"] for p in rows) / len(rows)
            mean_iou = sum(p["iou"] for p in rows) / len(rows)
            ck_ids.append(write_evaluation(
                s, run_id=run_a.id, eval_set_id=es_id, step=step, path=f"runs/run-a/ckpt-{step}.pt",
                metrics={"exact": exact, "mean_iou": mean_iou, "nf_f1": 0.8,
                         "rollout_success": sum(r["success"] for r in rollouts) / len(rollouts),
                         # NaN as a diverged trainer might write it (PostgreSQL's JSON refuses it)
                         "loss": float("nan") if step == 100 and url.startswith("sqlite") else 0.5},
                predictions=rows, rollouts=rollouts,
                metric_points=[{"step": step, "name": "exact", "value": exact},
                               {"step": step, "name": "mean_iou", "value": mean_iou}]))
        s.add_all([MetricPoint(run_id=run_a.id, step=k * 10, name=name, value=v)
                   for k in range(1, 41)
                   for name, v in (("loss", 3.0 / k), ("tokens_per_s", 50_000 + 100 * k), ("mfu", 0.1 + k / 1000))])
        s.add_all([MetricPoint(run_id=run_b.id, step=k, name="loss", value=2.0 - k / 30) for k in range(20)])
        s.commit()
        seeded = Seeded(url, run_a.id, run_b.id, ck_ids[0], ck_ids[1], traces, ids,
                        {ck_ids[0]: p1, ck_ids[1]: p2}, regression, fixed)
    engine.dispose()
    return seeded


# ---------------------------------------------------------------------------------------------
# a dashboard over a store (the fixtures seeded, client, fresh, fresh_client are in tests/conftest.py)


def make_client(url: str, **settings):
    import warnings

    from app.settings import Settings
    from app.main import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
        from fastapi.testclient import TestClient

        app = create_app(Settings(db_url=url, warm_caches=False, **settings))
        return TestClient(app, base_url="http://testserver")


# ---------------------------------------------------------------------------------------------
# a store with evaluation suites: a run's checkpoints and, beside each, its suites' sibling rows


SUITES = ("longer", "church")
TRAIN_SHAPE = {"length": {"width": 8, "counts": [0, 40, 90, 60, 25, 5], "max": 45},
               "steps": {"width": 1, "counts": [0, 30, 50, 20, 8, 2], "max": 5}}


@dataclass
class SuiteSeeded:
    url: str
    run: int  # with train_shape and the suites
    old_run: int  # neither train_shape nor suites
    main: dict[int, int]  # step -> main checkpoint id
    rows: dict[tuple[int, str], int]  # (step, suite) -> the suite's sibling row
    traces: dict[str | None, list[TraceResult]]  # suite (None: main) -> its evaluation set's traces
    exact: dict[int, dict[tuple[str, int], bool]] = field(default_factory=dict)  # row id -> (identity, step_k) -> exact
    rollouts: dict[int, dict[str, bool]] = field(default_factory=dict)  # row id -> identity -> success


def build_suite_store(url: str) -> SuiteSeeded:
    engine, Session = open_store(url)
    rng = random.Random(5)
    sets = {None: make_traces(16, 3), "longer": make_traces(14, 4), "church": make_traces(12, 6)}
    for name, trs in sets.items():  # one trace per identity, as ensure_eval_set keeps them
        seen: set[str] = set()
        sets[name] = [t for t in trs if not (t.identity in seen or seen.add(t.identity))]
    with Session() as s:
        ids: dict[str | None, tuple[int, dict]] = {}
        for name, trs in sets.items():
            ids[name] = ensure_eval_set(s, f"eval-suite-{name or 'main'}", "test", trs)
        run = Run(name="suite-run", config={}, data_files=[], data_hash="2" * 64, status="finished",
                  eval_set_id=ids[None][0], validation={"lines": 10, "train_shape": TRAIN_SHAPE})
        old = Run(name="old-run", config={}, data_files=[], data_hash="3" * 64, status="finished",
                  eval_set_id=ids[None][0], validation={"lines": 10})
        s.add_all([run, old])
        s.flush()
        seeded = SuiteSeeded(url, run.id, old.id, {}, {}, sets)
        for run_id in (run.id, old.id):
            for step in (100, 200):
                for name in ((None,) + SUITES if run_id == run.id else (None,)):
                    es_id, eids = ids[name]
                    rows, rollouts = [], []
                    hit = 0.7 if name is None else 0.4
                    for tr in sets[name]:
                        preds = {}
                        for r in tr.records:
                            preds[r.step_k] = r.span if rng.random() < hit else wrong_span(rng, r.term, r.span)
                            rows.append(prediction(rng, eids[(tr.identity, r.step_k)], r.term, r.span, preds[r.step_k]))
                        rollouts.append(rollout_of(tr, preds))
                    metrics = {"exact": sum(p["exact"] for p in rows) / len(rows),
                               "rollout_success": sum(r["success"] for r in rollouts) / len(rollouts)}
                    if name:
                        metrics["suite"] = name
                    ck = write_evaluation(s, run_id=run_id, eval_set_id=es_id, step=step,
                                          path=f"runs/{run_id}/ckpt-{step}.pt", metrics=metrics,
                                          predictions=rows, rollouts=rollouts, suite=name)
                    if run_id == run.id:
                        if name is None:
                            seeded.main[step] = ck
                        else:
                            seeded.rows[(step, name)] = ck
                    by_id = {v: k for k, v in eids.items()}
                    seeded.exact[ck] = {by_id[p["example_id"]]: p["exact"] for p in rows}
                    seeded.rollouts[ck] = {r["trace_identity"]: r["success"] for r in rollouts}
        s.commit()
    engine.dispose()
    return seeded
