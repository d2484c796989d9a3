"""``lambdascope train`` and ``lambdascope evaluate``. The trainer's errors become one line
here: a configuration that cannot run exits 2 with its fields named as flags, a run that fails
exits 1. Imports of torch wait until a command runs."""

from __future__ import annotations

import argparse
import sys

from lambdascope.suites import parse_suite_arg
from trainer.config import DECODES, MAX_END_DEPTH_BIAS, MAX_END_SPACE_BIAS, TrainConfig, parse_every

from .common import EXIT_FAILED, EXIT_USAGE, at_least_one, fraction, nonneg_int, positive_float, positive_int


def checked(parse):
    """An argparse type that keeps the text as given once ``parse`` accepts it (its ValueError is
    the flag's message)."""
    def arg_type(text: str) -> str:
        try:
            parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))
        return text

    return arg_type


FLAGS = {"suites": "--suite"}  # fields whose flag is not their name (--suite is repeated, one per suite)


def flag(field: str) -> str:
    """The flag of a TrainConfig field: run_name -> --run-name, suites -> --suite."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def register(sub) -> None:
    d = TrainConfig()
    t = sub.add_parser("train", help="train a span model; record checkpoints, predictions and metrics",
                       description="Validate the trace files, split them by trace identity, train the "
                       "span model, and at every evaluation write a checkpoint file and its predictions, "
                       "rollouts and metrics to the store (from a background writer).")
    t.add_argument("--data", nargs="+", required=True, metavar="FILE", help="trace files or globs (JSONL)")
    t.add_argument("--db", metavar="URL", help="store: SQLAlchemy URL or SQLite path (default "
                   "$LAMBDASCOPE_DB or runs/lambdascope.db)")
    t.add_argument("--run-name", metavar="NAME", help="the run's name in the store (default run-<time>)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float, help="training time, evaluation excluded "
                        "(default 60 when --steps is not given)")
    budget.add_argument("--steps", type=positive_int, help="optimiser steps")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda trains with bf16 autocast")
    t.add_argument("--threads", type=positive_int, default=d.threads, help=f"torch CPU threads (default {d.threads})")
    t.add_argument("--eval-every", type=checked(parse_every), default=d.eval_every, metavar="N|Ts|Tm",
                   help=f"evaluate every N steps or every T seconds/minutes of training (default {d.eval_every})")
    t.add_argument("--batch-tokens", type=positive_int, default=d.batch_tokens,
                   help=f"tokens per batch, padding included (default {d.batch_tokens})")
    t.add_argument("--max-invalid", type=fraction, default=d.max_invalid, metavar="FRACTION",
                   help="stop before training when more records than this are invalid (default 0.01)")
    t.add_argument("--include-labelled", action="store_true", help="also train on traces labelled in the store")
    t.add_argument("--resume", action="store_true", help="continue the run from the newest checkpoint in "
                   "its --out-dir (or runs/--run-name)")
    t.add_argument("--out-dir", metavar="DIR", help="checkpoint folder (default runs/NAME)")
    t.add_argument("--no-store", action="store_true", help="record nothing in the store (checkpoint files only)")
    t.add_argument("--suite", action="append", type=checked(parse_suite_arg), default=[], metavar="NAME=FILE", dest="suites",
                   help="an evaluation suite (repeatable): every evaluation also evaluates the complete traces "
                   "of FILE, stored as the checkpoint's suite NAME; make standard ones with `lambdascope suite "
                   "make`. Kept by --resume")
    t.add_argument("--suite-share", type=fraction, default=d.suite_share, metavar="FRACTION",
                   help="suite evaluation takes at most this share of the training time: each suite is cut "
                   "to its first traces that fit, decided once at the first evaluation (default 0.15)")
    t.add_argument("--seed", type=int, default=d.seed, help=f"model init and batch order (default {d.seed})")
    t.add_argument("--peak-file", default=d.peak_file, metavar="JSON",
                   help=f"the machine's measured matmul peak (measured once by `lambdascope demo`, or by "
                   f"bench/peak.py), for MFU (default {d.peak_file})")
    g = t.add_argument_group("model and optimiser")
    g.add_argument("--lr", type=positive_float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help=f"(default {d.warmup_steps})")
    g.add_argument("--label-smoothing", type=fraction, default=d.label_smoothing,
                   help=f"(default {d.label_smoothing})")
    g.add_argument("--n-layer", type=positive_int, default=d.n_layer, help=f"(default {d.n_layer})")
    g.add_argument("--n-head", type=positive_int, default=d.n_head, help=f"(default {d.n_head})")
    g.add_argument("--d-model", type=positive_int, default=d.d_model, help=f"(default {d.d_model})")
    g.add_argument("--d-ff", type=positive_int, default=d.d_ff, help=f"(default {d.d_ff})")
    g.add_argument("--no-depth-embedding", action="store_true", help="positions from RoPE only")
    g.add_argument("--position-scale", type=at_least_one, default=d.position_scale, metavar="S",
                   help="stretch each training sequence's positions by a random factor in [1, S], so "
                   "terms up to S times longer than any in training show no unseen distance "
                   f"(evaluation: 1; default {d.position_scale}, 1 = off)")
    g.add_argument("--depth-rotary", type=nonneg_int, default=d.depth_rotary, metavar="K",
                   help="of each head's rotary pairs, K turn by the token's parenthesis depth instead of "
                   f"its position: attention sees depth differences, at any depth (default {d.depth_rotary})")
    g.add_argument("--end-depth-bias", type=nonneg_int, default=d.end_depth_bias, metavar="K",
                   help="the end pointer adds a learned bias by the candidate end's parenthesis depth less "
                   "the start's, clamped to [-K, K]: where a redex ends relative to where it starts, the "
                   f"same at any depth (0: off; at most {MAX_END_DEPTH_BIAS}; default {d.end_depth_bias})")
    g.add_argument("--end-space-bias", type=nonneg_int, default=d.end_space_bias, metavar="C",
                   help="the end pointer's bias also by how many spaces shallower than the start lie "
                   "between start and end, clamped to C: where a redex ends in the term's tree (one "
                   "such space after its start), the same at any length "
                   f"(0: off; at most {MAX_END_SPACE_BIAS}; default {d.end_space_bias})")
    g.add_argument("--decode", choices=list(DECODES), default=d.decode,
                   help="what the evaluations (and the dashboard's model views) choose among: "
                   + "; ".join(f"{k}: {v}" for k, v in DECODES.items())
                   + f" (docs/DESIGN.md, 'Decoding'; default {d.decode}; kept by --resume)")
    g.add_argument("--eval-traces", type=positive_int, default=d.eval_traces,
                   help=f"evaluation traces, at most (default {d.eval_traces})")
    g.add_argument("--eval-frac", type=fraction, default=d.eval_frac, help=f"(default {d.eval_frac})")
    g.add_argument("--val-frac", type=fraction, default=d.val_frac, help=f"(default {d.val_frac})")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint on a trace file; store a named evaluation",
                       description="Predict every step of the complete traces in FILE with the "
                       "checkpoint, roll each trace out with the model's own predictions, and store the "
                       "result as a named evaluation of the checkpoint's run.")
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint file (runs/NAME/ckpt_*.pt)")
    e.add_argument("--data", nargs="+", required=True, metavar="FILE", help="trace files or globs (JSONL)")
    e.add_argument("--db", metavar="URL", help="store (default $LAMBDASCOPE_DB or runs/lambdascope.db)")
    e.add_argument("--name", metavar="NAME", help="the evaluation's name (default: CHECKPOINT on FILE)")
    e.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    e.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    e.add_argument("--decode", choices=list(DECODES), help="free or redex (see `train --help`); "
                   "default: as the checkpoint's run decoded")
    e.set_defaults(func=cmd_evaluate)


def cmd_train(args: argparse.Namespace) -> int:
    from trainer.config import ConfigError, TrainError
    from trainer.train import train

    cfg = TrainConfig(
        data=args.data, db=args.db, run_name=args.run_name, out_dir=args.out_dir, minutes=args.minutes,
        steps=args.steps, device=args.device, threads=args.threads, seed=args.seed,
        batch_tokens=args.batch_tokens, max_invalid=args.max_invalid, include_labelled=args.include_labelled,
        val_frac=args.val_frac, eval_frac=args.eval_frac, eval_traces=args.eval_traces, lr=args.lr,
        warmup_steps=args.warmup_steps, label_smoothing=args.label_smoothing, n_layer=args.n_layer,
        n_head=args.n_head, d_model=args.d_model, d_ff=args.d_ff,
        depth_embedding=not args.no_depth_embedding, position_scale=args.position_scale,
        depth_rotary=args.depth_rotary, end_depth_bias=args.end_depth_bias,
        end_space_bias=args.end_space_bias, decode=args.decode,
        eval_every=args.eval_every,
        no_store=args.no_store, resume=args.resume, peak_file=args.peak_file, suites=args.suites,
        suite_share=args.suite_share)
    try:
        train(cfg)
    except TrainError as e:
        print(f"lambdascope train: error: {e.worded(flag)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, ConfigError) else EXIT_FAILED
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lambdascope.traces import expand_data_paths
    from trainer.config import TrainError
    from trainer.evaluate import evaluate_checkpoint

    try:
        evaluate_checkpoint(args.checkpoint, expand_data_paths(args.data), db=args.db, name=args.name,
                            device=args.device, threads=args.threads, decode=args.decode)
    except TrainError as e:
        print(f"lambdascope evaluate: error: {e.worded(flag)}", file=sys.stderr)
        return EXIT_FAILED
    return 0
