"""Your own trainer, recorded by lambdascope: a small model in plain PyTorch that finds the next
redex, trained on traces it generates, with every evaluation in a lambdascope store.

It imports nothing from lambdascope's trainer (trainer/): only torch and the lambdascope core,
which gives it traces (``lambdascope.generate``, or ``--data FILE`` read with
``lambdascope.traces.read_traces``) and the ``Recorder``. The model thinks in tokens with BOS at
position 0, character i at i + 1 and EOS at len(term) + 1, and normal form is both pointers at
BOS: the recorder is told so (``offsets="bos-tokens"``) and converts both ends of every span
(docs/DESIGN.md, "Spans and offsets").

    python examples/own_trainer.py --db runs/lambdascope.db --run own --seconds 60
    lambdascope serve --db runs/lambdascope.db      # the run, its checkpoints, every trace

Sizes are flags (``--traces 200 --eval-traces 10 --seconds 5 --d-model 32 --layers 1`` for a
smoke test).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

from lambdascope import Recorder  # noqa: E402
from lambdascope.exchange import traces_from_records  # noqa: E402
from lambdascope.generate import Options, generate, trace_records  # noqa: E402
from lambdascope.spans import char_to_token_span  # noqa: E402  (both ends past BOS; normal form at BOS)
from lambdascope.traces import TraceValidator, read_traces  # noqa: E402

CHARS = "λ.() abcdefghijklmnopqrstuvwxyz0123456789"
PAD, BOS, EOS, UNK = 0, 1, 2, 3
STOI = {c: i + 4 for i, c in enumerate(CHARS)}
MAX_DEPTH = 32


def encode(term: str) -> tuple[list[int], list[int]]:
    """Token ids (BOS, one per character, EOS) and each token's parenthesis depth."""
    ids, depths, d = [BOS], [0], 0
    for c in term:
        if c == "(":
            d += 1
        ids.append(STOI.get(c, UNK))
        depths.append(min(d, MAX_DEPTH - 1))
        if c == ")":
            d -= 1
    return ids + [EOS], depths + [0]


class SpanNet(nn.Module):
    """A transformer encoder with a start pointer and an end pointer read from the start."""

    def __init__(self, d_model: int, layers: int, heads: int, max_len: int):
        super().__init__()
        self.tok = nn.Embedding(len(CHARS) + 4, d_model, padding_idx=PAD)
        self.pos = nn.Embedding(max_len + 2, d_model)
        self.depth = nn.Embedding(MAX_DEPTH, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.start = nn.Linear(d_model, 1)
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)

    def forward(self, ids, depths, mask, starts):
        """Start logits (B, T) and end logits (B, T) given each row's start position."""
        T = ids.shape[1]
        h = self.tok(ids) + self.pos(torch.arange(T, device=ids.device))[None] + self.depth(depths)
        h = self.norm(self.encoder(h, src_key_padding_mask=~mask))
        start_logits = self.start(h).squeeze(-1).masked_fill(~mask, -1e9)
        q = self.query(h[torch.arange(len(ids)), starts])  # (B, d)
        end_logits = torch.einsum("bd,btd->bt", q, self.key(h)) / math.sqrt(h.shape[-1])
        return start_logits, end_logits.masked_fill(~mask, -1e9)


def batch(terms: list[str], device: str):
    enc = [encode(t) for t in terms]
    T = max(len(i) for i, _ in enc)
    ids = torch.full((len(enc), T), PAD, dtype=torch.long)
    depths = torch.zeros((len(enc), T), dtype=torch.long)
    for r, (i, d) in enumerate(enc):
        ids[r, :len(i)] = torch.tensor(i)
        depths[r, :len(d)] = torch.tensor(d)
    return ids.to(device), depths.to(device), (ids != PAD).to(device)


@torch.no_grad()
def predict(model: SpanNet, terms: list[str], device: str, chunk: int = 256) -> list[tuple[int, int, float, float]]:
    """BOS-token spans with the probabilities of their start and end: normal form (0, 0) when the
    start pointer rests on BOS, else the best end after the start, up to EOS."""
    model.eval()
    order = sorted(range(len(terms)), key=lambda i: len(terms[i]))  # batches of similar lengths
    out = [None] * len(terms)
    for k in range(0, len(terms), chunk):
        part = [terms[i] for i in order[k:k + chunk]]
        put = order[k:k + chunk]
        ids, depths, mask = batch(part, device)
        sl, _ = model(ids, depths, mask, torch.zeros(len(part), dtype=torch.long, device=device))
        eos = mask.sum(-1, keepdim=True) - 1  # a span starts at BOS (normal form) or at a character
        sl = sl.masked_fill(torch.arange(ids.shape[1], device=device)[None] >= eos, -1e9)
        sp = F.softmax(sl, -1)
        starts = sp.argmax(-1)
        _, el = model(ids, depths, mask, starts)
        for r, term in enumerate(part):
            s = int(starts[r])
            if s == 0:
                out[put[r]] = (0, 0, float(sp[r, 0]), 1.0)
                continue
            n = len(term)
            allowed = el[r, s + 1:n + 2]  # end positions s+1 .. n+1 (EOS)
            probs = F.softmax(allowed, -1)
            j = int(probs.argmax())
            out[put[r]] = (s, s + 1 + j, float(sp[r, s]), float(probs[j]))
    model.train()
    return out


def load_traces(args) -> tuple[list[tuple[str, tuple[int, int]]], list]:
    """Training examples (term, character span) and complete evaluation traces."""
    if args.data:
        v = TraceValidator()
        traces = [t for t in read_traces([args.data], v) if t.complete and t.records]
        random.Random(args.seed).shuffle(traces)
        n_eval = min(args.eval_traces, len(traces) // 5 or 1)
        evaluation, training = traces[:n_eval], traces[n_eval:]
        examples = [(r.term, r.span) for t in training for r in t.records]
        return examples, evaluation
    opts = Options(seed=args.seed)
    examples = [(term, span) for tr in generate(opts, args.traces) for term, span in zip(tr.terms, tr.spans)]
    held = Options(seed=args.seed + 1)  # another seed: other traces
    records = [line for tr in generate(held, args.eval_traces) for line in trace_records(held, tr)]
    return examples, traces_from_records(records, source=f"seed {held.seed}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="runs/lambdascope.db", help="the store (URL or SQLite path)")
    p.add_argument("--run", default="own-trainer", help="the run's name in the store")
    p.add_argument("--data", help="a trace file to train and evaluate on (default: generate traces)")
    p.add_argument("--traces", type=int, default=3000, help="training traces to generate (default 3000)")
    p.add_argument("--eval-traces", type=int, default=100, help="evaluation traces (default 100)")
    p.add_argument("--seconds", type=float, default=60.0, help="training time, evaluations excluded (default 60)")
    p.add_argument("--eval-every", type=float, default=15.0,
                   help="seconds of training between evaluations (default 15)")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=64, help="examples per batch (default 64)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    device = "cpu"

    examples, eval_traces = load_traces(args)
    examples.sort(key=lambda x: len(x[0]))  # a batch is a run of similar lengths: little padding
    eval_terms = [r.term for t in eval_traces for r in t.records]
    max_len = max(len(t) for t, _ in examples + [(x, None) for x in eval_terms])
    model = SpanNet(args.d_model, args.layers, args.heads, max(max_len, 1024)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    config = {k: v for k, v in vars(args).items() if k not in ("db",)}
    print(f"{len(examples):,} training steps, {len(eval_traces)} evaluation traces "
          f"({len(eval_terms)} steps); {sum(p.numel() for p in model.parameters()):,} parameters", file=sys.stderr)

    def spans_of(terms: list[str]) -> list[tuple[int, int]]:  # for rollouts: BOS-token spans
        return [(s, e) for s, e, _, _ in predict(model, terms, device)]

    evaluated = set()

    def evaluate(rec: Recorder, step: int) -> None:
        if step in evaluated:
            return
        evaluated.add(step)
        m = rec.evaluate(step, eval_traces, predict(model, eval_terms, device), offsets="bos-tokens",
                         predict=spans_of)
        print(f"step {step}: exact {m['exact']:.1%}, mean IoU {m['mean_iou']:.3f}, "
              f"rollout success {m['rollout_success']:.1%}", file=sys.stderr)

    with Recorder(args.db, run=args.run, config=config, data_files=[args.data] if args.data else ()) as rec:
        trained, next_eval, step, window = 0.0, args.eval_every, 0, []
        while trained < args.seconds:
            t_step = time.perf_counter()
            at = rng.randrange(max(1, len(examples) - args.batch + 1))
            chosen = examples[at:at + args.batch]
            ids, depths, mask = batch([t for t, _ in chosen], device)
            tgt = torch.tensor([char_to_token_span(*s) for _, s in chosen], device=device)
            sl, el = model(ids, depths, mask, tgt[:, 0])
            loss = F.cross_entropy(sl, tgt[:, 0]) + F.cross_entropy(el, tgt[:, 1])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            progress = trained / args.seconds
            lr = args.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
            step += 1
            window.append((loss.item(), int(mask.sum()), time.perf_counter() - t_step))
            trained += window[-1][2]
            if len(window) == 10:  # the recorder only queues: the loop never waits for the store
                rec.log(step, loss=sum(w[0] for w in window) / 10, lr=lr,
                        tokens_per_s=sum(w[1] for w in window) / sum(w[2] for w in window))
                window = []
            if trained >= next_eval:
                evaluate(rec, step)
                next_eval = trained + args.eval_every
        evaluate(rec, step)
    print(f"done: run {args.run!r}, {step} steps, in {args.db}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
