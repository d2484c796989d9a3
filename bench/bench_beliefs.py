"""The server's time for a trace's beliefs: a 30-step trace of about 100 characters, a model of
the default size (trainer.config: 4 layers, 4 heads, d_model 128), on this machine's CPU.

In one run, interleaved, the median of ``--reps`` repetitions after a warm-up:

- ``fragment``: ``GET /traces/ID/beliefs?ck=&step=0`` with nothing kept (the 30 steps' beliefs
  computed in the model pool, one step's panel rendered), in process through the ASGI stack;
- ``json``: ``GET /traces/ID.json?ck=``, the trace's JSON twin with every step's beliefs;
- ``model``: ``Predictor.beliefs_many`` on the 30 terms, alone;
- ``floor``: the plain forward passes of the same batches (``SpanModel.forward``, the fused
  attention, on the batches ``beliefs_many`` makes: the trace's terms grouped by length);
- ``one batch``: one plain forward pass of all 30 terms padded to the longest;
- ``decode``: ``Predictor.predict_many`` (forward passes and the constrained decoder).

Each as wall time and as the process's CPU time (all threads), with the ratio to the floor, so
figures compare across machines. The checkpoint file is loaded once, before (reported apart).

    .venv/bin/python bench/bench_beliefs.py              # 15 repetitions
    .venv/bin/python bench/bench_beliefs.py --reps 30 --torch-threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lambdascope.generate import Options, generate  # noqa: E402
from lambdascope.store import Run, ensure_eval_set, open_store, write_evaluation  # noqa: E402
from lambdascope.traces import Record, TraceResult  # noqa: E402
from trainer.checkpoints import CHECKPOINT_FORMAT, save_checkpoint  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data import Vocab, collate  # noqa: E402
from trainer.evaluate import evaluate  # noqa: E402
from trainer.model import ModelConfig, SpanModel  # noqa: E402
from trainer.predict import BELIEF_CELLS, Predictor  # noqa: E402

STEPS = 30
TARGET_LEN = 100


def a_trace(seed: int) -> TraceResult:
    """The first generated trace of at least 30 steps whose first 30 terms average 90 to 110
    characters, cut to those 30 steps."""
    for tr in generate(Options(seed=seed), 20_000):
        if len(tr.terms) >= STEPS and abs(sum(map(len, tr.terms[:STEPS])) / STEPS - TARGET_LEN) <= 10:
            tid = f"bench-{tr.index}"
            recs = [Record(0, tid, k, STEPS - 1, term, span)
                    for k, (term, span) in enumerate(zip(tr.terms[:STEPS], tr.spans[:STEPS]))]
            return TraceResult(tid, recs, True)
    raise SystemExit("no such trace in the first 20,000")


def build(folder: Path, trace: TraceResult) -> tuple[str, int, SpanModel, Vocab]:
    vocab = Vocab()
    tc = TrainConfig(data=[])
    torch.manual_seed(0)
    model = SpanModel(ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, open_id=vocab.open_id,
                                  close_id=vocab.close_id, n_layer=tc.n_layer, n_head=tc.n_head,
                                  d_model=tc.d_model, d_ff=tc.d_ff)).eval()
    path = folder / "ckpt_0000001.pt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "model_config": model.cfg.to_dict(),
                           "train_config": {}, "vocab": vocab.itos, "model": model.state_dict(),
                           "optimizer": {}, "run_id": 1, "run_name": "bench", "step": 1, "tokens": 0,
                           "padded_tokens": 0, "train_seconds": 0.0, "eval_seconds": 0.0,
                           "data_position": [0, 0], "metrics": {}, "saved_at": time.time()})
    url = f"sqlite:///{folder}/store.db"
    engine, Session = open_store(url)
    with Session() as s, s.begin():
        es, ids = ensure_eval_set(s, "bench", "bench_beliefs", [trace])
        run = Run(name="bench", config={}, data_files=[], data_hash="", status="finished", eval_set_id=es)
        s.add(run)
        s.flush()
        ev = evaluate(Predictor(model, vocab), [trace], ids)
        ck = write_evaluation(s, run_id=run.id, eval_set_id=es, step=1, path=str(path), metrics=ev.metrics,
                              predictions=ev.predictions, rollouts=ev.rollouts)
    engine.dispose()
    return url, ck, model, vocab


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--torch-threads", type=int, default=None, help="torch's intra-op threads (default: its own)")
    args = ap.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    import httpx

    from app.settings import Settings
    from lambdascope.commands.dashboard import create_dashboard

    trace = a_trace(args.seed)
    terms = [r.term for r in trace.records]
    with tempfile.TemporaryDirectory() as tmp:
        url, ck, model, vocab = build(Path(tmp), trace)
        app = create_dashboard(Settings(db_url=url, warm_caches=False))
        predictor = Predictor(model, vocab)
        x, mask = collate([vocab.encode(t) for t in terms], vocab.pad_id)
        batches = [collate([vocab.encode(terms[i]) for i in b], vocab.pad_id)
                   for b in predictor._batches(terms, BELIEF_CELLS)]
        golds = [r.span for r in trace.records]
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in ("fragment", "json", "model", "floor", "one batch", "decode")}

        async def run() -> float:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as c:
                    t0 = time.perf_counter()
                    r = await c.get(f"/traces/{trace.identity}/beliefs", params={"ck": ck, "step": 0})
                    load_s = time.perf_counter() - t0  # the first: the checkpoint file loaded
                    assert r.status_code == 200 and "start-heat" in r.text, r.text[:300]
                    j = (await c.get(f"/traces/{trace.identity}.json", params={"ck": ck})).json()
                    assert j["beliefs_error"] is None and all(s["beliefs"] for s in j["steps"])
                    kept = app.state.models.results

                    async def once(path, params):
                        kept._data.clear()  # nothing kept: computed again
                        w, cpu = time.perf_counter(), time.process_time()
                        r = await c.get(path, params=params)
                        assert r.status_code == 200
                        return time.perf_counter() - w, time.process_time() - cpu

                    with torch.no_grad():
                        for rep in range(args.reps + 2):  # two warm-ups
                            got = {
                                "fragment": await once(f"/traces/{trace.identity}/beliefs", {"ck": ck, "step": 0}),
                                "json": await once(f"/traces/{trace.identity}.json", {"ck": ck}),
                                "model": timed(lambda: predictor.beliefs_many(terms, golds)),
                                "floor": timed(lambda: [model(xb, mb) for xb, mb in batches]),
                                "one batch": timed(lambda: model(x, mask)),
                                "decode": timed(lambda: predictor.predict_many(terms)),
                            }
                            if rep >= 2:
                                for k, v in got.items():
                                    results[k].append(v)
            return load_s

        load_s = asyncio.run(run())

    lengths = [len(t) for t in terms]
    print(f"trace: {STEPS} steps, {min(lengths)}-{max(lengths)} characters (mean {statistics.mean(lengths):.0f}); "
          f"model: {model.cfg.n_layer} layers, {model.cfg.n_head} heads, d_model {model.cfg.d_model} "
          f"({model.n_params(False):,} parameters); torch threads {torch.get_num_threads()}; "
          f"{args.reps} repetitions, medians")
    print(f"first request (the checkpoint file loaded): {1000 * load_s:.0f} ms")
    floor_w = statistics.median(w for w, _ in results["floor"])
    floor_c = statistics.median(c for _, c in results["floor"])
    print(f"{'':10} {'wall ms':>9} {'x floor':>8} {'CPU ms':>9} {'x floor':>8}")
    print(f"batches of the beliefs: {[tuple(xb.shape) for xb, _ in batches]}")
    for k in ("fragment", "json", "model", "decode", "one batch", "floor"):
        w = statistics.median(a for a, _ in results[k])
        c = statistics.median(b for _, b in results[k])
        print(f"{k:10} {1000 * w:9.1f} {w / floor_w:8.2f} {1000 * c:9.1f} {c / floor_c:8.2f}")
    frag = statistics.median(a for a, _ in results["fragment"])
    print(f"beliefs of the trace (the fragment, nothing kept): {1000 * frag:.0f} ms of server time: "
          + ("within" if frag <= 0.150 else "OVER") + " the 150 ms goal")


if __name__ == "__main__":
    main()
