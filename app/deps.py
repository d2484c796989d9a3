"""The application's dependencies, as ``Annotated`` aliases: settings, a read session, a write
session, the aggregate caches, the template renderer, the examples filter, the cross-site check
for writes, and ``query(Args)``, a page's parameters as one dataclass. Those that do no blocking
work are ``async def``: FastAPI would otherwise send each to a worker thread and back.

Tests swap any of them with ``app.dependency_overrides``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import inspect
from typing import Annotated, Any, AsyncIterator, Callable, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from lambdascope.predictor import ModelLoader

from .cache import Aggregates
from .errors import Forbidden
from .filters import ExampleFilter, parse_filter
from .paging import refuse_page_numbers
from .rendering import Renderer
from .settings import Settings

T = TypeVar("T")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session on the read-only engine (SQLite: a WAL reader that never waits for the writer).
    Opening and closing a session does no I/O worth a worker thread; the handler's queries
    run in the handler's thread."""
    with request.app.state.read_sessions() as session:
        yield session


async def get_write_session(request: Request) -> AsyncIterator[Session]:
    """A session on the writing engine; the handler commits, in a thread of its own (see
    ``in_write_thread``)."""
    with request.app.state.write_sessions() as session:
        yield session


WRITE_THREADS = 4  # label writes at once
_write_limiter: RunVar[anyio.CapacityLimiter] = RunVar("lambdascope_write_limiter")


async def in_write_thread(fn: Callable[[], T]) -> T:
    """Run a label write in a worker thread that page reads do not share: a write can wait
    seconds for SQLite's lock while the trainer commits an evaluation, and it should neither
    stop the pages meanwhile nor queue behind them (main.create_app caps the reads' threads)."""
    try:
        limiter = _write_limiter.get()
    except LookupError:  # one per event loop, as anyio keeps its default limiter
        limiter = anyio.CapacityLimiter(WRITE_THREADS)
        _write_limiter.set(limiter)
    return await anyio.to_thread.run_sync(fn, limiter=limiter)


async def get_now(request: Request) -> dt.datetime:
    """The time a page is made at (naive UTC, as the store keeps times): which running runs are
    lost (``vocabulary.effective_status``): ``app.state.clock``, which tests move (the page
    cache reads the same clock)."""
    return request.app.state.clock()


async def get_model_loader(request: Request) -> ModelLoader | None:
    return request.app.state.model_loader


async def get_aggregates(request: Request) -> Aggregates:
    return request.app.state.aggregates


async def get_renderer(request: Request) -> Renderer:
    return request.app.state.renderer


async def check_same_origin(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """Refuse a write that another site's page could have sent: the browser's Sec-Fetch-Site
    and Origin (or, without an Origin, the Referer) must say same origin when present, and the
    form token (a form field ``csrf`` or the header ``X-CSRF-Token``) must be this server's."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("cross-site request refused")
    origin = request.headers.get("origin")
    host = request.headers.get("host", "").lower()
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            raise Forbidden("cross-site request refused: the Origin is not this server")
    else:  # a browser too old to send Origin still sends the page it came from
        referer = request.headers.get("referer")
        if referer is not None and urlsplit(referer).netloc.lower() != host:
            raise Forbidden("cross-site request refused: the Referer is not this server")
    token = request.headers.get("x-csrf-token")
    if token is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get("csrf")
            token = value if isinstance(value, str) else None
    if not token or not hmac.compare_digest(token.encode(), settings.csrf_token.encode()):
        raise Forbidden("missing or stale form token: reload the page and try again")


SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadDB = Annotated[Session, Depends(get_read_session)]
WriteDB = Annotated[Session, Depends(get_write_session)]
Cache = Annotated[Aggregates, Depends(get_aggregates)]
Models = Annotated[ModelLoader | None, Depends(get_model_loader)]
Templates = Annotated[Renderer, Depends(get_renderer)]
SameOrigin = Annotated[None, Depends(check_same_origin)]
Now = Annotated[dt.datetime, Depends(get_now)]


# The examples filter's query parameters: ``filters.ExampleFilter``'s fields, ``kind`` repeated.
EXAMPLE_PARAMS = tuple(f.name for f in dataclasses.fields(ExampleFilter))
# ... as OpenAPI says them (the routes' ``openapi_extra``): read from the request by
# ``get_example_filter`` rather than declared one by one, whose solving was about a millisecond,
# a fifth of an examples page made afresh
EXAMPLE_OPENAPI = {"parameters": [
    {"name": name, "in": "query", "required": False,
     "schema": {"type": "array", "items": {"type": "string"}} if name == "kind" else {"type": "string"},
     **({"style": "form", "explode": True} if name == "kind" else {})}
    for name in EXAMPLE_PARAMS]}


async def get_example_filter(request: Request) -> ExampleFilter:
    """The examples filter from the query string (every parameter optional, empty = unset; a
    parameter given twice: its last value); a parameter a person got wrong is a 400 naming it.
    ``kind`` may be repeated (several error kinds, any of which matches: ``filters.KIND_HELP``)."""
    qp = request.query_params
    refuse_page_numbers(qp)
    args: dict[str, Any] = {name: qp[name] for name in EXAMPLE_PARAMS if name != "kind" and name in qp}
    kinds = qp.getlist("kind")
    if kinds:
        args["kind"] = kinds
    return parse_filter(args)


ExampleQuery = Annotated[ExampleFilter, Depends(get_example_filter)]


def query(args: type[T]) -> Any:
    """``Annotated[args, Depends(…)]``: the dataclass ``args`` made from the request, each field
    a parameter of the same name (a path parameter if the route's path names it, else one of
    the query string), declared once for a page and its JSON twin. Read by an ``async``
    function with the dataclass's signature: a class as a dependency would be called in a
    worker thread and back."""
    assert dataclasses.is_dataclass(args)

    async def read(**values: Any) -> T:
        return args(**values)

    read.__signature__ = inspect.signature(args, eval_str=True)
    read.__name__ = f"read_{args.__name__}"
    return Annotated[args, Depends(read)]
