"""Small trace files and a tiny training configuration for the trainer's tests."""

from __future__ import annotations

import json
from pathlib import Path

from lambdascope.generate import Options, generate, trace_records
from lambdascope.terms import parse, print_with_span, step

# a model small enough that a few steps take well under a second on one core
TINY = dict(n_layer=1, n_head=2, d_model=16, d_ff=32, batch_tokens=1024, threads=1, warmup_steps=2,
            eval_traces=20, eval_frac=0.15, val_frac=0.1, metrics_every=0.05)


def write_generated(path: Path, n_traces: int, seed: int = 1) -> list[list[dict]]:
    """``n_traces`` traces of the default distribution (the reference generator); returns the
    records of each trace as dicts."""
    traces = []
    with open(path, "w", encoding="utf-8") as f:
        for tr in generate(Options(seed=seed), n_traces):
            lines = trace_records(Options(seed=seed), tr)
            traces.append([json.loads(x) for x in lines])
            f.write("\n".join(lines) + "\n")
    return traces


def trace_of(term_text: str, trace_id: str) -> list[dict]:
    """The records of the normal-order reduction of a hand-written term."""
    t = parse(term_text)
    steps = []
    while True:
        text, span = print_with_span(t)
        steps.append((text, span))
        if span == (0, 0):
            break
        t = step(t)
    return [{"trace_id": trace_id, "step_k": k, "steps_total": len(steps) - 1, "term": text,
             "target_span": list(span)} for k, (text, span) in enumerate(steps)]


def write_records(path: Path, traces: list[list[dict]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for tr in traces:
            for r in tr:
                f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
