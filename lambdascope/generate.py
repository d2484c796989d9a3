"""The reference trace generator: the same algorithm and random stream as ``lambda-gen``.

It is the oracle for the Rust generator (byte-identical output for the same arguments) and
the baseline for its speed. The algorithm, step by step, so that both sides can follow it:

1. Trace ``i`` of seed ``s`` draws from ``SplitMix64.for_trace(s, i)`` (see ``rng.py``).
2. It samples a first term from its family (``sample_first_term``: ``sample_initial_term``
   for ``random``, the default; the samplers of ``families.py`` for the others) and reduces it
   in normal order. A term that is longer than ``max_len`` code points at any step is dropped
   (``too_long``); one that has not reached normal form after ``max_steps`` steps is dropped
   (``too_many_steps``); one that reaches normal form in fewer than ``min_steps`` steps is
   dropped (``too_few_steps``); one whose longest term is not longer than ``min_len`` code
   points is dropped (``too_short``; never with the default ``min_len`` 0); one none of whose
   redexes starts ``min_start`` or more code points into its term is dropped (``near_start``;
   checked last, never with the default ``min_start`` 0).
   A dropped attempt is counted and the next attempt continues the same random stream.
   After ``MAX_ATTEMPTS`` dropped attempts the trace fails with an error.
3. The kept trace is written as ``steps_total + 1`` JSON records, in order, with the keys
   ``trace_id, step_k, steps_total, term, target_span`` and no spaces:
   ``{"trace_id":"7-0","step_k":0,"steps_total":2,"term":"(λx.x) y","target_span":[0,8]}``.
   ``trace_id`` is ``"{seed}-{index}"`` for ``random`` and ``"{family}-{seed}-{index}"`` for
   the other families.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import families
from .families import DEFAULT_FAMILY, FAMILY_NAMES, church_numeral
from .rng import SplitMix64
from .terms import App, Lam, Term, Var, print_with_span, step_counting_renames

DEFAULT_MAX_STEPS = 64
DEFAULT_MAX_LEN = 192
DEFAULT_MIN_STEPS = 1
DEFAULT_MIN_LEN = 0
DEFAULT_MIN_START = 0
MAX_ATTEMPTS = 10_000

BINDER_NAMES = ("x", "y", "z", "f", "g")  # few names: shadowing and captures happen
FREE_NAMES = ("a", "b", "c", "x", "y")  # x, y also bind: free ones get captured
MAX_DEPTH = 7
ARITH_PERCENT = 35  # share of first terms built around a Church-numeral expression
# percent chance of a leaf at each depth (when a variable is in scope)
LEAF_PERCENT = (0, 10, 25, 40, 55, 70, 85)


def sample_leaf(rng: SplitMix64, scope: list[str]) -> Term:
    # scope holds binder names outermost first; duplicates shadow
    r = rng.below(100)
    if scope and r < 50:  # the innermost binder: arguments get used, often more than once
        return Var(scope[-1])
    if scope and r < 88:
        return Var(scope[rng.below(len(scope))])
    return Var(FREE_NAMES[rng.below(len(FREE_NAMES))])


def sample_term(rng: SplitMix64, depth: int, scope: list[str]) -> Term:
    """One random term. Draw order matters: the Rust side draws the same numbers in the same
    order."""
    if depth >= MAX_DEPTH:
        return sample_leaf(rng, scope)
    if rng.below(100) < LEAF_PERCENT[depth]:
        return sample_leaf(rng, scope)
    r = rng.below(100)
    if r < 30:  # abstraction
        x = BINDER_NAMES[rng.below(len(BINDER_NAMES))]
        return Lam(x, sample_term(rng, depth + 1, scope + [x]))
    if r < 60:  # a redex: (λx.body) arg
        x = BINDER_NAMES[rng.below(len(BINDER_NAMES))]
        body = sample_term(rng, depth + 1, scope + [x])
        arg = sample_term(rng, depth + 1, scope)
        return App(Lam(x, body), arg)
    fn = sample_term(rng, depth + 1, scope)
    arg = sample_term(rng, depth + 1, scope)
    return App(fn, arg)


def _lams(names: str, body: Term) -> Term:
    for name in reversed(names):
        body = Lam(name, body)
    return body


def _apps(*terms: Term) -> Term:
    result = terms[0]
    for t in terms[1:]:
        result = App(result, t)
    return result


V = Var
SUCC = _lams("nfx", App(V("f"), _apps(V("n"), V("f"), V("x"))))  # λn.λf.λx.f (n f x)
PLUS = _lams("mnfx", _apps(V("m"), V("f"), _apps(V("n"), V("f"), V("x"))))  # λm.λn.λf.λx.m f (n f x)
MULT = _lams("mnf", App(V("m"), App(V("n"), V("f"))))  # λm.λn.λf.m (n f)


def sample_arith(rng: SplitMix64, depth: int) -> Term:
    """A Church-numeral expression: numerals 0..3 under succ, plus and mult."""
    if depth >= 2 or (depth > 0 and rng.below(100) < 40):
        return church_numeral(rng.below(4))
    r = rng.below(3)
    if r == 0:
        return App(SUCC, sample_arith(rng, depth + 1))
    left = sample_arith(rng, depth + 1)
    right = sample_arith(rng, depth + 1)
    return _apps(PLUS if r == 1 else MULT, left, right)


def sample_initial_term(rng: SplitMix64) -> Term:
    """A trace's first term: a random term, or a Church expression applied to two random
    terms (long, structured reductions)."""
    if rng.below(100) < ARITH_PERCENT:
        e = sample_arith(rng, 0)
        f = sample_term(rng, 3, [])
        x = sample_term(rng, 3, [])
        t = _apps(e, f, x)
        if rng.below(2) == 0:  # under a head variable: the redex is not at position 0
            t = App(Var(FREE_NAMES[rng.below(len(FREE_NAMES))]), t)
        return t
    return sample_term(rng, 0, [])


def sample_first_term(rng: SplitMix64, family: str) -> Term:
    """A trace's first term from its family (``random``: ``sample_initial_term``)."""
    if family == "random":
        return sample_initial_term(rng)
    return families.SAMPLERS[family](rng)


@dataclass
class Trace:
    index: int
    terms: list[str]
    spans: list[tuple[int, int]]
    renamed: bool  # some step needed an α-rename


@dataclass
class Options:
    seed: int = 0
    max_steps: int = DEFAULT_MAX_STEPS
    max_len: int = DEFAULT_MAX_LEN
    min_steps: int = DEFAULT_MIN_STEPS
    family: str = DEFAULT_FAMILY
    min_len: int = DEFAULT_MIN_LEN  # keep only traces with a term longer than this
    min_start: int = DEFAULT_MIN_START  # and with a redex starting this far (code points) into its term

    def __post_init__(self) -> None:
        if self.family not in FAMILY_NAMES:
            raise ValueError(f"unknown family {self.family!r}: choose one of {', '.join(FAMILY_NAMES)}")


DROP_REASONS = ("too_long", "too_many_steps", "too_few_steps", "too_short", "near_start")


def trace_id(opts: Options, index: int) -> str:
    """``"{seed}-{index}"`` for ``random``, ``"{family}-{seed}-{index}"`` for the others."""
    if opts.family == "random":
        return f"{opts.seed}-{index}"
    return f"{opts.family}-{opts.seed}-{index}"


class GenerationError(RuntimeError):
    pass


def make_trace(opts: Options, index: int, drops: dict[str, int]) -> Trace:
    """The ``index``-th trace of ``opts.seed``; dropped attempts are added to ``drops``."""
    rng = SplitMix64.for_trace(opts.seed, index)
    for _ in range(MAX_ATTEMPTS):
        t = sample_first_term(rng, opts.family)
        terms: list[str] = []
        spans: list[tuple[int, int]] = []
        renamed = False
        reason = None
        while True:
            text, span = print_with_span(t)
            if len(text) > opts.max_len:
                reason = "too_long"
                break
            terms.append(text)
            spans.append(span)
            if span == (0, 0):
                break
            if len(terms) > opts.max_steps:
                reason = "too_many_steps"
                break
            t, n_renames = step_counting_renames(t)
            renamed = renamed or n_renames > 0
        if reason is None and len(terms) - 1 < opts.min_steps:
            reason = "too_few_steps"
        if reason is None and max(map(len, terms)) <= opts.min_len:
            reason = "too_short"
        if reason is None and opts.min_start and max(start for start, _ in spans) < opts.min_start:
            reason = "near_start"
        if reason is None:
            return Trace(index, terms, spans, renamed)
        drops[reason] = drops.get(reason, 0) + 1
    raise GenerationError(
        f"trace {index}: no trace within the caps after {MAX_ATTEMPTS} attempts "
        f"(family={opts.family}, max_steps={opts.max_steps}, max_len={opts.max_len}, "
        f"min_steps={opts.min_steps}, min_len={opts.min_len}, min_start={opts.min_start})"
    )


def trace_records(opts: Options, tr: Trace) -> list[str]:
    """The JSON lines of one trace, without newlines, byte-identical to ``lambda-gen``."""
    total = len(tr.terms) - 1
    tid = trace_id(opts, tr.index)
    return [
        '{"trace_id":%s,"step_k":%d,"steps_total":%d,"term":%s,"target_span":[%d,%d]}'
        % (json.dumps(tid), k, total, json.dumps(term, ensure_ascii=False), s, e)
        for k, (term, (s, e)) in enumerate(zip(tr.terms, tr.spans))
    ]


def check_caps(opts: Options) -> None:
    """The caps that no trace can meet are errors (``ValueError``), as in lambda-gen."""
    if opts.min_steps > opts.max_steps:
        raise ValueError(f"--min-steps ({opts.min_steps}) must not exceed --max-steps ({opts.max_steps})")
    if opts.min_len >= opts.max_len:
        raise ValueError(f"--min-len ({opts.min_len}) must be less than --max-len ({opts.max_len})")
    if opts.min_start >= opts.max_len:
        raise ValueError(f"--min-start ({opts.min_start}) must be less than --max-len ({opts.max_len})")


def shard_range(n_traces: int, shard: tuple[int, int] | None) -> range:
    """Trace indices of shard ``I/N`` (1-based ``I``): ``[(I-1)*T//N, I*T//N)``."""
    if shard is None:
        return range(n_traces)
    i, n = shard
    return range((i - 1) * n_traces // n, i * n_traces // n)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` with 1 <= I <= N, or None."""
    if text is None:
        return None
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ValueError(f"--shard expects I/N (e.g. 2/4), got {text!r}") from None
    if not (1 <= i <= n):
        raise ValueError(f"--shard {text}: I must be between 1 and N")
    return i, n


def _has_nested_and_shadowed(t: Term, scope: tuple[str, ...] = ()) -> tuple[bool, bool]:
    if isinstance(t, Var):
        return False, False
    if isinstance(t, App):
        a = _has_nested_and_shadowed(t.fn, scope)
        b = _has_nested_and_shadowed(t.arg, scope)
        return a[0] or b[0], a[1] or b[1]
    nested, shadowed = _has_nested_and_shadowed(t.body, scope + (t.var,))
    return nested or bool(scope), shadowed or t.var in scope


@dataclass
class Summary:
    """The end-of-run statistics of a generation (the same numbers as lambda-gen prints)."""

    family: str = DEFAULT_FAMILY
    traces: int = 0
    records: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    steps_histogram: dict[int, int] = field(default_factory=dict)
    reducible_records: int = 0
    redex_not_at_0: int = 0
    initial_terms: set[str] = field(default_factory=set)
    nested: int = 0
    shadowed: int = 0
    renamed: int = 0
    elapsed_s: float = 0.0

    def add(self, tr: Trace) -> None:
        from .terms import parse

        self.traces += 1
        self.records += len(tr.terms)
        steps = len(tr.terms) - 1
        self.steps_histogram[steps] = self.steps_histogram.get(steps, 0) + 1
        for s, _ in tr.spans[:-1]:
            self.reducible_records += 1
            self.redex_not_at_0 += s != 0
        self.initial_terms.add(tr.terms[0])
        nested, shadowed = _has_nested_and_shadowed(parse(tr.terms[0]))
        self.nested += nested
        self.shadowed += shadowed
        self.renamed += tr.renamed

    def as_dict(self) -> dict:
        steps = sorted(s for s, n in self.steps_histogram.items() for _ in range(n))
        n = max(self.traces, 1)
        median = (steps[(len(steps) - 1) // 2] + steps[len(steps) // 2]) / 2 if steps else 0
        return {
            "family": self.family,
            "traces": self.traces,
            "records": self.records,
            "dropped": dict(self.dropped),
            "steps_histogram": {str(k): v for k, v in sorted(self.steps_histogram.items())},
            "elapsed_s": self.elapsed_s,
            "records_per_s": self.records / self.elapsed_s if self.elapsed_s else 0.0,
            "median_steps": median,
            "frac_ge8_steps": sum(v for k, v in self.steps_histogram.items() if k >= 8) / n,
            "frac_distinct_initial": len(self.initial_terms) / n,
            "frac_redex_not_at_0": self.redex_not_at_0 / max(self.reducible_records, 1),
            "traces_nested_binders": self.nested,
            "traces_shadowed_binders": self.shadowed,
            "frac_alpha_renamed": self.renamed / n,
        }

    def report(self) -> str:
        d = self.as_dict()
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        return "\n".join([
            f"family {d['family']}: traces {d['traces']}, records {d['records']}, dropped attempts: {drops}",
            f"steps: median {d['median_steps']:g}, >=8 steps {d['frac_ge8_steps']:.1%}; "
            f"distinct first terms {d['frac_distinct_initial']:.1%}; redex not at 0 "
            f"{d['frac_redex_not_at_0']:.1%}; nested binders in {d['traces_nested_binders']} traces, "
            f"shadowed in {d['traces_shadowed_binders']}; α-renamed {d['frac_alpha_renamed']:.1%}",
            f"{d['elapsed_s']:.2f} s, {d['records_per_s']:,.0f} records/s",
        ])


def generate(opts: Options, n_traces: int, shard: tuple[int, int] | None = None,
             summary: Summary | None = None):
    """Yield the kept traces of ``opts`` in index order (one shard of them if given)."""
    for index in shard_range(n_traces, shard):
        drops: dict[str, int] = {}
        tr = make_trace(opts, index, drops)
        if summary is not None:
            for k, v in drops.items():
                summary.dropped[k] = summary.dropped.get(k, 0) + v
        yield tr


def write_traces(out: str, n_traces: int, *, seed: int = 0, max_steps: int | None = None,
                 max_len: int | None = None, min_steps: int | None = None,
                 shard: str | None = None, quiet: bool = False, family: str | None = None,
                 min_len: int | None = None, min_start: int | None = None) -> int:
    """The reference generator's command: write to a temporary file, rename at the end; print
    the summary on stderr. Returns an exit code."""
    import os
    import sys
    import tempfile
    import time

    try:
        opts = Options(seed=seed,
                       max_steps=DEFAULT_MAX_STEPS if max_steps is None else max_steps,
                       max_len=DEFAULT_MAX_LEN if max_len is None else max_len,
                       min_steps=DEFAULT_MIN_STEPS if min_steps is None else min_steps,
                       family=DEFAULT_FAMILY if family is None else family,
                       min_len=DEFAULT_MIN_LEN if min_len is None else min_len,
                       min_start=DEFAULT_MIN_START if min_start is None else min_start)
        check_caps(opts)
        shard_t = parse_shard(shard)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = Summary(family=opts.family)
    t0 = time.perf_counter()
    if out == "-":
        f, tmp = sys.stdout, None
    else:
        directory = os.path.dirname(os.path.abspath(out))
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out) + ".", dir=directory)
        except OSError as e:
            print(f"error: cannot write {out}: {e.strerror}", file=sys.stderr)
            return 2
        f = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
    try:
        for tr in generate(opts, n_traces, shard_t, summary):
            summary.add(tr)
            f.write("\n".join(trace_records(opts, tr)))
            f.write("\n")
        if tmp is not None:
            f.close()
            os.replace(tmp, out)
    except BaseException as e:
        if tmp is not None:
            f.close()
            os.unlink(tmp)
        if isinstance(e, GenerationError):
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise
    summary.elapsed_s = time.perf_counter() - t0
    if not quiet:
        print(summary.report(), file=sys.stderr)
    return 0
