"""What the dashboard needs of a model, and nothing more: a predictor of character spans.

The dashboard (app/) never imports the trainer. It is handed a ``ModelLoader`` by whoever builds
it (the command line hands it the trainer's ``trainer.predict.load_predictor``); without one,
or when loading fails, the pages show the true reduction and say why the model is missing.
A ``BeliefPredictor`` can also say what it thought (the beliefs views); one that cannot is
still a predictor, and those views say that beliefs are unavailable.

Spans are ``[start, end)`` in code points of the printed term (docs/DESIGN.md, "Spans and
offsets"); ``(0, 0)`` is the model's claim that the term is in normal form.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Protocol, Sequence, TypedDict


class SpanPrediction(NamedTuple):
    start: int
    end: int
    start_conf: float  # p(start)
    end_conf: float  # p(end | start)


class SpanPredictor(Protocol):
    def predict(self, term: str) -> tuple[int, int, float, float]:
        """One term's predicted span and confidences (a ``SpanPrediction`` or a plain tuple)."""

    def predict_many(self, terms: Sequence[str]) -> list[tuple[int, int, float, float]]:
        """Several terms at once, in the input order."""


class SpanProb(TypedDict):
    span: list[int]  # [start, end), a character span; [0, 0] is normal form
    prob: float  # under the decoder's distribution (``Beliefs``)
    kind: str  # lambdascope.diagnosis.error_kind of predicting it


class Beliefs(TypedDict):
    """What the model thought of one term, in character offsets (docs/DESIGN.md, "Spans and
    offsets"). Every probability is under the *decoder's distribution*: the model's
    p(start)·p(end | start) over the spans the constrained decoder allows (normal form, or a
    non-empty span inside the term), divided by their total (``allowed_mass``, the share of the
    model's joint mass they hold). Its best span is the decoder's choice, the stored prediction."""

    n: int  # characters of the term
    nf_prob: float  # P(start at BOS), the normal-form span (0, 0)
    start_probs: list[float]  # P(start = character i), i = 0 .. n-1; nf_prob + their sum = 1
    start: int | None  # the chosen span's start character (None: it chose normal form)
    end_probs: list[float] | None  # P(end = e | the chosen start), e = 0 .. n (exclusive ends)
    gold_start: int | None  # the gold span's start (None: no gold given, or normal form)
    gold_end_probs: list[float] | None  # P(end = e | the gold start), e = 0 .. n
    top_spans: list[SpanProb]  # the five likeliest spans, the first the decoder's choice
    redex_mass: float  # P(the span is a redex of the term, any of them)
    allowed_mass: float  # the model's p(start)·p(end | start) summed over the allowed spans


class HeadScore(TypedDict):
    layer: int
    head: int
    binding: float | None  # mean attention from a bound variable to its λ (None: no pairs)
    paren: float | None  # mean attention from a parenthesis to its match


class HeadScores(TypedDict):
    terms: int  # terms scored
    complete: bool  # False: the deadline came first, ``terms`` of those asked were scored
    pairs: dict[str, int]  # pairs counted per score (lambdascope.vocabulary.STRUCTURAL_SCORES)
    uniform: dict[str, float | None]  # each score of a head attending uniformly (the baseline)
    heads: list[HeadScore]


class Attention(TypedDict):
    char: int  # the query: this character of the term
    layers: list[list[list[float]]]  # [layer][head][i]: its attention to character i
    bos: list[list[float]]  # [layer][head]: to BOS
    eos: list[list[float]]  # [layer][head]: to EOS


class BeliefPredictor(SpanPredictor, Protocol):
    """A span predictor that can also say what it thought: the dashboard's beliefs views call
    these when the predictor has them (``has_beliefs``) and say "beliefs unavailable" when not.
    ``deadline`` is a ``time.monotonic()`` instant: past it the work stops, and what was not
    done is None (beliefs) or left out (``HeadScores.complete``)."""

    def beliefs_many(self, terms: Sequence[str], golds: Sequence[tuple[int, int] | None] | None = None,
                     *, deadline: float | None = None) -> list[Beliefs | None]:
        """Each term's beliefs, in the input order; ``golds`` are character spans."""

    def attention(self, term: str, char: int) -> Attention:
        """Every layer's and head's attention from character ``char`` (0 <= char < len(term))."""

    def head_scores(self, terms: Sequence[str], *, deadline: float | None = None) -> HeadScores:
        """Per head, the structural scores over ``terms`` (``lambdascope.structure``)."""


def has_beliefs(predictor: object) -> bool:
    """Whether ``predictor`` is a ``BeliefPredictor`` (a plain ``SpanPredictor`` is not)."""
    return all(callable(getattr(predictor, name, None))
               for name in ("beliefs_many", "attention", "head_scores"))


ModelLoader = Callable[[str], SpanPredictor]  # checkpoint path -> predictor (may raise anything)


class ModelUnavailable(Exception):
    """No model can answer: no loader was given, or the checkpoint cannot be loaded. The message
    says why, for the page."""
