"""The playground: a person types a term; the core reduces it, and a checkpoint's model, if one
can be loaded, points at redexes and drives its own reduction beside the true one.

The model comes through ``lambdascope.predictor``: the ``ModelLoader`` that ``create_app`` was
given (the command line gives the trainer's) turns a checkpoint path into a ``SpanPredictor``.
Without a loader, or when the checkpoint file cannot be loaded, the page shows the true
reduction and says why the model is unavailable.

The page's part (``playground_data``: parsing, the true reduction, the checkpoint's row) runs in
a page thread; the model's (``model_part``: its own reduction) runs in the model pool
(``app.models``) within the request's budget: past it the rollout stops and says so.
"""

from __future__ import annotations

from typing import Any

from lambdascope.predictor import ModelLoader, ModelUnavailable
from lambdascope.spans import is_normal_form
from lambdascope.terms import ParseError, alpha_equivalent, contract_span, parse, print_term, \
    print_with_span, step

from .errors import BadRequest
from .models import BUDGET_STOPPED, Budget, ModelPool, model_ref
from .queries import get_checkpoint

MAX_INPUT = 2000  # characters a person may type
MAX_STEPS = 64  # reduction steps shown
MAX_TERM = 4000  # a reduct longer than this stops the reduction


def true_reduction(term) -> tuple[list[dict[str, Any]], str]:
    """The normal-order reduction: [{k, term, span}], and how it ended."""
    steps = []
    t = term
    for k in range(MAX_STEPS + 1):
        text, span = print_with_span(t)
        steps.append({"k": k, "term": text, "span": list(span)})
        if is_normal_form(span):
            return steps, "normal form"
        if k == MAX_STEPS:
            break
        t = step(t)
        if len(print_term(t)) > MAX_TERM:
            return steps, f"stopped: the next term is longer than {MAX_TERM} characters"
    return steps, f"stopped after {MAX_STEPS} steps"


def model_rollout(predictor, term, gold: list[dict[str, Any]],
                  budget: Budget | None = None) -> tuple[list[dict[str, Any]], str, int | None]:
    """The model's own reduction: at each step it points at a span and that redex is
    contracted. Returns the steps, how it ended and the first step whose span differs from
    the true redex of the same term (the first divergence). Past the ``budget`` it stops
    before the next step."""
    steps = []
    first_divergent = None
    t = term
    for k in range(MAX_STEPS + 1):
        if budget is not None and budget.out():
            return steps, budget.stopped(f"{k} step{'' if k == 1 else 's'} done"), first_divergent
        text, true_span = print_with_span(t)
        s, e, sc, ec = predictor.predict(text)
        span = [int(s), int(e)]
        agrees = tuple(span) == tuple(true_span)
        if first_divergent is None and not agrees:
            first_divergent = k
        steps.append({"k": k, "term": text, "span": span, "true_span": list(true_span),
                      "start_conf": float(sc), "end_conf": float(ec), "agrees": agrees})
        if is_normal_form(span):
            if is_normal_form(true_span):
                same = k == len(gold) - 1 and alpha_equivalent(t, parse(gold[-1]["term"]))
                return steps, "normal form" + (" (the true one)" if same else ""), first_divergent
            return steps, "claimed normal form too early", first_divergent
        if k == MAX_STEPS:
            break
        nxt = contract_span(t, tuple(span))
        if nxt is None:
            return steps, "pointed at a span that is not a redex", first_divergent
        t = nxt
        if len(print_term(t)) > MAX_TERM:
            return steps, f"stopped: the next term is longer than {MAX_TERM} characters", first_divergent
    return steps, f"stopped after {MAX_STEPS} steps", first_divergent


def playground_data(term_text: str, ck_id: int | None, *, session) -> tuple[dict[str, Any], str | None]:
    """The page's part: the typed term, parsed and reduced, and the checkpoint's row. Returns
    the page's data and the checkpoint file whose model should reduce it too (None: no model
    part, nothing to reduce or no checkpoint chosen)."""
    out: dict[str, Any] = {"input": term_text, "ck": ck_id, "error": None, "canonical": None,
                           "reduction": [], "reduction_end": None, "model": None,
                           "model_error": None}
    if len(term_text) > MAX_INPUT:
        raise BadRequest(f"term: at most {MAX_INPUT} characters, got {len(term_text)}")
    ck = get_checkpoint(ck_id, session=session) if ck_id is not None else None
    if ck is not None:
        out["checkpoint"] = {"id": ck["id"], "label": ck["label"]}
    if not term_text.strip():
        return out, None
    try:
        t = parse(term_text)
        out["canonical"] = print_term(t)
        out["reduction"], out["reduction_end"] = true_reduction(t)
    except ParseError as e:
        out["error"] = {"message": str(e), "position": e.position, "expected": e.expected}
        return out, None
    except RecursionError:
        out["error"] = {"message": "the term is nested too deeply", "position": None,
                        "expected": None}
        return out, None
    return out, (model_ref(ck) if ck is not None else None)


def unavailable(e: ModelUnavailable) -> str:
    return f"The model is unavailable: {e}. The true reduction is shown alone."


def model_part(out: dict[str, Any], *, loader: ModelLoader | None, path: str, pool: ModelPool,
               budget: Budget) -> dict[str, Any]:
    """The model's part, in a model worker: its own reduction of the term, within ``budget``
    (``model.budget_stopped`` says whether it ran out)."""
    try:
        predictor = pool.predictor(loader, path, budget)
        steps, end, first = model_rollout(predictor, parse(out["canonical"]), out["reduction"], budget)
        out["model"] = {"steps": steps, "end": end, "first_divergent_step": first,
                        "budget_stopped": end.startswith(BUDGET_STOPPED)}
    except ModelUnavailable as e:
        out["model_error"] = unavailable(e)
    except RecursionError:
        out["model_error"] = "The model's reduction nested too deeply."
    except Exception as e:  # a broken predictor must not break the page
        out["model_error"] = f"The model failed: {type(e).__name__}: {e}"
    return out
