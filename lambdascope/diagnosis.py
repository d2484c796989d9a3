"""Why a prediction is wrong: its error kind, from the term's structure alone.

``error_kind(term, pred)`` gives each predicted span exactly one kind of
``lambdascope.vocabulary.ERROR_KINDS``, the first that applies:

1. ``exact``: the predicted span is the gold span (normal form included);
2. ``false_nf``: the prediction is normal form ``(0, 0)``, but the term has a redex;
3. ``missed_nf``: the term is in normal form, but the model pointed at a span;
4. ``inner_redex``: the span is a redex inside the normal-order redex (applicative order's step);
5. ``right_redex``: the span is a redex to the right of the normal-order redex;
6. ``not_redex``: the span is a subterm's own span (``terms.subterms``) that is not a redex;
7. ``not_subterm``: anything else.

Every redex other than the normal-order one lies inside it or wholly to its right (the
normal-order redex is the first in pre-order), so 4 and 5 cover every valid but wrong step.
See docs/DESIGN.md, "Error kinds".
"""

from __future__ import annotations

from .spans import NORMAL_FORM
from .terms import Term, is_redex, parse, subterms

Span = tuple[int, int]


class TermShape:
    """The spans of one term's subterms, computed once for any number of predictions."""

    __slots__ = ("gold", "nodes")

    def __init__(self, term: Term | str):
        t = parse(term) if isinstance(term, str) else term
        self.nodes: dict[Span, bool] = {}  # span -> is a redex
        gold = NORMAL_FORM
        for span, _, node in subterms(t):
            redex = is_redex(node)
            if redex and gold == NORMAL_FORM:
                gold = span  # the first redex in pre-order: the normal-order one
            self.nodes[span] = self.nodes.get(span, False) or redex
        self.gold = gold

    def kind(self, pred: Span) -> str:
        return _kind(pred, self.gold, lambda: self)

    def subterm_kind(self, pred: Span) -> str:
        """The kind of a wrong span on a term with a redex: the cases the spans alone cannot tell."""
        gold = self.gold
        redex = self.nodes.get(pred)
        if redex is None:
            return "not_subterm"
        if not redex:
            return "not_redex"
        return "inner_redex" if gold[0] <= pred[0] and pred[1] <= gold[1] else "right_redex"


def _kind(pred: Span, gold: Span, shape) -> str:
    """The kinds in order; ``shape()`` (the term's TermShape) is asked for only when the spans
    alone cannot tell."""
    pred, gold = (int(pred[0]), int(pred[1])), (int(gold[0]), int(gold[1]))
    if pred == gold:
        return "exact"
    if pred == NORMAL_FORM:
        return "false_nf"
    if gold == NORMAL_FORM:
        return "missed_nf"
    return shape().subterm_kind(pred)


def error_kind(term: Term | str, pred: Span) -> str:
    """The error kind of predicting ``pred`` on ``term`` (a term or its canonical text)."""
    return TermShape(term).kind(pred)


_SHAPES: dict[str, TermShape] = {}
_SHAPES_MAX = 20_000  # terms kept: those of wrong predictions only (see ``judge``)


def shape_of(text: str) -> TermShape:
    """``TermShape(text)``, kept: a store's evaluation set is judged at every checkpoint."""
    shape = _SHAPES.get(text)
    if shape is None:
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        shape = _SHAPES[text] = TermShape(text)
    return shape


def judge(text: str, gold: Span, pred: Span) -> str:
    """``error_kind(text, pred)`` where the gold span is known (a validated trace's, as the store
    keeps it): the term is parsed only for a wrong span on a term with a redex, so judging a
    good model's evaluation costs next to nothing."""
    return _kind(pred, gold, lambda: shape_of(text))


def rollout_outcome(path: list, *, success: bool, gold_steps: int, gold_normal_form: str | None) -> str:
    """How a rollout ended (``lambdascope.vocabulary.ROLLOUT_OUTCOMES``), from what the store
    keeps of it: its path ``[[term, [start, end]], …]`` (each term the model saw and the span it
    chose), whether it succeeded, the gold number of steps and the gold normal form's text."""
    from .terms import alpha_equivalent, contract_span

    if success:
        return "success"
    if not path:
        return "not_redex"
    text, span = path[-1][0], (int(path[-1][1][0]), int(path[-1][1][1]))
    t = parse(text)
    if span == NORMAL_FORM:
        if shape_of(text).gold != NORMAL_FORM:
            return "false_nf"
        same = gold_normal_form is not None and alpha_equivalent(t, parse(gold_normal_form))
        return "other_path" if same else "other_nf"
    if contract_span(t, span) is None:
        return "not_redex"
    # the span contracted, and the rollout stopped after it: past the step cap or too long
    return "step_cap" if len(path) > 2 * gold_steps else "too_long"
