"""The shrinking search (lambdascope/shrink.py) with fake, deterministic predictors: the chain
strictly shrinks, every term of it errs with the kind kept, its gold is the core's redex, each
step is the first candidate (smallest first) that errs, the budget of model calls is respected
exactly, the same input gives the same output; and over random terms, every candidate is a
well-formed, smaller term, and the kinds skipped without a model call are impossible."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdascope.diagnosis import TermShape, error_kind
from lambdascope.shrink import (MAX_BATCH, NothingToShrink, candidates, fresh_free_name, kind_possible,
                                shrink)
from lambdascope.terms import App, Var, free_vars, is_canonical, parse, print_term, redex_span, redex_spans, subterms
from lambdascope.vocabulary import ERROR_KINDS, WRONG_KINDS

from tests.strategies import terms as random_terms


class Counting:
    """A span predictor by a rule on the term's text; counts the terms it is asked about."""

    def __init__(self, rule):
        self.rule = rule
        self.asked: list[str] = []
        self.batches: list[int] = []

    def predict(self, term):
        return self.predict_many([term])[0]

    def predict_many(self, terms):
        self.asked += terms
        self.batches.append(len(terms))
        return [(*self.rule(t), 0.5, 0.5) for t in terms]


def innermost(text: str) -> tuple[int, int]:
    """The last redex in pre-order (applicative order's choice, roughly); normal form at one."""
    spans = redex_spans(parse(text))
    return spans[-1] if spans else (0, 0)


def whole(text: str) -> tuple[int, int]:
    """Always the whole term: wrong unless the term itself is the normal-order redex."""
    return 0, len(text)


def nf_when_long(text: str) -> tuple[int, int]:
    """Normal form on terms of 12 characters or more, else the gold span."""
    return (0, 0) if len(text) >= 12 else redex_span(parse(text))


TERM = "(λx.λy.(λx.y x) x) (λg.g) (b ((λz.z) x))"  # innermost: a redex to the right


def check_chain(result, rule, target):
    chain = result.chain
    assert chain[0].term == print_term(parse(TERM)) or chain[0].move_kind == "original"
    lengths = [s.length for s in chain]
    assert lengths == sorted(set(lengths), reverse=True), lengths  # strictly shrinks
    for s in chain:
        assert is_canonical(s.term) and s.length == len(s.term)
        assert s.gold == redex_span(parse(s.term))  # the core's gold, recomputed
        assert s.pred == rule(s.term)
        assert s.kind == error_kind(s.term, s.pred) != "exact"
        assert target == "any" or s.kind == target
    assert result.minimal == chain[-1] and result.original == chain[0]


def first_erring(term: str, rule, target) -> str | None:
    """The first candidate of ``term`` (in the search's order) on which ``rule`` errs so."""
    for c in candidates(term):
        k = error_kind(c.text, rule(c.text))
        if (k != "exact") if target == "any" else k == target:
            return c.text
    return None


@pytest.mark.parametrize("rule,any_error", [(innermost, False), (innermost, True), (whole, False),
                                            (whole, True), (nf_when_long, False)])
def test_the_chain_shrinks_keeps_the_error_and_is_the_greedy_one(rule, any_error):
    p = Counting(rule)
    r = shrink(p, TERM, any_error=any_error)
    target = "any" if any_error else error_kind(print_term(parse(TERM)), rule(print_term(parse(TERM))))
    assert r.target == target and r.stopped == "minimal" and not r.budget_exhausted
    check_chain(r, rule, target)
    # each step is the first erring candidate of the one before, and the last has none
    for a, b in zip(r.chain, r.chain[1:]):
        assert first_erring(a.term, rule, target) == b.term
        assert b.term in {c.text for c in candidates(a.term)}
    assert first_erring(r.minimal.term, rule, target) is None
    # calls: each distinct term asked once, all counted, batched
    assert r.calls == len(p.asked) == len(set(p.asked)) <= r.budget
    assert max(p.batches) <= MAX_BATCH and len(p.batches) < len(p.asked)


def test_known_chains():
    r = shrink(Counting(innermost), TERM)
    assert r.target == "right_redex"
    assert [s.term for s in r.chain] == [
        "(λx.λy.(λx.y x) x) (λg.g) (b ((λz.z) x))", "(λx.a) (λg.g) (b ((λz.z) x))",
        "(λx.a) a (b ((λz.z) x))", "(λx.a) a ((λz.z) x)"]
    assert [s.move_kind for s in r.chain] == ["original", "variable", "variable", "child"]
    assert r.chain[1].move == "replace [4, 17) by the free variable a"
    # any error: the whole term on a term in normal form is missed_nf; one character is the least
    r = shrink(Counting(whole), "x ((λy.y) z) w", any_error=True)
    assert [(s.term, s.kind) for s in r.chain] == [("x ((λy.y) z) w", "not_redex"), ("a", "missed_nf")]
    # normal form claimed on long terms only: the search stops at the shortest long one
    r = shrink(Counting(nf_when_long), TERM)
    assert r.target == "false_nf" and r.minimal.length == 12 and r.minimal.kind == "false_nf"


def test_the_same_input_gives_the_same_output():
    for rule in (innermost, whole, nf_when_long):
        a = shrink(Counting(rule), TERM, any_error=rule is whole).to_dict()
        b = shrink(Counting(rule), parse(TERM), any_error=rule is whole).to_dict()
        assert a == b


def test_the_budget_is_respected_exactly_and_a_smaller_one_gives_a_prefix():
    full = shrink(Counting(innermost), TERM)
    assert full.calls > 3
    for budget in range(1, full.calls + 2):
        p = Counting(innermost)
        r = shrink(p, TERM, budget=budget)
        assert r.calls == len(p.asked) <= budget
        assert [s.term for s in r.chain] == [s.term for s in full.chain[:len(r.chain)]]
        if budget < full.calls:
            assert r.stopped == "budget" and r.budget_exhausted and r.calls == budget
        else:
            assert r.stopped == "minimal" and r.to_dict()["chain"] == full.to_dict()["chain"]
    r = shrink(Counting(innermost), TERM, budget=1)
    assert [s.move_kind for s in r.chain] == ["original"] and r.calls == 1
    with pytest.raises(ValueError, match="budget"):
        shrink(Counting(innermost), TERM, budget=0)


def test_a_deadline_stops_the_search():
    asked = []
    r = shrink(Counting(innermost), TERM, should_stop=lambda: asked.append(1) or len(asked) > 1)
    assert r.stopped == "deadline" and 1 <= len(r.chain) < 4
    progress = []
    shrink(Counting(innermost), TERM, progress=lambda calls, n: progress.append((calls, n)))
    assert progress[0] == (1, len(TERM)) and [c for c, _ in progress] == sorted(c for c, _ in progress)


def test_nothing_to_shrink_when_the_model_is_right_or_errs_otherwise():
    with pytest.raises(NothingToShrink, match="the model is right on") as e:
        shrink(Counting(lambda t: redex_span(parse(t))), TERM)
    assert e.value.step.kind == "exact" and e.value.step.term == TERM
    with pytest.raises(NothingToShrink, match="is right on a: it predicts normal form"):
        shrink(Counting(lambda t: redex_span(parse(t))), "a")
    with pytest.raises(NothingToShrink, match="is right_redex .* not false_nf"):
        shrink(Counting(innermost), TERM, target_kind="false_nf")
    assert shrink(Counting(innermost), TERM, target_kind="right_redex").target == "right_redex"
    with pytest.raises(ValueError, match="target_kind"):
        shrink(Counting(innermost), TERM, target_kind="exact")


def test_the_moves():
    texts = {c.text: c for c in candidates("λx.λy.x y")}
    assert texts["λx.x x"].move_kind == "merge"  # λx.λy.b -> λx.b[y:=x]
    assert texts["λx.x x"].move == "merge the binders λx.λy at [0, 9) into λx"
    assert "λy.x y" in texts and "λx.x" in texts  # a body; an argument dropped
    texts = {c.text: c for c in candidates("f a b")}
    assert texts["f b"].move_kind == "drop" and texts["f a"].move_kind == "drop"
    assert {"f", "a", "b", "c"} <= set(texts)  # c: the fresh free name
    texts = {c.text for c in candidates("λx.f (x y)")}
    assert {"λx.f x", "λx.f y", "λx.f a"} <= texts  # bound in scope, free, fresh
    # merging renames when the substitution would capture: λx.λy.λx.y -> λx.λx1.x
    assert "λx.λx1.x" in {c.text for c in candidates("λx.λy.λx.y")}
    assert candidates("x") == [] and [c.text for c in candidates("x1")] == ["a"]
    assert [c.text for c in candidates("λx1.x1 a")][:4] == ["a", "b", "x1 a", "λx1.a"]
    assert fresh_free_name(parse("λa.b c")) == "d"


def check_candidates(t):
    text = print_term(t)
    cands = candidates(t)
    assert [c.text for c in cands] == sorted({c.text for c in cands}, key=lambda x: (len(x), x))
    names = {n.name if isinstance(n, Var) else n.var for _, _, n in subterms(t) if not isinstance(n, App)}
    allowed = names | {fresh_free_name(t)}  # a child move frees what its binder bound
    for c in cands:
        assert len(c.text) < len(text)
        assert is_canonical(c.text) and print_term(c.term) == c.text
        assert free_vars(c.term) <= allowed, (text, c.text)
        assert c.move_kind in ("variable", "child", "drop", "merge")


@settings(max_examples=300, deadline=None)
@given(random_terms)
def test_every_candidate_is_a_well_formed_smaller_term(t):
    check_candidates(t)


def all_spans(n: int):
    yield 0, 0
    for s in range(n):
        for e in range(s + 1, n + 1):
            yield s, e


@settings(max_examples=150, deadline=None)
@given(random_terms)
def test_the_kinds_skipped_without_a_call_are_impossible(t):
    shape = TermShape(t)
    possible = {shape.kind(sp) for sp in all_spans(len(print_term(t)))}
    assert {k for k in ERROR_KINDS if kind_possible(k, shape)} == possible


@settings(max_examples=100, deadline=None)
@given(random_terms, st.sampled_from([innermost, whole]), st.booleans(), st.integers(1, 40))
def test_on_random_terms_the_chain_shrinks_and_keeps_erring(t, rule, any_error, budget):
    text = print_term(t)
    p = Counting(rule)
    try:
        r = shrink(p, t, any_error=any_error, budget=budget)
    except NothingToShrink as e:
        assert e.step.kind == "exact" == error_kind(text, rule(text))
        return
    check_chain(r, rule, r.target)
    assert r.target in (("any",) if any_error else WRONG_KINDS)
    assert r.calls == len(p.asked) == len(set(p.asked)) <= budget
