"""The span model: a small encoder-only transformer with two pointer heads.

Input: token ids ``(B, T)`` (BOS, the term's characters, EOS, then padding) and a mask of the
real tokens. Output: start logits over token positions ``(B, T)``, and end logits conditioned on
the start: ``(B, T)`` for given starts (training, with the gold start), or ``(B, T, T)`` for
every start (decoding), padding at -inf. The gold span is a token span ``[start, end)``; normal
form is ``(0, 0)``, both pointers at BOS. Only the network lives here: no I/O, no data, no
training.

The end pointer attends from the start position (a bilinear score ``q(h_start) . k(h_end)``
plus a per-position bias): once the redex's first token is known, its end is "after the
argument that follows the matching parenthesis", a local question.

Positions: rotary embeddings (RoPE) in every attention layer, plus an embedding of each token's
parenthesis depth. The redex's end is "the parenthesis that closes the one before it", which a
transformer must otherwise learn to count; giving it the depth makes that a lookup.

Length: RoPE sees only the distances of the training terms, so a term longer than any in
training shows the attention distances it never saw. With ``position_scale`` > 1 each training
sequence's positions are stretched by its own random factor in ``[1, position_scale]``
(position i at angle ``i * s * freq``): distances up to ``position_scale`` times the training
length are seen in training, while evaluation keeps ``s = 1`` (docs/DESIGN.md, "Length
generalisation"). Depth: an embedding of the absolute depth is untrained past the depths of the
training terms; with ``depth_rotary`` = k, k of each head's rotary pairs turn by the token's
depth instead of its position, so attention sees differences of depth (a parenthesis and its
match: 0), which every depth shows. With ``end_depth_bias`` = K the end pointer also adds a
learned bias by the candidate end's depth less the start's (clamped to [-K, K]): where a span
ends relative to where it starts, the same at every depth; with ``end_space_bias`` = C also by how
many spaces shallower than the start the span crosses (clamped to [0, C]): where it ends in the
term's tree rather than in characters, the same at every length.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    vocab_size: int = 48  # set from the vocabulary
    pad_id: int = 0  # padding token id (set from the vocabulary)
    open_id: int = -1  # id of '(' for the depth embedding (set from the vocabulary)
    close_id: int = -1  # id of ')'
    space_id: int = -1  # id of ' ' for the end pointer's count of crossed spaces (set from the vocabulary)
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    d_model: int = 128  # width of the residual stream
    d_ff: int = 512  # hidden width of each MLP
    dropout: float = 0.0  # fresh random traces do not overfit at these sizes
    rope_base: float = 10000.0  # rotary embedding frequency base
    depth_embedding: bool = True  # add an embedding of the parenthesis depth of each token
    max_depth: int = 64  # deeper tokens share the last depth embedding
    end_dim: int = 64  # width of the start-conditioned end pointer's query and key
    position_scale: float = 1.0  # training stretches each sequence's positions by U[1, this]; 1: off
    depth_rotary: int = 0  # rotary pairs per head turned by parenthesis depth instead of position
    depth_rope_base: float = 100.0  # their frequency base
    end_depth_bias: int = 0  # K > 0: the end pointer adds a learned bias by depth(end) - depth(start) in [-K, K]
    end_space_bias: int = 0  # C > 0: that bias also by the spaces shallower than the start the span crosses, in [0, C]

    def to_dict(self) -> dict:
        return asdict(self)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, H, T, hd); rotate pairs (x1, x2) of the two halves by the position's angle
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.d_model % cfg.n_head == 0 and (cfg.d_model // cfg.n_head) % 2 == 0
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x, cos, sin, attn_mask, return_attention: bool = False):
        """The attended values; with ``return_attention`` also the weights ``(B, H, T, T)``
        (row: a query position, over the keys), computed explicitly as softmax(q k^T / sqrt(hd))
        instead of the fused kernel, which never materialises them (training never asks)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if not return_attention:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                               dropout_p=self.dropout if self.training else 0.0)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, H, T, T)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        att = torch.softmax(scores.float(), dim=-1).to(v.dtype)
        if self.training and self.dropout:
            att = F.dropout(att, self.dropout)
        y = att @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C)), att


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x, cos, sin, attn_mask, return_attention: bool = False):
        if return_attention:
            a, att = self.attn(self.ln1(x), cos, sin, attn_mask, return_attention=True)
            x = x + a
            return x + self.mlp(self.ln2(x)), att
        x = x + self.attn(self.ln1(x), cos, sin, attn_mask)
        return x + self.mlp(self.ln2(x))


class SpanModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.depth = nn.Embedding(cfg.max_depth, cfg.d_model) if cfg.depth_embedding else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, 2)  # per position: (start logit, end bias)
        self.end_q = nn.Linear(cfg.d_model, cfg.end_dim)  # read at the start position
        self.end_k = nn.Linear(cfg.d_model, cfg.end_dim)  # read at each candidate end
        # by the candidate's depth less the start's, clamped to [-K, K], and by the spaces shallower
        # than the start it crosses, clamped to [0, C]: the same at any depth and any length
        assert not cfg.end_space_bias or cfg.space_id >= 0, "end_space_bias needs the vocabulary's space_id"
        n_bias = (2 * cfg.end_depth_bias + 1) * (cfg.end_space_bias + 1)
        self.end_depth = nn.Embedding(n_bias, 1) if n_bias > 1 else None
        hd = cfg.d_model // cfg.n_head
        n_pos = hd // 2 - cfg.depth_rotary  # rotary pairs turned by position; the rest by depth
        assert n_pos > 0 and cfg.depth_rotary >= 0, "depth_rotary must leave a pair for positions"
        self.register_buffer("inv_freq", 1.0 / cfg.rope_base ** (torch.arange(n_pos).float() / n_pos),
                             persistent=False)
        self.register_buffer("depth_freq", 1.0 / cfg.depth_rope_base ** (
            torch.arange(cfg.depth_rotary).float() / max(cfg.depth_rotary, 1)), persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # scaled init of the residual projections (GPT-2)
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def n_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok.weight.numel() + (self.depth.weight.numel() if self.depth is not None else 0)
        return n

    def flops_per_token(self, seq_len: float) -> float:
        """Training FLOPs per token (forward and backward): 6 per weight plus attention's
        QK^T and AV over ``seq_len`` keys (the PaLM appendix B estimate)."""
        cfg = self.cfg
        return 6 * self.n_params() + 12 * cfg.n_layer * cfg.d_model * seq_len

    def paren_depth(self, ids: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """(B, T) depth of each token: a '(' and its matching ')' have the depth of what they
        enclose; padding gets 0. ``clamp``: deeper tokens at the embedding's last depth."""
        opens = (ids == self.cfg.open_id).long()
        closes = (ids == self.cfg.close_id).long()
        depth = opens.cumsum(1) - closes.cumsum(1) + closes
        return depth.clamp(0, self.cfg.max_depth - 1) if clamp else depth.clamp(min=0)

    def end_depth_scores(self, ids: torch.Tensor, starts: torch.Tensor | None) -> torch.Tensor:
        """The end pointer's bias by the candidate end's place relative to the start: (B, 1, T)
        for given ``starts``, (B, T, T) (start rows, end columns) for every start. It sees only
        depth(end) - depth(start) (clamped to [-K, K]) and, with ``end_space_bias`` = C, how many
        spaces shallower than the start lie between the two (clamped to [0, C]): the argument
        boundaries of the levels around the start that the span crosses. So a redex as deep or as
        long as none in training gets the bias of the same shape of redex there: a redex's end is
        one such space after its start (the one after its function), at one level up."""
        K, C = self.cfg.end_depth_bias, self.cfg.end_space_bias
        depth = self.paren_depth(ids, clamp=False)
        B, T = ids.shape
        at = depth[torch.arange(B, device=ids.device), starts][:, None] if starts is not None else depth
        rel = depth[:, None, :] - at[:, :, None]  # (B, 1 or T, T)
        index = rel.clamp(-K, K) + K
        if C:
            pos = torch.arange(T, device=ids.device)
            first = starts[:, None] if starts is not None else pos[None, :].expand(B, T)  # (B, 1 or T)
            # spaces after the start and shallower than it, counted before each candidate end
            crossed = ((ids == self.cfg.space_id)[:, None, :] & (rel < 0)
                       & (pos[None, None, :] > first[:, :, None])).long()
            count = crossed.cumsum(-1) - crossed
            index = index * (C + 1) + count.clamp(max=C)
        return self.end_depth(index).squeeze(-1).float()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor | None = None,
                return_attention: bool = False):
        """ids, mask: (B, T); starts: (B,) token positions or None. Returns start logits (B, T)
        and end logits given ``starts`` (B, T), or given every start (B, T, T) when ``starts``
        is None; -inf where mask is False. With ``return_attention`` a third item: every
        layer's attention weights, ``(n_layer, B, n_head, T, T)`` (query row over key
        columns), computed explicitly; without it (training, decoding) the fused kernel runs."""
        B, T = ids.shape
        x = self.tok(ids)  # (B, T, C)
        if self.depth is not None:
            x = x + self.depth(self.paren_depth(ids))
        x = self.drop(x)
        pos = torch.arange(T, device=ids.device, dtype=torch.float32)
        if self.training and self.cfg.position_scale > 1:  # (B, 1, T, hd/2): a stretch per sequence
            scale = 1 + torch.rand(B, device=ids.device) * (self.cfg.position_scale - 1)
            angles = (scale[:, None] * pos[None, :])[:, None, :, None] * self.inv_freq
        else:
            angles = pos[:, None] * self.inv_freq[None, :]  # (T, hd/2)
        if self.cfg.depth_rotary:  # (B, 1, T, hd/2): position pairs, then depth pairs
            depth = self.paren_depth(ids, clamp=False).float()[:, None, :, None] * self.depth_freq
            angles = torch.cat((angles.expand(B, 1, T, angles.shape[-1]), depth), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        # padded keys are never attended to; a batch without padding needs no mask
        attn_mask = None if bool(mask.all()) else mask[:, None, None, :]  # (B, 1, 1, T)
        weights = []
        for block in self.blocks:
            if return_attention:
                x, att = block(x, cos, sin, attn_mask, return_attention=True)
                weights.append(att)
            else:
                x = block(x, cos, sin, attn_mask)
        x = self.ln_f(x)
        logits = self.head(x).float()  # (B, T, 2)
        start, end_bias = logits[..., 0], logits[..., 1]
        k = self.end_k(x).float()  # (B, T, E)
        q = self.end_q(x).float()
        if starts is not None:
            q = q[torch.arange(B, device=ids.device), starts][:, None, :]  # (B, 1, E)
        end = (q @ k.transpose(1, 2)) / math.sqrt(self.cfg.end_dim) + end_bias[:, None, :]  # (B, 1 or T, T)
        if self.end_depth is not None:
            end = end + self.end_depth_scores(ids, starts)
        neg = float("-inf")
        start = start.masked_fill(~mask, neg)
        end = end.masked_fill(~mask[:, None, :], neg)
        end = end.squeeze(1) if starts is not None else end
        if return_attention:
            return start, end, torch.stack(weights)
        return start, end


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, mask: torch.Tensor,
              targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean over the batch of the start and end cross-entropies with label smoothing, both over
    the real positions only: padding takes no part in the log-likelihood or the smoothing term,
    so the loss of a batch does not depend on how far it is padded. targets: (B, 2) token span;
    end_logits: (B, T), given the gold start."""
    n_valid = mask.sum(1).clamp(min=1)  # (B,)
    total = 0.0
    for logits, tgt in ((start_logits, targets[:, 0]), (end_logits, targets[:, 1])):
        logp = F.log_softmax(logits, dim=-1).masked_fill(~mask, 0.0)  # (B, T); -inf -> 0 at padding
        nll = -logp.gather(1, tgt[:, None]).squeeze(1)
        uniform = -logp.sum(1) / n_valid  # smoothing: cross-entropy against uniform over real positions
        total = total + ((1 - smoothing) * nll + smoothing * uniform).mean()
    return total / 2
