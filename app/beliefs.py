"""What the model thought: beliefs (``lambdascope.predictor.Beliefs``) for the steps of a trace or
of the playground's reduction, the attention of one character, and a checkpoint's heads scored on
structure. Computed on demand in the model pool (``app.models``) from the checkpoint's file,
kept once computed in full; the pages load them by htmx fragments, so a trace page stays as fast
as it was.

Endpoints (each fragment is HTML for htmx; ``.json`` where the data is not in a page's twin):

- ``/traces/{identity}/beliefs?ck=&step=``: the beliefs panel of one step (the trace's steps
  are computed together, once); the trace's JSON twin carries every step's ``beliefs``
  (``add_trace_beliefs``).
- ``/traces/{identity}/attention[.json]?ck=&step=&char=``: per layer and head, the attention
  of character ``char`` of that step's term over the term.
- ``/playground/beliefs?term=&ck=&step=`` and ``/playground/attention[.json]?…&char=``: the same
  for a step of the typed term's normal-order reduction.
- ``/checkpoints/{ck}/heads[.json]?sort=``: every head's structural scores over (a sample of)
  the checkpoint's evaluation set, sorted by one of them.

A predictor that cannot say what it thought (no ``BeliefPredictor`` methods), a checkpoint that
cannot be loaded, or a dashboard without a model loader: the panel (and the JSON's
``beliefs_error``) says why. A full model pool: 429 with Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text

from lambdascope.predictor import ModelLoader, ModelUnavailable, has_beliefs
from lambdascope.spans import is_normal_form
from lambdascope.vocabulary import ERROR_KIND_TITLES, ERROR_KINDS, STRUCTURAL_SCORE_TITLES, STRUCTURAL_SCORES

from . import queries as Q
from .deps import Models, ReadDB, Templates, query
from .errors import BadRequest, HTTPError, NotFound, TooManyRequests
from .models import Budget, ModelPool, Pool, in_page_thread, model_ref
from .params import check_identity, number, opt_id, opt_step, unset
from .playground import playground_data
from .rendering import url

router = APIRouter()

HEAD_TERMS = 200  # evaluation-set terms the head scores are computed over (a spread sample)
NO_BELIEFS = ("this checkpoint's predictor cannot say what it thought (it is a plain span "
              "predictor, without beliefs)")

# the heatmaps' geometry (SVG; the pages' CSP allows no inline styles)
CELL_W, CELL_H, PER_LINE, LEAD_W = 11, 22, 80, 30
DARK = 0.55  # past this opacity a cell's character is drawn light


# ---------------------------------------------------------------------------------------------
# model work (each ``*_job`` runs in a model worker, within its budget)


@dataclass
class Answer:
    """A model job's result: ``value`` (None when there is none), the reason there is none or
    that it is partial (``error``), and the model time it took."""

    value: Any = None
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False


def _believer(pool: ModelPool, loader: ModelLoader | None, path: str, budget: Budget):
    predictor = pool.predictor(loader, path, budget)
    if not has_beliefs(predictor):
        raise ModelUnavailable(NO_BELIEFS)
    return predictor


def beliefs_job(pool: ModelPool, loader, path: str, terms: tuple[str, ...],
                golds: tuple[tuple[int, int] | None, ...], budget: Budget) -> Answer:
    key = ("beliefs", loader, path, terms, golds)
    try:
        predictor = _believer(pool, loader, path, budget)
        out = predictor.beliefs_many(list(terms), list(golds), deadline=budget.deadline)
    except ModelUnavailable as e:
        return Answer(error=f"beliefs unavailable: {e}")
    except Exception as e:  # a broken predictor must not break the page
        return Answer(error=f"beliefs unavailable: the model failed: {type(e).__name__}: {e}")
    done = sum(b is not None for b in out)
    answer = Answer(out, None, budget.spent())
    if done < len(out):
        answer.error = budget.stopped(f"beliefs of {done} of {len(out)} steps computed")
    else:
        pool.results.put(key, answer)
    return answer


def attention_job(pool: ModelPool, loader, path: str, term: str, char: int, budget: Budget) -> Answer:
    key = ("attention", loader, path, term, char)
    try:
        predictor = _believer(pool, loader, path, budget)
        answer = Answer(predictor.attention(term, char), None, budget.spent())
    except ModelUnavailable as e:
        return Answer(error=f"attention unavailable: {e}")
    except Exception as e:
        return Answer(error=f"attention unavailable: the model failed: {type(e).__name__}: {e}")
    pool.results.put(key, answer)
    return answer


HEAD_CHUNK = 32  # terms scored at a time: what a request cut short keeps for the next one


def merge_head_scores(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """The scores over the terms of ``a`` and of ``b`` together (each a mean over its pairs)."""
    if a is None:
        return b

    def mean(x, nx, y, ny):
        if not nx + ny:
            return None
        return ((x or 0.0) * nx + (y or 0.0) * ny) / (nx + ny)

    pa, pb = a["pairs"], b["pairs"]
    heads = [{**ha, **{k: mean(ha[k], pa[k], hb[k], pb[k]) for k in STRUCTURAL_SCORES}}
             for ha, hb in zip(a["heads"], b["heads"])]
    return {"terms": a["terms"] + b["terms"], "complete": b["complete"],
            "pairs": {k: pa[k] + pb[k] for k in STRUCTURAL_SCORES},
            "uniform": {k: mean(a["uniform"][k], pa[k], b["uniform"][k], pb[k]) for k in STRUCTURAL_SCORES},
            "heads": heads}


def heads_job(pool: ModelPool, loader, path: str, terms: tuple[str, ...], budget: Budget) -> Answer:
    """The head scores over ``terms``, ``HEAD_CHUNK`` at a time within the budget (one chunk at
    least); what a request cut short has scored is kept, and the next request goes on from
    there."""
    key, partial_key = ("heads", loader, path), ("heads-partial", loader, path, terms)
    try:
        predictor = _believer(pool, loader, path, budget)
        kept = pool.results.get(partial_key)
        scores, seconds = (kept.value, kept.seconds) if kept is not None else (None, 0.0)
        done = scores["terms"] if scores is not None else 0
        first = True  # one chunk a request at least, whatever the budget: every visit goes on
        while done < len(terms) and (first or not budget.out()):
            part = predictor.head_scores(list(terms[done:done + HEAD_CHUNK]),
                                         deadline=None if first else budget.deadline)
            first = False
            if not part["complete"]:
                break
            scores = merge_head_scores(scores, part)
            done = scores["terms"]
    except ModelUnavailable as e:
        return Answer(error=f"head scores unavailable: {e}")
    except Exception as e:
        return Answer(error=f"head scores unavailable: the model failed: {type(e).__name__}: {e}")
    seconds += budget.spent()
    if scores is not None:
        scores["complete"] = done == len(terms)
    answer = Answer(scores, None, seconds)
    if done == len(terms):
        pool.results.put(key, answer)
    else:
        answer.error = budget.stopped(f"{done} of {len(terms)} terms scored so far; the next visit "
                                      "goes on from there")
        pool.results.put(partial_key, Answer(scores, None, seconds))
    return answer


async def ask(pool: ModelPool, loader: ModelLoader | None, key: tuple, job, what: str = "beliefs") -> Answer:
    """A kept answer at once, or ``job(budget)`` in the pool (TooManyRequests when it is
    full). Without a loader nothing needs a worker: the answer says why at once."""
    if loader is None:
        return Answer(error=f"{what} unavailable: this dashboard was started without a model "
                            "loader (the trainer or torch is not installed here)")
    kept = pool.results.get(key)
    if kept is not None:
        return Answer(kept.value, kept.error, kept.seconds, cached=True)
    return await pool.run(job)


async def beliefs_of(pool: ModelPool, loader, path: str, terms: list[str],
                     golds: list[tuple[int, int] | None]) -> Answer:
    terms_t, golds_t = tuple(terms), tuple(None if g is None else (int(g[0]), int(g[1])) for g in golds)
    return await ask(pool, loader, ("beliefs", loader, path, terms_t, golds_t),
                     lambda budget: beliefs_job(pool, loader, path, terms_t, golds_t, budget))


async def attention_of(pool: ModelPool, loader, path: str, term: str, char: int) -> Answer:
    return await ask(pool, loader, ("attention", loader, path, term, char),
                     lambda budget: attention_job(pool, loader, path, term, char, budget), "attention")


# ---------------------------------------------------------------------------------------------
# the store: a trace's steps, an evaluation set's sample


def trace_steps(identity: str, ck_id: int | None, *, session) -> dict[str, Any]:
    """The checkpoint's row and the trace's steps in its evaluation set: [{step_k, term, gold,
    pred}] (pred: the stored prediction, None where there is none)."""
    check_identity(identity)
    if ck_id is None:
        raise BadRequest("ck: the checkpoint whose model's beliefs to show")
    ck = Q.get_checkpoint(ck_id, session=session)
    rows = session.execute(text(
        "SELECT e.step_k, e.term, e.gold_start, e.gold_end, p.pred_start, p.pred_end "
        "FROM examples e LEFT JOIN predictions p ON p.checkpoint_id = :ck AND p.example_id = e.id "
        "WHERE e.trace_identity = :t AND e.eval_set_id = :es ORDER BY e.step_k"),
        {"ck": ck["id"], "t": identity, "es": ck["eval_set_id"]}).all()
    if not rows:
        raise NotFound(f"no trace {identity} in the evaluation set of checkpoint {ck['id']}")
    steps = [{"step_k": r.step_k, "term": r.term, "gold": [r.gold_start, r.gold_end],
              "pred": None if r.pred_start is None else [r.pred_start, r.pred_end]} for r in rows]
    return {"checkpoint": ck, "identity": identity, "steps": steps}


def eval_sample(eval_set_id: int, n: int, *, session) -> list[str]:
    """About ``n`` distinct terms spread over the evaluation set (every k-th example)."""
    total = session.execute(text("SELECT count(*) FROM examples WHERE eval_set_id = :es"),
                            {"es": eval_set_id}).scalar_one()
    stride = max(1, total // n)
    rows = session.execute(text(
        "SELECT term FROM examples WHERE eval_set_id = :es AND id % :k = 0 ORDER BY id LIMIT :n"),
        {"es": eval_set_id, "k": stride, "n": n}).scalars().all()
    return list(dict.fromkeys(rows))


def _step(steps: list[dict[str, Any]], step: int | None) -> dict[str, Any]:
    if step is None:
        return steps[0]
    for s in steps:
        if s["step_k"] == step:
            return s
    raise NotFound(f"no step {step}: the steps are 0 to {steps[-1]['step_k']}")


def _char(value: str | None, term: str) -> int:
    if unset(value):
        raise BadRequest("char: the character whose attention to show (0 is the first)")
    return number(value, name="char", lo=0, hi=len(term) - 1,
                  expected="expected a character index, got {text}",
                  out_of_range=f"no character {{value}} in a term of {len(term)} characters "
                               f"(0 to {len(term) - 1})")


# ---------------------------------------------------------------------------------------------
# the JSON twin of a trace


async def add_trace_beliefs(data: dict[str, Any], *, session, loader: ModelLoader | None,
                            pool: ModelPool) -> dict[str, Any]:
    """Every step of ``queries.trace_data``'s ``data`` gets ``beliefs`` (None where there are
    none) and ``data`` gets ``beliefs_error``: why there are none, or why some are missing."""
    for s in data["steps"]:
        s["beliefs"] = None
    data["beliefs_error"] = None
    if data.get("checkpoint") is None:
        data["beliefs_error"] = "no checkpoint chosen: beliefs are a checkpoint's model's (ck=)"
        return data
    ck_id = data["checkpoint"]["id"]
    path = await in_page_thread(lambda: model_ref(Q.get_checkpoint(ck_id, session=session)))
    try:
        answer = await beliefs_of(pool, loader, path, [s["term"] for s in data["steps"]],
                                  [s["gold"] for s in data["steps"]])
    except TooManyRequests as e:
        data["beliefs_error"] = f"beliefs not computed: {e.message}"
        return data
    data["beliefs_error"] = answer.error
    for s, b in zip(data["steps"], answer.value or []):
        s["beliefs"] = b
    return data


# ---------------------------------------------------------------------------------------------
# the views: heatmaps as SVG cells


def heat(term: str, values: list[float | None], *, lead: float | None = None, lead_label: str = "NF",
         marks: dict[int, str] | None = None, lead_mark: str = "", scale: float | None = None,
         link: str | None = None) -> dict[str, Any]:
    """A heatmap over the characters of ``term``: one cell a character (``values[i]``, None for
    no value), wrapped every ``PER_LINE`` characters, and optionally a leading cell (the
    normal-form probability). Each cell's opacity is its value over the largest one
    (``scale``); ``marks`` adds CSS classes to cells; a click on a cell of a heatmap with a
    ``link`` loads ``link&char=i`` into the panel's .attention-panel (static/app.js)."""
    marks = marks or {}
    shown = [v for v in values if v is not None] + ([lead] if lead is not None else [])
    top = scale if scale is not None else max(shown, default=0.0)
    x0 = LEAD_W + 4 if lead is not None else 0
    cells = []
    for i, ch in enumerate(term):
        v = values[i] if i < len(values) else None
        line, col = divmod(i, PER_LINE)
        op = v / top if top > 0 and v is not None else 0.0
        cells.append({"i": i, "ch": ch, "p": v, "x": x0 + col * CELL_W, "y": line * CELL_H, "op": op,
                      "cls": " ".join(c for c in (marks.get(i, ""), "hi" if op > DARK else "") if c)})
    lines = max(1, -(-len(term) // PER_LINE))
    return {"cells": cells, "width": x0 + min(len(term), PER_LINE) * CELL_W + 2,
            "height": lines * CELL_H + 2, "cell_w": CELL_W, "cell_h": CELL_H, "link": link,
            "lead": None if lead is None else {
                "p": lead, "label": lead_label, "w": LEAD_W, "op": lead / top if top > 0 else 0.0,
                "cls": " ".join(c for c in (lead_mark, "hi" if top > 0 and lead / top > DARK else "") if c)}}


def _ends_on_chars(ends: list[float] | None) -> list[float | None] | None:
    """An end distribution over exclusive ends 0 .. n drawn on characters: the end e on the
    span's last character, e - 1 (end 0, before the first character, is never allowed)."""
    return None if ends is None else ends[1:]


def step_view(term: str, b: dict[str, Any], *, gold: list[int] | None, stored: list[int] | None,
              link: str | None = None) -> dict[str, Any]:
    """The panel of one step's beliefs: the start heatmap (normal form its own cell), the end
    heatmaps given the chosen and the gold start, the top spans and the redex mass."""
    chosen = b["top_spans"][0]["span"]
    marks: dict[int, str] = {}
    if gold is not None and not is_normal_form(gold):
        marks[gold[0]] = "gold"
    if b["start"] is not None:
        marks[b["start"]] = (marks.get(b["start"], "") + " chosen").strip()
    start = heat(term, b["start_probs"], lead=b["nf_prob"], marks=marks, link=link,
                 lead_mark=" ".join(c for c, on in (("gold", gold is not None and is_normal_form(gold)),
                                                    ("chosen", b["start"] is None)) if on))

    def ends(values, start_char, end_char, which):
        if values is None:
            return None
        m = {start_char: "from"}
        if end_char is not None:
            m[end_char - 1] = (m.get(end_char - 1, "") + " " + which).strip()  # the span's last character
        return heat(term, _ends_on_chars(values), marks=m)

    end_chosen = ends(b["end_probs"], b["start"], chosen[1] if b["start"] is not None else None, "chosen")
    gold_end = gold[1] if gold is not None and b["gold_start"] is not None else None
    end_gold = ends(b["gold_end_probs"], b["gold_start"], gold_end, "gold")
    top = [{**t, "title": ERROR_KIND_TITLES.get(t["kind"], t["kind"] or "not a term"),
            "explain": ERROR_KINDS.get(t["kind"], "")} for t in b["top_spans"]]
    return {"term": term, "b": b, "start_heat": start, "end_chosen": end_chosen, "end_gold": end_gold,
            "top": top, "gold": gold, "stored": stored, "chosen": chosen,
            "stored_differs": stored is not None and list(stored) != list(chosen)}


def attention_view(term: str, att: dict[str, Any]) -> dict[str, Any]:
    """Per layer and head, a heatmap of the query character's attention over the term (each
    scaled to its own largest weight, BOS and EOS beside it)."""
    rows = []
    for layer, heads in enumerate(att["layers"]):
        for head, weights in enumerate(heads):
            top = max(weights + [att["bos"][layer][head], att["eos"][layer][head]])
            rows.append({"layer": layer, "head": head, "bos": att["bos"][layer][head],
                         "eos": att["eos"][layer][head], "max": top,
                         "argmax": max(range(len(weights)), key=weights.__getitem__),
                         "heat": heat(term, weights, marks={att["char"]: "query"}, scale=top)})
    return {"term": term, "char": att["char"], "rows": rows}


# ---------------------------------------------------------------------------------------------
# routes


def as_json(data: Any) -> JSONResponse:
    return JSONResponse(Q.finite(jsonable_encoder(data)))


@dataclass(frozen=True)
class TraceStepArgs:
    identity: str
    ck: str | None = None  # the checkpoint whose model
    step: str | None = None  # the step (default: the first)


@dataclass(frozen=True)
class TraceCharArgs:
    identity: str
    ck: str | None = None
    step: str | None = None
    char: str | None = None  # the query character of the step's term (0 is the first)


@dataclass(frozen=True)
class PlaygroundStepArgs:
    term: str | None = None  # as typed: its normal-order reduction's steps
    ck: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class PlaygroundCharArgs:
    term: str | None = None
    ck: str | None = None
    step: str | None = None
    char: str | None = None


@dataclass(frozen=True)
class HeadsArgs:
    ck: int
    sort: str | None = None  # one of STRUCTURAL_SCORES (default: binding)


async def fragment(request: Request, tpl, name: str, make) -> HTMLResponse:
    """Render fragment ``name`` with ``await make()``'s context; an HTTPError is the fragment's
    message with its status (and Retry-After), which app.js swaps into the panel too."""
    status, headers = 200, None
    try:
        ctx = await make()
    except HTTPError as e:
        ctx, status, headers = {"error": e.message}, e.status_code, e.headers
    return await in_page_thread(lambda: tpl.render(request, name, ctx, status_code=status, headers=headers))


def _trace_link(identity: str, ck: int, step: int) -> str:
    return url(f"/traces/{identity}/attention", ck=ck, step=step)


def _playground_link(term: str, ck: int, step: int) -> str:
    return url("/playground/attention", term=term, ck=ck, step=step)


async def _trace_step(args, db) -> tuple[dict[str, Any], dict[str, Any]]:
    def read():
        trace = trace_steps(args.identity, opt_id(args.ck, "ck"), session=db)
        return trace, _step(trace["steps"], opt_step(args.step))
    return await in_page_thread(read)


@router.get("/traces/{identity}/beliefs", response_class=HTMLResponse, include_in_schema=False)
async def trace_beliefs(request: Request, args: query(TraceStepArgs), db: ReadDB, models: Models,
                        pool: Pool, tpl: Templates):
    async def make():
        trace, step = await _trace_step(args, db)
        ck = trace["checkpoint"]
        answer = await beliefs_of(pool, models, model_ref(ck), [s["term"] for s in trace["steps"]],
                                  [s["gold"] for s in trace["steps"]])
        i = trace["steps"].index(step)
        b = answer.value[i] if answer.value else None
        view = None if b is None else step_view(step["term"], b, gold=step["gold"], stored=step["pred"],
                                                link=_trace_link(args.identity, ck["id"], step["step_k"]))
        return {"view": view, "answer": answer, "step_k": step["step_k"], "checkpoint": ck,
                "heads_href": f"/checkpoints/{ck['id']}/heads", "where": "trace"}
    return await fragment(request, tpl, "_beliefs.html", make)


async def _trace_attention(args: TraceCharArgs, db, models, pool) -> dict[str, Any]:
    trace, step = await _trace_step(args, db)
    char = _char(args.char, step["term"])
    answer = await attention_of(pool, models, model_ref(trace["checkpoint"]), step["term"], char)
    return {"term": step["term"], "step_k": step["step_k"], "char": char, "answer": answer}


@router.get("/traces/{identity}/attention", response_class=HTMLResponse, include_in_schema=False)
async def trace_attention(request: Request, args: query(TraceCharArgs), db: ReadDB, models: Models,
                          pool: Pool, tpl: Templates):
    async def make():
        d = await _trace_attention(args, db, models, pool)
        att = d["answer"].value
        return d | {"view": attention_view(d["term"], att) if att else None}
    return await fragment(request, tpl, "_attention.html", make)


def _attention_json(d: dict[str, Any]) -> dict[str, Any]:
    a = d["answer"]
    return {"term": d["term"], "step_k": d["step_k"], "char": d["char"], "attention": a.value,
            "attention_error": a.error, "model_seconds": a.seconds}


@router.get("/traces/{identity}/attention.json")
async def trace_attention_json(args: query(TraceCharArgs), db: ReadDB, models: Models, pool: Pool):
    return as_json(_attention_json(await _trace_attention(args, db, models, pool)))


async def _playground_step(args, db) -> tuple[dict[str, Any], str, int]:
    def read():
        data, path = playground_data(args.term or "", opt_id(args.ck, "ck"), session=db)
        if data["error"] is not None:
            raise BadRequest(f"term: {data['error']['message']}")
        if not data["reduction"]:
            raise BadRequest("term: type a term first")
        if path is None:
            raise BadRequest("ck: the checkpoint whose model's beliefs to show")
        steps = [{"step_k": s["k"], "term": s["term"], "gold": s["span"]} for s in data["reduction"]]
        return data, path, _step(steps, opt_step(args.step)), steps
    return await in_page_thread(read)


@router.get("/playground/beliefs", response_class=HTMLResponse, include_in_schema=False)
async def playground_beliefs(request: Request, args: query(PlaygroundStepArgs), db: ReadDB,
                             models: Models, pool: Pool, tpl: Templates):
    async def make():
        data, path, step, steps = await _playground_step(args, db)
        answer = await beliefs_of(pool, models, path, [s["term"] for s in steps], [s["gold"] for s in steps])
        b = answer.value[steps.index(step)] if answer.value else None
        ck = data["checkpoint"]
        view = None if b is None else step_view(step["term"], b, gold=step["gold"], stored=None,
                                                link=_playground_link(args.term or "", ck["id"], step["step_k"]))
        return {"view": view, "answer": answer, "step_k": step["step_k"], "checkpoint": ck,
                "heads_href": f"/checkpoints/{ck['id']}/heads", "where": "playground"}
    return await fragment(request, tpl, "_beliefs.html", make)


async def _playground_attention(args: PlaygroundCharArgs, db, models, pool) -> dict[str, Any]:
    _, path, step, _ = await _playground_step(args, db)
    char = _char(args.char, step["term"])
    answer = await attention_of(pool, models, path, step["term"], char)
    return {"term": step["term"], "step_k": step["step_k"], "char": char, "answer": answer}


@router.get("/playground/attention", response_class=HTMLResponse, include_in_schema=False)
async def playground_attention(request: Request, args: query(PlaygroundCharArgs), db: ReadDB,
                               models: Models, pool: Pool, tpl: Templates):
    async def make():
        d = await _playground_attention(args, db, models, pool)
        att = d["answer"].value
        return d | {"view": attention_view(d["term"], att) if att else None}
    return await fragment(request, tpl, "_attention.html", make)


@router.get("/playground/attention.json")
async def playground_attention_json(args: query(PlaygroundCharArgs), db: ReadDB, models: Models, pool: Pool):
    return as_json(_attention_json(await _playground_attention(args, db, models, pool)))


async def heads_data(args: HeadsArgs, db, models, pool) -> dict[str, Any]:
    sort = args.sort or "binding"
    if sort not in STRUCTURAL_SCORES:
        raise BadRequest(f"sort: one of {', '.join(STRUCTURAL_SCORES)}")

    def read():
        ck = Q.get_checkpoint(args.ck, session=db)
        return ck, eval_sample(ck["eval_set_id"], HEAD_TERMS, session=db)

    ck, terms = await in_page_thread(read)
    terms_t = tuple(terms)
    answer = await ask(pool, models, ("heads", models, ck["path"]),
                       lambda budget: heads_job(pool, models, ck["path"], terms_t, budget), "head scores")
    scores = answer.value
    heads = []
    if scores is not None:
        heads = sorted(scores["heads"], key=lambda h: (h[sort] is None, -(h[sort] or 0.0), h["layer"], h["head"]))
    return {"checkpoint": {k: ck[k] for k in ("id", "label", "run_id", "step")}, "sort": sort,
            "scores": STRUCTURAL_SCORES, "titles": STRUCTURAL_SCORE_TITLES,
            "terms": None if scores is None else scores["terms"], "asked_terms": len(terms),
            "pairs": None if scores is None else scores["pairs"],
            "uniform": None if scores is None else scores["uniform"], "heads": heads,
            "heads_error": answer.error, "model_seconds": answer.seconds}


@router.get("/checkpoints/{ck:int}/heads.json")
async def heads_json(args: query(HeadsArgs), db: ReadDB, models: Models, pool: Pool):
    return as_json(await heads_data(args, db, models, pool))


@router.get("/checkpoints/{ck:int}/heads", response_class=HTMLResponse)
async def heads_page(request: Request, args: query(HeadsArgs), db: ReadDB, models: Models,
                     pool: Pool, tpl: Templates):
    data = await heads_data(args, db, models, pool)
    return await in_page_thread(lambda: tpl.render(request, "heads.html", data | {"nav": "runs"}))
