"""Routes. Every page ``P`` has a JSON twin ``P.json`` (``/`` has ``/runs.json``) answered from
the same data function; the HTML handler only adds the template.

The twins share one declaration of their parameters: a frozen dataclass per page (``TraceArgs``),
each field a path or query parameter as the address names it (raw text: the page's function
reads and checks it, so a parameter a person got wrong is a 400 that names it), which both
handlers take as ``args: query(TraceArgs)``. A new parameter is a new field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from lambdascope.store import LABEL_CATEGORIES

from . import queries as Q
from .deps import EXAMPLE_OPENAPI, Cache, ExampleQuery, Models, Now, ReadDB, SameOrigin, Templates, WriteDB, in_write_thread, query
from .errors import BadRequest, NotFound
from .filters import SORTS
from .labels import add_label, delete_label, export_labels
from .paging import refuse_page_numbers
from .params import IDENTITY, MAX_ID, check_identity, number, opt_id, opt_step, opt_suite, unset
from .playground import MAX_INPUT, model_part, playground_data
from .rendering import url
from .beliefs import add_trace_beliefs
from .models import Budget, Pool, in_page_thread

router = APIRouter()


def as_json(data: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(Q.finite(jsonable_encoder(data)), status_code=status_code)


# ---------------------------------------------------------------------------------------------
# Runs


@router.get("/runs.json")
def runs_json(db: ReadDB, cache: Cache, now: Now):
    return as_json(Q.runs_data(session=db, cache=cache, now=now))


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request, db: ReadDB, cache: Cache, tpl: Templates, now: Now):
    return tpl.render(request, "runs.html", Q.runs_data(session=db, cache=cache, now=now) | {"nav": "runs"})


@dataclass(frozen=True)
class RunArgs:
    run_id: int
    problems_reason: str | None = None  # list only the data problems of this reason


def _run(args: RunArgs, db, cache, now) -> dict[str, Any]:
    reason = args.problems_reason
    if reason is not None and len(reason) > 64:
        raise BadRequest("problems_reason: at most 64 characters")
    return Q.run_data(args.run_id, session=db, cache=cache, problems_reason=reason or None, now=now)


@router.get("/runs/{run_id:int}.json")
def run_json(args: query(RunArgs), db: ReadDB, cache: Cache, now: Now):
    return as_json(_run(args, db, cache, now))


@router.get("/runs/{run_id:int}", response_class=HTMLResponse)
def run_page(request: Request, args: query(RunArgs), db: ReadDB, cache: Cache, tpl: Templates, now: Now):
    return tpl.render(request, "run.html", _run(args, db, cache, now) | {"nav": "runs"})


# ---------------------------------------------------------------------------------------------
# Checkpoint


@dataclass(frozen=True)
class CheckpointArgs:
    ck: int
    suite: str | None = None  # the checkpoint's evaluation on this suite (its sibling row)


@router.get("/checkpoints/{ck:int}.json")
def checkpoint_json(args: query(CheckpointArgs), db: ReadDB, cache: Cache):
    return as_json(Q.checkpoint_data(args.ck, session=db, cache=cache, suite=opt_suite(args.suite)))


@router.get("/checkpoints/{ck:int}", response_class=HTMLResponse)
def checkpoint_page(request: Request, args: query(CheckpointArgs), db: ReadDB, cache: Cache,
                    tpl: Templates):
    return tpl.render(request, "checkpoint.html",
                      Q.checkpoint_data(args.ck, session=db, cache=cache, suite=opt_suite(args.suite))
                      | {"nav": "runs"})


@router.get("/checkpoints/{ck:int}/generalisation.json")
def generalisation_json(args: query(CheckpointArgs), db: ReadDB, cache: Cache):
    return as_json(Q.generalisation_data(args.ck, session=db, cache=cache, suite=opt_suite(args.suite)))


@router.get("/checkpoints/{ck:int}/generalisation", response_class=HTMLResponse)
def generalisation_fragment(request: Request, args: query(CheckpointArgs), db: ReadDB, cache: Cache,
                            tpl: Templates):
    return tpl.render(request, "_generalisation.html",
                      Q.generalisation_data(args.ck, session=db, cache=cache, suite=opt_suite(args.suite)))


# ---------------------------------------------------------------------------------------------
# Examples (their parameters: deps.get_example_filter, read into a filters.ExampleFilter)


def _examples_or_redirect(request: Request, f, db, cache, json: bool):
    if f.ck is None:
        latest = Q.latest_checkpoint_id(session=db)
        if latest is None:
            if json:
                raise NotFound("there are no checkpoints in this store yet")
            return None
        return RedirectResponse(url(request.url.path, f.params(ck=latest)), status_code=303)
    return Q.examples_data(f, session=db, cache=cache)


@router.get("/examples.json", openapi_extra=EXAMPLE_OPENAPI)
def examples_json(request: Request, f: ExampleQuery, db: ReadDB, cache: Cache):
    data = _examples_or_redirect(request, f, db, cache, json=True)
    return data if isinstance(data, Response) else as_json(Q.with_checkpoints(data, session=db))


@router.get("/examples", response_class=HTMLResponse, openapi_extra=EXAMPLE_OPENAPI)
def examples_page(request: Request, f: ExampleQuery, db: ReadDB, cache: Cache, tpl: Templates):
    data = _examples_or_redirect(request, f, db, cache, json=False)
    if isinstance(data, Response):
        return data
    ctx = {"nav": "examples", "f": f, "sorts": SORTS, "empty_store": data is None}
    # htmx pushes this address: the filter's canonical URL, without the form's empty fields
    headers = {"HX-Push-Url": url("/examples", f.params())} if request.headers.get("hx-request") else None
    return tpl.render(request, "examples.html", (data or {}) | ctx, headers=headers, pickers=True)


# ---------------------------------------------------------------------------------------------
# Trace


@dataclass(frozen=True)
class TraceArgs:
    identity: str
    ck: str | None = None  # the checkpoint whose predictions are shown
    suite: str | None = None  # its evaluation on this suite (the trace is in that suite's set)
    step: str | None = None  # the step to scroll to
    queue: str | None = None  # 1: reached from the label queue (a Next link to its next item)


def _trace(args: TraceArgs, db) -> dict[str, Any]:
    data = Q.trace_data(check_identity(args.identity), session=db, ck_id=opt_id(args.ck, "ck"),
                        suite=opt_suite(args.suite))
    focus = opt_step(args.step)
    data["focus_step"] = focus if focus is not None and focus <= data["steps_total"] else None
    data["queue"] = args.queue in ("1", "true", "yes") and data["checkpoint"] is not None
    if data["queue"]:
        here = next((s for s in data["steps"] if s["step_k"] == data["focus_step"]), data["steps"][0])
        data["queue_next"] = url("/queue", ck=data["checkpoint"]["id"], after=here["example_id"])
    return data


@router.get("/traces/{identity}.json")
async def trace_json(args: query(TraceArgs), db: ReadDB, models: Models, pool: Pool):
    # the store's part in a page thread, each step's beliefs in the model pool (app/beliefs.py)
    data = await in_page_thread(lambda: Q.with_checkpoints(_trace(args, db), session=db))
    data = await add_trace_beliefs(data, session=db, loader=models, pool=pool)
    return await in_page_thread(lambda: as_json(data))


ON_LOOP_STEPS = 128  # a trace page of more steps than this is rendered in a page thread


@router.get("/traces/{identity}", response_class=HTMLResponse)
async def trace_page(request: Request, args: query(TraceArgs), db: ReadDB, tpl: Templates):
    """Over SQLite, on the event loop: the trace's data are six index lookups in a local file
    (as the page cache's stamp is, app/page_cache.py) and its page about a millisecond of
    Python, less than what a page thread costs around it when every page thread wants the GIL
    (the two hand-overs, and pages queueing behind each other while the loop answers cache
    hits: docs/DESIGN.md, "Pages made afresh"). A trace of more than ``ON_LOOP_STEPS`` steps is
    rendered in a page thread; over a network store (PostgreSQL) all of it runs there."""
    local = db.get_bind().dialect.name == "sqlite"
    data = _trace(args, db) if local else await in_page_thread(lambda: _trace(args, db))
    context = data | {"nav": "examples", "categories": LABEL_CATEGORIES}
    if local and len(data["steps"]) <= ON_LOOP_STEPS:
        return tpl.render(request, "trace.html", context, pickers=True)
    return await in_page_thread(lambda: tpl.render(request, "trace.html", context, pickers=True))


# ---------------------------------------------------------------------------------------------
# Label queue


@dataclass(frozen=True)
class QueueArgs:
    ck: str | None = None  # by default the newest checkpoint
    after: str | None = None  # an example id: the queue goes on after it


def _queue(args: QueueArgs, db) -> dict[str, Any]:
    ck_id = opt_id(args.ck, "ck")
    if ck_id is None:
        ck_id = Q.latest_checkpoint_id(session=db)
        if ck_id is None:
            raise NotFound("there are no checkpoints in this store yet")
    return Q.queue_data(ck_id, session=db, after=opt_id(args.after, "after"))


@router.get("/queue.json")
def queue_json(args: query(QueueArgs), db: ReadDB):
    return as_json(_queue(args, db))


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, args: query(QueueArgs), db: ReadDB, tpl: Templates):
    data = _queue(args, db)
    nxt = data["next"]
    if nxt is not None:
        return RedirectResponse(url(f"/traces/{nxt['identity']}", ck=data["checkpoint"]["id"],
                                    step=nxt["step_k"], queue=1), status_code=303)
    return tpl.render(request, "queue_done.html", data | {"nav": "labels"})


# ---------------------------------------------------------------------------------------------
# Compare


@dataclass(frozen=True)
class CompareArgs:
    a: str | None = None  # the two checkpoints
    b: str | None = None
    kind: str | None = None  # of change: comparison.COMPARE_KINDS
    order: str | None = None  # 'change' (largest first) or '-change'
    after: str | None = None  # cursor (paging.Cursor)
    kind_a: str | None = None  # only the examples of this error kind at A (vocabulary.ERROR_KINDS)
    kind_b: str | None = None  # and of this one at B: a cell of the kind transition matrix
    suite: str | None = None  # both checkpoints on this suite (their sibling rows)

    @property
    def chosen(self) -> bool:
        return not (unset(self.a) or unset(self.b))


def _compare(request: Request, args: CompareArgs, db, cache) -> dict[str, Any]:
    refuse_page_numbers(request.query_params)
    return Q.compare_data(opt_id(args.a, "a"), opt_id(args.b, "b"), session=db, cache=cache,
                          kind=args.kind or None, order=args.order or "change",
                          after=args.after or None, kind_a=args.kind_a, kind_b=args.kind_b,
                          suite=opt_suite(args.suite))


@router.get("/compare.json")
def compare_json(request: Request, args: query(CompareArgs), db: ReadDB, cache: Cache):
    if not args.chosen:
        raise BadRequest("a and b: the two checkpoints to compare")
    return as_json(Q.with_checkpoints(_compare(request, args, db, cache), session=db))


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, args: query(CompareArgs), db: ReadDB, cache: Cache,
                 tpl: Templates):
    if not args.chosen:
        pair = Q.default_compare_pair(session=db)
        if pair is not None and not (args.a or args.b):
            return RedirectResponse(url("/compare", a=pair[0], b=pair[1]), status_code=303)
        return tpl.render(request, "compare.html", {
            "nav": "compare", "choose": True, "a": {"id": opt_id(args.a, "a")},
            "b": {"id": opt_id(args.b, "b")}, "checkpoints": Q.all_checkpoints(session=db)})
    data = _compare(request, args, db, cache)
    return tpl.render(request, "compare.html", data | {"nav": "compare", "choose": False}, pickers=True)


# ---------------------------------------------------------------------------------------------
# Labels


@dataclass(frozen=True)
class LabelsArgs:
    category: str | None = None  # one of store.LABEL_CATEGORIES, or all
    after: str | None = None  # cursor (paging.Cursor)
    limit: str | None = None  # labels a page


def _labels(request: Request, args: LabelsArgs, db) -> dict[str, Any]:
    refuse_page_numbers(request.query_params)
    category, limit = args.category, args.limit
    n = Q.LABELS_PAGE if limit in (None, "") else number(
        limit, name="limit", lo=1, hi=Q.MAX_LABELS_PAGE, expected="expected a number of labels, got {text}",
        out_of_range="{lo} to {hi} labels a page, got {value}")
    if category not in (None, "") and category not in LABEL_CATEGORIES:
        raise BadRequest(f"category: one of {', '.join(LABEL_CATEGORIES)}")
    return Q.labels_data(session=db, category=category or None, after=args.after or None, limit=n)


@router.get("/labels.json")
def labels_json(request: Request, args: query(LabelsArgs), db: ReadDB):
    return as_json(_labels(request, args, db))


@router.get("/labels", response_class=HTMLResponse)
def labels_page(request: Request, args: query(LabelsArgs), db: ReadDB, tpl: Templates):
    data = _labels(request, args, db)
    return tpl.render(request, "labels.html", data | {
        "nav": "labels", "categories": LABEL_CATEGORIES,
        "limit_param": data["limit"] if data["limit"] != Q.LABELS_PAGE else None})


@router.get("/labels/export.{fmt}")
def labels_export(fmt: str, db: ReadDB):
    if fmt not in ("jsonl", "csv"):
        raise NotFound(f"labels export: .jsonl or .csv, not .{fmt[:20]}")
    media = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    chunks = list(export_labels(db, fmt))  # read now, while the session is open
    return StreamingResponse(iter(chunks), media_type=f"{media}; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="lambdascope-labels.{fmt}"'})


def _safe_next(next_url: str | None, fallback: str) -> str:
    """Only a path on this server (no scheme, no host, no '//'), without control characters,
    percent-encoded so that it can go into a header as it is (HX-Redirect, Location)."""
    if next_url and next_url.startswith("/") and not next_url.startswith(("//", "/\\")) \
            and len(next_url) < 2000 and not any(ord(c) < 32 or ord(c) == 127 for c in next_url):
        return quote(next_url, safe=":/%#?=@[]!$&'()*+,;~")
    return fallback


def _known_checkpoint(db, ck: str | None) -> None:
    """The form's ``ck`` (the checkpoint the page showed), checked before a write: a bad one
    is a 4xx with nothing written, never a 4xx after the write went through."""
    ck_id = opt_id(ck, "ck")
    if ck_id is not None:
        Q.get_checkpoint(ck_id, session=db)


def _after_label_write(request: Request, db, tpl, identity: str, ck: str | None,
                       next_url: str | None, queue: bool) -> Response:
    back = url(f"/traces/{identity}", ck=ck or None)
    target = _safe_next(next_url, back)
    if request.headers.get("hx-request") == "true":
        if queue:
            return Response(status_code=204, headers={"HX-Redirect": target})
        data = Q.trace_data(identity, session=db, ck_id=opt_id(ck, "ck"))
        data |= {"focus_step": None, "queue": False, "categories": LABEL_CATEGORIES}
        return tpl.render(request, "trace.html", data)
    return RedirectResponse(target, status_code=303)


@router.post("/labels")
async def labels_create(request: Request, _: SameOrigin, db: WriteDB, tpl: Templates,
                        identity: Annotated[str, Form(max_length=32)],
                        category: Annotated[str, Form(max_length=32)],
                        step: Annotated[str, Form(max_length=12)] = "",
                        note: Annotated[str, Form(max_length=4000)] = "",
                        ck: Annotated[str, Form(max_length=24)] = "",
                        next: Annotated[str, Form(max_length=2000)] = "",
                        queue: Annotated[str, Form(max_length=8)] = ""):
    def write() -> Response:
        check_identity(identity)
        _known_checkpoint(db, ck)  # refused before anything is written, not after
        add_label(db, trace_identity=identity, step_k=opt_step(step), category=category, note=note)
        db.commit()
        return _after_label_write(request, db, tpl, identity, ck, next, queue == "1")

    return await in_write_thread(write)


@router.post("/labels/{label_id:int}/delete")
async def labels_delete(request: Request, label_id: int, _: SameOrigin, db: WriteDB, tpl: Templates,
                        identity: Annotated[str, Form(max_length=32)] = "",
                        ck: Annotated[str, Form(max_length=24)] = "",
                        next: Annotated[str, Form(max_length=2000)] = ""):
    def write() -> Response:
        _known_checkpoint(db, ck)  # refused before anything is deleted, not after
        if not (1 <= label_id <= MAX_ID and delete_label(db, label_id)):
            raise NotFound(f"no label {label_id}")
        db.commit()
        if identity and IDENTITY.fullmatch(identity):
            return _after_label_write(request, db, tpl, identity, ck, next, False)
        return RedirectResponse(_safe_next(next, "/labels"), status_code=303)

    return await in_write_thread(write)


# ---------------------------------------------------------------------------------------------
# Playground


@dataclass(frozen=True)
class PlaygroundArgs:
    term: str | None = None  # as typed
    ck: str | None = None  # the checkpoint whose model reduces it too


async def _playground(args: PlaygroundArgs, db, models, pool) -> dict[str, Any]:
    """The term and its true reduction in a page thread; the model's reduction in the model
    pool, within the request's budget (app/models.py); a full pool is a 429."""
    data, path = await in_page_thread(lambda: playground_data(args.term or "", opt_id(args.ck, "ck"),
                                                              session=db))
    if path is None:
        return data
    if models is None:  # nothing to run: the page says why at once
        return model_part(data, loader=None, path=path, pool=pool, budget=Budget(pool.budget))
    return await pool.run(lambda budget: model_part(data, loader=models, path=path, pool=pool, budget=budget))


@router.get("/playground.json")
async def playground_json(args: query(PlaygroundArgs), db: ReadDB, models: Models, pool: Pool):
    data = await _playground(args, db, models, pool)
    return await in_page_thread(lambda: as_json(data))


@router.get("/playground", response_class=HTMLResponse)
async def playground_page(request: Request, args: query(PlaygroundArgs), db: ReadDB, models: Models,
                          pool: Pool, tpl: Templates):
    data = await _playground(args, db, models, pool)
    return await in_page_thread(lambda: tpl.render(request, "playground.html", data | {
        "nav": "playground", "max_input": MAX_INPUT, "checkpoints": Q.all_checkpoints(session=db)}))
