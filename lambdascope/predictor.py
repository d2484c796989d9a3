"""What the dashboard needs of a model, and nothing more: a predictor of character spans.

The dashboard (app/) never imports the trainer. It is handed a ``ModelLoader`` by whoever builds
it (the command line hands it the trainer's ``trainer.predict.load_predictor``); without one,
or when loading fails, the pages show the true reduction and say why the model is missing.

Spans are ``[start, end)`` in code points of the printed term (docs/DESIGN.md, "Spans and
offsets"); ``(0, 0)`` is the model's claim that the term is in normal form.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Protocol, Sequence


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


ModelLoader = Callable[[str], SpanPredictor]  # checkpoint path -> predictor (may raise anything)


class ModelUnavailable(Exception):
    """No model can answer: no loader was given, or the checkpoint cannot be loaded. The message
    says why, for the page."""
