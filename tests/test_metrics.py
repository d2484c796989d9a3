"""lambdascope.metrics: span IoU, offsets, per-step figures and rollouts (pure functions)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdascope.spans import char_to_token_span, token_to_char_span
from lambdascope.terms import parse, redex_spans
from lambdascope import metrics
from lambdascope.metrics import (GoldTrace, accuracy_by, iou_histogram, length_bucket, nf_precision_recall_f1,
                             rollout, rollout_summary, span_iou, step_exact, step_metrics,
                             steps_left_bucket, trace_accuracy)

from .trainer_helpers import trace_of


def test_span_iou_is_the_shared_one():
    import lambdascope.spans

    assert metrics.span_iou is lambdascope.spans.span_iou


@pytest.mark.parametrize("args, want", [
    ((2, 4, 2, 4), 1.0),
    ((2, 3, 4, 5), 0.0),
    ((2, 5, 3, 6), 0.5),
    ((2, 3, 5, 6), 0.0),
    ((0, 0, 0, 0), 1.0),  # both normal form
    ((0, 0, 3, 6), 0.0),  # one empty
    ((3, 6, 0, 0), 0.0),
    ((2, 4, 3, 4), 0.5),  # adjacent and nested, exclusive ends
    ((3, 4, 4, 5), 0.0),  # touching spans do not overlap
])
def test_span_iou_vectors(args, want):
    assert span_iou(*args) == pytest.approx(want)


spans = st.tuples(st.integers(0, 40), st.integers(0, 40)).map(lambda t: (min(t), max(t)))


@given(spans, spans)
def test_span_iou_matches_sets_of_positions(a, b):
    sa, sb = set(range(*a)), set(range(*b))
    want = 1.0 if not sa and not sb else len(sa & sb) / len(sa | sb)
    got = span_iou(a[0], a[1], b[0], b[1])
    assert got == pytest.approx(want)
    assert got == pytest.approx(span_iou(b[0], b[1], a[0], a[1]))
    assert 0.0 <= got <= 1.0
    assert (got == 1.0) == (sa == sb)


def test_offsets_seed_example():
    term = "λx.x"
    assert token_to_char_span(2, 3) == (1, 2)
    s, e = token_to_char_span(2, 3)
    assert term[s:e] == "x"
    assert char_to_token_span(1, 2) == (2, 3)
    assert char_to_token_span(0, 0) == (0, 0) == token_to_char_span(0, 0)


@given(st.integers(0, 190), st.integers(1, 5))
def test_offsets_round_trip(start, width):
    assert token_to_char_span(*char_to_token_span(start, start + width)) == (start, start + width)


def test_step_exact_and_nf():
    assert step_exact((3, 11), (3, 11)) and step_exact([0, 0], (0, 0))
    assert not step_exact((3, 10), (3, 11))
    golds = [(0, 0), (0, 0), (1, 4), (1, 4)]
    preds = [(0, 0), (1, 4), (0, 0), (1, 4)]
    p, r, f1 = nf_precision_recall_f1(preds, golds)
    assert (p, r, f1) == (0.5, 0.5, 0.5)
    assert nf_precision_recall_f1([(0, 0)], [(0, 0)]) == (1.0, 1.0, 1.0)
    assert nf_precision_recall_f1([(1, 2)], [(0, 0)]) == (0.0, 0.0, 0.0)
    assert nf_precision_recall_f1([(1, 2)], [(1, 2)]) == (1.0, 1.0, 1.0)


def test_histogram_buckets_and_trace_accuracy():
    # the dashboard's bins: ten below 1, and IoU exactly 1 (an exact match) on its own
    assert iou_histogram([0.0, 0.05, 0.5, 0.99, 1.0, 1.0]) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1, 2]
    assert iou_histogram([0.3]) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]  # 0.3 is the edge of the bar's link
    assert length_bucket(0, 20) == "0-19" and length_bucket(63, 20) == "60-79" and length_bucket(5, 1) == "5"
    assert [steps_left_bucket(k) for k in (0, 1, 4, 15, 16, 40)] == ["0", "1", "4", "15", "16+", "16+"]
    by = accuracy_by(["32-63", "0-31", "32-63"], [True, False, False])
    assert list(by) == ["0-31", "32-63"]
    assert by["32-63"] == {"n": 2, "exact": 0.5}
    assert trace_accuracy(["a", "a", "b", "c"], [True, True, True, False]) == pytest.approx(2 / 3)


def test_step_metrics_summary():
    m = step_metrics(preds=[(0, 0), (2, 5), (2, 4)], golds=[(0, 0), (3, 6), (2, 4)],
                     term_lens=[10, 40, 40], steps_left=[0, 2, 1], trace_keys=["t", "u", "u"])
    assert m["exact"] == pytest.approx(2 / 3)
    assert m["mean_iou"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["nf_f1"] == 1.0 and m["trace_accuracy"] == 0.5
    assert m["by_steps_left"]["2"] == {"n": 1, "exact": 0.0}
    assert sum(m["iou_hist"]) == 3


# ---------------------------------------------------------------------------------------------
# rollouts

TERMS = ["(λx.x x) (λy.y)", "f ((λx.x) y)", "λz.z ((λx.x) z)", "(λx.λy.x) a ((λz.z) b)", "a b"]


def gold(term: str) -> GoldTrace:
    recs = trace_of(term, "t")
    return GoldTrace(term, tuple(r["term"] for r in recs), tuple(tuple(r["target_span"]) for r in recs))


def oracle(texts):
    out = []
    for t in texts:
        sp = redex_spans(parse(t))
        out.append(sp[0] if sp else (0, 0))
    return out


def test_rollout_with_the_true_redex_succeeds():
    golds = [gold(t) for t in TERMS]
    res = rollout(golds, oracle)
    assert all(r.success and r.reached_normal_form for r in res)
    assert [r.steps for r in res] == [g.gold_steps for g in golds]
    assert all(r.first_divergent_step is None for r in res)
    assert [p[0] for p in res[0].path] == list(golds[0].terms)
    assert rollout_summary(res)["rollout_success"] == 1.0


def test_rollout_records_the_first_divergence():
    g = gold("(λx.λy.x) a ((λz.z) b)")  # 2 steps: the outer redex, then the inner one
    assert g.gold_steps >= 2

    def innermost(texts):  # reduces the argument first: another path
        out = []
        for t in texts:
            sp = redex_spans(parse(t))
            out.append(sp[-1] if sp else (0, 0))
        return out

    (r,) = rollout([g], innermost)
    assert r.first_divergent_step == 0
    assert r.reached_normal_form  # it does get to a normal form ...
    assert not r.success or r.steps == g.gold_steps  # ... success only in the gold number of steps


def test_rollout_early_normal_form_and_non_redex_fail():
    g = gold("f ((λx.x) y)")
    (early,) = rollout([g], lambda texts: [(0, 0)] * len(texts))
    assert not early.success and not early.reached_normal_form and early.first_divergent_step == 0
    assert early.stop == "normal_form" and early.steps == 0

    calls = []

    def wrong_at_1(texts):
        calls.append(texts)
        return [(0, 1) if len(calls) == 2 else oracle([t])[0] for t in texts]

    g2 = gold("(λx.x x) (λy.y)")
    (bad,) = rollout([g2], wrong_at_1)
    assert bad.first_divergent_step == 1 and bad.stop == "not_a_redex" and not bad.success
    assert bad.path[-1] == [g2.terms[1], [0, 1]]


def test_rollout_cap_is_twice_the_gold_steps():
    g = gold("(λx.x) ((λy.y) z)")  # 2 gold steps

    def never_done(texts):  # points at a redex while there is one, then at a non-redex
        return [redex_spans(parse(t))[0] if redex_spans(parse(t)) else (0, 1) for t in texts]

    (r,) = rollout([g], never_done)
    assert r.success is False and r.stop == "not_a_redex" and r.steps == 2

    omega = "(λx.x x) (λx.x x)"
    gw = GoldTrace("w", (omega, omega, omega, omega), ((0, 17),) * 3 + ((0, 0),))  # pretend 3 steps
    (w,) = rollout([gw], oracle)
    assert w.stop == "step_cap" and w.steps == 7 and not w.reached_normal_form
