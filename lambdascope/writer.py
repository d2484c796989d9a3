"""The store writer: a background thread that owns the database session, so that training
never waits for the database. lambdascope's trainer (``trainer.train``) and the ``Recorder``
(``lambdascope.recorder``, any other trainer) write through it.

The run's row is written here and nowhere else: ``start_run`` and ``record_data``
(before training starts, waited for: the run's id and the evaluation set's ids are needed) and
``update_run`` (queued). While training, the loop only puts items on an unbounded queue
(``metric``, ``evaluation``, ``update_run``), which never blocks. The thread commits metric points at least every
``flush_seconds`` so that curves move while a run trains, and writes each evaluation (the
checkpoint row, all predictions, rollouts and its metric points; with ``eval_set``, its
evaluation set too) in one transaction through ``store.write_evaluation``: a reader sees all of
it or none of it, and a crash leaves all of it or none of it. The checkpoint file the row names
is fsynced (with its folder) first, so that not even a power loss leaves a row without its
whole file.

The thread also keeps the run's heartbeat (``runs.heartbeat_at``): stamped by ``start_run`` and
then every ``heartbeat_seconds`` on the thread's own timer, whatever the training loop is doing
(a long evaluation sends nothing for minutes), until the run's row says it ended. A running run
whose heartbeat is old is shown as lost (``lambdascope.vocabulary.effective_status``).

Metric points go through ``store.insert_metric_points``: a point of a (run, name, step) the
store holds replaces it, so a run resumed from a checkpoint writes no repeats for the steps it
takes again.

A database error is kept and raised in the training thread at its next call (``check``), so a
run does not go on silently unrecorded.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

from sqlalchemy import delete, select, update

from .store import (Checkpoint, DataProblem, Label, Run, ensure_eval_set, insert_metric_points, utcnow,
                    write_evaluation, write_keyed_evaluation)
from .vocabulary import HEARTBEAT_SECONDS, RunStatus


class WriterError(RuntimeError):
    pass


class RunExistsError(ValueError):
    """A new run was asked for under a name the store already holds (``start_run``)."""

    def __init__(self, name: str):
        super().__init__(f"a run named {name!r} is already in the store")
        self.name = name


def make_durable(path: str | None) -> None:
    """fsync a checkpoint file and its folder. The trainer saves a checkpoint (a temporary file
    renamed into place) before it queues the evaluation that names it; without this, a power
    loss after the row's commit could leave the row naming an empty or truncated file, since
    neither the file's bytes nor the rename need be on disk yet. A missing file (a test's path,
    a file from elsewhere, a recorder's evaluation without one) is left alone. Runs in the
    writer's thread, off the training loop."""
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


class StoreWriter:
    def __init__(self, sessionmaker, flush_seconds: float = 2.0, heartbeat_seconds: float = HEARTBEAT_SECONDS):
        self.sessionmaker = sessionmaker
        self.flush_seconds = flush_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._beating: int | None = None  # the run whose heartbeat the thread keeps
        self._next_beat = 0.0  # time.monotonic() of its next stamp
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
        """Arguments of ``store.write_evaluation`` (without the session); with ``eval_set``,
        those of ``store.write_keyed_evaluation``: the evaluation set is made (or found) in the
        same transaction, and nothing waits for it."""
        self.check()
        self._queue.put(("evaluation", kwargs))

    def update_run(self, run_id: int, **values: Any) -> None:
        self.check()
        self._queue.put(("run", (run_id, values)))

    # -- before training: written in the writer's thread, waited for ----------------------------

    def start_run(self, name: str, *, resuming: bool, config: dict, data_files: list[str],
                  data_hash: str) -> int:
        """The run's row, new or resumed, marked running; its id. RunExistsError when a new
        run's name is taken."""

        def write(s) -> int:
            run = s.scalar(select(Run).where(Run.name == name))
            if run is not None and not resuming:
                raise RunExistsError(name)
            if run is None:
                run = Run(name=name, config=config)
                s.add(run)
            run.status, run.message, run.updated_at, run.finished_at = RunStatus.RUNNING, None, utcnow(), None
            run.data_files, run.data_hash = data_files, data_hash
            run.heartbeat_at = run.updated_at
            s.flush()
            self._beating, self._next_beat = run.id, time.monotonic() + self.heartbeat_seconds
            return run.id

        return self._call(write)

    def record_data(self, run_id: int, *, problems: list, report: dict, failure: str | None,
                    eval_set: tuple[str, str, list] | None) -> tuple[int | None, dict | None]:
        """The data's validation report and problems on the run; the run failed with ``failure``,
        or else its evaluation set ``(name, source, traces)`` made (or found): its id and the
        example ids by (identity, step)."""

        def write(s):
            s.execute(delete(DataProblem).where(DataProblem.run_id == run_id))
            if problems:
                s.execute(DataProblem.__table__.insert(), [
                    dict(run_id=run_id, file=p.source, line=p.line, reason=p.reason, detail=p.detail)
                    for p in problems])
            run = s.get(Run, run_id)
            run.validation = report
            if failure:
                run.status, run.message, run.finished_at = RunStatus.FAILED, failure, utcnow()
                self._beating = None
                return None, None
            if eval_set is None:
                return None, None
            eval_set_id, example_ids = ensure_eval_set(s, *eval_set)
            run.eval_set_id = eval_set_id
            return eval_set_id, example_ids

        return self._call(write)

    def has_evaluation(self, run_id: int, step: int, suite: str | None = None) -> bool:
        """Whether the run's evaluation at ``step`` is stored (a resumed run killed between a
        checkpoint's save and its evaluation's commit has it to write again); with ``suite``,
        that suite's evaluation of the checkpoint."""
        which = Checkpoint.suite.is_(None) if suite is None else Checkpoint.suite == suite
        return self._call(lambda s: s.scalar(select(Checkpoint.id).where(
            Checkpoint.run_id == run_id, Checkpoint.step == step, Checkpoint.name.is_(None),
            which)) is not None)

    def eval_sets(self, sets: list[tuple[str, str, list]]) -> list[tuple[int, dict]]:
        """Evaluation sets ``(name, source, traces)`` made (or found), waited for: each one's id
        and example ids by (identity, step) (the evaluation suites')."""
        return self._call(lambda s: [ensure_eval_set(s, *es) for es in sets])

    def _call(self, fn):
        """Run ``fn(session)`` in one transaction in the writer's thread, after what is queued;
        its result, or its exception raised here."""
        self.check()
        box: dict = {}
        done = threading.Event()
        self._queue.put(("call", (fn, box, done)))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

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
            now = time.monotonic()
            waits = [max(0.0, self.flush_seconds - (now - last_flush))] if pending else []
            if self._beating is not None:
                waits.append(max(0.0, self._next_beat - now))
            try:
                kind, item = self._queue.get(timeout=min(waits) if waits else None)
            except queue.Empty:
                kind, item = "tick", None
            try:
                if self._beating is not None and time.monotonic() >= self._next_beat:
                    self._beat()
                if kind == "metric":
                    pending.append(item)
                elif kind == "evaluation":
                    # what was logged before it first: a store that holds an evaluation holds
                    # every point logged before it, even when the process dies right after
                    self._write_metrics(pending)
                    pending = []
                    self._write_evaluation(item)
                elif kind == "run":
                    self._write_metrics(pending)
                    pending = []
                    self._update_run(*item)
                elif kind == "call":
                    self._run_call(*item)
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

    def _beat(self) -> None:
        """Stamp the run's heartbeat (the next one is due ``heartbeat_seconds`` from now, even
        if this one fails: the error is the training thread's to raise)."""
        run_id, self._next_beat = self._beating, time.monotonic() + self.heartbeat_seconds
        with self.sessionmaker() as s, s.begin():
            s.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow()))

    def _write_metrics(self, points: list[dict]) -> None:
        if not points:
            return
        t0 = time.perf_counter()
        with self.sessionmaker() as s, s.begin():
            insert_metric_points(s, points)
        self.written["metric_points"] += len(points)
        self.busy_seconds += time.perf_counter() - t0

    def _write_evaluation(self, kwargs: dict) -> None:
        t0 = time.perf_counter()
        make_durable(kwargs.get("path"))  # the file first: a committed row never names a lost file
        with self.sessionmaker() as s, s.begin():
            if "eval_set" in kwargs:
                write_keyed_evaluation(s, **kwargs)
            else:
                write_evaluation(s, **kwargs)
        self.written["evaluations"] += 1
        self.busy_seconds += time.perf_counter() - t0

    def _run_call(self, fn, box: dict, done: threading.Event) -> None:
        try:
            with self.sessionmaker() as s, s.begin():
                box["value"] = fn(s)
        except Exception as e:  # the caller's to handle, not the writer's
            box["error"] = e
        finally:
            done.set()

    def _update_run(self, run_id: int, values: dict) -> None:
        now = utcnow()
        if "status" in values and values["status"] != RunStatus.RUNNING and run_id == self._beating:
            self._beating = None  # ended: no heartbeat after its last word
        elif run_id == self._beating:
            values = dict(values, heartbeat_at=now)
        with self.sessionmaker() as s, s.begin():
            s.execute(update(Run).where(Run.id == run_id).values(updated_at=now, **values))


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

    def start_run(self, *args, **kwargs) -> None:
        return None

    def record_data(self, *args, **kwargs) -> tuple[None, None]:
        return None, None

    def has_evaluation(self, *args, **kwargs) -> bool:
        return True

    def eval_sets(self, sets) -> list[tuple[None, None]]:
        return [(None, None) for _ in sets]

    def flush(self, timeout=None) -> None:
        pass

    def close(self, timeout=None) -> None:
        pass


def labelled_identities(sessionmaker) -> set[str]:
    """The identities of the traces labelled in the store: left out of training."""
    with sessionmaker() as s:
        return set(s.scalars(select(Label.trace_identity).distinct()))
