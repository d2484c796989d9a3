"""Recording any trainer's run: ``from lambdascope import Recorder``.

    with Recorder("runs/lambdascope.db", run="mine", config={"lr": 3e-4}) as rec:
        for step in range(steps):
            ...
            rec.log(step, loss=loss, lr=lr)
            if step % 500 == 0:
                rec.evaluate(step, traces, predictions, offsets="bos-tokens", predict=spans_of)

The recorder writes through the store writer of lambdascope's own trainer
(``lambdascope.writer.StoreWriter``): a background thread owns the database, so ``log`` and
``evaluate`` only queue work and the training loop never waits for the store. The run's row is
marked running with a heartbeat the thread stamps every ``HEARTBEAT_SECONDS``, whatever the loop
is doing; leaving the ``with`` block marks it finished (failed on an exception, stopped on
Ctrl-C), after everything queued is written. A process killed without a word (SIGKILL) leaves
what was committed whole (each evaluation is one transaction) and its run is shown as lost 90 s
after its last heartbeat (``lambdascope.vocabulary.effective_status``), as the trainer's are.

``evaluate`` puts the predictions through the checks of ``lambdascope import``
(``lambdascope.exchange``): spans in the declared offsets (``chars`` or ``bos-tokens``, converted
by ``lambdascope.spans.token_to_char_span``), refused when out of range with a hint, and scored by
the trainer's code (IoU, exact, error kinds, metrics, rollouts).
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
import math
import operator
import os
import warnings
from typing import Any, Callable, Iterable, Sequence

from .exchange import PredictionError, file_sha256, predictions_of, traces_from_records
from .store import open_store, resolve_db_url, utcnow
from .traces import TraceResult
from .vocabulary import HEARTBEAT_SECONDS, RunStatus
from .writer import RunExistsError, StoreWriter

__all__ = ["Recorder", "RecorderError", "PredictionError"]

NAME_MAX = 64  # metric_points.name


class RecorderError(ValueError):
    """A run that cannot be recorded as asked: its name taken, a config that is not JSON, a
    recorder used after it closed."""


def _offsets_hint(offsets: str) -> str:
    return f'pass offsets="{offsets}"'


def _number(name: str, value: Any) -> float:
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()  # a torch or numpy scalar
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is {value!r}: a metric point is a number")
    if not math.isfinite(value):
        raise ValueError(f"{name} is {value}: a metric point is a finite number")
    return float(value)


def _step(step: Any) -> int:
    try:
        value = None if isinstance(step, bool) else operator.index(step)
    except TypeError:
        value = None
    if value is None or not 0 <= value < 2 ** 63:
        raise ValueError(f"step is {step!r}: expected an integer >= 0 (below 2**63)")
    return value


class Recorder:
    """One run of any trainer in a lambdascope store (docs/DESIGN.md, "The Recorder").

    ``db``: a SQLAlchemy URL or a SQLite path (default ``$LAMBDASCOPE_DB`` or
    runs/lambdascope.db); ``run``: the run's name (default ``run-<time>``), which must be new
    unless ``resume``; ``config``: anything JSON, shown on the run's page; ``data_files``: the
    files it trained on (hashed when they exist)."""

    def __init__(self, db: str | None = None, run: str | None = None, config: dict | None = None, *,
                 resume: bool = False, data_files: Sequence[str] = (), flush_seconds: float = 2.0,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS):
        config = dict(config or {})
        try:
            json.dumps(config, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise RecorderError(f"config is not JSON: {e}") from None
        name = run or dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise RecorderError(f"run is {name!r}: expected a name of 1 to 200 characters")
        files = [str(f) for f in data_files]
        data_hash = ""
        if files and all(os.path.isfile(f) for f in files):
            data_hash = file_sha256(files[0]) if len(files) == 1 else \
                hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()
        self.url = resolve_db_url(db)
        self.run = name
        self.engine, session = open_store(self.url)
        self.writer = StoreWriter(session, flush_seconds=flush_seconds, heartbeat_seconds=heartbeat_seconds)
        try:
            self.run_id: int = self.writer.start_run(name, resuming=resume, config=config, data_files=files,
                                                     data_hash=data_hash)
        except RunExistsError as e:
            self._shut()
            raise RecorderError(f"{e}: pass resume=True to continue it, or another run name") from None
        except BaseException:
            self._shut()
            raise
        self.closed = False
        self._evaluated: set[int] = set()
        atexit.register(self._at_exit)

    # -- while training: queued, never waits for the store ---------------------------------------

    def log(self, step: int, **values: Any) -> None:
        """Metric points at ``step``: ``rec.log(step, loss=0.41, lr=3e-4)``; any name (the
        dashboard knows loss, lr, tokens_per_s, mfu and the evaluation metrics by name), any
        finite number (a torch or numpy scalar too). One point per (name, step): a step logged
        again replaces the stored value."""
        self._open()
        step = _step(step)
        points = []
        for name, value in values.items():
            if len(name) > NAME_MAX:
                raise ValueError(f"metric name {name[:20]!r}… is longer than {NAME_MAX} characters")
            points.append((name, _number(name, value)))
        for name, value in points:
            self.writer.metric(self.run_id, step, name, value)

    def evaluate(self, step: int, traces: Iterable[TraceResult | dict | str], predictions: Sequence[Sequence[Any]],
                 *, offsets: str = "chars", rollouts: dict[str, Sequence[Sequence[int]]] | None = None,
                 predict: Callable[[list[str]], Sequence[Sequence[int]]] | None = None,
                 checkpoint: str | None = None, name: str | None = None) -> dict:
        """Store an evaluation at ``step``: the model's prediction on every step of ``traces``.

        ``traces``: complete traces (``lambdascope.traces.read_traces``'s ``TraceResult``s, or
        their records as dicts or JSON lines, validated here as ``lambdascope check`` does);
        ``predictions``: one per step in the traces' order, ``(start, end)`` or ``(start, end,
        start_conf, end_conf)``, in ``offsets`` (``"chars"`` or ``"bos-tokens"``, BOS at 0 and
        normal form ``(0, 0)``). A rollout per trace, optional: ``predict`` (a batch of terms ->
        spans in ``offsets``) lets the model reduce each trace's first term now, as the trainer
        does; or ``rollouts`` gives the spans it chose, by trace_id. ``checkpoint``: the model's
        file, if any (shown on the checkpoint's page); ``name``: a named evaluation.

        Checks and scores in the caller's thread (PredictionError, nothing queued, on any bad
        prediction), writes in the writer's: the evaluation set, the checkpoint, predictions,
        rollouts and metric points in one transaction. Returns the metrics."""
        self._open()
        step = _step(step)
        if name is None and step in self._evaluated:
            raise ValueError(f"step {step} is evaluated already in this run (give a name for a second evaluation)")
        traces = list(traces)
        if not all(isinstance(t, TraceResult) for t in traces):
            if any(isinstance(t, TraceResult) for t in traces):
                raise ValueError("traces: give TraceResults or records, not both")
            traces = traces_from_records(traces, source="traces")
        p = predictions_of(traces, predictions, offsets, rollouts=rollouts, predict=predict, hint=_offsets_hint,
                           where="Recorder.evaluate")
        for w in p.warnings:
            warnings.warn(w.replace("(docs/", "(see docs/"), stacklevel=2)
        ev = p.evaluation(f"recorded by lambdascope.Recorder for run {self.run!r}")
        ev["metrics"].update(step=step, source={"by": "lambdascope.Recorder", "offsets": offsets,
                                                "confidences": p.confidences})
        ev["metric_points"] = [dict(m, step=step) for m in ev["metric_points"]]
        self.writer.evaluation(run_id=self.run_id, step=step, name=name,
                               path=str(checkpoint) if checkpoint else "(recorded by lambdascope.Recorder)", **ev)
        if name is None:
            self._evaluated.add(step)
        return dict(ev["metrics"])

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is in the store (``evaluate`` and ``log`` never do)."""
        self._open()
        self.writer.flush(timeout)

    # -- the end --------------------------------------------------------------------------------

    def close(self, status: str = RunStatus.FINISHED, message: str | None = None) -> None:
        """Write what is queued, mark the run (finished by default; failed or stopped with a
        message) and stop the writer. A second close does nothing. WriterError when the store
        could not be written (the run is then not what it should say)."""
        if self.closed:
            return
        if status not in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.STOPPED):
            raise ValueError(f"status is {status!r}: a run ends finished, failed or stopped")
        self.closed = True
        atexit.unregister(self._at_exit)
        try:
            self.writer.update_run(self.run_id, status=status, finished_at=utcnow(), message=message)
            self.writer.close()
        finally:
            self._shut()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            self.close()
        elif issubclass(kind, KeyboardInterrupt):
            self._close_quietly(RunStatus.STOPPED, "interrupted (KeyboardInterrupt)")
        else:
            self._close_quietly(RunStatus.FAILED, f"{kind.__name__}: {exc}")
        return False

    def _close_quietly(self, status: str, message: str) -> None:
        """Close while an exception is on its way: that one is the news, not the store's."""
        try:
            self.close(status, message)
        except Exception:
            pass

    def _open(self) -> None:
        if self.closed:
            raise RecorderError(f"the recorder of run {self.run!r} is closed")

    def _shut(self) -> None:
        try:
            self.writer.close(timeout=60)
        except Exception:
            pass
        self.engine.dispose()

    def _at_exit(self) -> None:
        """The process ends without ``close``: write what is queued, and say nothing of how the
        run ended (it stays running, and its heartbeat stops: lost after 90 s)."""
        if not self.closed:
            self.closed = True
            try:
                self.writer.flush(timeout=30)
            except Exception:
                pass
            self._shut()
