"""The FastAPI application: ``create_app(Settings(db_url=…), model_loader=…)``.

Reads go through a read-only engine (SQLite in WAL mode: readers see the last commit and never
wait for the trainer's writer); label writes through a second engine. Errors a person can fix
are answered 4xx with a message, as a page or as JSON for the ``.json`` twins.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.resources
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from lambdascope.predictor import ModelLoader
from lambdascope.store import make_engine, open_store, utcnow

from .beliefs import router as beliefs_router
from .cache import Aggregates, Warmer
from .errors import HTTPError, QueryTimeout
from .models import ModelPool
from .page_cache import PageCache, PageCacheMiddleware
from .pickers import PickerOptions
from .queries import checkpoints_of_eval_set
from .rendering import Renderer, checkpoint_options
from .query_limit import limit_queries, is_query_timeout
from .routes import router
from .shrinking import router as shrink_router
from .security import SecurityMiddleware
from .settings import MAX_PAGE_CACHE_MB, MAX_QUERY_TIMEOUT, MAX_THREADS, Settings

STATIC = Path(__file__).resolve().parent.parent / "static"
READ_POOL = 4  # read connections kept open at least; a page holds one while it runs


def _read_only_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.execute("PRAGMA mmap_size=1073741824")  # read pages through the OS cache, shared by all
    cur.execute("PRAGMA cache_size=-32000")  # 32 MB of private page cache per connection
    cur.close()


def htmx_js() -> bytes:
    """htmx from the installed django-js-lib-htmx package (never a copy in this repository)."""
    return (importlib.resources.files("js_lib_htmx") / "static" / "htmx" / "htmx.min.js").read_bytes()


def create_app(settings: Settings, *, model_loader: ModelLoader | None = None) -> FastAPI:
    """The dashboard over ``settings.db_url``. ``model_loader`` turns a checkpoint path into a
    span predictor for the playground (``lambdascope.predictor``); without it the playground
    shows the true reduction alone and says why."""
    if not 1 <= settings.threads <= MAX_THREADS:
        raise ValueError(f"threads: 1 to {MAX_THREADS}, got {settings.threads}")
    if not 0 <= settings.page_cache_mb <= MAX_PAGE_CACHE_MB:
        raise ValueError(f"page_cache_mb: 0 to {MAX_PAGE_CACHE_MB}, got {settings.page_cache_mb}")
    if not 0 <= settings.query_timeout <= MAX_QUERY_TIMEOUT:  # NaN fails too
        raise ValueError(f"query_timeout: 0 to {MAX_QUERY_TIMEOUT:g} seconds, got {settings.query_timeout}")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # The handlers are plain functions that FastAPI runs in worker threads, 40 at once by
        # default. They are CPU-bound Python (the queries take a fraction of a millisecond),
        # so under the GIL 40 threads only take turns. Before the page cache, every request
        # took a thread, and fewer were better (bench/bench_dashboard.py, 8 clients, 2 cores:
        # 5.0 ms of server CPU per request with 40 threads, 4.3 with 4, 3.5 with 2). Now the
        # pages the cache keeps are answered on the event loop, and only pages made afresh
        # take a thread; two threads made them queue behind one another (mixed phase, 20 s,
        # writer on: trace p95 53-67 ms with 2, 59 with 1, 46 with 4, 50 with 8; runs p95
        # 23-31 ms with 2, 7-11 with 4), so four. More than one also keeps a slow query (a
        # first count over 100,000 rows) from stopping every page.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        # The ~115,000 objects made while starting (modules, SQLAlchemy's and Jinja's
        # structures, the compiled templates) live as long as the server: out of the
        # collector's sight, a full collection takes 3 ms instead of 60 (it ran every few
        # seconds under bench_dashboard's load, and stalled every request meanwhile).
        app.state.renderer.load_all()
        gc.collect()
        gc.freeze()
        warmer = Warmer(app.state.read_sessions, app.state.aggregates).start() \
            if settings.warm_caches else None
        yield
        if warmer is not None:
            warmer.stop()
        app.state.models.shutdown()

    app = FastAPI(title="lambdascope", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    write_engine, write_sessions = open_store(settings.db_url)  # creates or upgrades the schema
    # a connection for each page thread and one for the cache warmer, with room to spare
    # (label writes go through the write engine)
    read_engine = make_engine(settings.db_url, pool_size=max(READ_POOL, settings.threads + 1),
                              max_overflow=settings.threads + 1)
    if read_engine.dialect.name == "sqlite":
        event.listen(read_engine, "connect", _read_only_pragmas)
    limit_queries(read_engine, settings.query_timeout)  # a page's query past it: a 503
    app.state.settings = settings
    app.state.model_loader = model_loader
    app.state.read_engine, app.state.write_engine = read_engine, write_engine
    app.state.read_sessions = sessionmaker(read_engine, expire_on_commit=False)
    app.state.write_sessions = write_sessions
    app.state.aggregates = Aggregates()
    # model work: its own threads, a bounded queue, a budget per request (app/models.py)
    app.state.models = ModelPool(workers=settings.model_workers, queue=settings.model_queue,
                                 budget=settings.model_budget)
    app.state.renderer = Renderer()
    app.state.clock = utcnow  # the time pages are made at (which running runs are lost); tests move it
    # whole responses of the read-only pages, until the store says they changed (app/page_cache.py)
    app.state.page_cache = PageCache(settings.page_cache_mb * 2 ** 20) if settings.page_cache_mb else None
    # the pickers' options, filled in as pages are served
    app.state.picker_options = PickerOptions(lambda session, es, suite: checkpoint_options(
        checkpoints_of_eval_set(es, session=session, suite=suite)))

    htmx = htmx_js()

    @app.get("/static/vendor/htmx.min.js", include_in_schema=False)
    def vendor_htmx() -> Response:
        return Response(htmx, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(router)
    app.include_router(beliefs_router)
    app.include_router(shrink_router)

    def error(request: Request, status: int, message: str, headers=None) -> Response:
        if request.url.path.endswith((".json", ".jsonl", ".csv")):
            return JSONResponse({"error": message, "status": status}, status_code=status,
                                headers=headers)
        return app.state.renderer.render(request, "error.html",
                                         {"status": status, "message": message},
                                         status_code=status, headers=headers)

    @app.exception_handler(HTTPError)
    async def http_error_of_app(request: Request, exc: HTTPError):
        return error(request, exc.status_code, exc.message, exc.headers)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError):
        if is_query_timeout(exc):
            timeout = QueryTimeout(settings.query_timeout)
            return error(request, timeout.status_code, timeout.message)
        raise exc  # a 500, as without this handler

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body"))
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid"))
        return error(request, 422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(jsonable_encoder(exc.detail))
        if exc.status_code == 404 and message == "Not Found":
            message = f"nothing at {request.url.path}"
        return error(request, exc.status_code, message, getattr(exc, "headers", None))

    app.add_middleware(PageCacheMiddleware, state=app.state)  # inside the security check
    app.add_middleware(SecurityMiddleware, token=settings.token,
                       allowed_hosts=settings.allowed_hosts)
    return app

