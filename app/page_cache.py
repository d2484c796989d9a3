"""Whole responses of the read-only pages, kept until the store says they changed.

Most of what the dashboard shows cannot change: a checkpoint's predictions and rollouts are
written once, in one transaction. What does change is small and cheap to watch: new checkpoints,
new metric points, a run's row (status, heartbeat, updated_at), labels, the clock (which running
runs are lost). So every cacheable GET is answered by an ASGI middleware that first reads a
*stamp* of what the page depends on, one SQL statement of index lookups (``STAMPS``), and then:

- a hit on (address, htmx headers, stamp): the stored body, without touching the handler;
- ``If-None-Match`` equal to the ETag of (address, htmx headers, stamp): 304, no body;
- otherwise the handler runs; a 200 answer whose body is whole is stored (least recently used
  entries go past ``max_bytes``).

What each kind of page depends on:

- ``store`` pages (a checkpoint, examples, a trace, compare, labels): the newest checkpoint id
  (pickers list every checkpoint; prev/next links), the labels (count and newest id), the runs'
  count. None of them shows a run's status.
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

DEFAULT_MAX_BYTES = 64 * 2 ** 20
MAX_ENTRY_BYTES = 4 * 2 ** 20
VARY = (b"hx-request", b"hx-target", b"hx-history-restore-request")

# path -> the kind of stamp it needs; anything else passes through
ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/(?:runs\.json)?"), "runs"),
    (re.compile(r"/runs/(\d{1,18})(?:\.json)?"), "run"),
    (re.compile(r"/checkpoints/\d{1,18}(?:/generalisation)?(?:\.json)?"), "store"),
    (re.compile(r"/(?:examples|compare|labels)(?:\.json)?"), "store"),
    (re.compile(r"/traces/[^/.]+"), "store"),  # the page only: its JSON twin carries model beliefs
)

_LABELS = "(SELECT count(*) FROM labels), (SELECT max(id) FROM labels)"
STAMPS = {  # constant text only: no request value is ever part of it
    "store": text("SELECT (SELECT max(id) FROM checkpoints), " + _LABELS + ", (SELECT count(*) FROM runs)"),
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
            return kind, ({"r": int(m[1])} if kind == "run" else {})
    return None


class PageCache:
    """The responses, least recently used first, at most ``max_bytes`` of bodies in all."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[int, list, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.not_modified = 0

    def get(self, key: bytes) -> tuple[int, list, bytes] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: bytes, status: int, headers: list, body: bytes) -> None:
        if len(body) > min(MAX_ENTRY_BYTES, self.max_bytes):
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[2])
            self._entries[key] = (status, headers, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
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


class PageCacheMiddleware:
    """The ASGI side: see the module's docstring. ``app.state`` gives the read engine, the cache
    (``page_cache``; None: off) and the clock."""

    def __init__(self, app, *, state) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        cache: PageCache | None = getattr(self.state, "page_cache", None)
        if scope["type"] != "http" or scope["method"] != "GET" or cache is None:
            return await self.app(scope, receive, send)
        route = route_kind(scope["path"])
        if route is None:
            return await self.app(scope, receive, send)
        kind, params = route
        engine = self.state.read_engine
        try:
            if engine.dialect.name == "sqlite":  # index lookups in a local file: quicker than a thread hop
                stamp = read_stamp(engine, kind, params, self.state.clock)
            else:  # a network round trip: not on the event loop
                stamp = await anyio.to_thread.run_sync(read_stamp, engine, kind, params, self.state.clock)
        except DBAPIError:  # a locked or unreachable store: the page itself says what is wrong
            stamp = None
        if stamp is None:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        key = b"\x00".join([scope["path"].encode(), scope.get("query_string", b""),
                            *(headers.get(h, b"") for h in VARY), repr(stamp).encode()])
        etag = b'"' + hashlib.blake2b(key, digest_size=12).hexdigest().encode() + b'"'
        if headers.get(b"if-none-match") == etag:
            cache.not_modified += 1
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(b"etag", etag), (b"cache-control", b"no-cache")]})
            await send({"type": "http.response.body", "body": b""})
            return
        hit = cache.get(key)
        if hit is not None:
            status, response_headers, body = hit
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
            return

        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    message = dict(message, headers=[*message.get("headers", []), (b"etag", etag),
                                                     (b"cache-control", b"no-cache")])
                started.update(message)
            elif message["type"] == "http.response.body" and started.get("status") == 200:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    cache.put(key, 200, started["headers"], b"".join(chunks))
            await send(message)

        await self.app(scope, receive, keep)
