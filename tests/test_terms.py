"""The Python λ core: parsing, canonical printing, spans, substitution, α-equivalence."""

import pytest
from hypothesis import given, settings

from lambdascope.terms import (App, Lam, ParseError, Var, alpha_equivalent, contract, contract_span,
                               free_vars, is_canonical, parse, print_term, print_with_span,
                               redex_span, redex_spans, step, step_counting_renames, substitute)
from tests.strategies import terms


@pytest.mark.parametrize("text, span", [
    ("f ((λx.x) y)", (3, 11)),
    ("(λx.x x) (λy.y)", (0, 15)),
    ("λz.z ((λx.x) z)", (6, 14)),
    ("x", (0, 0)),
    ("λx.x", (0, 0)),
    ("a (λx.x) ((λy.y) b)", (10, 18)),
])
def test_design_span_examples(text, span):
    assert redex_span(parse(text)) == span
    assert print_term(parse(text)) == text


def test_outermost_before_inner():
    # the whole term is a redex and its function contains one: outermost wins
    t = parse("(λx.(λy.y) x) z")
    assert redex_span(t) == (0, 15)
    assert redex_spans(t) == [(0, 15), (4, 12)]


def test_leftmost_in_function_before_argument():
    t = parse("x ((λy.y) a) ((λz.z) b)")
    s, e = redex_span(t)
    assert "x ((λy.y) a) ((λz.z) b)"[s:e] == "(λy.y) a"


def test_capture_is_avoided():
    t = parse("(λx.λy.x y) y")
    nxt = step(t)
    assert print_term(nxt) == "λy1.y y1"
    assert free_vars(nxt) == {"y"}
    # naive substitution would give λy.y y, which is wrong
    assert not alpha_equivalent(nxt, parse("λy.y y"))
    assert alpha_equivalent(nxt, parse("λq.y q"))


def test_fresh_name_avoids_existing_free_names():
    t = parse("(λx.λy.x y y1) y")
    nxt, renames = step_counting_renames(t)
    assert renames == 1
    assert print_term(nxt) == "λy2.y y2 y1"


def test_shadowed_binder_is_not_substituted():
    assert print_term(substitute(parse("λx.x"), "x", Var("a"))) == "λx.x"
    assert print_term(step(parse("(λx.λx.x) a"))) == "λx.x"


@pytest.mark.parametrize("text, expected_pos, expected_what", [
    ("", 0, "a term"),
    ("λ.x", 1, "a variable"),
    ("λx x", 3, "'.'"),
    ("(x", 2, "')'"),
    ("x)", 1, "end of input"),
    ("X", 0, "a variable"),
])
def test_parse_errors_say_where_and_what(text, expected_pos, expected_what):
    with pytest.raises(ParseError) as err:
        parse(text)
    assert err.value.position == expected_pos
    assert expected_what in err.value.expected
    assert f"position {expected_pos}" in str(err.value)


def test_lenient_input_and_canonical_check():
    t = parse("\\x.  (x)   ((y))")
    assert print_term(t) == "λx.x y"
    assert not is_canonical("(x) y")
    assert is_canonical("x y")
    assert not is_canonical("λx.(x y)")


def test_contract_rejects_non_redex():
    with pytest.raises(ValueError):
        contract(parse("x y"))


def test_contract_span_off_redex_is_none():
    t = parse("(λx.x) a")
    assert contract_span(t, (1, 5)) is None
    assert print_term(contract_span(t, (0, 8))) == "a"


@settings(max_examples=300, deadline=None)
@given(terms)
def test_print_parse_round_trip(t):
    text = print_term(t)
    assert print_term(parse(text)) == text
    assert parse(text) == t


@settings(max_examples=300, deadline=None)
@given(terms)
def test_span_text_parses_to_the_redex_and_contracts_to_next_step(t):
    text, (s, e) = print_with_span(t)
    nxt = step(t)
    if (s, e) == (0, 0):
        assert nxt is None and redex_spans(t) == []
        return
    redex = parse(text[s:e])
    assert isinstance(redex, App) and isinstance(redex.fn, Lam)
    # contracting the span in place gives the normal-order step, up to α
    assert alpha_equivalent(contract_span(t, (s, e)), nxt)


@settings(max_examples=300, deadline=None)
@given(terms)
def test_every_redex_span_is_a_redex(t):
    text = print_term(t)
    for s, e in redex_spans(t):
        r = parse(text[s:e])
        assert isinstance(r, App) and isinstance(r.fn, Lam)


@settings(max_examples=300, deadline=None)
@given(terms, terms)
def test_substitution_preserves_free_variables(body, arg):
    # FV(b[x:=n]) = FV(b) - {x} ∪ (FV(n) if x ∈ FV(b))
    result = substitute(body, "x", arg)
    fv_b = free_vars(body)
    expected = (fv_b - {"x"}) | (free_vars(arg) if "x" in fv_b else frozenset())
    assert free_vars(result) == expected


@settings(max_examples=200, deadline=None)
@given(terms)
def test_alpha_equivalence_is_name_independent(t):
    renamed = _rename_all_binders(t)
    assert alpha_equivalent(t, renamed)


def _rename_all_binders(t, env=None, counter=None):
    env = env or {}
    counter = counter if counter is not None else [0]
    if isinstance(t, Var):
        return Var(env.get(t.name, t.name))
    if isinstance(t, App):
        return App(_rename_all_binders(t.fn, env, counter), _rename_all_binders(t.arg, env, counter))
    counter[0] += 1
    new = f"q{counter[0]}"
    return Lam(new, _rename_all_binders(t.body, {**env, t.var: new}, counter))
