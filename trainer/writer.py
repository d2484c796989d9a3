"""The store writer: a background thread that owns the database session, so that training
never waits for the database.

The training loop only puts items on an unbounded queue (``metric``, ``evaluation``,
``update_run``), which never blocks. The thread commits metric points at least every
``flush_seconds`` so that curves move while a run trains, and writes each evaluation (the
checkpoint row, all predictions, rollouts and its metric points) in one transaction through
``store.write_evaluation``: a reader sees all of it or none of it, and a crash leaves all of it
or none of it. The checkpoint file the row names is fsynced (with its folder) first, so that
not even a power loss leaves a row without its whole file.

A database error is kept and raised in the training thread at its next call (``check``), so a
run does not go on silently unrecorded.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

from sqlalchemy import update

from lambdascope.store import MetricPoint, Run, utcnow, write_evaluation


class WriterError(RuntimeError):
    pass


class StoreWriter:
    def __init__(self, sessionmaker, flush_seconds: float = 2.0):
        self.sessionmaker = sessionmaker
        self.flush_seconds = flush_seconds
        self.error: BaseException | None = None
        self.written = {"metric_points": 0, "evaluations": 0}
        self.busy_seconds = 0.0  # wall time the thread spent writing
        self.cpu_seconds = 0.0  # CPU time of the thread: what it takes from training
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    # -- the training side: never blocks ------------------------------------------------------

    def check(self) -> None:
        if self.error is not None:
            raise WriterError(f"the store writer failed: {type(self.error).__name__}: {self.error}") from self.error

    def metric(self, run_id: int, step: int, name: str, value: float) -> None:
        self.check()
        self._queue.put(("metric", dict(run_id=run_id, step=step, name=name, value=float(value), time=utcnow())))

    def evaluation(self, **kwargs: Any) -> None:
        """Arguments of ``store.write_evaluation`` (without the session)."""
        self.check()
        self._queue.put(("evaluation", kwargs))

    def update_run(self, run_id: int, **values: Any) -> None:
        self.check()
        self._queue.put(("run", (run_id, values)))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is written (used at the end, and by tests)."""
        done = threading.Event()
        self._queue.put(("flush", done))
        done.wait(timeout)
        self.check()

    def close(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._queue.put(("stop", None))
            self._thread.join(timeout)
        self.check()

    # -- the thread -----------------------------------------------------------------------------

    def _loop(self) -> None:
        pending: list[dict] = []
        last_flush = time.monotonic()
        while True:
            wait = max(0.0, self.flush_seconds - (time.monotonic() - last_flush))
            try:
                kind, item = self._queue.get(timeout=wait if pending else None)
            except queue.Empty:
                kind, item = "tick", None
            try:
                if kind == "metric":
                    pending.append(item)
                elif kind == "evaluation":
                    self._write_evaluation(item)
                elif kind == "run":
                    self._write_metrics(pending)
                    pending = []
                    self._update_run(*item)
                if kind in ("tick", "flush", "stop") or time.monotonic() - last_flush >= self.flush_seconds:
                    self._write_metrics(pending)
                    pending, last_flush = [], time.monotonic()
            except Exception as e:  # keep the first error; drop what cannot be written
                if self.error is None:
                    self.error = e
                pending = []
            self.cpu_seconds = time.thread_time()
            if kind == "flush":
                item.set()
            elif kind == "stop":
                return

    def _write_metrics(self, points: list[dict]) -> None:
        if not points:
            return
        t0 = time.perf_counter()
        with self.sessionmaker() as s, s.begin():
            s.execute(MetricPoint.__table__.insert(), points)
        self.written["metric_points"] += len(points)
        self.busy_seconds += time.perf_counter() - t0

    def _write_evaluation(self, kwargs: dict) -> None:
        t0 = time.perf_counter()
        make_durable(kwargs.get("path"))  # the file first: a committed row never names a lost file
        with self.sessionmaker() as s, s.begin():
            write_evaluation(s, **kwargs)
        self.written["evaluations"] += 1
        self.busy_seconds += time.perf_counter() - t0

    def _update_run(self, run_id: int, values: dict) -> None:
        with self.sessionmaker() as s, s.begin():
            s.execute(update(Run).where(Run.id == run_id).values(updated_at=utcnow(), **values))


def make_durable(path: str | None) -> None:
    """fsync a checkpoint file and its folder. The trainer saves a checkpoint (a temporary file
    renamed into place) before it queues the evaluation that names it; without this, a power
    loss after the row's commit could leave the row naming an empty or truncated file, since
    neither the file's bytes nor the rename need be on disk yet. A missing file (a test's path,
    a file from elsewhere) is left alone. Runs in the writer's thread, off the training loop."""
    if not path:
        return
    for target in (path, os.path.dirname(os.path.abspath(path))):
        try:
            fd = os.open(target, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


class NullWriter:
    """The same interface, writing nothing: training without a store (and the overhead benchmark)."""

    error = None
    busy_seconds = 0.0
    cpu_seconds = 0.0

    def __init__(self) -> None:
        self.written = {"metric_points": 0, "evaluations": 0}

    def check(self) -> None:
        pass

    def metric(self, *args, **kwargs) -> None:
        pass

    def evaluation(self, **kwargs) -> None:
        pass

    def update_run(self, *args, **kwargs) -> None:
        pass

    def flush(self, timeout=None) -> None:
        pass

    def close(self, timeout=None) -> None:
        pass
