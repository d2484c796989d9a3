"""Training: validated data -> span model -> checkpoints and evaluations in the store.

``train(cfg)`` resolves the configuration (trainer/config.py), then a ``Training`` reads straight
down: the store and the run, the data, the model and optimiser, evaluation, the loop, the
summary. Its counters (step, tokens, seconds) are its attributes, saved in every checkpoint.
The run's row is written only through the store writer (lambdascope/writer.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from lambdascope.progress import progress_bar
from lambdascope.store import open_store, resolve_db_url, utcnow
from lambdascope.suites import parse_suite_arg
from lambdascope.traces import eval_set_name, expand_data_paths
from lambdascope.vocabulary import EVAL_POINT_METRICS, RunStatus
from lambdascope.writer import NullWriter, RunExistsError, StoreWriter, labelled_identities

from . import distributed
from .checkpoints import (CHECKPOINT_FORMAT, checkpoint_files, checkpoint_path, remove_stale_temporaries,
                          save_checkpoint)
from .config import ConfigError, Resolved, TrainConfig, TrainError, resolve_config
from .data import BatchStream, Suite, Vocab, collate, load_dataset, load_suite, make_batches
from .evaluate import evaluate
from .model import ModelConfig, SpanModel, span_loss
from .peak import read_peak
from .predict import Predictor


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
    called after every optimiser step (tests use it). ConfigError: nothing was started."""
    global _QUIET
    resolved = resolve_config(cfg)
    torch.set_num_threads(resolved.cfg.threads)
    paths = expand_data_paths(resolved.cfg.data)
    suite_files = [(name, expand_data_paths([file])[0]) for name, file in map(parse_suite_arg, resolved.cfg.suites)]
    if resolved.cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("{device} cuda: CUDA is not available here")
    ddp, device = distributed.setup(resolved.cfg.device)  # one process, or one of torchrun's
    _QUIET = not ddp.is_main
    torch.manual_seed(resolved.cfg.seed)  # the model's initial weights
    return Training(resolved, paths, ddp, device, suite_files).run(on_step)


def _end_bias_phrase(mcfg: ModelConfig) -> str:
    """What the end pointer's bias table is read by, for the start-up line; '' without one."""
    by = ([f"relative depth (+-{mcfg.end_depth_bias})"] if mcfg.end_depth_bias else []) + (
        [f"crossed spaces (<= {mcfg.end_space_bias})"] if mcfg.end_space_bias else [])
    return f", end pointer biased by {' and '.join(by)}" if by else ""


class Training:
    """One training session of a run, from its store row to its summary."""

    def __init__(self, resolved: Resolved, paths: list[Path], ddp: distributed.Distributed, device: str,
                 suite_files: list[tuple[str, Path]] = ()):
        self.cfg, self.ckpt = resolved.cfg, resolved.ckpt
        self.out_dir, self.run_name = resolved.out_dir, resolved.run_name
        self.every_kind, self.every = resolved.every_kind, resolved.every
        self.paths, self.ddp, self.device = paths, ddp, device
        ckpt = self.ckpt
        self.vocab = Vocab(ckpt["vocab"]) if ckpt else Vocab()
        cfg, vocab = self.cfg, self.vocab
        self.mcfg = ModelConfig(**ckpt["model_config"]) if ckpt else ModelConfig(
            vocab_size=len(vocab), pad_id=vocab.pad_id, open_id=vocab.open_id, close_id=vocab.close_id,
            space_id=vocab.space_id, n_layer=cfg.n_layer, n_head=cfg.n_head, d_model=cfg.d_model, d_ff=cfg.d_ff,
            depth_embedding=cfg.depth_embedding, position_scale=cfg.position_scale,
            depth_rotary=cfg.depth_rotary, end_depth_bias=cfg.end_depth_bias,
            end_space_bias=cfg.end_space_bias)
        # the counters, saved in every checkpoint
        self.step, self.tokens, self.padded = 0, 0, 0
        self.train_s, self.eval_s = 0.0, 0.0
        self.last_metrics: dict = {}
        self.writer: StoreWriter | NullWriter = NullWriter()
        self.run_id: int | None = ckpt["run_id"] if ckpt else None
        self.eval_set_id: int | None = None
        self.example_ids: dict | None = None
        self.failure_recorded = False  # the run's row already says how it ended
        # evaluation suites: read before the store is opened; each one's traces capped once, at
        # the first evaluation (kept in every checkpoint, so a resumed run evaluates the same)
        self.suite_files = list(suite_files)
        self.suites: list[Suite] = []
        self.suite_caps: dict[str, int] = dict(ckpt.get("suite_caps", {})) if ckpt else {}
        self.suite_rates: dict[str, float] = {}  # seconds per token of each suite's evaluation, as timed
        self.suite_plan: dict | None = ckpt.get("suite_plan") if ckpt else None
        self.suite_s = ckpt.get("suite_seconds", 0.0) if ckpt else 0.0
        self.suite_sets: dict[str, tuple[int | None, dict | None]] = {}
        self.report: dict = {}
        if ckpt:
            _say(f"resuming {ckpt['run_name']} from {checkpoint_files(self.out_dir)[-1]} (step {ckpt['step']})")

    # -- the store and the run --------------------------------------------------------------------

    def open_store(self) -> set[str]:
        """Open the store (rank 0 creates or upgrades it first), start the run's row through the
        writer, and return the labelled trace identities to leave out of training."""
        cfg, ddp = self.cfg, self.ddp
        if cfg.no_store:
            return set()
        db_url = resolve_db_url(cfg.db)
        if not ddp.is_main:
            distributed.barrier(ddp)
        _, Session = open_store(db_url)
        if ddp.is_main:
            distributed.barrier(ddp)
        exclude = set() if cfg.include_labelled else labelled_identities(Session)
        if not ddp.is_main:  # the other processes read the labels and write nothing
            return exclude
        self.writer = StoreWriter(Session, flush_seconds=cfg.metrics_every)
        try:
            self.run_id = self.writer.start_run(
                self.run_name, resuming=self.ckpt is not None,
                config={"train": asdict(cfg), "model": self.mcfg.to_dict()},
                data_files=[str(p) for p in self.paths], data_hash=file_hash(self.paths))
        except RunExistsError as e:
            raise ConfigError(f"{e}: pass {{resume}} to continue it, or another {{run_name}}") from None
        return exclude

    # -- evaluation suites ------------------------------------------------------------------------

    def load_suites(self) -> None:
        """Read and validate every suite file (ConfigError, naming file and line, before anything
        is started)."""
        for name, path in self.suite_files:
            self.suites.append(load_suite(name, path, self.cfg.max_invalid))
            _say(f"suite {name}: {len(self.suites[-1].traces):,} complete traces, "
                 f"{self.suites[-1].steps:,} steps ({path})")

    def suites_report(self) -> dict:
        """``validation["suites"]``: each capped suite's file, traces and steps used of all."""
        train_idents = set(self.data.train.traces) if hasattr(self, "data") else set()
        out = {}
        for s in self.suites:
            if s.name in self.suite_caps:
                used = s.traces[:self.suite_caps[s.name]]
                out[s.name] = {"file": s.file, "traces": len(used), "of": len(s.traces),
                               "steps": sum(len(t.records) for t in used), "of_steps": s.steps,
                               "in_train": sum(t.identity in train_idents for t in used)}
        return out

    def plan_suites(self, seconds: float, tokens: int) -> None:
        """Cap the suites not capped yet, once: the budget (minutes, or steps at the speed so
        far) and the schedule give the evaluations to come, and ``suite_share`` of the training
        time over them is the suite seconds of one evaluation, shared among the suites (the
        smallest first; each gets the first traces of its file that fit, at least one). A suite's
        cost per token is timed on its own first trace (a longer term's rollout costs more per
        token than the main set's: measured, the main set's rate alone let suites take 20% of
        training instead of 15%), and is at least the main evaluation's (``seconds`` for
        ``tokens``)."""
        cfg = self.cfg
        todo = [s for s in self.suites if s.name not in self.suite_caps]
        if not todo:
            return
        main_rate = seconds / tokens if tokens else 0.0
        rates = {}
        for s in todo:
            probe = s.traces[:1]
            t0 = time.perf_counter()
            evaluate(self.predictor, probe)
            rates[s.name] = max(main_rate, (time.perf_counter() - t0) / max(_tokens(probe), 1))
        per_step = self.train_s / max(self.step, 1)
        budget_s = cfg.minutes * 60 if cfg.minutes else cfg.steps * per_step
        if self.every_kind == "steps":
            n_evals = math.ceil((cfg.steps or budget_s / max(per_step, 1e-9)) / self.every)
        else:
            n_evals = math.ceil(budget_s / self.every)
        n_evals = max(1, n_evals)
        allowed = cfg.suite_share * budget_s / n_evals  # suite seconds of one evaluation
        rate_of = {**{s.name: main_rate for s in self.suites}, **self.suite_rates, **rates}
        left = allowed - sum(_tokens(s.traces[:self.suite_caps[s.name]]) * rate_of[s.name]
                             for s in self.suites if s.name in self.suite_caps)
        todo.sort(key=lambda s: _tokens(s.traces))
        for i, s in enumerate(todo):
            share = max(0.0, left) / (len(todo) - i)
            k, used = 0, 0.0
            for tr in s.traces:
                t = _tokens([tr]) * rates[s.name]
                if k and used + t > share:
                    break
                k, used = k + 1, used + t
            self.suite_caps[s.name], left = k, left - used
        self.suite_rates.update(rates)
        self.suite_plan = {"share": cfg.suite_share, "budget_seconds": round(budget_s, 3),
                           "evaluations": n_evals, "seconds_per_evaluation": round(allowed, 3),
                           "seconds_per_token": {n: rates[n] for n in sorted(rates)}}

    def suite_eval_sets(self) -> None:
        """The evaluation set of each capped suite's traces, made (or found) in the store."""
        todo = [s for s in self.suites if s.name in self.suite_caps and s.name not in self.suite_sets]
        if not todo:
            return
        sets = [(eval_set_name(s.traces[:self.suite_caps[s.name]]), f"suite {s.name}: {s.file}",
                 s.traces[:self.suite_caps[s.name]]) for s in todo]
        for s, ids in zip(todo, self.writer.eval_sets(sets)):
            self.suite_sets[s.name] = ids
        if self.run_id is not None:
            self.report.update(suites=self.suites_report(), suite_cap=self.suite_plan)
            self.writer.update_run(self.run_id, validation=self.report)

    def evaluate_suite(self, s: Suite, step: int, path: Path) -> None:
        """One suite's evaluation of the checkpoint at ``step``: a sibling row (``suite``) with
        the suite's evaluation set, its predictions and rollouts."""
        t0 = time.perf_counter()
        es_id, ids = self.suite_sets[s.name]
        ev = evaluate(self.predictor, s.traces[:self.suite_caps[s.name]], ids)
        m = ev.metrics
        m.update(suite=s.name, step=step, tokens=self.tokens, train_minutes=round(self.train_s / 60, 3))
        if es_id is not None:
            self.writer.evaluation(run_id=self.run_id, eval_set_id=es_id, step=step, path=str(path), metrics=m,
                                   predictions=ev.predictions, rollouts=ev.rollouts, suite=s.name)
        self.suite_s += time.perf_counter() - t0
        _say(f"  suite {s.name:<12} exact {_pct(m['exact'])}  iou {m['mean_iou']:.4f}  "
             f"rollout {_pct(m['rollout_success'])}  ({m['rollouts']} traces, {ev.seconds:.1f}s)")

    # -- data: validate, split, and stop early when too much of it is broken -------------------

    def load_data(self, exclude: set[str]) -> None:
        cfg, paths = self.cfg, self.paths
        bar = progress_bar(sum(p.stat().st_size for p in paths), "reading data")
        t0 = time.perf_counter()
        try:
            data = load_dataset(paths, self.vocab, val_frac=cfg.val_frac, eval_frac=cfg.eval_frac,
                                eval_traces=cfg.eval_traces, val_examples=cfg.val_examples, exclude=exclude,
                                progress=bar.update if bar else None)
        except BaseException as e:
            if self.run_id is not None:
                self.writer.update_run(self.run_id, finished_at=utcnow(),
                                       status=RunStatus.FAILED if isinstance(e, Exception) else RunStatus.STOPPED,
                                       message=f"while reading the data: {type(e).__name__}: {e}")
                self.failure_recorded = True
            raise
        finally:
            if bar:
                bar.close()
        rep = data.report
        rep.update(max_invalid=cfg.max_invalid, include_labelled=cfg.include_labelled,
                   labelled_identities=len(exclude), read_seconds=round(time.perf_counter() - t0, 2))
        self._report_data(data)
        failure = None
        if rep["invalid_fraction"] > cfg.max_invalid:
            failure = (f"{rep['invalid_records']:,} of {rep['lines']:,} records are invalid "
                       f"({_pct(rep['invalid_fraction'])}, above {{max_invalid}} {_pct(cfg.max_invalid)}); "
                       f"nothing was trained. See `lambdascope check {' '.join(map(str, paths))}`")
        elif not len(data.train):
            failure = "no valid training records (all traces are in val/eval, labelled, or invalid)"
        eval_set = ((eval_set_name(data.eval_traces), ", ".join(map(str, paths)), data.eval_traces)
                    if data.eval_traces else None)
        self.data, self.report = data, rep
        if self.suite_caps:  # resumed: the suites as capped before
            rep.update(suites=self.suites_report(), suite_cap=self.suite_plan)
        if self.run_id is not None:
            self.eval_set_id, self.example_ids = self.writer.record_data(
                self.run_id, problems=data.validator.problems + [p for s in self.suites for p in s.problems],
                report=rep,
                failure=TrainError(failure).worded() if failure else None, eval_set=eval_set)
            self.failure_recorded = failure is not None
        if failure:
            raise TrainError(failure)
        self.data = data

    def _report_data(self, data) -> None:
        rep = data.report
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

    # -- model and optimiser ------------------------------------------------------------------

    def build_model(self) -> None:
        cfg, ddp, device, ckpt = self.cfg, self.ddp, self.device, self.ckpt
        self.model = model = SpanModel(self.mcfg).to(device)
        # the model that trains: wrapped for several processes (gradients averaged across them)
        self.trained = (torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ddp.local_rank] if device.startswith("cuda") else None)
            if ddp.enabled else model)
        decays = {n: p.dim() >= 2 and "tok." not in n and "depth." not in n for n, p in model.named_parameters()}
        params = dict(model.named_parameters())
        self.opt = torch.optim.AdamW(
            [{"params": [params[n] for n, d in decays.items() if d], "weight_decay": cfg.weight_decay},
             {"params": [params[n] for n, d in decays.items() if not d], "weight_decay": 0.0}],
            lr=cfg.lr, betas=tuple(cfg.betas))
        position = (0, 0)
        if ckpt:
            model.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["optimizer"])
            self.step, self.tokens, self.padded = ckpt["step"], ckpt["tokens"], ckpt["padded_tokens"]
            self.train_s, self.eval_s = ckpt["train_seconds"], ckpt["eval_seconds"]
            position = tuple(ckpt["data_position"])
        try:
            self.stream = BatchStream(self.data.train, cfg.batch_tokens, cfg.seed, *position,
                                      rank=ddp.rank, world=ddp.world)
        except ValueError as e:
            raise TrainError(str(e)) from None
        self.predictor = Predictor(model, self.vocab, device, batch_tokens=max(16384, cfg.batch_tokens),
                                   decode=cfg.decode)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
                         else contextlib.nullcontext())
        self.peak = read_peak(cfg.peak_file, "cuda" if device.startswith("cuda") else "cpu")
        val = self.data.val
        self.val_batches = [([val.ids[i] for i in b], [val.spans[i] for i in b])
                            for b in make_batches([len(x) for x in val.ids], 16384, random.Random(0))]
        mcfg = self.mcfg
        _say(f"model: {model.n_params() / 1e6:.2f}M parameters ({mcfg.n_layer} layers, d={mcfg.d_model}, "
             f"{mcfg.n_head} heads, depth embedding {'on' if mcfg.depth_embedding else 'off'}"
             + (f", {mcfg.depth_rotary} rotary pairs by depth" if mcfg.depth_rotary else "")
             + _end_bias_phrase(mcfg)
             + (f", training positions stretched by up to {mcfg.position_scale:g}x" if mcfg.position_scale > 1 else "")
             + (f", {cfg.decode} decoding" if cfg.decode != "free" else "")
             + "); "
             f"batches of <= {cfg.batch_tokens} tokens, padding {_pct(self.stream.padding_fraction())} this "
             f"epoch; device {device}, {cfg.threads} threads"
             + (f", {ddp.world} processes (DistributedDataParallel)" if ddp.enabled else ""))

    # -- evaluation -------------------------------------------------------------------------------

    @torch.no_grad()
    def val_loss(self) -> float | None:
        if not self.val_batches:
            return None
        self.model.eval()
        total, n = 0.0, 0
        for ids, spans in self.val_batches:
            x, mask = collate(ids, self.vocab.pad_id)
            x, mask, tgt = x.to(self.device), mask.to(self.device), torch.tensor(spans, device=self.device)
            with self.autocast:
                sl, el = self.model(x, mask, tgt[:, 0])
            total += span_loss(sl, el, mask, tgt, 0.0).item() * len(ids)
            n += len(ids)
        self.model.train()
        return total / n

    def progress_after(self, steps: int) -> float:
        """The share of the budget spent after ``steps`` optimiser steps (0..1)."""
        p = 0.0
        if self.cfg.steps:
            p = max(p, steps / self.cfg.steps)
        if self.cfg.minutes:
            p = max(p, self.train_s / (self.cfg.minutes * 60))
        return p

    def checkpoint_payload(self, metrics: dict | None) -> dict:
        return {"format": CHECKPOINT_FORMAT, "model_config": self.mcfg.to_dict(), "train_config": asdict(self.cfg),
                "vocab": self.vocab.itos, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "run_id": self.run_id, "run_name": self.run_name, "step": self.step, "tokens": self.tokens,
                "padded_tokens": self.padded, "train_seconds": self.train_s, "eval_seconds": self.eval_s,
                "data_position": [self.stream.epoch, self.stream.index], "metrics": metrics or {},
                "suite_caps": self.suite_caps, "suite_plan": self.suite_plan, "suite_seconds": self.suite_s,
                "saved_at": time.time()}

    def run_evaluation(self) -> dict:
        """Validation loss and an evaluation: a checkpoint file, then (queued) its row, its
        predictions, rollouts and metric points."""
        t0 = time.perf_counter()
        step, train_s = self.step, self.train_s
        vl = self.val_loss()
        ev = evaluate(self.predictor, self.data.eval_traces, self.example_ids)
        m = ev.metrics
        if self.suites:
            self.plan_suites(ev.seconds, _tokens(self.data.eval_traces))
            self.suite_eval_sets()
        m.update(val_loss=vl, step=step, tokens=self.tokens, train_minutes=round(train_s / 60, 3))
        path = checkpoint_path(self.out_dir, step).resolve()
        save_checkpoint(path, self.checkpoint_payload(m))
        if self.eval_set_id is not None:
            points = [dict(step=step, name=k, value=m[k]) for k in EVAL_POINT_METRICS if k in m]
            if vl is not None:
                points.append(dict(step=step, name="val_loss", value=vl))
            points.append(dict(step=step, name="train_minutes", value=train_s / 60))
            self.writer.evaluation(run_id=self.run_id, eval_set_id=self.eval_set_id, step=step, path=str(path),
                                   metrics=m, predictions=ev.predictions, rollouts=ev.rollouts,
                                   metric_points=points)
        for s in self.suites:
            self.evaluate_suite(s, step, path)
        self.eval_s += time.perf_counter() - t0
        _say(f"eval step {step:>6} @ {train_s / 60:5.1f} min: val loss {vl if vl is None else round(vl, 4)}  "
             f"exact {_pct(m['exact'])}  iou {m['mean_iou']:.4f}  nf F1 {_pct(m['nf_f1'])}  "
             f"trace {_pct(m['trace_accuracy'])}  rollout {_pct(m['rollout_success'])}  "
             f"({ev.seconds:.1f}s; {path.name})")
        self.last_metrics = m
        return m

    # -- the loop -------------------------------------------------------------------------------

    def run(self, on_step=None) -> dict:
        if self.ddp.is_main:
            self.load_suites()
        exclude = self.open_store()
        try:
            self.load_data(exclude)
            self.build_model()
        except BaseException as e:
            self._fail(e)
            raise
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.ckpt and self.ddp.is_main:
            remove_stale_temporaries(self.out_dir)
            if self.eval_set_id is not None and not self.writer.has_evaluation(self.run_id, self.step):
                self.run_evaluation()  # killed between the save and its evaluation's commit
            elif self.run_id is not None:  # or between the main evaluation's commit and a suite's
                self.suite_eval_sets()
                for s in self.suites:
                    if s.name in self.suite_caps and not self.writer.has_evaluation(self.run_id, self.step, s.name):
                        self.evaluate_suite(s, self.step, checkpoint_path(self.out_dir, self.step).resolve())
        self.start_tokens, self.start_train_s = self.tokens, self.train_s
        self.sum_len, self.n_batches = 0, 0
        final = self.loop(on_step)
        if not self.ddp.is_main:
            return {"rank": self.ddp.rank, "steps": self.step}
        return self.summary(final)

    def _fail(self, e: BaseException) -> None:
        """Mark the run failed (unless its row already says how it ended) and close the writer."""
        if (self.run_id is not None and self.writer.error is None and not self.failure_recorded
                and not isinstance(e, KeyboardInterrupt)):
            self.writer.update_run(self.run_id, status=RunStatus.FAILED, finished_at=utcnow(),
                                   message=f"{type(e).__name__}: {e}")
        with contextlib.suppress(Exception):
            self.writer.close(timeout=60)

    def loop(self, on_step=None) -> dict:
        """Train until the budget is spent or a stop is asked for; the final evaluation's
        metrics (rank 0). Ctrl-C and `kill` stop the run after the current step: a checkpoint
        is saved, the run is marked stopped, and --resume continues it."""
        from tqdm import tqdm

        cfg, ddp = self.cfg, self.ddp
        total = cfg.steps if cfg.steps else int(cfg.minutes * 60)
        self.bar = tqdm(total=total, initial=min(total, self.step if cfg.steps else int(self.train_s)),
                        unit="step" if cfg.steps else "s", desc=f"train {self.run_name}", file=sys.stderr,
                        disable=not sys.stderr.isatty(), dynamic_ncols=True)
        self.next_eval = self._clock() + self.every
        self.window = _Window()
        self.model.train()
        on_main = threading.current_thread() is threading.main_thread()
        stop = _StopRequest()
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)} if on_main else {}
        self.in_step = False  # True while the model and the counters disagree
        try:
            done = self.progress_after(self.step) >= 1.0
            while not done:
                if stop.signal is not None and not ddp.enabled:  # several processes stop together, below
                    raise KeyboardInterrupt
                stop_now, done = self.train_step(stop.signal is not None)
                if ddp.is_main and not done and self._clock() >= self.next_eval:
                    self.run_evaluation()
                    while self.next_eval <= self._clock():
                        self.next_eval += self.every
                if on_step is not None:
                    on_step(self.step, {"run_id": self.run_id, "out_dir": self.out_dir, "writer": self.writer})
                if stop_now:
                    raise KeyboardInterrupt
            self.bar.close()
            final = self.run_evaluation() if ddp.is_main else {}
            distributed.finish(ddp)  # the other ranks end here (exit status 0)
            if self.run_id:
                self.writer.update_run(self.run_id, status=RunStatus.FINISHED, finished_at=utcnow(), message=None)
            self.writer.close()
            return final
        except KeyboardInterrupt:
            self.bar.close()
            if ddp.is_main:  # rank 0 saves the checkpoint and marks the run
                self._interrupted()
            raise
        except BaseException as e:
            self.bar.close()
            self._fail(e)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            distributed.cleanup(ddp)

    def _clock(self) -> float:
        """Where the evaluation schedule stands: steps taken, or seconds trained."""
        return self.step if self.every_kind == "steps" else self.train_s

    def train_step(self, stop_requested: bool) -> tuple[bool, bool]:
        """One optimiser step and its metric points; (stop now, budget spent), agreed by every
        process."""
        cfg, device, ddp = self.cfg, self.device, self.ddp
        self.in_step = True
        t0 = time.perf_counter()
        lr = lr_at(cfg, self.step, self.progress_after(self.step))
        for g in self.opt.param_groups:
            g["lr"] = lr
        x, mask, tgt = next(self.stream)
        x, mask, tgt = x.to(device, non_blocking=True), mask.to(device, non_blocking=True), tgt.to(device)
        with self.autocast:
            sl, el = self.trained(x, mask, tgt[:, 0])  # the end pointer reads the gold start
            loss = span_loss(sl, el, mask, tgt, cfg.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        loss_value = loss.item()  # waits for the step: the timing below is the step's
        if not math.isfinite(loss_value):
            raise TrainError(f"the loss is {loss_value} at step {self.step}: lower {{lr}}")
        dt_step = time.perf_counter() - t0
        self.train_s += dt_step
        # every process learns whether to stop; token counts become those of all processes
        stop_now, done, real, numel = distributed.step_sync(
            ddp, device, stop_requested, self.progress_after(self.step + 1) >= 1.0, int(mask.sum()), x.numel())
        self.step, self.tokens, self.padded = self.step + 1, self.tokens + real, self.padded + numel - real
        self.sum_len, self.n_batches = self.sum_len + x.shape[1], self.n_batches + 1
        self.in_step = False
        self.window.add(loss_value, real, dt_step, x.shape[1])
        self.bar.update(1 if cfg.steps else dt_step)
        if self.window.age() >= cfg.metrics_every:
            self._write_live_points(lr)
        return stop_now, done

    def _write_live_points(self, lr: float) -> None:
        w = self.window
        tps = w.tokens / w.seconds
        points = [("loss", w.loss / w.n), ("lr", lr), ("tokens_per_s", tps)]
        if self.peak:  # model FLOPs per second over the machine's measured matmul peak
            points.append(("mfu", self.model.flops_per_token(w.length / w.n) * tps / self.peak))
        for name, value in points:
            self.writer.metric(self.run_id, self.step, name, value)
        self.bar.set_postfix(loss=f"{w.loss / w.n:.4f}", tok_s=f"{tps:,.0f}", refresh=False)
        self.window = _Window()

    def _interrupted(self) -> None:
        files = checkpoint_files(self.out_dir)
        if not self.in_step:
            files.append(checkpoint_path(self.out_dir, self.step))
            save_checkpoint(files[-1], self.checkpoint_payload(self.last_metrics))
        where = f"--resume continues from {files[-1]}" if files else "no checkpoint to resume from"
        if self.run_id:
            self.writer.update_run(self.run_id, status=RunStatus.STOPPED,
                                   message=f"interrupted at step {self.step}; {where}")
        self.writer.close(timeout=60)
        _say(f"interrupted at step {self.step}: {where} "
             f"(`lambdascope train --resume --out-dir {self.out_dir} --data …`)")

    # -- summary --------------------------------------------------------------------------------

    def summary(self, final: dict) -> dict:
        w, model, peak = self.writer, self.model, self.peak
        step, tokens, train_s, eval_s, run_id = self.step, self.tokens, self.train_s, self.eval_s, self.run_id
        run_tokens, run_s = tokens - self.start_tokens, train_s - self.start_train_s
        tps = run_tokens / run_s if run_s else 0.0
        mean_len = self.sum_len / self.n_batches if self.n_batches else 0.0
        achieved = model.flops_per_token(mean_len) * tps
        mfu = achieved / peak if peak else None
        summary = {
            "run_id": run_id, "run_name": self.run_name, "steps": step, "tokens": tokens,
            "train_minutes": train_s / 60, "eval_minutes": eval_s / 60,
            "tokens_per_s": tps, "achieved_flops": achieved, "peak_flops": peak, "mfu": mfu,
            "padding_fraction": self.padded / (tokens + self.padded) if tokens + self.padded else 0.0,
            "n_params": model.n_params(), "checkpoint": str(checkpoint_path(self.out_dir, step).resolve()),
            "metrics": final, "writer_busy_seconds": w.busy_seconds, "writer_cpu_seconds": w.cpu_seconds,
            "written": w.written, "suites": self.suites_report(), "suite_plan": self.suite_plan,
            "suite_minutes": self.suite_s / 60,
        }
        mfu_text = f"MFU {_pct(mfu)} of {peak / 1e9:.0f} GFLOP/s" if mfu else "MFU n/a (run bench/peak.py)"
        _say(f"done: {self.run_name}: {step} steps, {tokens / 1e6:.2f}M tokens, {train_s / 60:.1f} min training "
             f"+ {eval_s / 60:.1f} min evaluating\n"
             f"  throughput {tps:,.0f} tokens/s (non-padding, this session); {achieved / 1e9:.1f} GFLOP/s, "
             f"{mfu_text}; padding {_pct(summary['padding_fraction'])}\n"
             f"  final: exact {_pct(final['exact'])}, mean IoU {final['mean_iou']:.4f}, nf F1 {_pct(final['nf_f1'])}, "
             f"trace accuracy {_pct(final['trace_accuracy'])}, rollout success {_pct(final['rollout_success'])}\n"
             + (f"  suites: {self.suite_s:.1f}s evaluating = {_pct(self.suite_s / max(train_s, 1e-9))} of "
                f"{train_s:.1f}s training (cap {_pct(self.cfg.suite_share)}); "
                + ", ".join(f"{n} {r['traces']}/{r['of']} traces ({r['steps']} steps)"
                            for n, r in summary["suites"].items()) + "\n" if self.suites else "")
             + f"  checkpoint {summary['checkpoint']}"
             + (f"\n  store: run id {run_id}, {w.written['evaluations']} evaluations, "
                f"{w.written['metric_points']} metric points (writer busy {w.busy_seconds:.1f}s, "
                f"CPU {w.cpu_seconds:.1f}s)"
                if run_id else ""))
        return summary


def _tokens(traces) -> int:
    """Tokens of every step of ``traces`` (a term and its BOS and EOS): what evaluation costs."""
    return sum(len(r.term) + 2 for tr in traces for r in tr.records)


class _Window:
    """What the live metric points average over: the steps since the last points."""

    def __init__(self) -> None:
        self.loss, self.n, self.tokens, self.seconds, self.length = 0.0, 0, 0, 0.0, 0
        self.started = time.monotonic()

    def add(self, loss: float, tokens: int, seconds: float, length: int) -> None:
        self.loss, self.n, self.tokens = self.loss + loss, self.n + 1, self.tokens + tokens
        self.seconds, self.length = self.seconds + seconds, self.length + length

    def age(self) -> float:
        return time.monotonic() - self.started
