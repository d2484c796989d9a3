"""The structural pairs of a term's text that an attention head may track
(``lambdascope.vocabulary.STRUCTURAL_SCORES``): each variable occurrence and the λ that binds
it, each parenthesis and its match. Positions are character offsets into the canonical text
(docs/DESIGN.md, "Spans and offsets"); the trainer turns them into token positions with
``lambdascope.spans.char_to_token_span`` and scores its heads on them
(``trainer.predict.Predictor.head_scores``).
"""

from __future__ import annotations

from .terms import Lam, Term, Var, parse, subterms


def binder_pairs(term: Term | str) -> list[tuple[int, int]]:
    """(the first character of a bound variable occurrence, the λ that binds it), for every
    bound occurrence in text order; free variables have no pair. The binder is the nearest
    enclosing abstraction of the same name (``subterms``' paths say which nodes enclose)."""
    t = parse(term) if isinstance(term, str) else term
    nodes = subterms(t)
    lams = {path: span[0] for span, path, node in nodes if isinstance(node, Lam)}
    var_of = {path: node.var for _, path, node in nodes if isinstance(node, Lam)}
    out = []
    for span, path, node in nodes:
        if not isinstance(node, Var):
            continue
        for depth in range(len(path) - 1, -1, -1):  # the ancestors, innermost first
            up = path[:depth]
            if up in lams and var_of[up] == node.name:
                out.append((span[0], lams[up]))
                break
    return out


def paren_pairs(text: str) -> list[tuple[int, int]]:
    """(an opening parenthesis, its closing one) for every pair in ``text``, by the position of
    the opening one; unmatched ones (not in canonical text) have no pair."""
    stack: list[int] = []
    out = []
    for i, c in enumerate(text):
        if c == "(":
            stack.append(i)
        elif c == ")" and stack:
            out.append((stack.pop(), i))
    return sorted(out)
