"""Dashboard cost and latency: a store of 10 checkpoints x ~100,000 examples (1,000,000
predictions) and 8 concurrent clients, in three phases, each on its own server:

1. the floor: a bare Starlette endpoint on the same server stack (bench/floor_app.py);
2. each of 11 page kinds alone (runs, run with its curves, checkpoint, examples filtered / by
   error kind / searched / 500 pages deep, trace, compare, compare filtered, labels), writer off:
   the server's CPU per request, and its ratio to the floor's (comparable across machines);
3. all kinds together with a trainer-like writer inserting evaluations and metric points:
   p50/p95/max latency per kind and the errors.

Asserts nothing; prints whether every kind is within 2.5 ms of CPU per request and p95 < 50 ms.

    .venv/bin/python bench/bench_dashboard.py                 # build the store once, then run
    .venv/bin/python bench/bench_dashboard.py --rebuild       # build it again
    .venv/bin/python bench/bench_dashboard.py --seconds 30 --phase-seconds 8 --clients 8

The store is built through ``store.ensure_eval_set`` and ``store.write_evaluation`` (what the
trainer calls), from reference-generator traces and synthetic predictions. The server runs as
``lambdascope serve`` in its own process (or several, ``--workers``), the writer in another, the
clients in a third (asyncio, one keep-alive connection each, no pause between requests).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.settings import DEFAULT_THREADS  # noqa: E402
from lambdascope.store import (DataProblem, Label, MetricPoint, Run, ensure_eval_set,  # noqa: E402
                               open_store, write_evaluation)
from tests.app_store import make_traces, prediction, rollout_of, wrong_span  # noqa: E402

PAGE_SIZE = 50
METRICS = ("loss", "lr", "tokens_per_s", "exact", "mean_iou", "nf_f1", "rollout_success", "mfu")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Building the store


def synthetic_evaluation(traces, ids, rng: random.Random, difficulty: dict, quality: float):
    """Predictions and rollouts of a checkpoint whose chance of an exact span is ``quality``,
    correlated across checkpoints through each example's fixed difficulty."""
    preds, rollouts = [], []
    for tr in traces:
        spans = {}
        for r in tr.records:
            key = (tr.identity, r.step_k)
            right = difficulty[key] < quality if rng.random() > 0.04 else rng.random() < 0.5
            span = r.span if right else wrong_span(rng, r.term, r.span)
            spans[r.step_k] = span
            preds.append(prediction(rng, ids[key], r.term, r.span, span))
        rollouts.append(rollout_of(tr, spans))
    n = len(preds)
    metrics = {"exact": sum(p["exact"] for p in preds) / n, "mean_iou": sum(p["iou"] for p in preds) / n,
               "rollout_success": sum(r["success"] for r in rollouts) / len(rollouts), "nf_f1": quality}
    return preds, rollouts, metrics


def build(url: str, n_examples: int, n_checkpoints: int, seed: int) -> None:
    t0 = time.perf_counter()
    traces, count, batch, seen = [], 0, 0, set()
    while count < n_examples:  # traces of ~9 steps until there are enough examples
        more = make_traces(2000, seed + batch)
        batch += 1
        for tr in more:
            if count >= n_examples:
                break
            if tr.identity in seen:  # the same first term again: one trace is enough
                continue
            seen.add(tr.identity)
            traces.append(tr)
            count += len(tr.records)
    log(f"generated {len(traces)} traces, {count} examples in {time.perf_counter() - t0:.1f} s")
    engine, Session = open_store(url)
    rng = random.Random(seed)
    with Session() as s:
        es_id, ids = ensure_eval_set(s, "bench-eval", "reference generator", traces)
        run = Run(name="bench-run", config={"d_model": 256}, data_files=["data/bench.jsonl"],
                  data_hash="0" * 64, status="finished", eval_set_id=es_id,
                  validation={"lines": 1_000_000, "valid_records": 999_000,
                              "problems_by_reason": {"bad_json": 600, "wrong_span": 400}})
        s.add(run)
        s.flush()
        s.add_all([DataProblem(run_id=run.id, file="data/bench.jsonl", line=i * 97,
                               reason="bad_json" if i % 3 else "wrong_span", detail=f"problem {i}")
                   for i in range(1000)])
        s.execute(MetricPoint.__table__.insert(), [
            dict(run_id=run.id, step=k * 10, name=name, value=1.0 / (k + 1) + i)
            for k in range(5000) for i, name in enumerate(METRICS)])
        s.commit()
        difficulty = {(tr.identity, r.step_k): rng.random() for tr in traces for r in tr.records}
        for c in range(n_checkpoints):
            t1 = time.perf_counter()
            quality = 0.35 + 0.55 * c / max(1, n_checkpoints - 1)
            preds, rollouts, metrics = synthetic_evaluation(traces, ids, rng, difficulty, quality)
            t2 = time.perf_counter()
            write_evaluation(s, run_id=run.id, eval_set_id=es_id, step=(c + 1) * 1000,
                             path=f"runs/bench/ckpt-{c + 1}.pt", metrics=metrics, predictions=preds,
                             rollouts=rollouts,
                             metric_points=[{"step": (c + 1) * 1000, "name": k, "value": v}
                                            for k, v in metrics.items()])
            s.commit()
            log(f"checkpoint {c + 1}/{n_checkpoints}: {len(preds)} predictions "
                f"(made in {t2 - t1:.1f} s, written in {time.perf_counter() - t2:.1f} s)")
        sample = [tr.identity for tr in traces[::max(1, len(traces) // 300)]]
        s.add_all([Label(trace_identity=t, step_k=None, category="interesting", note="bench", term="")
                   for t in sample[:200]])
        s.commit()
    engine.dispose()
    log(f"built {url} in {time.perf_counter() - t0:.0f} s")


# ---------------------------------------------------------------------------------------------
# The writer: a live run, metric points every half second, an evaluation every few seconds


def writer(url: str, stop_at: float, eval_every: float, out: mp.Queue) -> None:
    engine, Session = open_store(url)
    rng = random.Random(99)
    written = {"evaluations": 0, "metric_points": 0, "eval_write_s": []}
    with Session() as s:
        es_id = s.execute(text("SELECT id FROM eval_sets WHERE name = 'bench-eval'")).scalar_one()
        run = Run(name=f"live-{os.getpid()}", config={}, data_files=[], data_hash="2" * 64,
                  status="running", eval_set_id=es_id)
        s.add(run)
        s.commit()
        ex = s.execute(text("SELECT id, gold_start, gold_end, term_len FROM examples "
                            "WHERE eval_set_id = :e"), {"e": es_id}).all()
        idents = [r[0] for r in s.execute(text(
            "SELECT DISTINCT trace_identity FROM examples WHERE eval_set_id = :e"), {"e": es_id})]
        step, next_eval = 0, time.time() + eval_every
        while time.time() < stop_at:
            step += 100
            s.execute(MetricPoint.__table__.insert(), [
                dict(run_id=run.id, step=step, name=n, value=rng.random())
                for n in ("loss", "lr", "tokens_per_s")])
            s.commit()
            written["metric_points"] += 3
            if time.time() >= next_eval:
                t0 = time.perf_counter()
                preds = []
                for eid, gs, ge, n in ex:
                    ok = rng.random() < 0.7
                    ps, pe = (gs, ge) if ok else (0, 0)
                    preds.append({"example_id": eid, "pred_start": ps, "pred_end": pe,
                                  "start_conf": 0.9, "end_conf": 0.9,
                                  "iou": 1.0 if ok else (1.0 if (gs, ge) == (0, 0) else 0.0),
                                  "exact": ok or (gs, ge) == (0, 0)})
                rollouts = [{"trace_identity": t, "success": False, "reached_normal_form": False,
                             "steps": 0, "gold_steps": 1, "first_divergent_step": 0, "path": []}
                            for t in idents]
                write_evaluation(s, run_id=run.id, eval_set_id=es_id, step=step, path="live.pt",
                                 metrics={"exact": 0.7}, predictions=preds, rollouts=rollouts,
                                 metric_points=[{"step": step, "name": "exact", "value": 0.7}])
                s.commit()
                written["evaluations"] += 1
                written["eval_write_s"].append(time.perf_counter() - t0)
                next_eval = time.time() + eval_every
            time.sleep(0.5)
        run.status = "finished"
        s.commit()
    engine.dispose()
    out.put(written)


# ---------------------------------------------------------------------------------------------
# Clients


def request_path(rng: random.Random, plan: dict, kind: str) -> str:
    """One address of page kind ``kind``, drawn at random over the benchmark's checkpoints."""
    cks, cursors, traces = plan["checkpoints"], plan["cursors"], plan["traces"]
    i = rng.randrange(len(cks))
    ck = cks[i]
    j = i + 1 if i + 1 < len(cks) else i - 1  # compare: a checkpoint with its neighbour
    a, b = cks[min(i, j)], cks[max(i, j)]
    if kind == "floor":
        return "/"
    if kind == "runs":
        return "/"
    if kind == "run":  # its curves: 8 metrics x 5,000 points, the checkpoints' error kinds
        return f"/runs/{plan['run']}"
    if kind == "checkpoint":
        return f"/checkpoints/{ck}"
    if kind == "examples p1":
        return rng.choice([f"/examples?ck={ck}&correct=wrong&sort=iou",
                           f"/examples?ck={ck}&nf=0&len_min=40&labelled=0&sort=-conf"])
    if kind == "examples kind":
        return rng.choice([f"/examples?ck={ck}&kind=not_redex&sort=-len",
                           f"/examples?ck={ck}&kind=false_nf&kind=missed_nf"])
    if kind == "examples search":
        return f"/examples?ck={ck}&q={rng.choice(plan['searches'])}"
    if kind == "examples p500":
        return f"/examples?ck={ck}&nf=0&sort=iou&after={cursors[ck]}"
    if kind == "trace":
        return f"/traces/{rng.choice(traces)}?ck={ck}"
    if kind == "compare":
        return f"/compare?a={a}&b={b}"
    if kind == "compare kind":
        return rng.choice([f"/compare?a={a}&b={b}&kind=fixed", f"/compare?a={a}&b={b}&kind=broken&order=-change"])
    if kind == "labels":
        return "/labels"
    raise ValueError(kind)


KINDS = ["runs", "run", "checkpoint", "examples p1", "examples kind", "examples search", "examples p500",
         "trace", "compare", "compare kind", "labels"]


def clients(port: int, n: int, plan: dict, kinds: list[str], start_at: float, warm_until: float,
            stop_at: float, out: mp.Queue) -> None:
    """``n`` concurrent clients, each requesting page after page with no pause, on one
    keep-alive connection each: asyncio and raw HTTP/1.1 in one process, so that the clients
    take little of the CPU the server needs."""
    import asyncio

    async def one(seed: int) -> list:
        rng = random.Random(seed)
        results = []
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.time() < start_at:
            await asyncio.sleep(0.01)
        while time.time() < stop_at:
            kind = rng.choice(kinds)
            path = request_path(rng, plan, kind)
            t0 = time.perf_counter()
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                ok = status == 200 and len(body) > 0
                kept = b"\r\nx-lambdascope-cache: hit" in head.lower()  # the page cache's answer
            except Exception as e:  # a refused or broken connection is an error too
                status, ok, kept = repr(e)[:80], False, False
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            results.append((kind, time.perf_counter() - t0, ok, status, time.time() < warm_until, kept))
        writer.close()
        return results

    async def run() -> list:
        parts = await asyncio.gather(*(one(i) for i in range(n)))
        return [r for part in parts for r in part]

    out.put(asyncio.run(run()))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children (the server's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drop_live_runs(url: str) -> None:
    """Remove what earlier benchmarks' writers added (runs named live-*), so that every run
    measures the store as built: 10 checkpoints of ~100,000 predictions."""
    engine, Session = open_store(url)
    with Session() as s:
        runs = [r[0] for r in s.execute(text("SELECT id FROM runs WHERE name LIKE 'live-%'"))]
        if runs:
            t0 = time.perf_counter()
            marks = ", ".join(str(int(r)) for r in runs)
            cks = f"SELECT id FROM checkpoints WHERE run_id IN ({marks})"
            for sql in (f"DELETE FROM predictions WHERE checkpoint_id IN ({cks})",
                        f"DELETE FROM rollouts WHERE checkpoint_id IN ({cks})",
                        f"DELETE FROM checkpoints WHERE run_id IN ({marks})",
                        f"DELETE FROM metric_points WHERE run_id IN ({marks})",
                        f"DELETE FROM data_problems WHERE run_id IN ({marks})",
                        f"DELETE FROM runs WHERE id IN ({marks})"):
                s.execute(text(sql))
            s.commit()
            log(f"removed {len(runs)} live runs of earlier benchmarks in {time.perf_counter() - t0:.1f} s")
    engine.dispose()


def bench_checkpoints(url: str) -> list[int]:
    engine, Session = open_store(url)
    with Session() as s:
        cks = [r[0] for r in s.execute(text(
            "SELECT c.id FROM checkpoints c JOIN runs r ON r.id = c.run_id "
            "WHERE r.name = 'bench-run' ORDER BY c.step"))]
    engine.dispose()
    return cks


def plan_for(url: str, pages_over: int | None = None) -> dict | None:
    """The addresses the clients draw from; ``pages_over``: only that many of the benchmark
    run's checkpoints, evenly spaced (None: all of them; out of range: None)."""
    cks = every = bench_checkpoints(url)
    if pages_over is not None:
        if not 2 <= pages_over <= len(cks):
            return None
        cks = [cks[round(i * (len(cks) - 1) / (pages_over - 1))] for i in range(pages_over)]
    engine, Session = open_store(url)
    with Session() as s:
        cursors = {}
        # the list of examples p500 (nf=0&sort=iou): its rows' sort keys, in its sort order
        listed = ("SELECT p.iou, p.example_id FROM predictions p JOIN examples e ON e.id = p.example_id "
                  "WHERE p.checkpoint_id = :c AND NOT (e.gold_start = 0 AND e.gold_end = 0) ")
        for ck in cks:
            # the last row of page 499 of the filter: page 500 starts after it (a small store's
            # list is shorter: its last page, after its last row but one)
            rows = s.execute(text(listed + "ORDER BY p.iou, p.example_id LIMIT 2 OFFSET :o"),
                             {"c": ck, "o": 499 * PAGE_SIZE - 1}).all() \
                or s.execute(text(listed + "ORDER BY p.iou DESC, p.example_id DESC LIMIT 2"), {"c": ck}).all()[::-1]
            iou, eid = rows[0]
            cursors[ck] = f"{iou!r},{eid}"
        traces = [r[0] for r in s.execute(text(
            "SELECT trace_identity FROM examples WHERE step_k = 0 ORDER BY id LIMIT 2000"))]
        run = s.execute(text("SELECT id FROM runs WHERE name = 'bench-run'")).scalar_one()
        n_pred = s.execute(text("SELECT count(*) FROM predictions")).scalar_one()
        n_ex = s.execute(text("SELECT count(*) FROM examples")).scalar_one()
    engine.dispose()
    # substrings a person searches for: common (a numeral's body) to rare (a free variable's use)
    searches = [quote("λf.λx.f"), quote("(λx.x x)"), quote("a b"), quote("λz.λg")]
    return {"checkpoints": cks, "store_checkpoints": len(every), "cursors": cursors, "traces": traces, "predictions": n_pred,
            "examples": n_ex, "run": run, "searches": searches}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=str(ROOT / "data" / "bench" / "dashboard.db"))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60, help="seconds of the mixed phase (all kinds, writer on)")
    ap.add_argument("--phase-seconds", type=float, default=8,
                    help="seconds of each page kind alone, and of the floor (0: skip the kinds alone)")
    ap.add_argument("--warmup", type=float, default=10, help="seconds not counted at the start")
    ap.add_argument("--eval-every", type=float, default=15, help="seconds between the writer's evaluations")
    ap.add_argument("--no-writer", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"page kinds to measure, comma-separated (default all: {', '.join(KINDS)})")
    ap.add_argument("--page-cache", type=int, default=None, metavar="MB",
                    help="serve --page-cache (default: serve's). The kinds alone are also measured "
                    "with it off (0): 'cold' is a page the cache has not seen")
    ap.add_argument("--no-cold", action="store_true", help="skip the kinds alone with the page cache off")
    ap.add_argument("--pages-over", type=int, default=None, metavar="K",
                    help="draw the pages' checkpoints from K of the benchmark run's, evenly spaced (default: "
                    "all). A bigger store with K = 10 is measured over as many distinct pages as the "
                    "default 10-checkpoint store: what then differs is the store's size alone")
    ap.add_argument("--threads", type=int, default=None,
                    help="requests each server process handles at once (default: serve's)")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        ap.error(f"--kinds: unknown {', '.join(unknown) or 'nothing given'}; the kinds: {', '.join(KINDS)}")
    args.kind_list = kinds

    db = Path(args.db)
    url = args.url = f"sqlite:///{db.resolve()}"
    if args.rebuild:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        build(url, args.examples, args.checkpoints, seed=1000)
    drop_live_runs(url)
    plan = plan_for(url, args.pages_over)
    if plan is None:
        ap.error(f"--pages-over: 2 to the store's {len(bench_checkpoints(url))} benchmark checkpoints, "
                 f"got {args.pages_over}")
    log(f"store: {plan['examples']:,} examples, {plan['predictions']:,} predictions, "
        f"{plan['store_checkpoints']} benchmark checkpoints, pages over {len(plan['checkpoints'])}")

    floor = measure_floor(args, plan)
    isolated, cold = {}, {}
    if args.phase_seconds > 0:
        with Server(url, args) as server:
            for kind in kinds:  # each kind alone, no writer: its own server CPU per request
                isolated[kind] = load(server, args, plan, [kind], args.phase_seconds, writer_on=False)
                log(f"{kind}: {isolated[kind]['cpu_ms']:.2f} ms of server CPU per request")
        if not args.no_cold:
            with Server(url, args, page_cache=0) as server:  # every request made afresh
                for kind in kinds:
                    cold[kind] = load(server, args, plan, [kind], args.phase_seconds, writer_on=False)
                    log(f"{kind}, page cache off: {cold[kind]['cpu_ms']:.2f} ms of server CPU per request")
    with Server(url, args) as server:  # all kinds at once, the writer on: latency
        mixed = load(server, args, plan, kinds, args.seconds, writer_on=not args.no_writer)
    report(args, plan, floor, isolated, cold, mixed)
    return 0


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


class Server:
    """``lambdascope serve`` over the store (or the floor app), started and stopped."""

    def __init__(self, url: str | None, args, floor: bool = False, page_cache: int | None = None):
        self.port = free_port()
        threads = args.threads or DEFAULT_THREADS
        if floor:
            cmd = [sys.executable, str(ROOT / "bench" / "floor_app.py"), str(self.port), str(threads)]
        else:
            cmd = ([str(ROOT / ".venv" / "bin" / "lambdascope"), "serve", "--db", url, "--port", str(self.port),
                    "--log-level", "warning", "--workers", str(args.workers), "--threads", str(threads)])
            mb = args.page_cache if page_cache is None else page_cache
            if mb is not None:
                cmd += ["--page-cache", str(mb)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.log: list[str] = []

    def __enter__(self) -> "Server":
        import httpx

        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=2)
                self.wait_until_idle()
                return self
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server stopped: {self.proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
        raise RuntimeError("the server did not answer in 30 s")

    def wait_until_idle(self, limit: float = 180.0) -> None:
        """Until the server's cache warmer is done (its CPU under 5% for half a second): it takes
        about a third of the process for tens of seconds after a start, and would be counted."""
        t0 = time.time()
        last = cpu_seconds(self.proc.pid)
        while time.time() - t0 < limit:
            time.sleep(0.5)
            now = cpu_seconds(self.proc.pid)
            if now - last < 0.025:
                return
            last = now
        log(f"the server was still busy after {limit:.0f} s; measuring anyway")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.log = [ln for ln in err.decode(errors="replace").splitlines()
                    if "Traceback" in ln or "locked" in ln or "ERROR" in ln]
        SERVER_LOG_ERRORS.extend(self.log)


SERVER_LOG_ERRORS: list[str] = []


def load(server: Server, args, plan: dict, kinds: list[str], seconds: float, writer_on: bool) -> dict:
    """``args.clients`` clients on ``kinds`` for a warm-up and then ``seconds``: the results and
    the server's CPU over the measured part."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    warmup = args.warmup if len(kinds) > 1 else min(args.warmup, 2.0)
    start_at = time.time() + 1.5
    warm_until = start_at + warmup
    stop_at = warm_until + seconds
    procs = []
    if writer_on:
        procs.append(ctx.Process(target=writer, args=(args.url, stop_at, args.eval_every, out)))
    procs.append(ctx.Process(target=clients, args=(server.port, args.clients, plan, kinds, start_at,
                                                   warm_until, stop_at, out)))
    for p in procs:
        p.start()
    time.sleep(max(0.0, warm_until - time.time()))
    cpu0, load0 = cpu_seconds(server.proc.pid), os.getloadavg()[0]
    time.sleep(max(0.0, stop_at - time.time()))
    cpu1, load1 = cpu_seconds(server.proc.pid), os.getloadavg()[0]
    results, written = [], None
    for _ in procs:
        item = out.get()
        if isinstance(item, dict):
            written = item
        else:
            results.extend(item)
    for p in procs:
        p.join()
    measured = [r for r in results if not r[4]]
    return {"results": results, "written": written, "cpu_ms": (cpu1 - cpu0) * 1000 / max(len(measured), 1),
            "rate": len(measured) / seconds, "load": (load0, load1)}


def measure_floor(args, plan: dict) -> dict:
    with Server(None, args, floor=True) as server:
        return load(server, args, plan, ["floor"], args.phase_seconds or 5, writer_on=False)


def report(args, plan: dict, floor: dict, isolated: dict, cold: dict, mixed: dict) -> None:
    f_lat = [r[1] * 1000 for r in floor["results"] if not r[4]]
    over = (f"; pages drawn over {len(plan['checkpoints'])} of them" if args.pages_over is not None else "")
    print(f"\ndashboard benchmark: {plan['predictions']:,} predictions ({plan['store_checkpoints']} checkpoints x "
          f"~{plan['examples']:,} examples{over}), {args.clients} clients; {os.cpu_count()} CPUs")
    print(f"floor (a bare Starlette endpoint, same server stack): {floor['cpu_ms']:.2f} ms of server CPU per "
          f"request, p50 {q(f_lat, 0.5):.1f} ms, p95 {q(f_lat, 0.95):.1f} ms, {floor['rate']:.0f} requests/s")
    if isolated:
        print(f"\neach page kind alone ({args.phase_seconds:.0f} s each, writer off): server CPU per request, "
              "with the page cache (as served) and without it (cold: every request made afresh)")
    print(f"{'page':<17}{'CPU ms':>8}{'x floor':>9}{'cold ms':>9}{'x floor':>9}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'max ms':>9}{'kept %':>8}{'errors':>8}"
          f"   <- mixed: all kinds together, {args.seconds:.0f} s after {args.warmup:.0f} s warm-up, "
          f"writer {'off' if args.no_writer else 'on'}")
    results = mixed["results"]
    cpu_ok = lat_ok = cold_ok = True
    for kind in args.kind_list:
        hot = [r for r in results if r[0] == kind and not r[4]]
        lat = [r[1] * 1000 for r in hot]
        errors = sum(not r[2] for r in results if r[0] == kind)
        errors += sum(not r[2] for r in isolated.get(kind, {}).get("results", []))
        errors += sum(not r[2] for r in cold.get(kind, {}).get("results", []))
        cpu = isolated[kind]["cpu_ms"] if kind in isolated else float("nan")
        cold_ms = cold[kind]["cpu_ms"] if kind in cold else float("nan")
        cpu_ok &= cpu <= 2.5
        cold_ok &= not cold_ms > 2.5
        lat_ok &= errors == 0 and q(lat, 0.95) < 50
        print(f"{kind:<17}{cpu:>8.2f}{cpu / floor['cpu_ms']:>9.1f}{cold_ms:>9.2f}{cold_ms / floor['cpu_ms']:>9.1f}"
              f"{q(lat, 0.5):>9.1f}{q(lat, 0.95):>9.1f}"
              f"{max(lat, default=0):>9.1f}{100 * sum(r[5] for r in hot) / max(len(hot), 1):>8.1f}{errors:>8}")
    bad = [r for r in results if not r[2]]
    if bad:
        print("first errors:", bad[:5])
    measured = [r for r in results if not r[4]]
    print(f"mixed: {100 * sum(r[5] for r in measured) / max(len(measured), 1):.1f}% of the answers from the page "
          f"cache (kept %: the server's x-lambdascope-cache: hit)")
    print(f"mixed: server CPU {mixed['cpu_ms']:.2f} ms per request ({mixed['cpu_ms'] / floor['cpu_ms']:.1f}x the "
          f"floor), {mixed['rate']:.0f} requests/s; load average {mixed['load'][0]:.1f} -> {mixed['load'][1]:.1f} "
          f"(processes outside this benchmark count too)")
    written = mixed["written"]
    if written:
        ws = written["eval_write_s"]
        print(f"writer: {written['evaluations']} evaluations of {plan['examples']:,} predictions "
              f"(write {statistics.mean(ws) if ws else 0:.1f} s each), {written['metric_points']} metric points")
    print(f"server log: {len(SERVER_LOG_ERRORS)} error lines"
          + (f", e.g. {SERVER_LOG_ERRORS[0]}" if SERVER_LOG_ERRORS else ""))
    if isolated:
        print("every page kind <= 2.5 ms of server CPU per request" if cpu_ok
              else "NOT every page kind <= 2.5 ms of server CPU per request")
    if cold:
        print("cold (page cache off): every page kind <= 2.5 ms" if cold_ok
              else "cold (page cache off): NOT every page kind <= 2.5 ms")
    print("all p95 < 50 ms with no error" if lat_ok else "NOT all p95 < 50 ms with no error")


if __name__ == "__main__":
    sys.exit(main())
