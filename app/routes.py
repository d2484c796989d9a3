"""Routes. Every page ``P`` has a JSON twin ``P.json`` (``/`` has ``/runs.json``) answered from
the same data function; the HTML handler only adds the template."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from lambdascope.store import LABEL_CATEGORIES

from . import queries as Q
from .deps import Cache, ExampleQuery, Models, ReadDB, SameOrigin, Templates, WriteDB, in_write_thread
from .errors import BadRequest, NotFound
from .filters import SORTS
from .labels import add_label, delete_label, export_labels
from .paging import refuse_page_numbers
from .params import IDENTITY, MAX_ID, check_identity, number, opt_id, opt_step, unset
from .playground import MAX_INPUT, playground_data
from .rendering import url

router = APIRouter()


def as_json(data: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(Q.finite(jsonable_encoder(data)), status_code=status_code)


# ---------------------------------------------------------------------------------------------
# Runs


@router.get("/runs.json")
def runs_json(db: ReadDB, cache: Cache):
    return as_json(Q.runs_data(session=db, cache=cache))


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request, db: ReadDB, cache: Cache, tpl: Templates):
    return tpl.render(request, "runs.html", Q.runs_data(session=db, cache=cache) | {"nav": "runs"})


def _run(run_id: int, db, cache, problems_reason: str | None) -> dict[str, Any]:
    if problems_reason is not None and len(problems_reason) > 64:
        raise BadRequest("problems_reason: at most 64 characters")
    return Q.run_data(run_id, session=db, cache=cache, problems_reason=problems_reason or None)


@router.get("/runs/{run_id:int}.json")
def run_json(run_id: int, db: ReadDB, cache: Cache, problems_reason: str | None = None):
    return as_json(_run(run_id, db, cache, problems_reason))


@router.get("/runs/{run_id:int}", response_class=HTMLResponse)
def run_page(request: Request, run_id: int, db: ReadDB, cache: Cache, tpl: Templates,
             problems_reason: str | None = None):
    data = _run(run_id, db, cache, problems_reason)
    return tpl.render(request, "run.html", data | {"nav": "runs"})


# ---------------------------------------------------------------------------------------------
# Checkpoint


@router.get("/checkpoints/{ck:int}.json")
def checkpoint_json(ck: int, db: ReadDB, cache: Cache):
    return as_json(Q.checkpoint_data(ck, session=db, cache=cache))


@router.get("/checkpoints/{ck:int}", response_class=HTMLResponse)
def checkpoint_page(request: Request, ck: int, db: ReadDB, cache: Cache, tpl: Templates):
    return tpl.render(request, "checkpoint.html",
                      Q.checkpoint_data(ck, session=db, cache=cache) | {"nav": "runs"})


# ---------------------------------------------------------------------------------------------
# Examples


def _examples_or_redirect(request: Request, f, db, cache, json: bool):
    if f.ck is None:
        latest = Q.latest_checkpoint_id(session=db)
        if latest is None:
            if json:
                raise NotFound("there are no checkpoints in this store yet")
            return None
        return RedirectResponse(url(request.url.path, f.params(ck=latest)), status_code=303)
    return Q.examples_data(f, session=db, cache=cache)


@router.get("/examples.json")
def examples_json(request: Request, f: ExampleQuery, db: ReadDB, cache: Cache):
    data = _examples_or_redirect(request, f, db, cache, json=True)
    return data if isinstance(data, Response) else as_json(data)


@router.get("/examples", response_class=HTMLResponse)
def examples_page(request: Request, f: ExampleQuery, db: ReadDB, cache: Cache, tpl: Templates):
    data = _examples_or_redirect(request, f, db, cache, json=False)
    if isinstance(data, Response):
        return data
    ctx = {"nav": "examples", "f": f, "sorts": SORTS, "empty_store": data is None}
    # htmx pushes this address: the filter's canonical URL, without the form's empty fields
    headers = {"HX-Push-Url": url("/examples", f.params())} if request.headers.get("hx-request") else None
    return tpl.render(request, "examples.html", (data or {}) | ctx, headers=headers)


# ---------------------------------------------------------------------------------------------
# Trace


def _trace(identity: str, db, ck: str | None, step: str | None, queue: str | None) -> dict[str, Any]:
    data = Q.trace_data(check_identity(identity), session=db, ck_id=opt_id(ck, "ck"))
    focus = opt_step(step)
    data["focus_step"] = focus if focus is not None and focus <= data["steps_total"] else None
    data["queue"] = queue in ("1", "true", "yes") and data["checkpoint"] is not None
    if data["queue"]:
        here = next((s for s in data["steps"] if s["step_k"] == data["focus_step"]), data["steps"][0])
        data["queue_next"] = url("/queue", ck=data["checkpoint"]["id"], after=here["example_id"])
    return data


@router.get("/traces/{identity}.json")
def trace_json(identity: str, db: ReadDB, ck: str | None = None, step: str | None = None,
               queue: str | None = None):
    return as_json(_trace(identity, db, ck, step, queue))


@router.get("/traces/{identity}", response_class=HTMLResponse)
def trace_page(request: Request, identity: str, db: ReadDB, tpl: Templates, ck: str | None = None,
               step: str | None = None, queue: str | None = None):
    data = _trace(identity, db, ck, step, queue)
    return tpl.render(request, "trace.html", data | {"nav": "examples",
                                                     "categories": LABEL_CATEGORIES})


# ---------------------------------------------------------------------------------------------
# Label queue


def _queue(db, ck: str | None, after: str | None) -> dict[str, Any]:
    ck_id = opt_id(ck, "ck")
    if ck_id is None:
        ck_id = Q.latest_checkpoint_id(session=db)
        if ck_id is None:
            raise NotFound("there are no checkpoints in this store yet")
    return Q.queue_data(ck_id, session=db, after=opt_id(after, "after"))


@router.get("/queue.json")
def queue_json(db: ReadDB, ck: str | None = None, after: str | None = None):
    return as_json(_queue(db, ck, after))


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, db: ReadDB, tpl: Templates, ck: str | None = None,
               after: str | None = None):
    data = _queue(db, ck, after)
    nxt = data["next"]
    if nxt is not None:
        return RedirectResponse(url(f"/traces/{nxt['identity']}", ck=data["checkpoint"]["id"],
                                    step=nxt["step_k"], queue=1), status_code=303)
    return tpl.render(request, "queue_done.html", data | {"nav": "labels"})


# ---------------------------------------------------------------------------------------------
# Compare


def _compare(request, db, cache, a, b, kind, order, after):
    refuse_page_numbers(request.query_params)
    return Q.compare_data(opt_id(a, "a"), opt_id(b, "b"), session=db, cache=cache,
                          kind=kind or "regressions", order=order or "change", after=after or None)


@router.get("/compare.json")
def compare_json(request: Request, db: ReadDB, cache: Cache, a: str | None = None,
                 b: str | None = None, kind: str | None = None, order: str | None = None,
                 after: str | None = None):
    if unset(a) or unset(b):
        raise BadRequest("a and b: the two checkpoints to compare")
    return as_json(_compare(request, db, cache, a, b, kind, order, after))


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, db: ReadDB, cache: Cache, tpl: Templates, a: str | None = None,
                 b: str | None = None, kind: str | None = None, order: str | None = None,
                 after: str | None = None):
    if unset(a) or unset(b):
        pair = Q.default_compare_pair(session=db)
        if pair is not None and not (a or b):
            return RedirectResponse(url("/compare", a=pair[0], b=pair[1]), status_code=303)
        return tpl.render(request, "compare.html", {
            "nav": "compare", "choose": True, "a": {"id": opt_id(a, "a")}, "b": {"id": opt_id(b, "b")},
            "checkpoints": Q.all_checkpoints(session=db)})
    data = _compare(request, db, cache, a, b, kind, order, after)
    return tpl.render(request, "compare.html", data | {"nav": "compare", "choose": False})


# ---------------------------------------------------------------------------------------------
# Labels


def _category(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in LABEL_CATEGORIES:
        raise BadRequest(f"category: one of {', '.join(LABEL_CATEGORIES)}")
    return value


def _labels(request: Request, db, category: str | None, after: str | None, limit: str | None):
    refuse_page_numbers(request.query_params)
    n = Q.LABELS_PAGE if limit in (None, "") else number(
        limit, name="limit", lo=1, hi=Q.MAX_LABELS_PAGE, expected="expected a number of labels, got {text}",
        out_of_range="{lo} to {hi} labels a page, got {value}")
    return Q.labels_data(session=db, category=_category(category), after=after or None, limit=n)


@router.get("/labels.json")
def labels_json(request: Request, db: ReadDB, category: str | None = None, after: str | None = None,
                limit: str | None = None):
    return as_json(_labels(request, db, category, after, limit))


@router.get("/labels", response_class=HTMLResponse)
def labels_page(request: Request, db: ReadDB, tpl: Templates, category: str | None = None,
                after: str | None = None, limit: str | None = None):
    data = _labels(request, db, category, after, limit)
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


def _playground(db, models, term: str | None, ck: str | None) -> dict[str, Any]:
    return playground_data(term or "", opt_id(ck, "ck"), session=db, model_loader=models)


@router.get("/playground.json")
def playground_json(db: ReadDB, models: Models, term: str | None = None, ck: str | None = None):
    return as_json(_playground(db, models, term, ck))


@router.get("/playground", response_class=HTMLResponse)
def playground_page(request: Request, db: ReadDB, models: Models, tpl: Templates,
                    term: str | None = None, ck: str | None = None):
    data = _playground(db, models, term, ck)
    return tpl.render(request, "playground.html", data | {
        "nav": "playground", "max_input": MAX_INPUT, "checkpoints": Q.all_checkpoints(session=db)})
