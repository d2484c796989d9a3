"""Model work off the page threads: a bounded pool for everything that runs a model (the
playground's rollout, beliefs, attention, head scores), each request within a budget.

- Pages run in anyio's worker threads, ``settings.threads`` of them (``main.create_app``). Model
  work runs in this pool's own ``settings.model_workers`` threads: a handler that needs a model
  is ``async``, does its page part in a page thread (``in_page_thread``: the store's queries)
  and then awaits ``ModelPool.run``, holding no page thread meanwhile. So a slow model request
  never delays another page.
- At most ``model_workers + model_queue`` model requests are in the pool at once, running or
  waiting for a worker; one more is refused with ``errors.TooManyRequests`` (429, with a
  Retry-After of the time the queue ahead of it may take).
- Each request gets a ``Budget`` of ``settings.model_budget`` seconds of model time, counted
  from when its checkpoint is loaded (a first load, once per checkpoint, is not counted): the
  work checks it between its steps (a rollout step, a batch of beliefs or of head scores) and
  stops there, and the page shows what was done and says that it stopped.
- Loaded predictors are kept (the four most recent checkpoints), and so are results computed in
  full within their budget (``ModelPool.results``); a result cut short is shown, not kept.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Callable, Hashable, Mapping, TypeVar

import anyio.to_thread
from fastapi import Depends, Request

from lambdascope.predictor import ModelLoader, ModelUnavailable, SpanPredictor

from .cache import Memo
from .errors import TooManyRequests

T = TypeVar("T")
PREDICTORS = 4  # checkpoints kept loaded
RESULTS = 256  # results kept (a trace's beliefs, a checkpoint's head scores, ...)
BUDGET_STOPPED = "stopped: the model's time budget"  # how ``Budget.stopped`` words begin


class Budget:
    """The model time one request may use: ``seconds`` from ``start()`` (the pool starts it
    when a worker takes the request, and again once the checkpoint is loaded)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start()

    def start(self) -> None:
        self.started = time.monotonic()

    @property
    def deadline(self) -> float:
        """The ``time.monotonic()`` instant it runs out (what the predictor's methods take)."""
        return self.started + self.seconds

    def out(self) -> bool:
        return time.monotonic() > self.deadline

    def spent(self) -> float:
        return time.monotonic() - self.started

    def stopped(self, what: str) -> str:
        """The page's words for work cut short: ``what`` says what was done."""
        return f"{BUDGET_STOPPED} of {self.seconds:g} s per request ran out ({what})"


class Results:
    """A small LRU map of finished results, shared by the pool's workers."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)


DECODE_MARK = "#decode="  # in a model reference: what follows is the decoder (trainer.config.DECODES)


def model_ref(ck: Mapping[str, Any]) -> str | None:
    """The model behind a checkpoint row's predictions, for the model views (beliefs, attention,
    playground, shrink): its file (``path``; None for imported predictions) and the decoder its
    evaluation used (``metrics["decode"]``, as ``lambdascope evaluate --decode`` may set it apart
    from the file's run), so that the beliefs' first span is the stored prediction. Rows from
    before the option name the file alone: it decodes as its run did."""
    path = ck.get("path")
    decode = (ck.get("metrics") or {}).get("decode")
    return f"{path}{DECODE_MARK}{decode}" if path and isinstance(decode, str) and decode else path


class ModelPool:
    """``workers`` threads for model work and room for ``queue`` requests waiting for one."""

    def __init__(self, *, workers: int, queue: int, budget: float):
        if workers < 1 or queue < 0 or not budget > 0:
            raise ValueError(f"model pool: workers >= 1, queue >= 0, budget > 0, got {workers}, {queue}, {budget}")
        self.workers, self.queue, self.budget = workers, queue, budget
        self._executor = self._new_executor()
        self._lock = threading.Lock()
        self._pending = 0  # running or waiting
        self._predictors = Memo(PREDICTORS)
        self.results = Results(RESULTS)

    @property
    def pending(self) -> int:
        return self._pending

    def retry_after(self) -> int:
        """Seconds until a worker is likely free: the requests ahead, a budget each."""
        return max(1, math.ceil(self.budget * self._pending / self.workers))

    async def run(self, fn: Callable[[Budget], T]) -> T:
        """``fn(budget)`` in a model worker; TooManyRequests when the queue is full."""
        with self._lock:
            if self._pending >= self.workers + self.queue:
                wait = self.retry_after()
                raise TooManyRequests(f"the model is busy ({self._pending} requests ahead, "
                                      f"{self.workers} at a time): try again in {wait} s", wait)
            self._pending += 1
        try:
            future = self._executor.submit(lambda: fn(Budget(self.budget)))
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())  # ran, failed or cancelled
        return await asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def predictor(self, loader: ModelLoader | None, ref: str, budget: Budget | None = None) -> SpanPredictor:
        """The predictor of a model reference (``model_ref``: a checkpoint file, and maybe the
        decoder to use), its file loaded once and kept (in a model worker: the caller is a job
        of ``run``). ModelUnavailable says why there is none; ``budget`` starts again once it
        is loaded."""
        if loader is None:
            raise ModelUnavailable("this dashboard was started without a model loader (the trainer "
                                   "or torch is not installed here)")
        path, _, decode = ref.partition(DECODE_MARK)

        def load():
            try:
                return loader(path)
            except Exception as e:  # any failure to load is reported, not raised
                return ModelUnavailable(f"cannot load {path}: {type(e).__name__}: {e}")

        predictor = self._predictors.get((loader, path), load)
        if budget is not None:
            budget.start()
        if isinstance(predictor, ModelUnavailable):
            raise predictor
        if decode and hasattr(predictor, "decoding"):  # trainer.predict.Predictor.decoding
            try:
                return predictor.decoding(decode)
            except ValueError as e:
                raise ModelUnavailable(f"{path}: {e}") from None
        return predictor

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="lambdascope-model")

    def shutdown(self) -> None:
        """Drop the waiting requests and let the workers end after their current one (the
        server is stopping); a later request gets fresh workers."""
        old, self._executor = self._executor, self._new_executor()
        old.shutdown(wait=False, cancel_futures=True)


async def in_page_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in one of the page threads (anyio's default limiter, ``settings.threads``):
    the page part of a handler that then awaits the model pool."""
    return await anyio.to_thread.run_sync(fn)


async def get_model_pool(request: Request) -> ModelPool:
    return request.app.state.models


Pool = Annotated[ModelPool, Depends(get_model_pool)]
