"""From a model to character spans: constrained decoding, batched prediction, checkpoint loading.

``load_predictor`` is the ``lambdascope.predictor.ModelLoader`` that the command line hands the
dashboard (``Predictor`` is a ``SpanPredictor``); the trainer and ``lambdascope evaluate`` use
``Predictor.predict_many``. Spans leave this module as character
spans (``token_to_char_span``); token positions never reach the store.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from lambdascope.diagnosis import TermShape
from lambdascope.predictor import Attention, Beliefs, HeadScore, HeadScores, SpanProb
from lambdascope.spans import NORMAL_FORM, char_to_token_span, is_normal_form, token_to_char_span
from lambdascope.structure import binder_pairs, paren_pairs
from lambdascope.terms import ParseError, parse, print_term, redex_spans
from lambdascope.vocabulary import STRUCTURAL_SCORES

from .checkpoints import read_checkpoint
from .config import DECODES
from .data import Vocab, collate, make_batches
from .model import ModelConfig, SpanModel


def redex_token_spans(term: str) -> list[tuple[int, int]] | None:
    """The token spans of the redexes of ``term`` (``lambdascope.terms.redex_spans``), what the
    ``redex`` decoder chooses among beside normal form; None for a text that does not parse or
    is not printed canonically (its spans would be another text's): the decoder is then free."""
    try:
        t = parse(term)
    except (ParseError, RecursionError):
        return None
    if print_term(t) != term:
        return None
    return [char_to_token_span(*span) for span in redex_spans(t)]


def allowed_spans(lengths: torch.Tensor, T: int, redexes: Sequence[list[tuple[int, int]] | None] | None = None
                  ) -> torch.Tensor:
    """(B, T, T): the token spans the decoder may choose, [b, s, e]: (0, 0), normal form at
    BOS, or 1 <= s < e <= n + 1 inside a term of n characters (lengths: n + 2 real tokens).
    ``redexes`` (the ``redex`` decoder): per row, the token spans of its term's redexes
    (``redex_token_spans``), the only spans besides normal form that row allows; None for a
    row (or for all): every span inside the term."""
    pos = torch.arange(T, device=lengths.device)
    inside = (pos[:, None] >= 1) & (pos[None, :] > pos[:, None])  # (T, T): 1 <= s < e
    within = pos[None, :] <= (lengths - 1)[:, None]  # (B, T): e <= n + 1 (so s <= n too)
    valid = inside[None] & within[:, None, :]
    for b, spans in enumerate(redexes or ()):
        if spans is not None:
            valid[b] = False
            if spans:
                idx = torch.tensor(spans, device=lengths.device)
                valid[b, idx[:, 0], idx[:, 1]] = True
    valid[:, 0, 0] = True
    return valid


def span_scores(start_logits: torch.Tensor, end_logits: torch.Tensor, lengths: torch.Tensor, redexes=None):
    """log p(start), log p(end | start), the allowed spans (``allowed_spans``, with ``redexes``)
    and their scores log p(s) + log p(e | s) (-inf where not allowed): what ``decode_spans``
    maximises and ``Predictor.beliefs_many`` normalises."""
    ls = F.log_softmax(start_logits.float(), dim=-1)  # (B, T)
    le = F.log_softmax(end_logits.float(), dim=-1)  # (B, T, T)
    valid = allowed_spans(lengths.to(ls.device), ls.shape[1], redexes)  # (B, T, T)
    score = torch.where(valid, ls[:, :, None] + le, torch.tensor(float("-inf"), device=ls.device))
    return ls, le, valid, score


def decode_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, lengths: torch.Tensor, redexes=None):
    """The best-scoring valid token span of each row: either (0, 0), normal form at BOS, or
    1 <= start < end <= n + 1 inside the term of n characters (end may be EOS, since spans are
    exclusive). The score of (s, e) is log p(s) + log p(e | s), over all pairs: O(T^2), small
    at these lengths. start_logits: (B, T); end_logits: (B, T, T), row s the end given start s;
    -inf at padding; lengths: (B,) real tokens (n + 2). Returns starts, ends (B,) and the
    probabilities p(start) and p(end | start) of the chosen span. ``redexes``: as in
    ``allowed_spans`` (the ``redex`` decoder)."""
    return _decode(*span_scores(start_logits, end_logits, lengths, redexes))


def _decode(ls, le, valid, score):
    B, T = ls.shape
    best = score.view(B, -1).argmax(dim=1)
    start, end = best // T, best % T
    rows = torch.arange(B, device=ls.device)
    return start, end, ls[rows, start].exp(), le[rows, start, end].exp()


class Predictor:
    """A model with its vocabulary, predicting character spans for terms. ``decode`` (``DECODES``):
    ``free``, any span inside the term or normal form; ``redex``, one of the term's redexes or
    normal form (docs/DESIGN.md, "Decoding"). Predictions, rollouts and beliefs all go through
    the same decoder."""

    def __init__(self, model: SpanModel, vocab: Vocab, device: str = "cpu", batch_tokens: int = 16384,
                 decode: str = "free"):
        if decode not in DECODES:
            raise ValueError(f"decode: one of {', '.join(DECODES)}, got {decode!r}")
        self.model = model
        self.vocab = vocab
        self.device = device
        self.batch_tokens = batch_tokens
        self.decode = decode

    def decoding(self, decode: str) -> "Predictor":
        """This predictor decoding with ``decode`` instead (the same model, shared): what the
        dashboard uses for an evaluation made with ``lambdascope evaluate --decode``."""
        if decode == self.decode:
            return self
        return Predictor(self.model, self.vocab, self.device, self.batch_tokens, decode=decode)

    def _redexes(self, terms: Sequence[str]) -> list[list[tuple[int, int]] | None] | None:
        """What ``allowed_spans`` takes for these terms: None with the free decoder."""
        return [redex_token_spans(t) for t in terms] if self.decode == "redex" else None

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
                redexes = self._redexes([terms[i] for i in batch])
                s, e, sc, ec = (t.tolist() for t in decode_spans(sl, el, mask.sum(1), redexes))
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

    # -----------------------------------------------------------------------------------------
    # Beliefs: what the model thought (lambdascope.predictor.BeliefPredictor)

    def _batches(self, terms: Sequence[str], max_cells: int) -> list[list[int]]:
        """Indices of terms grouped by length, each batch within ``batch_tokens`` tokens,
        ``max_cells`` of batch size x longest length squared (an end-logit or attention
        matrix per row) and ``PAD_SLACK`` times its real tokens once padded: a long term gets a
        batch of its own, and a trace's short late steps are not padded to its long early ones
        (a third less work on a trace of 74 to 152 characters)."""
        lengths = [len(t) + 2 for t in terms]
        order = sorted(range(len(terms)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        cur: list[int] = []
        real = 0
        for i in order:
            n = lengths[i]  # the longest so far, in this order
            padded = (len(cur) + 1) * n
            if cur and (padded > self.batch_tokens or padded * n > max_cells or padded > PAD_SLACK * (real + n)):
                batches.append(cur)
                cur, real = [], 0
            cur.append(i)
            real += n
        if cur:
            batches.append(cur)
        return batches

    def _encode(self, terms: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = collate([self.vocab.encode(t) for t in terms], self.vocab.pad_id)
        return x.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def beliefs_many(self, terms: Sequence[str], golds: Sequence[tuple[int, int] | None] | None = None,
                     *, deadline: float | None = None) -> list[Beliefs | None]:
        """Each term's ``lambdascope.predictor.Beliefs`` (its decoder distribution), batched;
        None for the terms of batches not started before ``deadline`` (``time.monotonic()``).
        ``golds``: each term's gold character span, or None."""
        golds = list(golds) if golds is not None else [None] * len(terms)
        if len(golds) != len(terms):
            raise ValueError(f"{len(terms)} terms but {len(golds)} gold spans")
        if any(not t for t in terms):
            raise ValueError("an empty term has no beliefs")
        out: list[Beliefs | None] = [None] * len(terms)
        for batch in self._batches(terms, BELIEF_CELLS):
            if deadline is not None and time.monotonic() > deadline:
                break
            x, mask = self._encode([terms[i] for i in batch])
            with self._autocast():
                sl, el = self.model(x, mask)
            texts = [terms[i] for i in batch]
            for j, b in enumerate(_beliefs_of_batch(sl, el, mask.sum(1), texts, [golds[i] for i in batch],
                                                    self._redexes(texts))):
                out[batch[j]] = b
        return out

    def beliefs(self, term: str, gold: tuple[int, int] | None = None) -> Beliefs:
        """One term's beliefs (``beliefs_many``)."""
        return self.beliefs_many([term], [gold])[0]

    @torch.no_grad()
    def attention(self, term: str, char: int) -> Attention:
        """Every layer's and head's attention from the token of character ``char`` over the
        term's characters, and to BOS and EOS (the explicit path of ``SpanModel.forward``)."""
        n = len(term)
        if not 0 <= char < n:
            raise ValueError(f"char: 0 to {n - 1} in a term of {n} characters, got {char}")
        x, mask = self._encode([term])
        with self._autocast():
            _, _, att = self.model(x, mask, return_attention=True)  # (L, 1, H, T, T)
        row = att[:, 0, :, _token_of_char(char), :].float()  # (L, H, T): from the query token
        lo, hi = char_to_token_span(0, n)  # the tokens of characters 0 .. n-1: [lo, hi)
        return {"char": char, "layers": row[:, :, lo:hi].tolist(), "bos": row[:, :, 0].tolist(),
                "eos": row[:, :, x.shape[1] - 1].tolist()}

    @torch.no_grad()
    def head_scores(self, terms: Sequence[str], *, deadline: float | None = None) -> HeadScores:
        """Per layer and head, the mean attention weight from each structural position to its
        partner over ``terms`` (``lambdascope.structure``: a bound variable's first character
        to its λ; a parenthesis to its match, both ways), and what a head attending uniformly
        would score. Stops between batches past ``deadline``."""
        cfg = self.model.cfg
        sums = {k: torch.zeros(cfg.n_layer, cfg.n_head, dtype=torch.float64) for k in STRUCTURAL_SCORES}
        counts = {k: 0 for k in STRUCTURAL_SCORES}
        uniform = {k: 0.0 for k in STRUCTURAL_SCORES}
        done, complete = 0, True
        pairs_of = [_structural_pairs(t) for t in terms]
        for batch in self._batches(terms, ATTENTION_CELLS):
            if deadline is not None and time.monotonic() > deadline:
                complete = False
                break
            x, mask = self._encode([terms[i] for i in batch])
            with self._autocast():
                _, _, att = self.model(x, mask, return_attention=True)  # (L, B, H, T, T)
            for kind in STRUCTURAL_SCORES:
                rows, queries, keys = [], [], []
                for j, i in enumerate(batch):
                    for q, k in pairs_of[i][kind]:
                        rows.append(j)
                        queries.append(q)
                        keys.append(k)
                        uniform[kind] += 1.0 / (len(terms[i]) + 2)  # real tokens: BOS, n chars, EOS
                if rows:
                    picked = att[:, rows, :, queries, keys]  # (P, L, H)
                    sums[kind] += picked.double().sum(0).cpu()
                    counts[kind] += len(rows)
            done += len(batch)
        heads: list[HeadScore] = []
        for layer in range(cfg.n_layer):
            for head in range(cfg.n_head):
                score = {k: (float(sums[k][layer, head]) / counts[k] if counts[k] else None)
                         for k in STRUCTURAL_SCORES}
                heads.append({"layer": layer, "head": head, **score})
        return {"terms": done, "complete": complete, "pairs": counts,
                "uniform": {k: (uniform[k] / counts[k] if counts[k] else None) for k in STRUCTURAL_SCORES},
                "heads": heads}


BELIEF_CELLS = 4_000_000  # end-logit cells (batch x T x T) a beliefs batch holds at most
ATTENTION_CELLS = 1_000_000  # (batch x T x T) per attention batch: times layers x heads floats
TOP_SPANS = 5
PAD_SLACK = 1.15  # a beliefs or attention batch holds at most this many tokens per real one
BOS = char_to_token_span(*NORMAL_FORM)[0]  # the token both pointers of normal form point at


def _token_of_char(i: int) -> int:
    """The token position of character ``i`` (the start of its one-character span)."""
    return char_to_token_span(i, i + 1)[0]


def _structural_pairs(term: str) -> dict[str, list[tuple[int, int]]]:
    """Each score's (query token, key token) pairs in ``term`` (none for a text that does not
    parse)."""
    try:
        binding = binder_pairs(term)
    except (ParseError, RecursionError):
        binding = []
    parens = paren_pairs(term)
    as_tokens = lambda pairs: [(_token_of_char(a), _token_of_char(b)) for a, b in pairs]  # noqa: E731
    return {"binding": as_tokens(binding),
            "paren": as_tokens(parens) + as_tokens([(b, a) for a, b in parens])}


def _beliefs_of_batch(start_logits, end_logits, lengths, terms, golds, redexes=None) -> list[Beliefs]:
    """The decoder distribution of each row: p(start)·p(end | start) on the allowed spans
    (``allowed_spans``, with ``redexes``), divided by their total; its marginal over starts, its
    conditionals over ends and its top spans, in character offsets (``lambdascope.spans``)."""
    ls, le, valid, joint = span_scores(start_logits, end_logits, lengths, redexes)
    B, T = ls.shape
    starts, ends, _, _ = _decode(ls, le, valid, joint)  # the decoder's choice: the stored prediction
    log_z = joint.view(B, -1).logsumexp(1)  # (B,)
    probs = (joint - log_z[:, None, None]).exp()  # (B, T, T), 0 where not allowed
    top_p, top_i = probs.view(B, -1).topk(min(TOP_SPANS + 1, T * T), dim=1)
    rows = torch.arange(B, device=ls.device)
    gold_tok = [None if g is None else char_to_token_span(*g)[0] for g in golds]
    chosen_rows = probs[rows, starts].tolist()  # (B, T): P(chosen start, end)
    gold_rows = probs[rows, torch.tensor([g or BOS for g in gold_tok], device=ls.device)].tolist()
    marginal, allowed_mass = probs.sum(2).tolist(), log_z.exp().tolist()
    top_p, top_i, starts, ends = top_p.tolist(), top_i.tolist(), starts.tolist(), ends.tolist()
    valid_flat = valid.view(B, -1).tolist()
    out: list[Beliefs] = []
    for b, term in enumerate(terms):
        lo, hi = char_to_token_span(0, len(term))  # characters 0 .. n-1 start at [lo, hi); ends 0 .. n at [lo, hi]
        try:
            shape = TermShape(term)
        except (ParseError, RecursionError):
            shape = None
        chosen = (starts[b], ends[b])
        top = [(chosen, chosen_rows[b][chosen[1]])]  # the decoder's choice, then the likeliest others
        for p, flat in zip(top_p[b], top_i[b]):
            if len(top) == TOP_SPANS or p <= 0.0:
                break
            span = divmod(flat, T)
            if span != chosen and valid_flat[b][flat]:
                top.append((span, p))
        top_spans: list[SpanProb] = []
        for tok_span, p in top:
            span = token_to_char_span(*tok_span)
            top_spans.append({"span": list(span), "prob": p,
                              "kind": shape.kind(span) if shape is not None else None})
        redex_mass = None
        if shape is not None:
            redex_mass = sum(float(probs[b][char_to_token_span(*span)])
                             for span, is_redex in shape.nodes.items() if is_redex)

        def ends_given(row: list[float], start_tok: int) -> list[float] | None:
            if start_tok == BOS:  # normal form: its one end is BOS
                return None
            total = sum(row[lo:hi + 1])
            return [p / total for p in row[lo:hi + 1]] if total > 0 else None

        gold = golds[b]
        g = gold_tok[b]
        out.append({
            "n": len(term), "nf_prob": marginal[b][BOS], "start_probs": marginal[b][lo:hi],
            "start": None if chosen[0] == BOS else token_to_char_span(*chosen)[0],
            "end_probs": ends_given(chosen_rows[b], chosen[0]),
            "gold_start": None if gold is None or is_normal_form(gold) else int(gold[0]),
            "gold_end_probs": None if g is None else ends_given(gold_rows[b], g),
            "top_spans": top_spans, "redex_mass": redex_mass, "allowed_mass": allowed_mass[b],
        })
    return out


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[SpanModel, Vocab, dict]:
    """The model (in eval mode), its vocabulary, and the whole checkpoint dict."""
    ckpt = read_checkpoint(path, device)
    model = SpanModel(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return model, Vocab(ckpt["vocab"]), ckpt


def checkpoint_decode(ckpt: dict) -> str:
    """The decoder a checkpoint's run evaluated with (``TrainConfig.decode``; ``free`` for the
    checkpoints from before the option)."""
    return (ckpt.get("train_config") or {}).get("decode", "free")


def load_predictor(path: str | Path, device: str = "cpu", decode: str | None = None) -> Predictor:
    """``lambdascope.predictor.ModelLoader``: a checkpoint file's predictor, decoding as its run
    did unless ``decode`` says otherwise."""
    model, vocab, ckpt = load_checkpoint(path, device)
    return Predictor(model, vocab, device, decode=decode or checkpoint_decode(ckpt))
