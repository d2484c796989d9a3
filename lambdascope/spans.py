"""Spans, offsets, IoU and highlighting: the only place that does arithmetic on spans.

Character spans are ``[start, end)`` in code points of a term's text; ``(0, 0)`` is normal
form. Tokens are characters with BOS at index 0 and EOS at ``len(term) + 1``, so character
``i`` is token ``i + 1`` and both ends of a span shift together (docs/DESIGN.md).
"""

from __future__ import annotations

from typing import NamedTuple

NORMAL_FORM = (0, 0)


def is_normal_form(span: tuple[int, int]) -> bool:
    return tuple(span) == NORMAL_FORM


def char_to_token_span(start: int, end: int) -> tuple[int, int]:
    """Character span -> token span: both ends move past BOS. Normal form stays at BOS (0, 0)."""
    if (start, end) == NORMAL_FORM:
        return NORMAL_FORM
    return start + 1, end + 1


def token_to_char_span(start: int, end: int) -> tuple[int, int]:
    """Token span -> character span: both ends move back over BOS. (0, 0) at BOS is normal form."""
    if (start, end) == NORMAL_FORM:
        return NORMAL_FORM
    return start - 1, end - 1


def span_iou(pred_start: int, pred_end: int, gold_start: int, gold_end: int) -> float:
    """IoU of two ``[start, end)`` spans: |A∩B| / (|A| + |B| - |A∩B|). Two empty spans (both
    normal form) give 1.0; an empty and a non-empty span give 0.0."""
    a = max(0, pred_end - pred_start)
    b = max(0, gold_end - gold_start)
    if a == 0 and b == 0:
        return 1.0
    if a == 0 or b == 0:
        return 0.0
    inter = max(0, min(pred_end, gold_end) - max(pred_start, gold_start))
    return inter / (a + b - inter)


class Piece(NamedTuple):
    """A run of a term's text and whether it lies in the gold and/or the predicted span. (A
    named tuple: a page highlights hundreds of terms, and a frozen dataclass took twice as
    long to make.)"""

    text: str
    start: int  # code-point offset of the piece in the term
    gold: bool
    pred: bool

    @property
    def css_class(self) -> str:
        if self.gold and self.pred:
            return "both"
        if self.gold:
            return "gold"
        if self.pred:
            return "pred"
        return "plain"


def highlight(term: str, gold: tuple[int, int] | None, pred: tuple[int, int] | None) -> list[Piece]:
    """Cut ``term`` at every boundary of the gold and predicted spans and tag each piece. A
    normal-form (empty) or missing span highlights nothing. The pieces tagged gold, joined,
    are exactly ``term[gold_start:gold_end]`` (likewise pred)."""
    n = len(term)

    def clip(span):
        if span is None or is_normal_form(span):
            return None
        s, e = max(0, min(n, span[0])), max(0, min(n, span[1]))
        return (s, e) if s < e else None

    g, p = clip(gold), clip(pred)
    cuts = {0, n}
    for sp in (g, p):
        if sp:
            cuts.update(sp)
    bounds = sorted(cuts)
    pieces = []
    for s, e in zip(bounds, bounds[1:]):
        if s == e:
            continue
        in_g = bool(g and g[0] <= s and e <= g[1])
        in_p = bool(p and p[0] <= s and e <= p[1])
        pieces.append(Piece(term[s:e], s, in_g, in_p))
    return pieces
