"""The trainer's store writer, dashboard readers and labellers at once, over a real server.

Used by tests/test_concurrency.py (small) and bench/bench_concurrency.py (16 readers, 2
labellers, 60 s). Three processes, as in real use:

- ``lambdascope serve`` on 127.0.0.1 (its stderr kept, to look for "database is locked" and
  tracebacks afterwards);
- a writer process running the trainer's real ``lambdascope.writer.StoreWriter``: a live run with
  metric points every few milliseconds and a whole evaluation (checkpoint row, a prediction for
  every example, rollouts, metric points) every ``eval_every`` seconds;
- this process: reader threads requesting pages and JSON twins with no pause, and labeller
  threads posting labels through the form (with its token) and reading each one back.

A reader that finds a checkpoint checks that its whole evaluation is visible (never a
checkpoint with only part of its predictions). At the end every label written must be in the
export, exactly once, with its note as typed.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from tests.net import free_port

ROOT = Path(__file__).resolve().parent.parent
LIVE_RUN = "live-writer"
NOTE_TAIL = ' <script>alert(1)</script> "quoted" & λ'  # notes carry markup and non-ASCII text



def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------------------------------------
# The writer process


def writer_main(url: str, seconds: float, eval_every: float, out_path: str) -> None:
    """A live run written through the trainer's StoreWriter for ``seconds``."""
    from sqlalchemy import select

    from lambdascope.store import EvalSet, Example, Run, open_store
    from lambdascope.writer import StoreWriter

    engine, Session = open_store(url)
    rng = random.Random(5)
    with Session() as s, s.begin():
        es_id = s.scalar(select(EvalSet.id).order_by(EvalSet.id).limit(1))
        run = Run(name=LIVE_RUN, config={}, data_files=[], data_hash="3" * 64, status="running",
                  eval_set_id=es_id)
        s.add(run)
        s.flush()
        run_id = run.id
        examples = s.execute(select(Example.id, Example.gold_start, Example.gold_end)
                             .where(Example.eval_set_id == es_id)).all()
        idents = sorted(set(s.scalars(select(Example.trace_identity).where(Example.eval_set_id == es_id))))
    w = StoreWriter(Session, flush_seconds=0.2)
    result = {"evaluations_queued": 0, "error": None}
    t0 = time.monotonic()
    step, next_eval = 0, t0 + eval_every
    try:
        while time.monotonic() - t0 < seconds:
            step += 1
            w.metric(run_id, step, "loss", 1.0 / step)
            w.metric(run_id, step, "tokens_per_s", 40_000 + rng.random())
            if time.monotonic() >= next_eval:
                preds = []
                for eid, gs, ge in examples:
                    ok = rng.random() < 0.7
                    ps, pe = (gs, ge) if ok else (0, 0)
                    exact = (ps, pe) == (gs, ge)
                    preds.append(dict(example_id=eid, pred_start=ps, pred_end=pe, start_conf=0.9,
                                      end_conf=0.8, iou=1.0 if exact else 0.0, exact=exact))
                rollouts = [dict(trace_identity=t, success=False, reached_normal_form=False, steps=0,
                                 gold_steps=1, first_divergent_step=0, path=[]) for t in idents]
                exact = sum(p["exact"] for p in preds) / len(preds)
                w.evaluation(run_id=run_id, eval_set_id=es_id, step=step, path=f"live/ckpt_{step:07d}.pt",
                             metrics={"exact": exact, "mean_iou": exact}, predictions=preds,
                             rollouts=rollouts, metric_points=[dict(step=step, name="exact", value=exact)])
                result["evaluations_queued"] += 1
                next_eval += eval_every
            time.sleep(0.005)
        w.update_run(run_id, status="finished")
        w.close(timeout=120)
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    result.update(written=w.written, busy_seconds=round(w.busy_seconds, 2), examples=len(examples),
                  traces=len(idents), error=result["error"] or (repr(w.error) if w.error else None))
    Path(out_path).write_text(json.dumps(result))
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# The clients (this process)


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    labels_written: list[tuple[str, str]] = field(default_factory=list)  # (identity, note)
    labels_read_back: int = 0
    checkpoints_seen: set[int] = field(default_factory=set)
    whole_evaluations_checked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if error:
                self.errors.append(f"{kind}: {error}")


def _check_response(r, kind: str, expect=(200,)) -> str | None:
    if r.status_code not in expect:
        return f"HTTP {r.status_code} {r.request.url.raw_path.decode()[:80]}: {r.text[:200]!r}"
    if "database is locked" in r.text:
        return "database is locked"
    return None


class Load:
    def __init__(self, base: str, plan: dict, stop_at: float, results: Results, seed: int = 0):
        self.base, self.plan, self.stop_at, self.res = base, plan, stop_at, results
        self.seed = seed
        self.live_run_id: int | None = None
        self.newest: int | None = None  # the newest live checkpoint a reader has seen

    def _client(self):
        import httpx

        return httpx.Client(base_url=self.base, timeout=60)

    def reader(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        kinds = ["runs", "run", "checkpoint", "examples", "trace", "compare", "labels", "queue"]
        with self._client() as c:
            while time.time() < self.stop_at:
                kind = rng.choice(kinds)
                t0 = time.perf_counter()
                try:
                    err = getattr(self, f"_read_{kind}")(c, rng)
                except Exception as e:  # a refused, reset or timed-out connection is an error too
                    err = f"{type(e).__name__}: {e}"
                self.res.record(kind, time.perf_counter() - t0, err)

    def _ck(self, rng) -> int:
        cks = self.plan["checkpoints"] + ([self.newest] if self.newest else [])
        return rng.choice(cks)

    def _read_runs(self, c, rng):
        r = c.get("/runs.json")
        err = _check_response(r, "runs")
        if err:
            return err
        for run in r.json()["runs"]:
            if run["name"] == LIVE_RUN:
                self.live_run_id = run["id"]
                if run["latest_checkpoint"]:
                    self.newest = max(self.newest or 0, run["latest_checkpoint"]["id"])
        return None

    def _read_run(self, c, rng):
        run_id = self.live_run_id or self.plan["run_id"]
        return _check_response(c.get(f"/runs/{run_id}"), "run")

    def _read_checkpoint(self, c, rng):
        ck = self.newest or self._ck(rng)
        r = c.get(f"/checkpoints/{ck}.json")
        err = _check_response(r, "checkpoint")
        if err:
            return err
        n = r.json()["summary"]["n"]
        with self.res.lock:
            self.res.checkpoints_seen.add(ck)
            self.res.whole_evaluations_checked += 1
        if n != self.plan["examples"]:  # a reader sees the whole evaluation or none of it
            return f"checkpoint {ck} shows {n} of {self.plan['examples']} predictions"
        return None

    def _read_examples(self, c, rng):
        ck = self._ck(rng)
        q = rng.choice(["correct=wrong&sort=iou", "nf=0&sort=-conf", "labelled=1", "q=%CE%BBx"])
        return _check_response(c.get(f"/examples?ck={ck}&{q}"), "examples")

    def _read_trace(self, c, rng):
        return _check_response(c.get(f"/traces/{rng.choice(self.plan['traces'])}?ck={self._ck(rng)}"), "trace")

    def _read_compare(self, c, rng):
        a, b = self.plan["checkpoints"][0], self.newest or self.plan["checkpoints"][-1]
        return _check_response(c.get(f"/compare.json?a={a}&b={b}"), "compare")

    def _read_labels(self, c, rng):
        return _check_response(c.get("/labels.json"), "labels")

    def _read_queue(self, c, rng):
        return _check_response(c.get(f"/queue.json?ck={self._ck(rng)}"), "queue")

    def labeller(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + 500 + i)
        n = 0
        with self._client() as c:
            page = c.get(f"/traces/{self.plan['traces'][0]}")
            token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
            while time.time() < self.stop_at:
                ident = rng.choice(self.plan["traces"])
                n += 1
                note = f"labeller {i} label {n}{NOTE_TAIL}"
                t0 = time.perf_counter()
                try:
                    r = c.post("/labels", data={"csrf": token, "identity": ident, "step": "",
                                                "category": rng.choice(["bad_gold", "model_error", "other"]),
                                                "note": note},
                               headers={"Origin": self.base, "Sec-Fetch-Site": "same-origin"})
                    err = _check_response(r, "label", expect=(303,))
                except Exception as e:
                    err = f"{type(e).__name__}: {e}"
                self.res.record("label POST", time.perf_counter() - t0, err)
                if err:
                    continue
                with self.res.lock:
                    self.res.labels_written.append((ident, note))
                t0 = time.perf_counter()
                try:  # read it back at once, through the read-only engine
                    r = c.get(f"/traces/{ident}.json")
                    err = _check_response(r, "label read-back")
                    if err is None:
                        if note in [lb["note"] for lb in r.json()["labels"]]:
                            with self.res.lock:
                                self.res.labels_read_back += 1
                        else:
                            err = f"label {note!r} not read back"
                except Exception as e:
                    err = f"{type(e).__name__}: {e}"
                self.res.record("label read-back", time.perf_counter() - t0, err)


def plan_for(url: str) -> dict:
    from sqlalchemy import select

    from lambdascope.store import Checkpoint, EvalSet, Example, Run, open_store

    engine, Session = open_store(url)
    with Session() as s:
        es_id = s.scalar(select(EvalSet.id).order_by(EvalSet.id).limit(1))
        cks = list(s.scalars(select(Checkpoint.id).where(Checkpoint.eval_set_id == es_id).order_by(Checkpoint.id)))
        traces = list(s.scalars(select(Example.trace_identity).where(Example.eval_set_id == es_id,
                                                                     Example.step_k == 0)))
        n = len(s.scalars(select(Example.id).where(Example.eval_set_id == es_id)).all())
        run_id = s.scalar(select(Run.id).order_by(Run.id).limit(1))
    engine.dispose()
    return {"checkpoints": cks, "traces": traces, "examples": n, "run_id": run_id}


@dataclass
class Outcome:
    results: Results
    writer: dict
    exported: list[dict]
    server_log_errors: list[str]
    seconds: float

    def missing_labels(self) -> list[tuple[str, str]]:
        have: dict[tuple[str, str], int] = defaultdict(int)
        for rec in self.exported:
            have[(rec["trace_identity"], rec["note"])] += 1
        return [w for w in self.results.labels_written if have.get(w) != 1]

    def table(self) -> str:
        def q(xs, p):
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")

        lines = [f"{'request':<17}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'errors':>8}"]
        errors_by_kind: dict[str, int] = defaultdict(int)
        for e in self.results.errors:
            errors_by_kind[e.split(":", 1)[0]] += 1
        for kind in sorted(self.results.latencies):
            xs = self.results.latencies[kind]
            lines.append(f"{kind:<17}{len(xs):>8}{q(xs, 0.5):>9.1f}{q(xs, 0.95):>9.1f}"
                         f"{max(xs) * 1000:>9.1f}{errors_by_kind[kind]:>8}")
        return "\n".join(lines)


def run_load(url: str, *, readers: int, labellers: int, seconds: float, eval_every: float,
             workdir: Path, seed: int = 0) -> Outcome:
    """Serve ``url``, start the writer, run the clients for ``seconds``; return what happened."""
    import httpx

    plan = plan_for(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "lambdascope.cli", "serve", "--db", url,
                                   "--port", str(port), "--log-level", "warning"],
                                  cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    writer = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/runs.json", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.1)
        writer_out = workdir / "writer.json"
        writer = subprocess.Popen([sys.executable, "-c", "import sys; from tests.concurrency_harness "
                                   "import writer_main; writer_main(*sys.argv[1:2], float(sys.argv[2]), "
                                   "float(sys.argv[3]), sys.argv[4])", url, str(seconds), str(eval_every),
                                   str(writer_out)], cwd=ROOT, env=_env())
        res = Results()
        t0 = time.time()
        load = Load(base, plan, t0 + seconds, res, seed)
        threads = [threading.Thread(target=load.reader, args=(i,)) for i in range(readers)]
        threads += [threading.Thread(target=load.labeller, args=(i,)) for i in range(labellers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        writer.wait(timeout=max(120, seconds * 2))
        written = json.loads(writer_out.read_text()) if writer_out.exists() else {"error": "no result"}
        exported = [json.loads(line) for line in httpx.get(base + "/labels/export.jsonl", timeout=60).text.splitlines()]
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    log_errors = [ln for ln in log_path.read_text(errors="replace").splitlines()
                  if "locked" in ln.lower() or "Traceback" in ln or "ERROR" in ln]
    return Outcome(res, written, exported, log_errors, elapsed)


def summary(o: Outcome) -> str:
    r = o.results
    n = sum(len(x) for x in r.latencies.values())
    w = o.writer
    locked = sum("locked" in e for e in r.errors + o.server_log_errors)
    return (f"{n} requests in {o.seconds:.0f} s ({n / o.seconds:.0f}/s), {len(r.errors)} errors, "
            f"{locked} 'database is locked'; server log: {len(o.server_log_errors)} error lines\n"
            f"writer (trainer's StoreWriter): {w.get('written')} in {w.get('busy_seconds')} s busy, "
            f"evaluations of {w.get('examples')} predictions; error: {w.get('error')}\n"
            f"labels: {len(r.labels_written)} written, {r.labels_read_back} read back at once, "
            f"{len(o.missing_labels())} missing from the export; whole-evaluation checks: "
            f"{r.whole_evaluations_checked} over {len(r.checkpoints_seen)} checkpoints")
