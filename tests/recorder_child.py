"""A process that records a run with ``lambdascope.Recorder`` until it is killed (tests/test_recorder.py).

``python -m tests.recorder_child DB LOG`` logs a loss point every few milliseconds and evaluates
every ``EVAL_EVERY`` steps (predictions as BOS-token spans, rollouts by a predict function), for
ever. Each evaluation's write is slowed from outside (nothing in lambdascope/ knows): inside the
store writer's transaction a pause comes before every SQL statement and before the COMMIT, so
that a SIGKILL can land inside one. ``eval_begin STEP TIME`` and ``eval_end STEP TIME`` (committed)
lines go to LOG.
"""

from __future__ import annotations

import sys
import threading
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine

EVAL_EVERY = 15
PAUSE = 0.01
N_TRACES = 8


def _log(path: str, what: str, step: int) -> None:
    with open(path, "a") as f:
        f.write(f"{what} {step} {time.time():.6f}\n")


def slow_evaluation_writes(log: str) -> None:
    import lambdascope.writer as lw

    inside = threading.local()

    @event.listens_for(Engine, "before_cursor_execute")
    def _slow_statement(*args, **kwargs):
        if getattr(inside, "step", None) is not None:
            time.sleep(PAUSE)

    @event.listens_for(Engine, "commit")
    def _slow_commit(conn):
        if getattr(inside, "step", None) is not None:
            time.sleep(PAUSE)

    real = lw.StoreWriter._write_evaluation

    def write(self, kwargs):
        inside.step = kwargs["step"]
        _log(log, "eval_begin", kwargs["step"])
        try:
            real(self, kwargs)
        finally:
            inside.step = None
        _log(log, "eval_end", kwargs["step"])

    lw.StoreWriter._write_evaluation = write


def main(db: str, log: str) -> int:
    from lambdascope import Recorder
    from lambdascope.exchange import traces_from_records
    from lambdascope.generate import Options, generate, trace_records
    from lambdascope.spans import char_to_token_span
    from lambdascope.terms import parse, print_with_span

    slow_evaluation_writes(log)
    opts = Options(seed=21)
    traces = traces_from_records([x for tr in generate(opts, N_TRACES) for x in trace_records(opts, tr)])
    records = [r for t in traces for r in t.records]

    def predict(terms):  # right at even steps of a term's length, normal form otherwise
        return [char_to_token_span(*print_with_span(parse(t))[1]) if len(t) % 2 == 0 else (0, 0) for t in terms]

    preds = predict([r.term for r in records])
    with Recorder(db, run="killed", config={"child": True}, flush_seconds=0.05, heartbeat_seconds=0.2) as rec:
        step = 0
        while True:
            step += 1
            rec.log(step, loss=1.0 / step, lr=1e-3)
            if step % EVAL_EVERY == 0:
                rec.evaluate(step, traces, preds, offsets="bos-tokens", predict=predict)
            time.sleep(0.005)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
