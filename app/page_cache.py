"""Whole responses of the read-only pages, kept until the store says they changed.

Most of what the dashboard shows cannot change: a checkpoint's predictions and rollouts are
written once, in one transaction. What does change is small and cheap to watch: new checkpoints,
new metric points, a run's row (status, heartbeat, updated_at), labels, the clock (which running
runs are lost). So every cacheable GET is answered by an ASGI middleware that first reads a
*stamp* of what the page depends on, one SQL statement of index lookups (``STAMPS``), and then:

- a hit on (address, htmx headers, stamp): the stored body, without touching the handler;
- ``If-None-Match`` equal to the ETag of (address, htmx headers, stamp): 304, no body;
- otherwise the handler runs; a 200 answer whose body is whole is stored (least recently used
  entries go past ``max_bytes``). A request for a page that another request is making at that
  moment (same key) waits for it and is answered from what it kept (or, if it kept nothing, makes
  the page itself): one page made, not one a request.

What each kind of page depends on:

- ``store`` pages (examples, a trace, compare, labels): the newest checkpoint id (pickers list
  their set's checkpoints), the labels (count and newest id), the runs' count. None of them shows
  a run's status. A page whose checkpoints are in picker markers only (``app.pickers``) is kept
  without the newest checkpoint id and filled in each time it is served.
- ``checkpoint`` pages (``/checkpoints/N``, its generalisation fragment, their JSON): the newest
  checkpoint id of its run (prev/next links, the suites of its step), the labels, the runs' count.
- ``run`` (``/runs/N``): that run's row (status, updated_at, heartbeat), its newest checkpoint
  and newest metric point (index ``ix_metric_points_run_id``), the labels, and, while it is
  running, the clock to the second (the page says for how long it has been silent).
- ``runs`` (``/``): every run's newest update and heartbeat, the newest checkpoint and metric
  point, and the clock to the second while any run is running.

A metric point written again at a step it already had (a resumed run going over old steps) keeps
its id: such a page may then be stale until the run's next heartbeat (10 s) or new point.
Model work (the trace JSON with its beliefs, the playground, shrink, heads, attention) and
downloads are never cached. The clock is ``app.state.clock`` (tests move it), as for the pages.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any, Callable

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from lambdascope.vocabulary import RunStatus

from .pickers import FILLED_HEADER, PREFIX, fill
from .settings import DEFAULT_PAGE_CACHE_MB

DEFAULT_MAX_BYTES = DEFAULT_PAGE_CACHE_MB * 2 ** 20
MAX_ENTRY_BYTES = 4 * 2 ** 20
VARY = (b"hx-request", b"hx-target", b"hx-history-restore-request")
# says whether a kept page answered ("hit") or the handler made it ("miss"), as a CDN's X-Cache
# does: the benchmark counts them; a page the cache does not keep has no such header
CACHE_HEADER = b"x-lambdascope-cache"

# path -> the kind of stamp it needs; anything else passes through
ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/(?:runs\.json)?"), "runs"),
    (re.compile(r"/runs/(\d{1,18})(?:\.json)?"), "run"),
    (re.compile(r"/checkpoints/(\d{1,18})(?:/generalisation)?(?:\.json)?"), "checkpoint"),
    (re.compile(r"/(?:examples|compare|labels)(?:\.json)?"), "store"),
    (re.compile(r"/traces/[^/.]+"), "store"),  # the page only: its JSON twin carries model beliefs
)

_LABELS = "(SELECT count(*) FROM labels), (SELECT max(id) FROM labels)"
STAMPS = {  # constant text only: no request value is ever part of it
    "store": text("SELECT (SELECT max(id) FROM checkpoints), " + _LABELS + ", (SELECT count(*) FROM runs)"),
    "checkpoint": text("SELECT (SELECT max(c.id) FROM checkpoints c WHERE c.run_id = "
                       "(SELECT run_id FROM checkpoints WHERE id = :ck)), " + _LABELS + ", (SELECT count(*) FROM runs)"),
    "run": text("SELECT status, updated_at, heartbeat_at, (SELECT max(id) FROM checkpoints WHERE run_id = :r), "
                "(SELECT max(id) FROM metric_points WHERE run_id = :r), " + _LABELS + " FROM runs WHERE id = :r"),
    "runs": text("SELECT count(*), max(updated_at), max(heartbeat_at), "
                 "sum(CASE WHEN status = :running THEN 1 ELSE 0 END), "
                 "(SELECT max(id) FROM checkpoints), (SELECT max(id) FROM metric_points) FROM runs"),
}


def route_kind(path: str) -> tuple[str, dict[str, Any]] | None:
    """The stamp kind of a cacheable path and its parameters, or None."""
    for pattern, kind in ROUTES:
        m = pattern.fullmatch(path)
        if m:
            return kind, ({"r": int(m[1])} if kind == "run" else {"ck": int(m[1])} if kind == "checkpoint" else {})
    return None


class PageCache:
    """The responses, least recently used first, at most ``max_bytes`` of bodies in all."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[int, list, bytes, bool]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.not_modified = 0

    def get(self, *keys: bytes | None) -> tuple[int, list, bytes, bool] | None:
        """The entry of the first of ``keys`` that has one: (status, headers, body, whether the
        body has picker markers to fill)."""
        with self._lock:
            for key in keys:
                entry = self._entries.get(key) if key is not None else None
                if entry is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry
            self.misses += 1
            return None

    def put(self, key: bytes, status: int, headers: list, body: bytes, markers: bool = False) -> None:
        if len(body) > min(MAX_ENTRY_BYTES, self.max_bytes):
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[2])
            self._entries[key] = (status, headers, body, markers)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, (_, _, dropped, _) = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes, "hits": self.hits,
                    "misses": self.misses, "not_modified": self.not_modified}


def read_stamp(engine: Engine, kind: str, params: dict[str, Any], clock: Callable) -> tuple | None:
    """What a page of ``kind`` depends on, as a tuple; None for a run that does not exist (its
    404 is not cached)."""
    with engine.connect() as c:
        if kind == "runs":
            row = c.execute(STAMPS[kind], {"running": RunStatus.RUNNING.value}).one()
            live = bool(row[3])
        else:
            row = c.execute(STAMPS[kind], params).first()
            if row is None:
                return None
            live = kind == "run" and row[0] == RunStatus.RUNNING
    stamp = tuple(str(v) for v in row)
    if live:  # "silent for N s", and lost past 90 s: the page changes with the clock
        stamp += (clock().replace(microsecond=0).isoformat(),)
    return stamp


async def _where_it_is_quick(engine: Engine, fn: Callable, *args):
    """``fn(*args)``, a few index lookups: on the event loop over SQLite (a local file, quicker
    than a thread hop), in a thread over a network store (PostgreSQL: round trips)."""
    if engine.dialect.name == "sqlite":
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)


def _with_length(headers: list, body: bytes, etag: bytes | None = None) -> list:
    """``headers`` with the length of ``body`` (and ``etag``, when given) in place of theirs."""
    drop = (b"content-length", b"etag") if etag is not None else (b"content-length",)
    out = [(k, v) for k, v in headers if k.lower() not in drop] + [(b"content-length", str(len(body)).encode())]
    return out + [(b"etag", etag)] if etag is not None else out


class PageCacheMiddleware:
    """The ASGI side: see the module's docstring. ``app.state`` gives the read engine and
    sessions, the cache (``page_cache``; None: off), the pickers' options and the clock. With
    the cache off, pages with picker markers are still filled (``app.pickers``)."""

    # how long a request waits for the same page being made by another before making it itself
    WAIT_FOR_MAKER_S = 10.0

    def __init__(self, app, *, state) -> None:
        self.app = app
        self.state = state
        # pages being made now, by key: a request for one waits for it rather than making it
        # again (the runs page is made anew at every metric point, and 8 clients ask for it)
        self._making: dict[bytes, asyncio.Event] = {}

    async def _filled(self, body: bytes, version) -> bytes:
        """``body`` with its picker markers filled with the options of ``version`` of the store's
        checkpoints (None: not known, made afresh); a store that cannot be read leaves a picker
        empty (the page itself says what is wrong)."""
        if PREFIX not in body:
            return body
        state = self.state

        def options(es: int, suite: str | None) -> bytes:
            try:
                return state.picker_options.get(state.read_sessions, es, suite, version)
            except DBAPIError:
                return b""

        return await _where_it_is_quick(state.read_engine, fill, body, options)  # an index lookup a (set, suite)

    async def __call__(self, scope, receive, send) -> None:
        cache: PageCache | None = getattr(self.state, "page_cache", None)
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        route = route_kind(scope["path"])
        if route is None:
            return await self.app(scope, receive, send)
        kind, params = route
        if cache is None and kind != "store":
            return await self.app(scope, receive, send)
        engine = self.state.read_engine
        try:
            stamp = await _where_it_is_quick(engine, read_stamp, engine, kind, params, self.state.clock)
        except DBAPIError:  # a locked or unreachable store: the page itself says what is wrong
            stamp = None
        # pickers (store pages) are filled with the options of this version of the checkpoints
        version = stamp[0::3] if stamp is not None and kind == "store" else None  # newest, runs' count
        if stamp is None or cache is None:
            return await self.app(scope, receive, self._sender(send, version))
        headers = dict(scope["headers"])
        base = [scope["path"].encode(), scope.get("query_string", b""), *(headers.get(h, b"") for h in VARY)]
        key = b"\x00".join([*base, repr(stamp).encode()])
        # a store page whose checkpoints are all in picker markers: kept without the newest
        # checkpoint (stamp[0]); the runs' count stays (a deleted run's pages go)
        marked_key = b"\x00".join([*base, b"markers", repr(stamp[1:]).encode()]) if kind == "store" else None
        etag = b'"' + hashlib.blake2b(key, digest_size=12).hexdigest().encode() + b'"'
        if headers.get(b"if-none-match") == etag:
            cache.not_modified += 1
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(b"etag", etag), (b"cache-control", b"no-cache")]})
            await send({"type": "http.response.body", "body": b""})
            return
        hit = cache.get(marked_key, key)
        making = self._making.get(key) if hit is None else None
        if making is not None:  # another request is making this very page: its answer is kept
            try:
                await asyncio.wait_for(making.wait(), self.WAIT_FOR_MAKER_S)
            except asyncio.TimeoutError:
                pass
            hit = cache.get(marked_key, key)  # None if it was not a keepable 200: made here too
        if hit is not None:
            status, response_headers, body, markers = hit
            if markers:  # filled with the checkpoints of now: the ETag of now's stamp
                body = await self._filled(body, version)
                response_headers = _with_length(response_headers, body, etag)
            await send({"type": "http.response.start", "status": status,
                        "headers": [*response_headers, (CACHE_HEADER, b"hit")]})
            await send({"type": "http.response.body", "body": body})
            return
        made = self._making.setdefault(key, asyncio.Event())
        try:
            await self.app(scope, receive, self._sender(send, version, (cache, key, marked_key, etag)))
        finally:
            if self._making.get(key) is made:
                del self._making[key]
            made.set()

    def _sender(self, send, version, keep: tuple | None = None):
        """A ``send`` for the handler's answer: a 200 is collected whole, kept (``keep``: the
        cache, the key, the key without the newest checkpoint, the ETag) and sent with its picker
        markers filled (when its route said it has them); anything else passes as it is."""
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def sender(message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] != 200:
                    return await send(message)
                started.update(message)
            elif message["type"] == "http.response.body" and started:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                headers = list(started.get("headers", []))
                markers = any(k == FILLED_HEADER for k, _ in headers)
                headers = [(k, v) for k, v in headers if k != FILLED_HEADER]
                body = b"".join(chunks)
                if keep is not None:
                    cache, key, marked_key, etag = keep
                    headers += [(b"etag", etag), (b"cache-control", b"no-cache")]
                    cache.put(marked_key if markers and marked_key is not None else key, 200, headers, body, markers)
                    headers = [*headers, (CACHE_HEADER, b"miss")]
                if markers:
                    body = await self._filled(body, version)
                    headers = _with_length(headers, body)
                await send(dict(started, headers=headers))
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        return sender
