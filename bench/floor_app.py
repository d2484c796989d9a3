"""The floor of bench/bench_dashboard.py: a bare Starlette endpoint on the dashboard's server
stack (uvicorn as ``lambdascope serve`` runs it, a synchronous handler in the same worker-thread
pool with the same number of threads, a small HTML page). What a request costs when the
dashboard does nothing: every page kind's server CPU is printed as a multiple of it.

    .venv/bin/python bench/floor_app.py PORT [THREADS]
"""

from __future__ import annotations

import contextlib
import sys

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

BODY = "<!doctype html><html><head><title>floor</title></head><body><p>floor</p></body></html>"


def page(request):  # a plain function: Starlette runs it in the worker-thread pool, as FastAPI does
    return HTMLResponse(BODY)


def make_app(threads: int) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    return Starlette(routes=[Route("/", page)], lifespan=lifespan)


if __name__ == "__main__":
    port = int(sys.argv[1])
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    uvicorn.run(make_app(threads), host="127.0.0.1", port=port, log_level="warning")
