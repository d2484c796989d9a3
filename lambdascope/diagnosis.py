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
        pred = (int(pred[0]), int(pred[1]))
        gold = self.gold
        if pred == gold:
            return "exact"
        if pred == NORMAL_FORM:
            return "false_nf"
        if gold == NORMAL_FORM:
            return "missed_nf"
        redex = self.nodes.get(pred)
        if redex is None:
            return "not_subterm"
        if not redex:
            return "not_redex"
        return "inner_redex" if gold[0] <= pred[0] and pred[1] <= gold[1] else "right_redex"


def error_kind(term: Term | str, pred: Span) -> str:
    """The error kind of predicting ``pred`` on ``term`` (a term or its canonical text)."""
    return TermShape(term).kind(pred)
