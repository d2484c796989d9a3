"""Shrinking a wrong step: the smallest term found on which a checkpoint's model still errs as it
does on the step's term (``lambdascope.shrink``; docs/DESIGN.md, "Shrinking").

- ``/shrink?ck=&term=&any=``: an HTML fragment for htmx (the "shrink" button of every wrong step
  of the trace page swaps it in below the step): the chain from the term to the smallest one
  found, each with its gold and predicted spans and error kind.
- ``/shrink.json``: the same data.

The search runs in the model pool (``app.models``), within the request's time budget and at most
``CALLS`` model calls; the fragment says which of the two stopped it. A result found in full is
kept (``ModelPool.results``). Without a model loader, or when the checkpoint cannot be loaded,
the fragment says so, as the playground does; a full pool is a 429 with Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from lambdascope.predictor import ModelLoader, ModelUnavailable
from lambdascope.shrink import DEFAULT_BUDGET, NothingToShrink, shrink
from lambdascope.terms import ParseError, parse, print_term

from . import queries as Q
from .beliefs import Answer, as_json, fragment
from .deps import Models, ReadDB, Templates, query
from .errors import BadRequest
from .models import Budget, ModelPool, Pool, in_page_thread, model_ref
from .params import opt_id, unset
from .playground import MAX_INPUT

router = APIRouter()

CALLS = DEFAULT_BUDGET  # model calls one request may use
NO_LOADER = ("this dashboard was started without a model loader (the trainer or torch is not "
             "installed here)")


@dataclass(frozen=True)
class ShrinkArgs:
    ck: str | None = None  # the checkpoint whose model
    term: str | None = None  # the term it gets wrong (as typed; the trace page sends the step's)
    any: str | None = None  # 1: keep any wrong span, not only the term's error kind


def _flag(value: str | None, name: str) -> bool:
    if unset(value) or value in ("0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise BadRequest(f"{name}: 0 or 1, got {value[:40]!r}")


def read_args(args: ShrinkArgs, *, session) -> tuple[dict[str, Any], str, bool]:
    """The checkpoint's row, the term's canonical text and the ``any`` flag (a page thread)."""
    ck_id = opt_id(args.ck, "ck")
    if ck_id is None:
        raise BadRequest("ck: the checkpoint whose model to shrink the term against")
    if unset(args.term):
        raise BadRequest("term: the term to shrink")
    if len(args.term) > MAX_INPUT:
        raise BadRequest(f"term: at most {MAX_INPUT} characters, got {len(args.term)}")
    try:
        text = print_term(parse(args.term))
    except ParseError as e:
        raise BadRequest(f"term: {e}") from None
    except RecursionError:
        raise BadRequest("term: nested too deeply") from None
    any_error = _flag(args.any, "any")
    return Q.get_checkpoint(ck_id, session=session), text, any_error


def shrink_job(pool: ModelPool, loader: ModelLoader | None, path: str, text: str, any_error: bool,
               budget: Budget) -> Answer:
    """The search, in a model worker: ``value`` is ``ShrinkResult.to_dict()``, or None with
    ``error`` saying why (``value`` has ``nothing`` when the model is right on the term)."""
    key = ("shrink", loader, path, text, any_error)
    try:
        predictor = pool.predictor(loader, path, budget)
        result = shrink(predictor, text, any_error=any_error, budget=CALLS, should_stop=budget.out)
    except ModelUnavailable as e:
        return Answer(error=f"shrinking unavailable: {e}")
    except NothingToShrink as e:
        answer = Answer({"nothing": str(e), "original": e.step.to_dict()}, None, budget.spent())
        pool.results.put(key, answer)
        return answer
    except RecursionError:
        return Answer(error="shrinking unavailable: the term is nested too deeply")
    except Exception as e:  # a broken predictor must not break the page
        return Answer(error=f"shrinking unavailable: the model failed: {type(e).__name__}: {e}")
    answer = Answer(result.to_dict(), None, budget.spent())
    if result.stopped == "deadline":
        answer.error = budget.stopped(f"{len(result.chain) - 1} moves found in {result.calls} model calls")
    else:
        pool.results.put(key, answer)
    return answer


async def shrink_data(args: ShrinkArgs, db, loader: ModelLoader | None, pool: ModelPool) -> dict[str, Any]:
    ck, text, any_error = await in_page_thread(lambda: read_args(args, session=db))
    out: dict[str, Any] = {"checkpoint": {"id": ck["id"], "label": ck["label"]}, "term": text,
                           "any": any_error, "calls_budget": CALLS}
    path = model_ref(ck)
    key = ("shrink", loader, path, text, any_error)
    if loader is None:
        answer = Answer(error=f"shrinking unavailable: {NO_LOADER}")
    elif not path:
        answer = Answer(error="shrinking unavailable: this checkpoint has no model file (its predictions "
                              "were imported)")
    elif (kept := pool.results.get(key)) is not None:
        answer = Answer(kept.value, kept.error, kept.seconds, cached=True)
    else:
        answer = await pool.run(lambda budget: shrink_job(pool, loader, path, text, any_error, budget))
    value = answer.value or {}
    return out | {"shrink": None if "nothing" in value or not value else value,
                  "nothing": value.get("nothing"), "original": value.get("original"),
                  "shrink_error": answer.error, "model_seconds": answer.seconds, "cached": answer.cached}


@router.get("/shrink.json")
async def shrink_json(args: query(ShrinkArgs), db: ReadDB, models: Models, pool: Pool):
    return as_json(await shrink_data(args, db, models, pool))


@router.get("/shrink", response_class=HTMLResponse, include_in_schema=False)
async def shrink_fragment(request: Request, args: query(ShrinkArgs), db: ReadDB, models: Models,
                          pool: Pool, tpl: Templates):
    async def make():
        return await shrink_data(args, db, models, pool)
    return await fragment(request, tpl, "_shrink.html", make)
