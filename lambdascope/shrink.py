"""Minimal failing terms: shrink a term on which a model errs to a smaller one on which it still
errs the same way (docs/DESIGN.md, "Shrinking").

``shrink(predictor, term)`` asks the model for its span on the term (one model call); the
prediction must be wrong (``diagnosis.error_kind`` is not ``exact``, else ``NothingToShrink``).
Then, greedily: every one-step structural move of the current term (``candidates``) is tried,
smallest first, and the first candidate on which the model still errs with the same kind (with
``any_error``: any wrong span) becomes the current term. It stops at a term none of whose
candidates errs (a local minimum), when ``budget`` model calls are used, or when
``should_stop()`` says so (a deadline). The gold span of every candidate is the core's
(``terms.print_with_span``), never the model's; its kind is ``diagnosis.TermShape.kind``.

The moves, each applied at every node of the term:

- replace the subterm by a variable: a free variable of the term, a fresh one (the first letter
  ``a``–``z`` the term does not use) or a variable bound in scope there;
- replace it by one of its children (an abstraction by its body, an application by its
  argument or by its function: for an application ``f a`` the last is "drop the argument");
- merge binders: ``λx.λy.b`` becomes ``λx.b[y:=x]`` (capture-avoiding substitution).

Candidates are deduplicated by their text, kept only when strictly shorter than the current
term, and ordered by printed length (code points), then by the text in code-point order, so the
search is deterministic: the same predictor and term give the same chain. Each distinct term is
predicted once (``predict_many``, in batches of 8, 16, 32, then 64 within a round) and counts as
one call against the budget; a candidate on which the target kind is impossible by the term's
structure alone (``inner_redex`` on a term with a single redex, ``missed_nf`` on a term with a
redex, ...) is skipped without a call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from .diagnosis import TermShape
from .spans import NORMAL_FORM
from .terms import App, Lam, Term, Var, free_vars, parse, print_term, print_with_span, substitute, subterms
from .vocabulary import WRONG_KINDS

Span = tuple[int, int]
DEFAULT_BUDGET = 300  # model calls
FIRST_BATCH, MAX_BATCH = 8, 64  # candidates predicted at once: doubling within a round
STOPS = ("minimal", "budget", "deadline")  # why the search ended
ANY = "any"  # the target of a search that keeps any error


class NothingToShrink(ValueError):
    """The model's prediction on the original term is right (or not of the kind asked for):
    there is no error to keep. ``step`` is the original with the model's prediction."""

    def __init__(self, message: str, step: "ShrinkStep"):
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class ShrinkStep:
    """One term of the chain: its canonical text, the gold span, the model's span, its error
    kind, and the move that made it from the previous term ("original" for the first)."""

    term: str
    gold: Span
    pred: Span
    kind: str
    move: str
    move_kind: str  # original, variable, child, drop, merge

    @property
    def length(self) -> int:
        return len(self.term)

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "length": self.length, "gold": list(self.gold), "pred": list(self.pred),
                "kind": self.kind, "move": self.move, "move_kind": self.move_kind}


@dataclass
class ShrinkResult:
    chain: list[ShrinkStep]  # from the original to the smallest term found
    target: str  # the error kind every term of the chain has, or "any"
    calls: int  # model calls used (distinct terms predicted)
    budget: int
    stopped: str  # one of STOPS
    rounds: int = 0  # candidate lists tried (one per step of the chain, plus the last)
    candidates: int = 0  # candidates considered over all rounds

    @property
    def original(self) -> ShrinkStep:
        return self.chain[0]

    @property
    def minimal(self) -> ShrinkStep:
        return self.chain[-1]

    @property
    def budget_exhausted(self) -> bool:
        return self.stopped == "budget"

    def to_dict(self) -> dict[str, Any]:
        return {"original": self.original.term, "target": self.target,
                "chain": [s.to_dict() for s in self.chain], "minimal": self.minimal.to_dict(),
                "calls": self.calls, "budget": self.budget, "stopped": self.stopped,
                "budget_exhausted": self.budget_exhausted}


@dataclass(frozen=True)
class Candidate:
    term: Term
    text: str
    move: str
    move_kind: str


# ---------------------------------------------------------------------------------------------
# The moves


def _replace(t: Term, path: tuple[int, ...], new: Term) -> Term:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(t, Lam):
        return Lam(t.var, _replace(t.body, rest, new))
    if isinstance(t, App):
        return App(_replace(t.fn, rest, new), t.arg) if head == 0 else App(t.fn, _replace(t.arg, rest, new))
    raise ValueError("path leads into a variable")


def _scopes(t: Term) -> list[frozenset[str]]:
    """The names bound around each node, in the pre-order of ``terms.subterms``."""
    out: list[frozenset[str]] = []
    stack: list[tuple[Term, frozenset[str]]] = [(t, frozenset())]
    while stack:  # pre-order: a node, then its function or body, then its argument
        node, scope = stack.pop()
        out.append(scope)
        if isinstance(node, Lam):
            stack.append((node.body, scope | {node.var}))
        elif isinstance(node, App):
            stack.append((node.arg, scope))
            stack.append((node.fn, scope))
    return out


def _names(t: Term) -> set[str]:
    if isinstance(t, Var):
        return {t.name}
    if isinstance(t, Lam):
        return {t.var} | _names(t.body)
    return _names(t.fn) | _names(t.arg)


def fresh_free_name(t: Term) -> str:
    """The first letter ``a``–``z`` that ``t`` uses nowhere (else ``v1``, ``v2``, ...)."""
    used = _names(t)
    for c in "abcdefghijklmnopqrstuvwxyz":
        if c not in used:
            return c
    k = 1
    while f"v{k}" in used:
        k += 1
    return f"v{k}"


def _moves(t: Term) -> Iterator[tuple[Term, str, str]]:
    """Every one-step move of ``t``: (the new term, the move in words, its kind)."""
    free = free_vars(t)
    fresh = fresh_free_name(t)
    for ((s, e), path, node), scope in zip(subterms(t), _scopes(t)):
        where = f"[{s}, {e})"
        if isinstance(node, Lam):
            yield _replace(t, path, node.body), f"replace {where} by its body", "child"
            if isinstance(node.body, Lam):
                x, y = node.var, node.body.var
                merged = Lam(x, substitute(node.body.body, y, Var(x)))
                yield _replace(t, path, merged), f"merge the binders λ{x}.λ{y} at {where} into λ{x}", "merge"
        elif isinstance(node, App):
            yield _replace(t, path, node.arg), f"replace {where} by its argument", "child"
            yield _replace(t, path, node.fn), f"drop the argument of {where}", "drop"
        for name in sorted(free | {fresh} | scope):
            if isinstance(node, Var) and node.name == name:
                continue
            what = "bound" if name in scope else "free"
            yield _replace(t, path, Var(name)), f"replace {where} by the {what} variable {name}", "variable"


def candidates(t: Term | str) -> list[Candidate]:
    """The one-step moves of ``t`` that are strictly shorter than it, one per distinct text,
    ordered by length, then text (the first move that made a text names it)."""
    t = parse(t) if isinstance(t, str) else t
    n = len(print_term(t))
    seen: dict[str, Candidate] = {}
    for new, move, kind in _moves(t):
        text = print_term(new)
        if len(text) < n and text not in seen:
            seen[text] = Candidate(new, text, move, kind)
    return sorted(seen.values(), key=lambda c: (len(c.text), c.text))


def kind_possible(kind: str, shape: TermShape) -> bool:
    """Whether some predicted span could have error kind ``kind`` on the term of ``shape``."""
    gold = shape.gold
    if kind == "missed_nf":
        return gold == NORMAL_FORM
    if gold == NORMAL_FORM:
        return kind not in ("false_nf", "inner_redex", "right_redex", "not_redex", "not_subterm")
    if kind == "inner_redex":
        return any(r and sp != gold and gold[0] <= sp[0] and sp[1] <= gold[1] for sp, r in shape.nodes.items())
    if kind == "right_redex":
        return any(r and sp[0] >= gold[1] for sp, r in shape.nodes.items())
    return True  # false_nf, not_redex (a variable), not_subterm (a span across two atoms), exact


# ---------------------------------------------------------------------------------------------
# The search


def _words(span: Span) -> str:
    return "normal form" if span == NORMAL_FORM else f"[{span[0]}, {span[1]})"


def shrink(predictor, term: Term | str, *, target_kind: str | None = None, any_error: bool = False,
           budget: int = DEFAULT_BUDGET, should_stop: Callable[[], bool] | None = None,
           progress: Callable[[int, int], None] | None = None) -> ShrinkResult:
    """The chain from ``term`` to the smallest term found on which ``predictor`` (a
    ``lambdascope.predictor.SpanPredictor``) errs with ``target_kind`` (default: the kind of
    its error on ``term``) or, with ``any_error``, errs at all. At most ``budget`` model calls;
    ``should_stop()`` is asked before each batch; ``progress(calls, length)`` after each."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget: a positive number of model calls, got {budget!r}")
    if target_kind is not None and target_kind not in WRONG_KINDS:
        raise ValueError(f"target_kind: one of {', '.join(WRONG_KINDS)}, got {target_kind!r}")
    t = parse(term) if isinstance(term, str) else term
    cache: dict[str, Span] = {}
    calls = 0

    def predict(texts: Sequence[str]) -> None:
        nonlocal calls
        if not texts:
            return
        out = predictor.predict_many(list(texts))
        if len(out) != len(texts):
            raise ValueError(f"the predictor answered {len(out)} spans for {len(texts)} terms")
        for text, p in zip(texts, out):
            cache[text] = (int(p[0]), int(p[1]))
        calls += len(texts)

    text, gold = print_with_span(t)
    predict([text])
    shape = TermShape(t)
    first = ShrinkStep(text, gold, cache[text], shape.kind(cache[text]), "original", "original")
    if first.kind == "exact":
        raise NothingToShrink(f"the model is right on {text}: it predicts {_words(first.pred)}, the gold "
                              "span; there is no error to shrink", first)
    if any_error:
        target = ANY
    elif target_kind is not None and target_kind != first.kind:
        raise NothingToShrink(f"the model's error on {text} is {first.kind} (it predicts "
                              f"{_words(first.pred)}), not {target_kind}", first)
    else:
        target = first.kind

    def errs(kind: str) -> bool:
        return kind != "exact" if target == ANY else kind == target

    chain = [first]
    result = ShrinkResult(chain, target, calls, budget, "minimal")
    if progress is not None:
        progress(calls, len(text))
    current = t
    stopped = None
    while stopped is None:
        result.rounds += 1
        cands = []
        for c in candidates(current):
            shape = TermShape(c.term)
            if target == ANY or kind_possible(target, shape):
                cands.append((c, shape))
        result.candidates += len(cands)
        found = None
        pos, batch = 0, FIRST_BATCH
        while pos < len(cands) and found is None:
            if should_stop is not None and should_stop():
                stopped = "deadline"
                break
            room = min(batch, budget - calls)
            end, need = pos, []
            while end < len(cands):  # the next candidates, up to ``room`` not predicted before
                if cands[end][0].text not in cache:
                    if len(need) >= room:
                        break
                    need.append(cands[end][0].text)
                end += 1
            if end == pos:  # the next candidate needs a call and none is left
                stopped = "budget"
                break
            predict(need)
            if progress is not None and need:
                progress(calls, len(chain[-1].term))
            for c, shape in cands[pos:end]:
                pred = cache[c.text]
                kind = shape.kind(pred)
                if errs(kind):
                    found = ShrinkStep(c.text, shape.gold, pred, kind, c.move, c.move_kind)
                    current = c.term
                    break
            pos, batch = end, min(2 * batch, MAX_BATCH)
        if found is None:
            stopped = stopped or "minimal"
        else:
            chain.append(found)
    result.calls, result.stopped = calls, stopped
    return result
