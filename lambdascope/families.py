"""Term families: the samplers of a trace's first term other than the default ``random`` one.

Each family draws its first term from the trace's own SplitMix64 stream (``rng.py``); the
reduction, the caps and the drop rules are the same for every family (``generate.py``). The
Rust generator (``lambda_gen_rs/src/families.rs``) implements the same samplers with the same
draws in the same order, so both write the same bytes; docs/DESIGN.md ("Term families") gives
the draw order in prose. ``below(n)`` is one draw; every sampler below draws, left to right,
exactly what it reads.

The combinators are λ-terms parsed from the texts below (the Rust side parses the same texts),
so a family's first term is built of them, of Church numerals and of the free variables
``FREE_NAMES``. This module imports only the core's terms and rng: ``generate.py`` imports it.
"""

from __future__ import annotations

from .rng import SplitMix64
from .terms import App, Lam, Term, Var, parse

FREE_NAMES = ("a", "b", "c", "x", "y")  # the same as generate.FREE_NAMES

# (name, one-line description), in the order of ``lambda-gen --help``
FAMILIES = (
    ("random", "random terms, some built around Church arithmetic (the default)"),
    ("church", "Church numerals under succ/pred/plus/sub/mult/exp and iszero, sometimes applied to two free variables"),
    ("bool", "circuits of Church booleans with not/and/or/if, sometimes applied to two free variables"),
    ("pairs", "pair/fst/snd/swap compositions over free variables"),
    ("combinators", "application trees of S K I B C W (and free variables) applied to free variables"),
)
FAMILY_NAMES = tuple(name for name, _ in FAMILIES)
DEFAULT_FAMILY = "random"

HEAD_PERCENT = 25  # share of first terms put under a head variable (the redex not at 0)

# --- church -----------------------------------------------------------------------------------
CHURCH_DEPTH = 2  # operators nest at most this deep (numerals below)
CHURCH_LEAF_PERCENT = 30  # below the top, the chance of a numeral instead of an operator
CHURCH_MAX_NUMERAL = 3  # leaves are the numerals 0..3
SUCC_TEXT = "λn.λf.λx.f (n f x)"
PRED_TEXT = "λn.λf.λx.n (λg.λh.h (g f)) (λu.x) (λu.u)"
PLUS_TEXT = "λm.λn.λf.λx.m f (n f x)"
SUB_TEXT = "λm.λn.n (" + PRED_TEXT + ") m"
MULT_TEXT = "λm.λn.λf.m (n f)"
EXP_TEXT = "λm.λn.n m"
ISZERO_TEXT = "λn.n (λu.λx.λy.y) (λx.λy.x)"
# the operators in the order of the draw below(6); exp's operands are numerals (base 1..3,
# exponent 1..2) so that its value stays at most 9; not exponent 0: ``exp m 0`` is ``0 m``,
# whose normal form ``λx.x`` is only η-equal to the numeral 1
CHURCH_OPS = ("succ", "pred", "plus", "sub", "mult", "exp")
CHURCH_ARITY = {"succ": 1, "pred": 1, "plus": 2, "sub": 2, "mult": 2, "exp": 2}

# --- bool -------------------------------------------------------------------------------------
BOOL_DEPTH = 3
BOOL_LEAF_PERCENT = 40
TRUE_TEXT = "λx.λy.x"
FALSE_TEXT = "λx.λy.y"
NOT_TEXT = "λp.p (λx.λy.y) (λx.λy.x)"
AND_TEXT = "λp.λq.p q p"
OR_TEXT = "λp.λq.p p q"
IF_TEXT = "λp.λs.λt.p s t"
BOOL_OPS = ("not", "and", "or", "if")
BOOL_ARITY = {"not": 1, "and": 2, "or": 2, "if": 3}
BOOL_APPLIED_PERCENT = 60  # share of circuits applied to two free variables

# --- pairs ------------------------------------------------------------------------------------
PAIR_DEPTH = 4
SWAP_PERCENT = 30  # chance that a pair-valued term is swap of another
VAR_PERCENT = 40  # chance that a component is a free variable (always, at PAIR_DEPTH)
PAIR_APPLIED_PERCENT = 30  # share of first terms applied to one more free variable
PAIR_TEXT = "λx.λy.λs.s x y"
FST_TEXT = "λp.p (λx.λy.x)"
SND_TEXT = "λp.p (λx.λy.y)"
SWAP_TEXT = "λp.p (λx.λy.λs.s y x)"

# --- combinators ------------------------------------------------------------------------------
COMB_MAX_LEAVES = 6  # an application tree of 1..6 leaves
COMB_VAR_PERCENT = 15  # chance that a leaf is a free variable instead of a combinator
COMB_MAX_ARGS = 3  # the tree is applied to 1..3 free variables
COMBINATOR_TEXTS = (
    ("S", "λx.λy.λz.x z (y z)"),
    ("K", "λx.λy.x"),
    ("I", "λx.x"),
    ("B", "λx.λy.λz.x (y z)"),
    ("C", "λx.λy.λz.x z y"),
    ("W", "λx.λy.x y y"),
)


def church_numeral(n: int) -> Term:
    """λf.λx.f (f ... x) with ``n`` applications of f."""
    body: Term = Var("x")
    for _ in range(n):
        body = App(Var("f"), body)
    return Lam("f", Lam("x", body))


def apps(*terms: Term) -> Term:
    """``t0 t1 t2 ...`` (left-associative)."""
    result = terms[0]
    for t in terms[1:]:
        result = App(result, t)
    return result


CHURCH = {name: parse(text) for name, text in (
    ("succ", SUCC_TEXT), ("pred", PRED_TEXT), ("plus", PLUS_TEXT), ("sub", SUB_TEXT),
    ("mult", MULT_TEXT), ("exp", EXP_TEXT), ("iszero", ISZERO_TEXT))}
BOOL = {name: parse(text) for name, text in (
    ("true", TRUE_TEXT), ("false", FALSE_TEXT), ("not", NOT_TEXT), ("and", AND_TEXT),
    ("or", OR_TEXT), ("if", IF_TEXT))}
PAIRS = {name: parse(text) for name, text in (
    ("pair", PAIR_TEXT), ("fst", FST_TEXT), ("snd", SND_TEXT), ("swap", SWAP_TEXT))}
COMBINATORS = {name: parse(text) for name, text in COMBINATOR_TEXTS}
_COMBINATOR_LIST = tuple(COMBINATORS[name] for name, _ in COMBINATOR_TEXTS)


def free_var(rng: SplitMix64) -> Term:
    return Var(FREE_NAMES[rng.below(len(FREE_NAMES))])


def under_head(rng: SplitMix64, t: Term) -> Term:
    """The last draws of every family: with HEAD_PERCENT, ``h t`` for a free variable ``h``."""
    if rng.below(100) < HEAD_PERCENT:
        return App(free_var(rng), t)
    return t


# --- church -----------------------------------------------------------------------------------


def sample_church_number(rng: SplitMix64, depth: int) -> Term:
    """A number-valued Church expression."""
    if depth >= CHURCH_DEPTH or (depth > 0 and rng.below(100) < CHURCH_LEAF_PERCENT):
        return church_numeral(rng.below(CHURCH_MAX_NUMERAL + 1))
    op = CHURCH_OPS[rng.below(len(CHURCH_OPS))]
    if op == "exp":
        base = church_numeral(1 + rng.below(3))
        return apps(CHURCH["exp"], base, church_numeral(1 + rng.below(2)))
    if CHURCH_ARITY[op] == 1:
        return App(CHURCH[op], sample_church_number(rng, depth + 1))
    left = sample_church_number(rng, depth + 1)
    right = sample_church_number(rng, depth + 1)
    return apps(CHURCH[op], left, right)


def sample_church(rng: SplitMix64) -> Term:
    """kind = below(4): 0 a number e; 1 ``e f x``; 2 ``iszero e``; 3 ``iszero e f x``, with f, x
    free variables (drawn after e); then ``under_head``."""
    kind = rng.below(4)
    e = sample_church_number(rng, 0)
    if kind >= 2:
        e = App(CHURCH["iszero"], e)
    if kind % 2 == 1:
        f = free_var(rng)
        e = apps(e, f, free_var(rng))
    return under_head(rng, e)


# --- bool -------------------------------------------------------------------------------------


def sample_circuit(rng: SplitMix64, depth: int) -> Term:
    if depth >= BOOL_DEPTH or (depth > 0 and rng.below(100) < BOOL_LEAF_PERCENT):
        return BOOL["true"] if rng.below(2) == 0 else BOOL["false"]
    op = BOOL_OPS[rng.below(len(BOOL_OPS))]
    args = [sample_circuit(rng, depth + 1) for _ in range(BOOL_ARITY[op])]
    return apps(BOOL[op], *args)


def sample_bool(rng: SplitMix64) -> Term:
    """A circuit; with BOOL_APPLIED_PERCENT applied to two free variables; then ``under_head``."""
    c = sample_circuit(rng, 0)
    if rng.below(100) < BOOL_APPLIED_PERCENT:
        a = free_var(rng)
        c = apps(c, a, free_var(rng))
    return under_head(rng, c)


# --- pairs ------------------------------------------------------------------------------------


def sample_pair(rng: SplitMix64, depth: int) -> Term:
    """A pair-valued term: ``swap P`` or ``pair V V``."""
    if depth < PAIR_DEPTH and rng.below(100) < SWAP_PERCENT:
        return App(PAIRS["swap"], sample_pair(rng, depth + 1))
    first = sample_component(rng, depth + 1)
    second = sample_component(rng, depth + 1)
    return apps(PAIRS["pair"], first, second)


def sample_component(rng: SplitMix64, depth: int) -> Term:
    """A component: a free variable, ``fst P``, ``snd P`` or a nested pair ``P``."""
    if depth >= PAIR_DEPTH or rng.below(100) < VAR_PERCENT:
        return free_var(rng)
    r = rng.below(3)
    p = sample_pair(rng, depth + 1)
    return p if r == 2 else App(PAIRS["fst" if r == 0 else "snd"], p)


def sample_pairs(rng: SplitMix64) -> Term:
    """r = below(3): ``fst P``, ``snd P`` or ``P``; with PAIR_APPLIED_PERCENT applied to a free
    variable; then ``under_head``."""
    r = rng.below(3)
    p = sample_pair(rng, 0)
    t = p if r == 2 else App(PAIRS["fst" if r == 0 else "snd"], p)
    if rng.below(100) < PAIR_APPLIED_PERCENT:
        t = App(t, free_var(rng))
    return under_head(rng, t)


# --- combinators ------------------------------------------------------------------------------


def sample_tree(rng: SplitMix64, leaves: int) -> Term:
    """An application tree with ``leaves`` leaves: the left subtree gets 1 + below(leaves - 1)."""
    if leaves == 1:
        if rng.below(100) < COMB_VAR_PERCENT:
            return free_var(rng)
        return _COMBINATOR_LIST[rng.below(len(_COMBINATOR_LIST))]
    k = 1 + rng.below(leaves - 1)
    left = sample_tree(rng, k)
    return App(left, sample_tree(rng, leaves - k))


def sample_combinators(rng: SplitMix64) -> Term:
    """A tree of 1 + below(COMB_MAX_LEAVES) leaves applied to 1 + below(COMB_MAX_ARGS) free
    variables; then ``under_head``."""
    tree = sample_tree(rng, 1 + rng.below(COMB_MAX_LEAVES))
    n_args = 1 + rng.below(COMB_MAX_ARGS)
    for _ in range(n_args):
        tree = App(tree, free_var(rng))
    return under_head(rng, tree)


SAMPLERS = {
    "church": sample_church,
    "bool": sample_bool,
    "pairs": sample_pairs,
    "combinators": sample_combinators,
}
