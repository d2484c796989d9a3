"""The training configuration: one object with a default and a comment per field, saved in every
checkpoint and in the run's row. No torch here, so the command line starts fast."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)  # trace files (JSONL), as given
    db: str | None = None  # store URL (None: $LAMBDASCOPE_DB or runs/lambdascope.db)
    run_name: str | None = None  # unique in the store (None: run-<time>)
    out_dir: str | None = None  # checkpoint folder (None: runs/<run name>)
    minutes: float | None = None  # training time budget, evaluation excluded
    steps: int | None = None  # optimiser steps budget (with neither: 60 minutes)
    device: str = "cpu"  # cpu or cuda (bf16 autocast)
    threads: int = 2  # torch CPU threads
    seed: int = 0  # model init and batch order
    # data
    batch_tokens: int = 4096  # batch size x padded length, at most
    max_invalid: float = 0.01  # stop before training when more records than this are invalid
    include_labelled: bool = False  # train on traces labelled in the store too
    val_frac: float = 0.02  # share of traces (by identity hash) for the validation loss
    eval_frac: float = 0.02  # share of traces for the evaluation set
    eval_traces: int = 500  # evaluation traces written to the store, at most
    val_examples: int = 2000  # validation examples, at most
    # optimisation
    lr: float = 2e-3  # peak learning rate (AdamW)
    min_lr_frac: float = 0.05  # the cosine decays to lr x this
    warmup_steps: int = 200  # linear warmup
    weight_decay: float = 0.01  # on matrices only
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0  # max gradient norm
    label_smoothing: float = 0.05  # over the term's positions only
    # model (see ModelConfig)
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_ff: int = 512
    depth_embedding: bool = True
    # recording
    eval_every: str = "5m"  # N optimiser steps, or a training time: 90s, 5m
    metrics_every: float = 2.0  # seconds between metric points (loss, lr, tokens/s)
    peak_file: str = "runs/peak.json"  # bench/peak.py's measured matmul peak, for MFU
    no_store: bool = False  # train without recording anything in the store
    resume: bool = False  # continue the run from the newest checkpoint in out_dir


class TrainError(Exception):
    """A run that cannot start or go on (too many invalid records, no data…): one line, exit 1."""


def parse_every(text: str) -> tuple[str, float]:
    """'500' -> ('steps', 500); '90s' -> ('seconds', 90); '5m' -> ('seconds', 300)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([sm]?)\s*", text)
    if not m or float(m.group(1)) <= 0 or (not m.group(2) and "." in m.group(1)):
        raise ValueError(f"expected N steps or a time such as 90s or 5m, got {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    if not unit:
        return "steps", value
    return "seconds", value * (60 if unit == "m" else 1)


