"""What the end pointer's space count (``--end-space-bias``) costs per step, against the same
model without it (``--end-depth-bias 8`` alone), on this machine's CPU.

The default model (trainer.config: 4 layers, 4 heads, d_model 128), batches of about 4,096
tokens of generated traces (``lambdascope.generate``, the default distribution), the gold
starts given as in training. Interleaved rounds, each configuration timed once a round; the
medians over ``--rounds`` and their ratio (with / without):

- ``train step``: forward, ``span_loss``, backward and an AdamW step over the batches;
- ``decode fwd``: a forward pass with every start (the (B, T, T) end scores of decoding);
- ``bias alone``: ``SpanModel.end_depth_scores`` with the gold starts, the part that differs.

    .venv/bin/python bench/bench_end_bias.py              # 5 rounds
    .venv/bin/python bench/bench_end_bias.py --rounds 9 --torch-threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lambdascope.generate import Options, generate  # noqa: E402
from lambdascope.spans import char_to_token_span  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data import Vocab, collate  # noqa: E402
from trainer.model import ModelConfig, SpanModel, span_loss  # noqa: E402

BATCH_TOKENS = 4096


def batches(n_batches: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``n_batches`` of about BATCH_TOKENS tokens each: (ids, mask, gold token spans)."""
    vocab = Vocab()
    out, cur = [], []
    for tr in generate(Options(seed=seed), 100_000):
        for term, span in zip(tr.terms, tr.spans):
            cur.append((vocab.encode(term), char_to_token_span(*span)))
            if sum(len(e) for e, _ in cur) >= BATCH_TOKENS:
                ids, mask = collate([e for e, _ in cur])
                out.append((ids, mask, torch.tensor([s for _, s in cur])))
                cur = []
                if len(out) == n_batches:
                    return out
    raise SystemExit(f"fewer than {n_batches} batches in 100,000 traces")


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=20, help="batches a round (default 20)")
    ap.add_argument("--torch-threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.rounds < 1 or args.batches < 1 or args.torch_threads < 1:
        ap.error("--rounds, --batches and --torch-threads: integers >= 1")
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)
    data = batches(args.batches, args.seed)
    vocab, d = Vocab(), TrainConfig()
    base = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, open_id=vocab.open_id,
                       close_id=vocab.close_id, space_id=vocab.space_id, n_layer=d.n_layer, n_head=d.n_head,
                       d_model=d.d_model, d_ff=d.d_ff, end_depth_bias=d.end_depth_bias)
    counts = {"without": 0, "with": d.end_space_bias}
    models = {k: SpanModel(dataclasses.replace(base, end_space_bias=c)) for k, c in counts.items()}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=3e-4) for k, m in models.items()}
    times: dict[str, dict[str, list[float]]] = {k: {"train step": [], "decode fwd": [], "bias alone": []}
                                                for k in models}
    for r in range(args.rounds + 1):  # round 0 warms up
        for k, m in models.items():
            m.train()
            t0 = time.perf_counter()
            for ids, mask, spans in data:
                start, end = m(ids, mask, spans[:, 0])
                loss = span_loss(start, end, mask, spans, 0.1)
                opts[k].zero_grad(set_to_none=True)
                loss.backward()
                opts[k].step()
            train = time.perf_counter() - t0
            m.eval()
            with torch.no_grad():
                t0 = time.perf_counter()
                for ids, mask, _ in data:
                    m(ids, mask)
                fwd = time.perf_counter() - t0
                t0 = time.perf_counter()
                for ids, _, spans in data:
                    m.end_depth_scores(ids, spans[:, 0])
                bias = time.perf_counter() - t0
            if r:
                for name, v in (("train step", train), ("decode fwd", fwd), ("bias alone", bias)):
                    times[k][name].append(1000 * v / len(data))
    print(f"{len(data)} batches of ~{BATCH_TOKENS} tokens, {args.rounds} rounds, {args.torch_threads} threads; "
          f"--end-depth-bias {d.end_depth_bias}, --end-space-bias 0 vs {d.end_space_bias}; ms per batch, median")
    print(f"{'':<12} {'without':>9} {'with':>9} {'ratio':>7}")
    for name in times["without"]:
        a, b = (statistics.median(times[k][name]) for k in ("without", "with"))
        print(f"{name:<12} {a:>9.3f} {b:>9.3f} {b / a:>6.3f}x")


if __name__ == "__main__":
    main()
