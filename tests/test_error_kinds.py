"""Error kinds (lambdascope.diagnosis) against a brute-force definition, and the facts that make
the seven kinds a partition of every prediction."""

from hypothesis import given, settings
from hypothesis import strategies as st

from lambdascope.diagnosis import TermShape, error_kind
from lambdascope.terms import App, Lam, Var, contract_span, free_vars, parse, print_term, redex_span, redex_spans
from lambdascope.vocabulary import ERROR_KINDS

from tests.strategies import terms

MARK = "ζ"  # no variable is spelled so


def nodes_by_path(t, path=()):
    yield path, t
    if isinstance(t, Lam):
        yield from nodes_by_path(t.body, path + (0,))
    elif isinstance(t, App):
        yield from nodes_by_path(t.fn, path + (0,))
        yield from nodes_by_path(t.arg, path + (1,))


def replaced(t, path, new):
    if not path:
        return new
    if isinstance(t, Lam):
        return Lam(t.var, replaced(t.body, path[1:], new))
    return App(replaced(t.fn, path[1:], new), t.arg) if path[0] == 0 else App(t.fn, replaced(t.arg, path[1:], new))


def parent_wraps(t, path, node) -> bool:
    """Whether the printer puts parentheses around the node at ``path``, read off the printed
    text rather than the printer's rules: where a variable standing in the node's place is
    printed, a marker of the node's own shape is printed in parentheses, or not."""
    at = print_term(replaced(t, path, Var(MARK))).index(MARK)
    marker = Lam(MARK, Var(MARK)) if isinstance(node, Lam) else App(Var(MARK), Var(MARK))
    return print_term(replaced(t, path, marker)).startswith(f"({print_term(marker)})", at)


def brute_force_spans(t):
    """{span: is a redex} of every node, each found by printing the term with the node replaced
    by a marker."""
    out = {}
    for path, node in nodes_by_path(t):
        text = print_term(replaced(t, path, Var(MARK)))
        start = text.index(MARK)
        if not isinstance(node, Var) and parent_wraps(t, path, node):
            start += 1  # a variable in the node's place is not wrapped; the node is
        end = start + len(print_term(node))
        assert print_term(t)[start:end] == print_term(node)
        out[(start, end)] = out.get((start, end), False) or (isinstance(node, App) and isinstance(node.fn, Lam))
    return out


def brute_force_kind(t, pred):
    gold = redex_span(t)
    spans = brute_force_spans(t)
    if tuple(pred) == gold:
        return "exact"
    if tuple(pred) == (0, 0):
        return "false_nf"
    if gold == (0, 0):
        return "missed_nf"
    if tuple(pred) not in spans:
        return "not_subterm"
    if not spans[tuple(pred)]:
        return "not_redex"
    return "inner_redex" if gold[0] <= pred[0] and pred[1] <= gold[1] else "right_redex"


@st.composite
def term_and_span(draw):
    t = draw(terms)
    n = len(print_term(t))
    choice = draw(st.sampled_from(["node", "random", "nf", "gold"]))
    if choice == "node":
        span = draw(st.sampled_from(sorted(brute_force_spans(t))))
    elif choice == "random":
        s = draw(st.integers(0, max(0, n - 1)))
        span = (s, draw(st.integers(s + 1, n)))
    elif choice == "nf":
        span = (0, 0)
    else:
        span = redex_span(t)
    return t, span


@settings(max_examples=600, deadline=None)
@given(term_and_span())
def test_error_kind_agrees_with_the_brute_force_definition(ts):
    t, span = ts
    kind = error_kind(t, span)
    assert kind in ERROR_KINDS
    assert kind == brute_force_kind(t, span)
    assert error_kind(print_term(t), span) == kind  # from the text, the same


@settings(max_examples=400, deadline=None)
@given(terms)
def test_every_other_redex_lies_inside_or_right_of_the_normal_order_one(t):
    spans = redex_spans(t)
    if not spans:
        return
    g = spans[0]
    for s in spans[1:]:
        assert (g[0] <= s[0] and s[1] <= g[1]) or s[0] >= g[1], (print_term(t), g, s)
        assert error_kind(t, s) in ("inner_redex", "right_redex")


@settings(max_examples=400, deadline=None)
@given(term_and_span())
def test_only_the_redex_kinds_contract_and_capture_nothing(ts):
    t, span = ts
    kind = error_kind(t, span)
    reduct = contract_span(t, span)
    if kind in ("inner_redex", "right_redex") or (kind == "exact" and span != (0, 0)):
        assert reduct is not None
        assert free_vars(reduct) <= free_vars(t)  # capture-avoiding: no variable became free or bound
    else:
        assert reduct is None, kind


def test_the_example_of_the_issue_and_one_of_each_kind():
    t = parse("(λx.x x) ((λy.y) z) ((λw.w) v)")
    shape = TermShape(t)
    assert shape.gold == (0, 19)
    assert {span: shape.kind(span) for span in [(0, 19), (0, 0), (10, 18), (21, 29), (1, 7), (0, 30), (2, 5)]} == {
        (0, 19): "exact", (0, 0): "false_nf", (10, 18): "inner_redex", (21, 29): "right_redex",
        (1, 7): "not_redex", (0, 30): "not_redex", (2, 5): "not_subterm"}
    assert error_kind("λx.x", (0, 4)) == "missed_nf" and error_kind("λx.x", (0, 0)) == "exact"
