"""The dashboard's caches: what is computed from a checkpoint's predictions, or a pair's, once,
and then served from memory.

A checkpoint's evaluation is written in one transaction (``store.write_evaluation``) and never
changes afterwards, so whatever is computed from its predictions and its (fixed) evaluation set
stays true: its summary (``summaries``), its counts by error kind (in the summary, and on its
run's page for every checkpoint) and a comparison of two checkpoints (``comparison``).
Each is computed on first use (one grouped query, tens of milliseconds on 100,000 predictions)
and then served from memory; so are the arrays the examples page counts with (``app.counting``:
the checkpoint's vector, its evaluation set's arrays, the set's labelled mask keyed by the
labels' version) and the runs' curves. Concurrent first requests for one key compute it once
(``Memo``). ``Warmer`` computes the newest checkpoints' in the background.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

from sqlalchemy import select

from lambdascope.store import Checkpoint

from .comparison import CheckpointVector, Comparison, compute_comparison, compute_vector
from .counting import SetArrays, compute_set_arrays
from .summaries import compute_checkpoint_summary, generalisation_counts, kind_counts


class Memo:
    """A small LRU map whose missing values are computed once even under concurrent requests;
    at most ``maxsize`` values and, with ``max_bytes``, at most that many bytes of values (each
    weighed by its ``nbytes`` when it is stored; the newest value is always kept)."""

    def __init__(self, maxsize: int, max_bytes: int | None = None):
        self.maxsize, self.max_bytes = maxsize, max_bytes
        self.nbytes = 0
        self._sizes: dict[Hashable, int] = {}
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._data:
                    return self._data[key]
            value = compute()
            with self._lock:
                self._data[key] = value
                if self.max_bytes is not None:
                    self._sizes[key] = size = int(getattr(value, "nbytes", 0))
                    self.nbytes += size
                while len(self._data) > self.maxsize or (
                        self.max_bytes is not None and self.nbytes > self.max_bytes and len(self._data) > 1):
                    old, _ = self._data.popitem(last=False)
                    self.nbytes -= self._sizes.pop(old, 0)
                self._computing.pop(key, None)
        return value

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._sizes.clear()
            self.nbytes = 0


VECTOR_BYTES = 256 * 2 ** 20
COMPARISON_BYTES = 512 * 2 ** 20


class Aggregates:
    """The process-wide caches; one per application."""

    def __init__(self) -> None:
        self.summaries = Memo(1024)  # a few kilobytes each: every checkpoint of a large store fits
        self.kinds = Memo(4096)  # small: seven counts a checkpoint
        # by memory: a vector is ~18 bytes an example (1.8 MB for 100,000), a comparison about as
        # much again; these hold every checkpoint and neighbouring pair of a 100 x 100,000 store
        self.vectors = Memo(4096, max_bytes=VECTOR_BYTES)
        self.comparisons = Memo(4096, max_bytes=COMPARISON_BYTES)
        self.sets = Memo(256, max_bytes=VECTOR_BYTES)  # an evaluation set's arrays: ~25 bytes an example
        self.masks = Memo(256)  # a set's labelled examples (by labels version), its terms holding a substring
        self.curves = Memo(512)
        self.generalisation = Memo(1024)  # small: counts by term length and trace length
        self.sparkline_metric: dict[int, str] = {}  # run id -> the metric its sparkline shows

    def clear(self) -> None:
        for memo in (self.summaries, self.kinds, self.vectors, self.comparisons, self.sets, self.masks, self.curves,
                     self.generalisation):
            memo.clear()
        self.sparkline_metric.clear()

    def summary(self, session, ck: int, stamp: Hashable) -> dict[str, Any]:
        """The summary of a checkpoint (``CheckpointSummary.as_dict``; read-only). ``stamp``
        tells checkpoints apart if an id is ever reused (its creation time)."""
        return self.summaries.get((ck, stamp), lambda: compute_checkpoint_summary(
            session, ck, kinds=self.kind_counts(session, ck, stamp)).as_dict())

    def kind_counts(self, session, ck: int, stamp: Hashable) -> dict[str, int]:
        """The checkpoint's predictions by error kind (``summaries.kind_counts``; read-only)."""
        return self.kinds.get((ck, stamp), lambda: kind_counts(session, ck))

    def generalisation_counts(self, session, ck: int, stamp: Hashable) -> dict[str, dict[int, tuple[int, int]]]:
        """The checkpoint's predictions and rollouts counted by term and trace length
        (``summaries.generalisation_counts``; read-only)."""
        return self.generalisation.get((ck, stamp), lambda: generalisation_counts(session, ck))

    def vector(self, session, ck: tuple[int, Hashable]) -> CheckpointVector:
        """Checkpoint ``ck`` = (id, creation time)'s predictions as arrays (read-only)."""
        return self.vectors.get(ck, lambda: compute_vector(session, ck[0]))

    def comparison(self, session, a: tuple[int, Hashable], b: tuple[int, Hashable]) -> Comparison:
        return self.comparisons.get((a, b), lambda: compute_comparison(self.vector(session, a),
                                                                        self.vector(session, b)))

    def set_arrays(self, session, eval_set_id: int) -> SetArrays:
        """An evaluation set's examples as arrays (read-only; a set's examples never change)."""
        return self.sets.get(eval_set_id, lambda: compute_set_arrays(session, eval_set_id))

    def mask(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """A set's mask (``app.counting``), under a key that says what it depends on."""
        return self.masks.get(key, compute)


class Warmer:
    """A background thread that computes the summaries of the checkpoints, newest first (and the
    comparison of each with the one before it in its run, its generalisation counts and its
    evaluation set's arrays) soon
    after the trainer writes them, so that the first person to open a checkpoint does not wait
    for it. ``newest``: only that many of the newest (None: every checkpoint; what the caches
    hold is bounded by their own limits)."""

    def __init__(self, sessions, aggregates: Aggregates, interval: float = 5.0, newest: int | None = None):
        self.sessions, self.aggregates = sessions, aggregates
        self.interval, self.newest = interval, newest
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lambdascope-warmer", daemon=True)

    def start(self) -> "Warmer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def warm_once(self) -> None:
        with self.sessions() as session:
            # typed columns: created_at must come back as the pages see it (a datetime)
            query = select(Checkpoint.id, Checkpoint.created_at, Checkpoint.run_id, Checkpoint.eval_set_id,
                           Checkpoint.step).order_by(Checkpoint.id.desc())
            rows = session.execute(query if self.newest is None else query.limit(self.newest)).all()
            before: dict[int, tuple] = {}  # checkpoint id -> the one before it in its run and set
            previous: dict[tuple[int, int], tuple] = {}
            for r in sorted(rows, key=lambda r: (r.run_id, r.eval_set_id, r.step, r.id)):
                if (r.run_id, r.eval_set_id) in previous:
                    before[r.id] = previous[(r.run_id, r.eval_set_id)]
                previous[(r.run_id, r.eval_set_id)] = r
            for r in rows:  # newest first
                if self._stop.is_set():
                    return
                self.aggregates.summary(session, r.id, r.created_at)
                self.aggregates.generalisation_counts(session, r.id, r.created_at)
                self.aggregates.set_arrays(session, r.eval_set_id)  # the examples page's counts
                b = before.get(r.id)
                if b is not None:
                    self.aggregates.comparison(session, (b.id, b.created_at), (r.id, r.created_at))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.warm_once()
            except Exception as e:  # never let warming take the server down
                print(f"lambdascope: warming the caches failed: {type(e).__name__}: {e}", flush=True)
            self._stop.wait(self.interval)
