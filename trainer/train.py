"""Training: validated data -> span model -> checkpoints and evaluations in the store.

Reads straight down: configuration, run and data setup, model and optimiser, evaluation, the
loop, the summary. ``train(cfg)`` is what ``lambdascope train`` calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch
from sqlalchemy import delete, select

from lambdascope.cli import UsageError, expand_data_paths
from lambdascope.store import Checkpoint, DataProblem, Label, Run, ensure_eval_set, open_store, resolve_db_url, utcnow

from .config import TrainConfig, TrainError, parse_every
from .data import BatchStream, Vocab, collate, load_dataset, make_batches
from .evaluate import eval_set_name, evaluate
from .model import ModelConfig, SpanModel, span_loss
from .predict import CHECKPOINT_FORMAT, Predictor
from .writer import NullWriter, StoreWriter
from . import distributed


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup over ``warmup_steps``, then cosine by ``progress`` (0..1 of the budget)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * warm * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * cos)


def file_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def checkpoint_files(out_dir: Path) -> list[Path]:
    """Checkpoints in ``out_dir``, oldest step first."""
    return sorted(out_dir.glob("ckpt_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temporary file in the same folder, then rename: a reader or a resumed run
    never sees half a checkpoint."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_peak(path: str, device: str) -> float | None:
    try:
        return float(json.loads(Path(path).read_text())[device]["peak_flops"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _StopRequest:
    """Ctrl-C (SIGINT) or `kill` (SIGTERM) asks the loop to stop after the step in progress, so
    that the checkpoint it saves is consistent; a second signal stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum


_QUIET = False  # set in the processes other than rank 0 of a multi-process run


def _say(msg: str) -> None:
    from tqdm import tqdm

    if not _QUIET:
        tqdm.write(msg, file=sys.stderr)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def train(cfg: TrainConfig, *, on_step=None) -> dict:
    """Run (or resume) a training run; returns the final summary. ``on_step(step, ctx)`` is
    called after every optimiser step (tests use it)."""
    global _QUIET
    torch.set_num_threads(cfg.threads)
    paths = expand_data_paths(cfg.data)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available here")
    ddp, device = distributed.setup(cfg.device)  # one process, or one of torchrun's
    _QUIET = not ddp.is_main

    # -- the run: new, or resumed from its newest checkpoint ------------------------------------
    ckpt = None
    if cfg.resume:
        if not cfg.out_dir and not cfg.run_name:
            raise UsageError("--resume needs --run-name or --out-dir to find the run")
        out_dir = Path(cfg.out_dir or f"runs/{cfg.run_name}")
        files = checkpoint_files(out_dir) if out_dir.is_dir() else []
        if not files:
            raise UsageError(f"--resume: no checkpoint in {out_dir}")
        ckpt = torch.load(files[-1], map_location="cpu", weights_only=True)
        saved = TrainConfig(**{k: v for k, v in ckpt["train_config"].items()
                               if k in {f.name for f in dataclasses.fields(TrainConfig)}})
        # the schedule, model and data options stay; where and how long may change
        cfg = dataclasses.replace(saved, data=cfg.data, db=cfg.db, device=cfg.device, threads=cfg.threads,
                                  minutes=cfg.minutes if cfg.minutes or cfg.steps else saved.minutes,
                                  steps=cfg.steps if cfg.minutes or cfg.steps else saved.steps,
                                  no_store=cfg.no_store, resume=True, out_dir=str(out_dir),
                                  betas=tuple(saved.betas))
        _say(f"resuming {ckpt['run_name']} from {files[-1]} (step {ckpt['step']})")
    else:
        if cfg.run_name is None:
            cfg = dataclasses.replace(cfg, run_name=dt.datetime.now().strftime("run-%Y%m%d-%H%M%S"))
        out_dir = Path(cfg.out_dir or f"runs/{cfg.run_name}")
        if checkpoint_files(out_dir) if out_dir.is_dir() else False:
            raise UsageError(f"{out_dir} already holds checkpoints: pass --resume to continue "
                             f"that run, or another --run-name/--out-dir")
    if cfg.minutes is None and cfg.steps is None:
        cfg = dataclasses.replace(cfg, minutes=60.0)
    try:
        every_kind, every = parse_every(cfg.eval_every)
    except ValueError as e:
        raise UsageError(f"--eval-every: {e}")
    torch.manual_seed(cfg.seed)
    vocab = Vocab(ckpt["vocab"]) if ckpt else Vocab()
    mcfg = ModelConfig(**ckpt["model_config"]) if ckpt else ModelConfig(
        vocab_size=len(vocab), pad_id=vocab.pad_id, open_id=vocab.open_id, close_id=vocab.close_id,
        n_layer=cfg.n_layer, n_head=cfg.n_head, d_model=cfg.d_model, d_ff=cfg.d_ff,
        depth_embedding=cfg.depth_embedding)
    run_config = {"train": asdict(cfg), "model": mcfg.to_dict()}

    Session = None
    run_id = ckpt["run_id"] if ckpt else None
    if not cfg.no_store:
        db_url = resolve_db_url(cfg.db)
        if not ddp.is_main:  # rank 0 creates or upgrades the store first
            distributed.barrier(ddp)
        _, Session = open_store(db_url)
        if ddp.is_main:
            distributed.barrier(ddp)
    if Session is not None and not ddp.is_main:
        # the other processes read the labels and write nothing
        with Session() as s:
            exclude = set() if cfg.include_labelled else set(s.scalars(select(Label.trace_identity).distinct()))
        Session = None
    elif Session is not None:
        with Session() as s, s.begin():
            run = s.scalar(select(Run).where(Run.name == (ckpt["run_name"] if ckpt else cfg.run_name)))
            if run is not None and not ckpt:
                raise UsageError(f"a run named {cfg.run_name!r} is already in the store: pass "
                                 f"--resume to continue it, or another --run-name")
            data_hash = file_hash(paths)
            if run is None:
                run = Run(name=ckpt["run_name"] if ckpt else cfg.run_name, config=run_config,
                          data_files=[str(p) for p in paths], data_hash=data_hash)
                s.add(run)
            run.status, run.message, run.updated_at, run.finished_at = "running", None, utcnow(), None
            run.data_files, run.data_hash = [str(p) for p in paths], data_hash
            s.flush()
            run_id = run.id
            exclude = set() if cfg.include_labelled else set(s.scalars(select(Label.trace_identity).distinct()))
    elif cfg.no_store:
        exclude = set()
    run_name = ckpt["run_name"] if ckpt else cfg.run_name

    # -- data: validate, split, and stop early when too much of it is broken -------------------
    from lambdascope.cli import _progress

    bar = _progress(sum(p.stat().st_size for p in paths), "reading data")
    t0 = time.perf_counter()
    try:
        data = load_dataset(paths, vocab, val_frac=cfg.val_frac, eval_frac=cfg.eval_frac,
                            eval_traces=cfg.eval_traces, val_examples=cfg.val_examples, exclude=exclude,
                            progress=bar.update if bar else None)
    except BaseException as e:
        if Session is not None:
            with Session() as s, s.begin():
                run = s.get(Run, run_id)
                run.status, run.finished_at = "failed" if isinstance(e, Exception) else "stopped", utcnow()
                run.message = f"while reading the data: {type(e).__name__}: {e}"
        raise
    finally:
        if bar:
            bar.close()
    rep = data.report
    rep.update(max_invalid=cfg.max_invalid, include_labelled=cfg.include_labelled,
               labelled_identities=len(exclude), read_seconds=round(time.perf_counter() - t0, 2))
    too_many = rep["invalid_fraction"] > cfg.max_invalid
    _say(f"data: {rep['lines']:,} lines, {rep['valid_records']:,} valid records, {rep['invalid_records']:,} "
         f"invalid ({_pct(rep['invalid_fraction'])}), {rep['traces']:,} traces; train {rep['train_examples']:,} "
         f"examples, val {rep['val_examples']:,}, eval {rep['eval_traces']:,} traces / {rep['eval_examples']:,} "
         f"steps; {rep.get('labelled_traces_excluded', 0)} labelled traces left out")
    for reason, n in rep["problems_by_reason"].items():
        _say(f"  {reason:<24} {n:>8}")
    for p in data.validator.problems[:20]:  # file:line: reason: detail
        _say(f"  {p}")
    if len(data.validator.problems) > 20:
        _say(f"  ... {len(data.validator.problems) - 20} more (all on the run's page in the dashboard)")
    message = None
    if too_many:
        message = (f"{rep['invalid_records']:,} of {rep['lines']:,} records are invalid "
                   f"({_pct(rep['invalid_fraction'])}, above --max-invalid {_pct(cfg.max_invalid)}); "
                   f"nothing was trained. See `lambdascope check {' '.join(map(str, paths))}`")
    elif not len(data.train):
        message = "no valid training records (all traces are in val/eval, labelled, or invalid)"
    eval_set_id, example_ids = None, None
    if Session is not None:
        with Session() as s, s.begin():
            s.execute(delete(DataProblem).where(DataProblem.run_id == run_id))
            if data.validator.problems:
                s.execute(DataProblem.__table__.insert(), [
                    dict(run_id=run_id, file=p.source, line=p.line, reason=p.reason, detail=p.detail)
                    for p in data.validator.problems])
            run = s.get(Run, run_id)
            run.validation = rep
            if message:
                run.status, run.message, run.finished_at = "failed", message, utcnow()
            elif data.eval_traces:
                eval_set_id, example_ids = ensure_eval_set(s, eval_set_name(data.eval_traces),
                                                           ", ".join(map(str, paths)), data.eval_traces)
                run.eval_set_id = eval_set_id
    if message:
        raise TrainError(message)

    # -- model and optimiser --------------------------------------------------------------------
    model = SpanModel(mcfg).to(device)
    # the model that trains: wrapped for several processes (gradients averaged across them)
    trained = (torch.nn.parallel.DistributedDataParallel(model, device_ids=[ddp.local_rank]
                                                         if device.startswith("cuda") else None)
               if ddp.enabled else model)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "tok." not in n and "depth." not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "tok." not in n and "depth." not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=tuple(cfg.betas))
    step, tokens, padded, train_s, eval_s = 0, 0, 0, 0.0, 0.0
    position = (0, 0)
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, tokens, padded = ckpt["step"], ckpt["tokens"], ckpt["padded_tokens"]
        train_s, eval_s = ckpt["train_seconds"], ckpt["eval_seconds"]
        position = tuple(ckpt["data_position"])
    try:
        stream = BatchStream(data.train, cfg.batch_tokens, cfg.seed, *position, rank=ddp.rank, world=ddp.world)
    except ValueError as e:
        raise TrainError(str(e)) from None
    predictor = Predictor(model, vocab, device, batch_tokens=max(16384, cfg.batch_tokens))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
                else contextlib.nullcontext())
    peak = read_peak(cfg.peak_file, "cuda" if device.startswith("cuda") else "cpu")
    writer = StoreWriter(Session, flush_seconds=cfg.metrics_every) if Session is not None else NullWriter()
    _say(f"model: {model.n_params() / 1e6:.2f}M parameters ({mcfg.n_layer} layers, d={mcfg.d_model}, "
         f"{mcfg.n_head} heads, depth embedding {'on' if mcfg.depth_embedding else 'off'}); "
         f"batches of <= {cfg.batch_tokens} tokens, padding {_pct(stream.padding_fraction())} this epoch; "
         f"device {device}, {cfg.threads} threads"
         + (f", {ddp.world} processes (DistributedDataParallel)" if ddp.enabled else ""))

    val_batches = [([data.val.ids[i] for i in b], [data.val.spans[i] for i in b])
                   for b in make_batches([len(x) for x in data.val.ids], 16384, random.Random(0))]

    @torch.no_grad()
    def val_loss() -> float | None:
        if not val_batches:
            return None
        model.eval()
        total, n = 0.0, 0
        for ids, spans in val_batches:
            x, mask = collate(ids, vocab.pad_id)
            x, mask, tgt = x.to(device), mask.to(device), torch.tensor(spans, device=device)
            with autocast:
                sl, el = model(x, mask, tgt[:, 0])
            total += span_loss(sl, el, mask, tgt, 0.0).item() * len(ids)
            n += len(ids)
        model.train()
        return total / n

    def progress_after(steps: int) -> float:
        p = 0.0
        if cfg.steps:
            p = max(p, steps / cfg.steps)
        if cfg.minutes:
            p = max(p, train_s / (cfg.minutes * 60))
        return p

    def progress() -> float:
        return progress_after(step)

    def checkpoint_payload(metrics: dict | None) -> dict:
        return {"format": CHECKPOINT_FORMAT, "model_config": mcfg.to_dict(), "train_config": asdict(cfg),
                "vocab": vocab.itos, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "run_id": run_id, "run_name": run_name, "step": step, "tokens": tokens,
                "padded_tokens": padded, "train_seconds": train_s, "eval_seconds": eval_s,
                "data_position": [stream.epoch, stream.index], "metrics": metrics or {},
                "saved_at": time.time()}

    last_metrics: dict = {}

    def run_evaluation() -> dict:
        nonlocal eval_s, last_metrics
        t0 = time.perf_counter()
        vl = val_loss()
        ev = evaluate(predictor, data.eval_traces, example_ids)
        m = ev.metrics
        m.update(val_loss=vl, step=step, tokens=tokens, train_minutes=round(train_s / 60, 3))
        path = (out_dir / f"ckpt_{step:07d}.pt").resolve()
        save_checkpoint(path, checkpoint_payload(m))
        if eval_set_id is not None:
            points = [dict(step=step, name=k, value=m[k]) for k in
                      ("exact", "mean_iou", "nf_f1", "trace_accuracy", "rollout_success") if k in m]
            if vl is not None:
                points.append(dict(step=step, name="val_loss", value=vl))
            points.append(dict(step=step, name="train_minutes", value=train_s / 60))
            writer.evaluation(run_id=run_id, eval_set_id=eval_set_id, step=step, path=str(path),
                              metrics=m, predictions=ev.predictions, rollouts=ev.rollouts,
                              metric_points=points)
        eval_s += time.perf_counter() - t0
        _say(f"eval step {step:>6} @ {train_s / 60:5.1f} min: val loss {vl if vl is None else round(vl, 4)}  "
             f"exact {_pct(m['exact'])}  iou {m['mean_iou']:.4f}  nf F1 {_pct(m['nf_f1'])}  "
             f"trace {_pct(m['trace_accuracy'])}  rollout {_pct(m['rollout_success'])}  "
             f"({ev.seconds:.1f}s; {path.name})")
        last_metrics = m
        return m

    # -- the loop -------------------------------------------------------------------------------
    out_dir.mkdir(parents=True, exist_ok=True)
    if ckpt and ddp.is_main:  # the temporary file of a save that a crash cut short
        for stale in out_dir.glob(".ckpt_*.tmp"):
            stale.unlink(missing_ok=True)
    if ckpt and eval_set_id is not None:  # killed between the save and its evaluation's commit
        with Session() as s:
            stored = s.scalar(select(Checkpoint.id).where(Checkpoint.run_id == run_id, Checkpoint.step == step,
                                                          Checkpoint.name.is_(None)))
        if stored is None:
            run_evaluation()
    from tqdm import tqdm

    total = cfg.steps if cfg.steps else int(cfg.minutes * 60)
    bar = tqdm(total=total, initial=min(total, step if cfg.steps else int(train_s)), unit="step" if cfg.steps else "s",
               desc=f"train {run_name}", file=sys.stderr, disable=not sys.stderr.isatty(), dynamic_ncols=True)
    next_eval = (step if every_kind == "steps" else train_s) + every
    window = {"loss": 0.0, "n": 0, "tokens": 0, "seconds": 0.0, "len": 0}
    last_point = time.monotonic()
    start_tokens, start_train_s = tokens, train_s
    sum_len, n_batches = 0, 0
    model.train()
    # Ctrl-C and `kill` stop the run after the current step: a checkpoint is saved, the run is
    # marked stopped, and --resume continues it
    on_main = threading.current_thread() is threading.main_thread()
    stop = _StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)} if on_main else {}
    in_step = False  # True while the model and the counters disagree
    try:
        done = progress() >= 1.0
        while not done:
            if stop.signal is not None and not ddp.enabled:  # several processes stop together, below
                raise KeyboardInterrupt
            in_step = True
            t0 = time.perf_counter()
            lr = lr_at(cfg, step, progress())
            for g in opt.param_groups:
                g["lr"] = lr
            x, mask, tgt = next(stream)
            x, mask, tgt = x.to(device, non_blocking=True), mask.to(device, non_blocking=True), tgt.to(device)
            with autocast:
                sl, el = trained(x, mask, tgt[:, 0])  # the end pointer reads the gold start
                loss = span_loss(sl, el, mask, tgt, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            loss_value = loss.item()  # waits for the step: the timing below is the step's
            if not math.isfinite(loss_value):
                raise TrainError(f"the loss is {loss_value} at step {step}: lower --lr")
            dt_step = time.perf_counter() - t0
            train_s += dt_step
            # every process learns whether to stop; token counts become those of all processes
            stop_now, done, real, numel = distributed.step_sync(
                ddp, device, stop.signal is not None, progress_after(step + 1) >= 1.0, int(mask.sum()), x.numel())
            step, tokens, padded = step + 1, tokens + real, padded + numel - real
            sum_len, n_batches = sum_len + x.shape[1], n_batches + 1
            in_step = False
            window["loss"] += loss_value
            window["n"] += 1
            window["tokens"] += real
            window["seconds"] += dt_step
            window["len"] += x.shape[1]
            bar.update(1 if cfg.steps else dt_step)
            if time.monotonic() - last_point >= cfg.metrics_every:
                tps = window["tokens"] / window["seconds"]
                points = [("loss", window["loss"] / window["n"]), ("lr", lr), ("tokens_per_s", tps)]
                if peak:  # model FLOPs per second over the machine's measured matmul peak
                    points.append(("mfu", model.flops_per_token(window["len"] / window["n"]) * tps / peak))
                for name, value in points:
                    writer.metric(run_id, step, name, value)
                bar.set_postfix(loss=f"{window['loss'] / window['n']:.4f}", tok_s=f"{tps:,.0f}", refresh=False)
                window = {"loss": 0.0, "n": 0, "tokens": 0, "seconds": 0.0, "len": 0}
                last_point = time.monotonic()
            if ddp.is_main and not done and (step if every_kind == "steps" else train_s) >= next_eval:
                run_evaluation()
                while next_eval <= (step if every_kind == "steps" else train_s):
                    next_eval += every
            if on_step is not None:
                on_step(step, {"run_id": run_id, "out_dir": out_dir, "writer": writer})
            if stop_now:
                raise KeyboardInterrupt
        bar.close()
        final = run_evaluation() if ddp.is_main else {}
        distributed.finish(ddp)  # the other ranks end here (exit status 0)
        if run_id:
            writer.update_run(run_id, status="finished", finished_at=utcnow(), message=None)
        writer.close()
    except KeyboardInterrupt:
        bar.close()
        if not ddp.is_main:  # rank 0 saves the checkpoint and marks the run
            raise
        files = checkpoint_files(out_dir)
        if not in_step:
            files.append(out_dir / f"ckpt_{step:07d}.pt")
            save_checkpoint(files[-1], checkpoint_payload(last_metrics))
        where = f"--resume continues from {files[-1]}" if files else "no checkpoint to resume from"
        if run_id:
            writer.update_run(run_id, status="stopped", message=f"interrupted at step {step}; {where}")
        writer.close(timeout=60)
        _say(f"interrupted at step {step}: {where} (`lambdascope train --resume --out-dir {out_dir} --data …`)")
        raise
    except BaseException as e:
        bar.close()
        if run_id and writer.error is None:
            writer.update_run(run_id, status="failed", finished_at=utcnow(), message=f"{type(e).__name__}: {e}")
            with contextlib.suppress(Exception):
                writer.close(timeout=60)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        distributed.cleanup(ddp)
    if not ddp.is_main:
        return {"rank": ddp.rank, "steps": step}

    # -- summary --------------------------------------------------------------------------------
    run_tokens, run_s = tokens - start_tokens, train_s - start_train_s
    tps = run_tokens / run_s if run_s else 0.0
    mean_len = sum_len / n_batches if n_batches else 0.0
    achieved = model.flops_per_token(mean_len) * tps
    mfu = achieved / peak if peak else None
    summary = {
        "run_id": run_id, "run_name": run_name, "steps": step, "tokens": tokens,
        "train_minutes": train_s / 60, "eval_minutes": eval_s / 60,
        "tokens_per_s": tps, "achieved_flops": achieved, "peak_flops": peak, "mfu": mfu,
        "padding_fraction": padded / (tokens + padded) if tokens + padded else 0.0,
        "n_params": model.n_params(), "checkpoint": str((out_dir / f"ckpt_{step:07d}.pt").resolve()),
        "metrics": final, "writer_busy_seconds": writer.busy_seconds, "writer_cpu_seconds": writer.cpu_seconds,
        "written": writer.written,
    }
    mfu_text = f"MFU {_pct(mfu)} of {peak / 1e9:.0f} GFLOP/s" if mfu else "MFU n/a (run bench/peak.py)"
    _say(f"done: {run_name}: {step} steps, {tokens / 1e6:.2f}M tokens, {train_s / 60:.1f} min training "
         f"+ {eval_s / 60:.1f} min evaluating\n"
         f"  throughput {tps:,.0f} tokens/s (non-padding, this session); {achieved / 1e9:.1f} GFLOP/s, "
         f"{mfu_text}; padding {_pct(summary['padding_fraction'])}\n"
         f"  final: exact {_pct(final['exact'])}, mean IoU {final['mean_iou']:.4f}, nf F1 {_pct(final['nf_f1'])}, "
         f"trace accuracy {_pct(final['trace_accuracy'])}, rollout success {_pct(final['rollout_success'])}\n"
         f"  checkpoint {summary['checkpoint']}"
         + (f"\n  store: run id {run_id}, {writer.written['evaluations']} evaluations, "
            f"{writer.written['metric_points']} metric points (writer busy {writer.busy_seconds:.1f}s, "
            f"CPU {writer.cpu_seconds:.1f}s)"
            if run_id else ""))
    return summary
