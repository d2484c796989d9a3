"""From a model to character spans: constrained decoding, batched prediction, checkpoint loading.

``load_predictor`` is the ``lambdascope.predictor.ModelLoader`` that the command line hands the
dashboard (``Predictor`` is a ``SpanPredictor``); the trainer and ``lambdascope evaluate`` use
``Predictor.predict_many``. Spans leave this module as character
spans (``token_to_char_span``); token positions never reach the store.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from lambdascope.spans import token_to_char_span

from .checkpoints import read_checkpoint
from .data import Vocab, collate, make_batches
from .model import ModelConfig, SpanModel

def decode_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, lengths: torch.Tensor):
    """The best-scoring valid token span of each row: either (0, 0), normal form at BOS, or
    1 <= start < end <= n + 1 inside the term of n characters (end may be EOS, since spans are
    exclusive). The score of (s, e) is log p(s) + log p(e | s), over all pairs: O(T^2), small
    at these lengths. start_logits: (B, T); end_logits: (B, T, T), row s the end given start s;
    -inf at padding; lengths: (B,) real tokens (n + 2). Returns starts, ends (B,) and the
    probabilities p(start) and p(end | start) of the chosen span."""
    ls = F.log_softmax(start_logits.float(), dim=-1)  # (B, T)
    le = F.log_softmax(end_logits.float(), dim=-1)  # (B, T, T)
    B, T = ls.shape
    s = torch.arange(T, device=ls.device)[None, :, None]
    e = torch.arange(T, device=ls.device)[None, None, :]
    n = (lengths - 2)[:, None, None]
    valid = ((s >= 1) & (s <= n) & (e > s) & (e <= n + 1)) | ((s == 0) & (e == 0))  # (B, T, T)
    score = torch.where(valid, ls[:, :, None] + le, torch.tensor(float("-inf"), device=ls.device))
    best = score.view(B, -1).argmax(dim=1)
    start, end = best // T, best % T
    rows = torch.arange(B, device=ls.device)
    return start, end, ls[rows, start].exp(), le[rows, start, end].exp()


class Predictor:
    """A model with its vocabulary, predicting character spans for terms."""

    def __init__(self, model: SpanModel, vocab: Vocab, device: str = "cpu", batch_tokens: int = 16384):
        self.model = model
        self.vocab = vocab
        self.device = device
        self.batch_tokens = batch_tokens

    def _autocast(self):
        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def predict_many(self, terms: list[str]) -> list[tuple[int, int, float, float]]:
        """(start, end, start_conf, end_conf) per term, character spans, in the input order."""
        if not terms:
            return []
        was_training = self.model.training
        self.model.eval()
        ids = [self.vocab.encode(t) for t in terms]
        out: list = [None] * len(terms)
        batches = make_batches([len(b) for b in ids], self.batch_tokens, random.Random(0))
        try:
            for batch in batches:
                x, mask = collate([ids[i] for i in batch], self.vocab.pad_id)
                x, mask = x.to(self.device), mask.to(self.device)
                with self._autocast():
                    sl, el = self.model(x, mask)
                s, e, sc, ec = (t.tolist() for t in decode_spans(sl, el, mask.sum(1)))
                for j, i in enumerate(batch):
                    cs, ce = token_to_char_span(s[j], e[j])
                    out[i] = (cs, ce, sc[j], ec[j])
        finally:
            self.model.train(was_training)
        return out

    def spans(self, terms: list[str]) -> list[tuple[int, int]]:
        return [(s, e) for s, e, _, _ in self.predict_many(terms)]

    def predict(self, term: str) -> tuple[int, int, float, float]:
        """One term: (start, end, start_conf, end_conf), a character span; (0, 0) = normal form."""
        return self.predict_many([term])[0]


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[SpanModel, Vocab, dict]:
    """The model (in eval mode), its vocabulary, and the whole checkpoint dict."""
    ckpt = read_checkpoint(path, device)
    model = SpanModel(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return model, Vocab(ckpt["vocab"]), ckpt


def load_predictor(path: str | Path, device: str = "cpu") -> Predictor:
    model, vocab, _ = load_checkpoint(path, device)
    return Predictor(model, vocab, device)
