"""The dashboard's caches: what is computed from a checkpoint's predictions, or a pair's, once,
and then served from memory.

A checkpoint's evaluation is written in one transaction (``store.write_evaluation``) and never
changes afterwards, so whatever is computed from its predictions and its (fixed) evaluation set
stays true: its summary (``summaries``), its counts by error kind (in the summary, and on its
run's page for every checkpoint) and a comparison of two checkpoints (``comparison``).
Each is computed on first use (one grouped query, tens of milliseconds on 100,000 predictions)
and then served from memory; the examples page's total counts are cached the same way, keyed by
the filter (and by the labels' version when the filter reads labels), and so are the runs'
curves. Concurrent first requests for one key compute it once (``Memo``). ``Warmer`` computes
the newest checkpoints' in the background.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

from sqlalchemy import select

from lambdascope.store import Checkpoint

from .comparison import Comparison, compute_comparison, compute_vector
from .summaries import compute_checkpoint_summary, generalisation_counts, kind_counts


class Memo:
    """A small LRU map whose missing values are computed once even under concurrent requests."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
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
                while len(self._data) > self.maxsize:
                    self._data.popitem(last=False)
                self._computing.pop(key, None)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class Aggregates:
    """The process-wide caches; one per application."""

    def __init__(self) -> None:
        self.summaries = Memo(1024)  # a few kilobytes each: every checkpoint of a large store fits
        self.kinds = Memo(4096)  # small: seven counts a checkpoint
        self.vectors = Memo(24)
        self.comparisons = Memo(32)
        self.counts = Memo(4096)
        self.curves = Memo(512)
        self.generalisation = Memo(256)  # small: counts by term length and trace length
        self.sparkline_metric: dict[int, str] = {}  # run id -> the metric its sparkline shows

    def clear(self) -> None:
        for memo in (self.summaries, self.kinds, self.vectors, self.comparisons, self.counts, self.curves,
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

    def comparison(self, session, a: tuple[int, Hashable], b: tuple[int, Hashable]) -> Comparison:
        def compute() -> Comparison:
            va = self.vectors.get(a, lambda: compute_vector(session, a[0]))
            vb = self.vectors.get(b, lambda: compute_vector(session, b[0]))
            return compute_comparison(va, vb)

        return self.comparisons.get((a, b), compute)

    def count(self, key: Hashable, compute: Callable[[], int]) -> int:
        return self.counts.get(key, compute)


class Warmer:
    """A background thread that computes the summaries of the newest checkpoints (and the
    comparison of each with the one before it in its run) soon after the trainer writes
    them, so that the first person to open a new checkpoint does not wait for it."""

    def __init__(self, sessions, aggregates: Aggregates, interval: float = 5.0, newest: int = 12):
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
            rows = session.execute(select(
                Checkpoint.id, Checkpoint.created_at, Checkpoint.run_id, Checkpoint.eval_set_id,
                Checkpoint.step).order_by(Checkpoint.id.desc()).limit(self.newest)).all()
            previous: dict[tuple[int, int], tuple] = {}
            for r in sorted(rows, key=lambda r: (r.run_id, r.eval_set_id, r.step, r.id)):
                if self._stop.is_set():
                    return
                self.aggregates.summary(session, r.id, r.created_at)
                before = previous.get((r.run_id, r.eval_set_id))
                if before is not None:
                    self.aggregates.comparison(session, (before.id, before.created_at),
                                               (r.id, r.created_at))
                previous[(r.run_id, r.eval_set_id)] = r

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.warm_once()
            except Exception as e:  # never let warming take the server down
                print(f"lambdascope: warming the caches failed: {type(e).__name__}: {e}", flush=True)
            self._stop.wait(self.interval)
