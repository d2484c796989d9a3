"""lambdascope: λ-calculus reduction traces, span models and what they get wrong.

``from lambdascope import Recorder`` records any trainer's run in a store (lambdascope/recorder.py);
it is imported on first use, so that ``import lambdascope.terms`` does not load the store."""

__all__ = ["Recorder"]


def __getattr__(name: str):
    if name == "Recorder":
        from .recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'lambdascope' has no attribute {name!r}")
