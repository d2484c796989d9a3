"""One evaluation of a model on complete traces: step predictions, metrics and rollouts, as
rows ready for ``lambdascope.store.write_evaluation``. Used by training and by
``lambdascope evaluate``."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lambdascope.metrics import GoldTrace, rollout, rollout_summary, score_steps
from lambdascope.traces import TraceResult, eval_set_name, unique_traces
from lambdascope.vocabulary import RunStatus

from .predict import Predictor

__all__ = ["Evaluation", "evaluate", "eval_set_name", "unique_traces", "evaluate_checkpoint"]


@dataclass
class Evaluation:
    metrics: dict  # the checkpoint's summary (JSON)
    predictions: list[dict]  # Prediction rows (example_id …) when example ids were given
    rollouts: list[dict]  # Rollout rows (without checkpoint_id)
    seconds: float


def evaluate(predictor: Predictor, traces: list[TraceResult],
             example_ids: dict[tuple[str, int], int] | None = None, max_len: int = 1024) -> Evaluation:
    """Predict every step of ``traces`` (complete ones), score them, and roll each trace out
    with the model's own predictions. ``example_ids`` maps (identity, step_k) to the store's
    example ids; without it no prediction rows are made. The scoring is the core's
    (``lambdascope.metrics.score_steps``, ``rollout``), as for an imported or recorded model."""
    t0 = time.perf_counter()
    traces = unique_traces(traces)
    records = [(tr.identity, r) for tr in traces for r in tr.records]
    terms = [r.term for _, r in records]
    preds = predictor.predict_many(terms)
    metrics, rows = score_steps(records, preds, example_ids)
    # a rollout that follows the gold trace meets the same terms again: reuse those predictions
    known = dict(zip(terms, [(p[0], p[1]) for p in preds]))

    def predict(texts: list[str]) -> list[tuple[int, int]]:
        missing = list({t for t in texts if t not in known})
        known.update(zip(missing, predictor.spans(missing)))
        return [known[t] for t in texts]

    gold_traces = [GoldTrace(tr.identity, tuple(r.term for r in tr.records), tuple(r.span for r in tr.records))
                   for tr in traces]
    results = rollout(gold_traces, predict, max_len=max_len)
    metrics.update(rollout_summary(results))
    metrics["decode"] = getattr(predictor, "decode", "free")  # trainer.config.DECODES
    seconds = time.perf_counter() - t0
    metrics["eval_seconds"] = round(seconds, 3)
    return Evaluation(metrics, rows, [r.row() for r in results], seconds)


def evaluate_checkpoint(checkpoint: str, paths: list[Path], *, db: str | None = None, name: str | None = None,
                        device: str = "cpu", threads: int = 2, decode: str | None = None) -> tuple[int, dict]:
    """``lambdascope evaluate``: the checkpoint on the complete traces of ``paths``, stored as a
    named evaluation of the checkpoint's run (created in this store if it is not there), decoded
    with ``decode`` (None: as the checkpoint's run did). Returns the new checkpoint row's id and
    the metrics."""
    import torch
    from sqlalchemy import select

    from lambdascope.store import Run, ensure_eval_set, open_store, resolve_db_url, utcnow, write_evaluation
    from lambdascope.traces import TraceValidator, read_traces

    from .config import TrainError
    from .predict import checkpoint_decode, load_checkpoint

    torch.set_num_threads(threads)
    try:
        model, vocab, ckpt = load_checkpoint(checkpoint, device)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise TrainError(f"{checkpoint}: cannot load the checkpoint: {e}")
    v = TraceValidator()
    traces = [tr for tr in read_traces(paths, v) if tr.complete and tr.records]
    names = ", ".join(map(str, paths))
    if v.problems:
        print(f"{names}: {len(v.problems)} problems ({', '.join(f'{r} {n}' for r, n in v.counts.most_common())}); "
              f"only complete traces are evaluated", file=sys.stderr)
    if not traces:
        raise TrainError(f"{names}: no complete trace to evaluate")
    name = name or f"{Path(checkpoint).name} on {names}"
    _, Session = open_store(resolve_db_url(db))
    with Session() as s, s.begin():
        run = s.scalar(select(Run).where(Run.name == ckpt["run_name"]))
        if run is None:  # a checkpoint from another store: its run comes along
            tc = ckpt["train_config"]
            run = Run(name=ckpt["run_name"], config={"train": tc, "model": ckpt["model_config"]},
                      data_files=list(tc.get("data", [])), data_hash="", status=RunStatus.FINISHED,
                      finished_at=utcnow(), message="imported by `lambdascope evaluate`")
            s.add(run)
            s.flush()
        es_id, example_ids = ensure_eval_set(s, eval_set_name(traces), names, traces)
        run_id = run.id
    ev = evaluate(Predictor(model, vocab, device, decode=decode or checkpoint_decode(ckpt)), traces, example_ids)
    m = ev.metrics
    m.update(step=ckpt["step"], evaluated_on=names)
    with Session() as s, s.begin():
        ck_id = write_evaluation(s, run_id=run_id, eval_set_id=es_id, step=ckpt["step"],
                                 path=str(Path(checkpoint).resolve()), metrics=m, predictions=ev.predictions,
                                 rollouts=ev.rollouts, name=name)
    print(f"{name}: {m['examples']} steps of {m['rollouts']} traces: exact {100 * m['exact']:.2f}%, "
          f"mean IoU {m['mean_iou']:.4f}, nf F1 {100 * m['nf_f1']:.2f}%, trace accuracy "
          f"{100 * m['trace_accuracy']:.2f}%, rollout success {100 * m['rollout_success']:.2f}% "
          f"({m['decode']} decoding, {ev.seconds:.1f}s); stored as checkpoint {ck_id} of run {ckpt['run_name']!r}", file=sys.stderr)
    return ck_id, m
