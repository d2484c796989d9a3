"""Kill -9 a real ``lambdascope train`` inside its critical sections, and check what it leaves.

Test-only. ``python -m tests.crash_harness train ARGS…`` is ``lambdascope train ARGS…`` with two
slow points put in from outside (nothing in lambdascope/ or trainer/ knows about them), so that
a test can kill the process while it is inside one:

- a checkpoint save: ``torch.save`` to a ``ckpt_*`` file serialises to memory, then writes the
  bytes in ``CHUNKS`` pieces with a pause between them (a slow disk);
- an evaluation write: inside the store writer's transaction, a pause before each SQL statement
  and before the COMMIT (a busy database);
- with ``$LAMBDASCOPE_CRASH_STEP_PAUSE`` set (seconds), every training step takes that much
  longer and writes its live metric points (a model whose steps are slower than the points'
  interval), so that a kill between two checkpoints leaves points the resumed run writes again.

Each section appends ``<event> <step> <time>`` lines to ``$LAMBDASCOPE_CRASH_LOG``: ``save_begin``,
``save_end`` (the bytes are written; the rename follows), ``eval_begin``, ``eval_end`` (committed).
``kill_inside`` waits for the n-th begin of a section and kills at a random moment of it;
``check_consistent`` checks the store and the checkpoint folder afterwards. Used by
tests/test_crash.py (3 kills) and bench/bench_crash.py (20 or more).
"""

from __future__ import annotations

import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_ENV = "LAMBDASCOPE_CRASH_LOG"
PAUSE_ENV = "LAMBDASCOPE_CRASH_PAUSE"  # seconds per pause (default 0.04)
STEP_PAUSE_ENV = "LAMBDASCOPE_CRASH_STEP_PAUSE"  # seconds added to every training step (default none)
CHUNKS = 8


# ---------------------------------------------------------------------------------------------
# The slow points (in the child process)


def _log(event: str, step) -> None:
    with open(os.environ[LOG_ENV], "a") as f:
        f.write(f"{event} {step} {time.time():.6f}\n")
        f.flush()


def install_slow_points() -> None:
    import torch
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    import lambdascope.writer as tw

    pause = float(os.environ.get(PAUSE_ENV, "0.04"))
    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        is_path = isinstance(f, (str, os.PathLike))
        name = os.fspath(f) if is_path else str(getattr(f, "name", ""))  # a path or an open file
        m = re.search(r"ckpt_(\d+)\.pt", os.path.basename(name))
        if not m:
            return real_save(obj, f, *args, **kwargs)
        step = int(m.group(1))
        _log("save_begin", step)
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        out = open(name, "wb") if is_path else f
        try:
            for i in range(CHUNKS):
                out.write(data[i * len(data) // CHUNKS:(i + 1) * len(data) // CHUNKS])
                out.flush()
                time.sleep(pause)
        finally:
            if is_path:
                out.close()
        _log("save_end", step)

    torch.save = slow_save

    in_eval = threading.local()

    @event.listens_for(Engine, "before_cursor_execute")
    def _slow_statement(*args, **kwargs):
        if getattr(in_eval, "step", None) is not None:
            time.sleep(pause)

    @event.listens_for(Engine, "commit")
    def _slow_commit(conn):
        if getattr(in_eval, "step", None) is not None:
            time.sleep(pause)

    real_write = tw.StoreWriter._write_evaluation

    def slow_write(self, kwargs):
        in_eval.step = kwargs["step"]
        _log("eval_begin", kwargs["step"])
        try:
            real_write(self, kwargs)
        finally:
            in_eval.step = None
        _log("eval_end", kwargs["step"])

    tw.StoreWriter._write_evaluation = slow_write

    step_pause = float(os.environ.get(STEP_PAUSE_ENV, "0") or 0)
    if step_pause:
        import trainer.train as tt

        real_step = tt.Training.train_step

        def slow_step(self, stop_requested):
            time.sleep(step_pause)
            return real_step(self, stop_requested)

        tt.Training.train_step = slow_step
        tt._Window.age = lambda self: float("inf")  # live points at every step


def child_main(argv: list[str]) -> int:
    install_slow_points()
    from lambdascope.cli import main

    return main(argv)


# ---------------------------------------------------------------------------------------------
# The parent: start, wait for a section, kill


def train_command(data: Path, db: str, out_dir: Path, *, steps: int, eval_every: int,
                  resume: bool = False, run_name: str = "crash") -> list[str]:
    cmd = [sys.executable, "-m", "tests.crash_harness", "train", "--data", str(data), "--db", db,
           "--out-dir", str(out_dir), "--steps", str(steps), "--eval-every", str(eval_every),
           "--threads", "1", "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--d-ff", "32",
           "--batch-tokens", "1024", "--warmup-steps", "2", "--eval-traces", "20",
           "--eval-frac", "0.15", "--val-frac", "0.1"]
    return cmd + (["--resume"] if resume else ["--run-name", run_name])


def events(log: Path) -> list[tuple[str, int, float]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), float(parts[2])))
    return out


@dataclass
class Kill:
    section: str  # "save" or "eval"
    step: int  # the step whose section was entered
    after_s: float  # seconds after the section began
    completed: bool  # the section had ended when the kill landed
    stderr: str = field(repr=False, default="")


def start(cmd: list[str], log: Path, pause: float = 0.04, step_pause: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, **{LOG_ENV: str(log), PAUSE_ENV: str(pause), STEP_PAUSE_ENV: str(step_pause)})
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def kill_inside(proc: subprocess.Popen, log: Path, section: str, nth: int, rng: random.Random,
                window: float, timeout: float = 120) -> Kill:
    """Wait until ``section`` ('save' or 'eval') has begun ``nth`` times (counting from the
    log's current end), then SIGKILL the process at a uniformly random moment of the next
    ``window`` seconds (about the section's length)."""
    seen = len([e for e in events(log) if e[0] == f"{section}_begin"])
    deadline = time.monotonic() + timeout
    while True:
        begins = [e for e in events(log) if e[0] == f"{section}_begin"]
        if len(begins) >= seen + nth:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"the trainer ended (rc {proc.returncode}) before {section} #{nth}:\n"
                               + proc.stderr.read()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"no {section} section within {timeout} s")
        time.sleep(0.005)
    _, step, began = begins[seen + nth - 1]
    delay = rng.uniform(0, window)
    time.sleep(max(0.0, began + delay - time.time()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ended = any(e[0] == f"{section}_end" and e[1] == step and e[2] >= began for e in events(log))
    return Kill(section, step, round(time.time() - began, 3), ended, proc.stderr.read())


# ---------------------------------------------------------------------------------------------
# After a kill: what must hold


def check_consistent(db_url: str, out_dir: Path, run_name: str = "crash") -> dict:
    """Assert that the store and the checkpoint folder are consistent; returns a summary.

    - every checkpoint row has all its predictions (one per example of its evaluation set),
      all its rollouts (one per trace), the metric points written with it, and its file;
    - no metric point of an evaluation exists without its checkpoint row (no partial write);
    - every ``ckpt_*.pt`` in the folder loads whole, and holds the step of its name.
    """
    import torch
    from sqlalchemy import func, select

    from lambdascope.store import Checkpoint, Example, MetricPoint, Prediction, Rollout, Run, open_store

    engine, Session = open_store(db_url)
    problems: list[str] = []
    try:
        with Session() as s:
            run = s.scalar(select(Run).where(Run.name == run_name))
            cks = [] if run is None else s.scalars(
                select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step)).all()
            for ck in cks:
                n_ex = s.scalar(select(func.count()).select_from(Example).where(Example.eval_set_id == ck.eval_set_id))
                n_tr = s.scalar(select(func.count(func.distinct(Example.trace_identity)))
                                .where(Example.eval_set_id == ck.eval_set_id))
                n_p = s.scalar(select(func.count()).select_from(Prediction).where(Prediction.checkpoint_id == ck.id))
                n_r = s.scalar(select(func.count()).select_from(Rollout).where(Rollout.checkpoint_id == ck.id))
                if (n_p, n_r) != (n_ex, n_tr):
                    problems.append(f"checkpoint row {ck.id} (step {ck.step}): {n_p}/{n_ex} predictions, "
                                    f"{n_r}/{n_tr} rollouts")
                if not Path(ck.path).is_file():
                    problems.append(f"checkpoint row {ck.id} (step {ck.step}): no file {ck.path}")
            steps = [ck.step for ck in cks]
            if len(steps) != len(set(steps)):
                problems.append(f"checkpoint rows repeat a step: {steps}")
            if run is not None:  # the 'exact' point is written in the evaluation's transaction
                exact_steps = sorted(s.scalars(select(MetricPoint.step).where(
                    MetricPoint.run_id == run.id, MetricPoint.name == "exact")))
                if exact_steps != steps:
                    problems.append(f"evaluation metric points at steps {exact_steps}, "
                                    f"checkpoint rows at {steps}")
    finally:
        engine.dispose()
    files = sorted(out_dir.glob("ckpt_*.pt")) if out_dir.is_dir() else []
    loaded = []
    for f in files:
        try:
            payload = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or corrupt file
            problems.append(f"{f.name} does not load: {type(e).__name__}: {e}")
            continue
        if payload.get("step") != int(f.stem.split("_")[1]):
            problems.append(f"{f.name} holds step {payload.get('step')}")
        loaded.append(payload["step"])
    assert not problems, "\n".join(problems)
    return {"checkpoint_rows": steps, "files": loaded,
            "leftover_tmp": len(list(out_dir.glob(".ckpt_*.tmp"))) if out_dir.is_dir() else 0}


def resumed_from(stderr: str) -> int | None:
    m = re.search(r"resuming \S+ from \S+ckpt_(\d+)\.pt \(step (\d+)\)", stderr)
    return int(m.group(2)) if m else None


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.crash_harness train ARGS…")
    sys.exit(child_main(sys.argv[1:]))
