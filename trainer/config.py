"""The training configuration: one object with a default and a comment per field, saved in every
checkpoint and in the run's row; every check of it, and how a run's configuration is resolved
(a new run, or a resumed one from its newest checkpoint). No torch at import, so the command
line starts fast.

Errors cite configuration fields as ``{field}`` (``TrainError.worded``): the library says
``resume needs run_name or out_dir``, the command line ``--resume needs --run-name or --out-dir``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


DECODES = {  # Predictor.decode: what the decoder chooses among
    "free": "any span inside the term, or normal form: the network alone decides where a redex "
            "starts and ends (the error kinds not_subterm, not_redex and missed_nf can happen)",
    "redex": "one of the term's redexes, or normal form: the term is parsed and the network's scores "
             "pick among its redexes, so what is left to the network is which redex to take, or "
             "whether to stop at a term that still has one",
}


MAX_END_DEPTH_BIAS = 64  # depth differences the end pointer tells apart, at most
MAX_END_SPACE_BIAS = 16  # counts of crossed spaces it tells apart, at most


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
    position_scale: float = 1.0  # ModelConfig.position_scale: random stretch of training positions
    depth_rotary: int = 0  # ModelConfig.depth_rotary: rotary pairs per head turned by depth
    end_depth_bias: int = 8  # ModelConfig.end_depth_bias: the end pointer's bias by relative depth (0: off)
    end_space_bias: int = 3  # ModelConfig.end_space_bias: that bias also by the shallower spaces crossed (0: off)
    decode: str = "free"  # DECODES: what evaluations (and the dashboard) decode among
    # recording
    eval_every: str = "5m"  # N optimiser steps, or a training time: 90s, 5m
    metrics_every: float = 2.0  # seconds between metric points (loss, lr, tokens/s)
    peak_file: str = "runs/peak.json"  # the measured matmul peak (trainer/peak.py), for MFU
    no_store: bool = False  # train without recording anything in the store
    # evaluation suites (docs/DESIGN.md, "Evaluation suites"): "NAME=FILE", evaluated at every evaluation
    suites: list[str] = field(default_factory=list)
    suite_share: float = 0.15  # suite evaluation takes at most this share of the training time
    resume: bool = False  # continue the run from the newest checkpoint in out_dir


_FIELD = re.compile(r"\{(\w+)\}")


class TrainError(Exception):
    """A run that cannot start or go on (too many invalid records, no data, a diverged loss):
    one line. ``{name}`` in the message cites a TrainConfig field (see ``worded``)."""

    def worded(self, name_of: Callable[[str], str] = lambda f: f) -> str:
        """The message with each cited field named by ``name_of`` (the command line: its flag)."""
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        return _FIELD.sub(lambda m: name_of(m[1]) if m[1] in fields else m[0], str(self.args[0]))

    def __str__(self) -> str:
        return self.worded()


class ConfigError(TrainError):
    """A configuration that cannot run at all (nothing was started): bad input."""


def parse_every(text: str) -> tuple[str, float]:
    """'500' -> ('steps', 500); '90s' -> ('seconds', 90); '5m' -> ('seconds', 300)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([sm]?)\s*", text)
    if not m or float(m.group(1)) <= 0 or (not m.group(2) and "." in m.group(1)):
        raise ValueError(f"expected N steps or a time such as 90s or 5m, got {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    if not unit:
        return "steps", value
    return "seconds", value * (60 if unit == "m" else 1)


def check_config(cfg: TrainConfig) -> None:
    """Every check that needs nothing but the configuration; ConfigError names the field."""
    if cfg.d_model % cfg.n_head or (cfg.d_model // cfg.n_head) % 2:
        raise ConfigError(f"{{d_model}} {cfg.d_model} must split into {{n_head}} {cfg.n_head} "
                          "heads of even width")
    if not cfg.position_scale >= 1:
        raise ConfigError(f"{{position_scale}}: expected a number >= 1, got {cfg.position_scale}")
    if cfg.depth_rotary < 0 or cfg.depth_rotary >= cfg.d_model // cfg.n_head // 2:
        raise ConfigError(f"{{depth_rotary}} {cfg.depth_rotary} must leave positions some of each head's "
                          f"{cfg.d_model // cfg.n_head // 2} rotary pairs")
    if not 0 <= cfg.end_depth_bias <= MAX_END_DEPTH_BIAS:
        raise ConfigError(f"{{end_depth_bias}}: 0 (off) to {MAX_END_DEPTH_BIAS}, got {cfg.end_depth_bias}")
    if not 0 <= cfg.end_space_bias <= MAX_END_SPACE_BIAS:
        raise ConfigError(f"{{end_space_bias}}: 0 (off) to {MAX_END_SPACE_BIAS}, got {cfg.end_space_bias}")
    if cfg.decode not in DECODES:
        raise ConfigError(f"{{decode}}: one of {', '.join(DECODES)}, got {cfg.decode!r}")
    try:
        parse_every(cfg.eval_every)
    except ValueError as e:
        raise ConfigError(f"{{eval_every}}: {e}") from None
    if cfg.minutes is not None and cfg.steps is not None:
        raise ConfigError("give {minutes} or {steps}, not both")
    if not 0 <= cfg.max_invalid <= 1:
        raise ConfigError(f"{{max_invalid}}: expected a fraction between 0 and 1, got {cfg.max_invalid}")
    from lambdascope.suites import parse_suite_arg

    names = []
    for text in cfg.suites:
        try:
            names.append(parse_suite_arg(text)[0])
        except ValueError as e:
            raise ConfigError(f"{{suites}}: {e}") from None
    if len(set(names)) < len(names):
        raise ConfigError(f"{{suites}}: a suite name is given twice: {', '.join(names)}")
    if not 0 < cfg.suite_share <= 1:
        raise ConfigError(f"{{suite_share}}: expected a fraction above 0 and at most 1, got {cfg.suite_share}")
    if cfg.resume and not cfg.out_dir and not cfg.run_name:
        raise ConfigError("{resume} needs {run_name} or {out_dir} to find the run")


@dataclass
class Resolved:
    """What a run starts from: its final configuration, the checkpoint it resumes (or None), its
    folder and name, and the evaluation schedule."""

    cfg: TrainConfig
    ckpt: dict | None
    out_dir: Path
    run_name: str
    every_kind: str  # "steps" or "seconds"
    every: float


def resolve_config(cfg: TrainConfig) -> Resolved:
    """Check ``cfg`` and resolve it: a resumed run takes its schedule, model and data options from
    its newest checkpoint (where and how long it trains may change); a new run gets a name and
    must not land in a folder that already holds checkpoints."""
    from .checkpoints import checkpoint_files, read_checkpoint  # torch, only when a run starts

    check_config(cfg)
    ckpt = None
    if cfg.resume:
        out_dir = Path(cfg.out_dir or f"runs/{cfg.run_name}")
        files = checkpoint_files(out_dir)
        if not files:
            raise ConfigError(f"{{resume}}: no checkpoint in {out_dir}")
        try:
            ckpt = read_checkpoint(files[-1])
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{{resume}}: cannot read {files[-1]}: {e}") from None
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        saved = TrainConfig(**{k: v for k, v in ckpt["train_config"].items() if k in known})
        given = cfg.minutes is not None or cfg.steps is not None
        cfg = dataclasses.replace(saved, data=cfg.data, db=cfg.db, device=cfg.device, threads=cfg.threads,
                                  minutes=cfg.minutes if given else saved.minutes,
                                  steps=cfg.steps if given else saved.steps,
                                  no_store=cfg.no_store, resume=True, out_dir=str(out_dir),
                                  suites=list(cfg.suites or saved.suites),
                                  betas=tuple(saved.betas))
        run_name = ckpt["run_name"]
    else:
        if cfg.run_name is None:
            cfg = dataclasses.replace(cfg, run_name=dt.datetime.now().strftime("run-%Y%m%d-%H%M%S"))
        out_dir = Path(cfg.out_dir or f"runs/{cfg.run_name}")
        if checkpoint_files(out_dir):
            raise ConfigError(f"{out_dir} already holds checkpoints: pass {{resume}} to continue "
                              "that run, or another {run_name}/{out_dir}")
        run_name = cfg.run_name
    if cfg.minutes is None and cfg.steps is None:
        cfg = dataclasses.replace(cfg, minutes=60.0)
    every_kind, every = parse_every(cfg.eval_every)
    return Resolved(cfg, ckpt, out_dir, run_name, every_kind, every)
