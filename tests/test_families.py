"""Term families (``--family``): valid traces, their trace ids, --min-len, and that each family's
traces are what it claims: the first term is decoded back into the family's expression (Church
arithmetic, a boolean circuit, pair operations, a combinator tree), evaluated here by other
means, and the trace's normal form must be that value."""

import json
import subprocess
import sys

import pytest

from lambdascope import families as fam
from lambdascope.commands.common import find_generator
from lambdascope.families import FAMILY_NAMES
from lambdascope.generate import Options, Summary, generate, make_trace, trace_records, write_traces
from lambdascope.terms import App, Lam, Var, alpha_equivalent, parse, print_term
from lambdascope.traces import TraceValidator, read_traces

N = 400


def traces_of(family, n=N, seed=0, **caps):
    return list(generate(Options(seed=seed, family=family, **caps), n))


def spine(t):
    args = []
    while isinstance(t, App):
        args.append(t.arg)
        t = t.fn
    return t, args[::-1]


def apps(head, *args):
    for a in args:
        head = App(head, a)
    return head


def strip_head(t):
    """``(h, inner)`` for a first term put under a head variable ``h t``, else ``(None, t)``."""
    if isinstance(t, App) and isinstance(t.fn, Var):
        return t.fn.name, t.arg
    return None, t


def wrap(h, t):
    return t if h is None else App(Var(h), t)


def check_normal_form(tr, expected):
    last = parse(tr.terms[-1])
    assert alpha_equivalent(last, expected), (tr.terms[0], tr.terms[-1], print_term(expected))


# ---------------------------------------------------------------------------------------------
# every family: valid traces, trace ids, the validator and `lambdascope check`


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_family_writes_valid_complete_traces(tmp_path, family):
    out = tmp_path / f"{family}.jsonl"
    assert write_traces(str(out), 300, seed=5, family=family, quiet=True) == 0
    v = TraceValidator()
    traces = list(read_traces([out], v))
    assert v.problems == []
    assert len(traces) == 300 and all(t.complete for t in traces)
    prefix = "5-" if family == "random" else f"{family}-5-"
    assert [t.trace_id for t in traces] == [f"{prefix}{i}" for i in range(300)]
    assert all(len(t.records) >= 2 for t in traces)  # never a trace that starts in normal form


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_lambda_gen_output_of_every_family_passes_lambdascope_check(tmp_path, family):
    exe = find_generator()
    assert exe is not None, "lambda-gen is not built: run `make build`"
    out = tmp_path / f"{family}.jsonl"
    subprocess.run([str(exe), "generate", str(out), "300", "2", "--seed", "9", "--family", family,
                    "--quiet"], check=True)
    r = subprocess.run([sys.executable, "-m", "lambdascope.cli", "check", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stderr and "300 traces (300 complete)" in r.stderr


def test_trace_ids_keep_random_and_name_the_other_families():
    for family in FAMILY_NAMES:
        opts = Options(seed=7, family=family)
        rec = json.loads(trace_records(opts, make_trace(opts, 3, {}))[0])
        assert rec["trace_id"] == ("7-3" if family == "random" else f"{family}-7-3")


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError, match="choose one of random, church, bool, pairs, combinators"):
        Options(family="lambda")


def test_reference_cli_rejects_an_unknown_family_and_impossible_min_len(tmp_path, capsys):
    assert write_traces(str(tmp_path / "t.jsonl"), 5, family="lambda", quiet=True) == 2
    assert "unknown family 'lambda'" in capsys.readouterr().err
    assert write_traces(str(tmp_path / "t.jsonl"), 5, min_len=192, quiet=True) == 2
    assert "--min-len (192) must be less than --max-len (192)" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# --min-len and too_short


@pytest.mark.parametrize("family", ["random", "church", "combinators"])
def test_min_len_keeps_long_traces_and_counts_too_short(family):
    s = Summary(family=family)
    for tr in generate(Options(seed=1, family=family, min_len=100), 150, None, s):
        s.add(tr)
        assert max(map(len, tr.terms)) > 100
    assert s.dropped.get("too_short", 0) > 0
    d = s.as_dict()
    assert d["family"] == family and d["dropped"]["too_short"] == s.dropped["too_short"]
    assert "too_short" in s.report() and f"family {family}" in s.report()
    # the default min_len drops nothing for being short, and short traces are then kept
    plain = Summary()
    kept = list(generate(Options(seed=1, family=family), 150, None, plain))
    assert "too_short" not in plain.dropped
    assert any(max(map(len, tr.terms)) <= 100 for tr in kept)


@pytest.mark.parametrize("family", ["random", "pairs"])
def test_min_start_keeps_traces_with_a_redex_far_in_and_counts_near_start(family):
    s = Summary(family=family)
    for tr in generate(Options(seed=2, family=family, min_start=25), 120, None, s):
        s.add(tr)
        assert max(start for start, _ in tr.spans) >= 25
    assert s.dropped.get("near_start", 0) > 0
    assert "near_start" in s.report()
    plain = Summary()
    kept = list(generate(Options(seed=2, family=family), 120, None, plain))
    assert "near_start" not in plain.dropped
    assert any(max(start for start, _ in tr.spans) < 25 for tr in kept)


def test_reference_cli_rejects_an_impossible_min_start(tmp_path, capsys):
    assert write_traces(str(tmp_path / "t.jsonl"), 5, min_start=192, quiet=True) == 2
    assert "--min-start (192) must be less than --max-len (192)" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_families_keep_most_attempts_at_default_caps():
    for family in FAMILY_NAMES:
        s = Summary(family=family)
        for tr in generate(Options(seed=3, family=family), 300, None, s):
            s.add(tr)
        dropped = sum(s.dropped.values())
        assert dropped < 0.6 * (dropped + 300), (family, s.dropped)
        d = s.as_dict()
        assert d["frac_distinct_initial"] > 0.7 and d["median_steps"] >= 3, (family, d)


# ---------------------------------------------------------------------------------------------
# church: numerals and arithmetic; the normal form is the value


def church_numeral_value(t):
    if not (isinstance(t, Lam) and isinstance(t.body, Lam)):
        return None
    f, x, body = t.var, t.body.var, t.body.body
    n = 0
    while isinstance(body, App) and body.fn == Var(f):
        body, n = body.arg, n + 1
    return n if body == Var(x) and f != x else None


CHURCH_EVAL = {
    "succ": lambda a: a + 1, "pred": lambda a: max(a - 1, 0), "plus": lambda a, b: a + b,
    "sub": lambda a, b: max(a - b, 0), "mult": lambda a, b: a * b, "exp": lambda a, b: a ** b,
}


def church_value(t, ops_seen):
    """The value of a Church arithmetic expression built of the family's operators, or None."""
    head, args = spine(t)
    if not args:
        return church_numeral_value(t)
    for op, fn in CHURCH_EVAL.items():
        if head == fam.CHURCH[op] and len(args) == fam.CHURCH_ARITY[op]:
            values = [church_value(a, ops_seen) for a in args]
            if None in values:
                return None
            ops_seen.add(op)
            return fn(*values)
    return None


def test_church_traces_reduce_to_the_value_of_their_arithmetic():
    ops_seen = set()
    kinds = {"number": 0, "applied": 0, "iszero": 0, "iszero applied": 0}
    plus_checked = 0
    for tr in traces_of("church"):
        h, inner = strip_head(parse(tr.terms[0]))
        head, args = spine(inner)
        iszero = head == fam.CHURCH["iszero"]
        if iszero:
            e, rest = args[0], args[1:]
        else:
            value = church_value(inner, ops_seen)
            e, rest = (inner, []) if value is not None else (inner.fn.fn, [inner.fn.arg, inner.arg])
        value = church_value(e, ops_seen)
        assert value is not None, tr.terms[0]
        assert all(isinstance(v, Var) for v in rest) and len(rest) in (0, 2), tr.terms[0]
        if iszero:
            ops_seen.add("iszero")
            result = fam.BOOL["true"] if value == 0 else fam.BOOL["false"]
            expected = (rest[0] if value == 0 else rest[1]) if rest else result
            kinds["iszero applied" if rest else "iszero"] += 1
        else:
            expected = fam.church_numeral(value)
            if rest:
                expected = rest[1]
                for _ in range(value):
                    expected = App(rest[0], expected)
            kinds["applied" if rest else "number"] += 1
            # pure arithmetic `plus m n` over numerals: the normal form is the numeral m + n
            e_head, e_args = spine(e)
            if not rest and h is None and e_head == fam.CHURCH["plus"]:
                m, n = (church_numeral_value(a) for a in e_args)
                if m is not None and n is not None:
                    assert church_numeral_value(parse(tr.terms[-1])) == m + n, tr.terms
                    plus_checked += 1
        check_normal_form(tr, wrap(h, expected))
    assert ops_seen == set(CHURCH_EVAL) | {"iszero"}
    assert all(n > 0 for n in kinds.values()), kinds
    assert plus_checked > 0


# ---------------------------------------------------------------------------------------------
# bool: circuits; the normal form is the circuit's value (or the free variable it selects)


def bool_value(t):
    if t == fam.BOOL["true"]:
        return True
    if t == fam.BOOL["false"]:
        return False
    head, args = spine(t)
    for op in fam.BOOL_OPS:
        if head == fam.BOOL[op] and len(args) == fam.BOOL_ARITY[op]:
            v = [bool_value(a) for a in args]
            if None in v:
                return None
            return {"not": lambda: not v[0], "and": lambda: v[0] and v[1], "or": lambda: v[0] or v[1],
                    "if": lambda: v[1] if v[0] else v[2]}[op]()
    return None


def test_bool_traces_reduce_to_the_value_of_their_circuit():
    applied = pure = 0
    ops = set()
    for tr in traces_of("bool"):
        h, inner = strip_head(parse(tr.terms[0]))
        ops |= {op for op in fam.BOOL_OPS if print_term(fam.BOOL[op]) in tr.terms[0]}
        value = bool_value(inner)
        if value is not None:
            expected = fam.BOOL["true" if value else "false"]
            pure += 1
        else:
            value = bool_value(inner.fn.fn)
            assert value is not None and isinstance(inner.arg, Var), tr.terms[0]
            expected = inner.fn.arg if value else inner.arg
            applied += 1
        check_normal_form(tr, wrap(h, expected))
    assert applied > 0 and pure > 0 and ops == set(fam.BOOL_OPS)


# ---------------------------------------------------------------------------------------------
# pairs: the normal form is the value of the pair operations


def pair_value(t):
    """A free variable's name, or a tuple (first, second), or None."""
    if isinstance(t, Var):
        return t.name
    head, args = spine(t)
    if head == fam.PAIRS["pair"] and len(args) == 2:
        v = tuple(pair_value(a) for a in args)
        return None if None in v else v
    if len(args) == 1 and head in (fam.PAIRS["swap"], fam.PAIRS["fst"], fam.PAIRS["snd"]):
        v = pair_value(args[0])
        if not isinstance(v, tuple):
            return None
        return {"swap": (v[1], v[0]), "fst": v[0], "snd": v[1]}[
            next(k for k in ("swap", "fst", "snd") if head == fam.PAIRS[k])]
    return None


def pair_term(v):
    if isinstance(v, str):
        return Var(v)
    return Lam("s", apps(Var("s"), pair_term(v[0]), pair_term(v[1])))


def test_pairs_traces_reduce_to_the_value_of_their_pair_operations():
    shapes = set()
    for tr in traces_of("pairs"):
        h, inner = strip_head(parse(tr.terms[0]))
        value = pair_value(inner)
        if value is not None:
            expected = pair_term(value)
        else:  # applied to one more free variable
            value = pair_value(inner.fn)
            assert value is not None and isinstance(inner.arg, Var), tr.terms[0]
            expected = (App(Var(value), inner.arg) if isinstance(value, str)
                        else apps(inner.arg, pair_term(value[0]), pair_term(value[1])))
        shapes.add((type(value).__name__, "swap" if fam.SWAP_TEXT in tr.terms[0] else ""))
        check_normal_form(tr, wrap(h, expected))
    assert shapes == {("str", ""), ("str", "swap"), ("tuple", ""), ("tuple", "swap")}


# ---------------------------------------------------------------------------------------------
# combinators: S K I B C W trees; where the combinatory (weak) reduction of the tree ends in
# free variables only, the λ normal form is that term

CL_RULES = {  # name: (arity, result from the arguments)
    "S": (3, lambda f, g, x: ("app", ("app", f, x), ("app", g, x))),
    "K": (2, lambda x, y: x),
    "I": (1, lambda x: x),
    "B": (3, lambda f, g, x: ("app", f, ("app", g, x))),
    "C": (3, lambda f, g, x: ("app", ("app", f, x), g)),
    "W": (2, lambda f, x: ("app", ("app", f, x), x)),
}
BY_TERM = {t: name for name, t in fam.COMBINATORS.items()}


def decode_tree(t):
    if isinstance(t, Var):
        return ("var", t.name)
    if isinstance(t, App):
        return ("app", decode_tree(t.fn), decode_tree(t.arg))
    return ("comb", BY_TERM[t])  # every abstraction is one of the six combinators


def cl_step(t):
    """One leftmost-outermost weak step, or None."""
    head, args = t, []
    while head[0] == "app":
        args.append(head[2])
        head = head[1]
    args.reverse()
    if head[0] == "comb":
        arity, rule = CL_RULES[head[1]]
        if len(args) >= arity:
            result = rule(*args[:arity])
            for a in args[arity:]:
                result = ("app", result, a)
            return result
    for i, a in enumerate(args):
        s = cl_step(a)
        if s is not None:
            result = head
            for b in args[:i] + [s] + args[i + 1:]:
                result = ("app", result, b)
            return result
    return None


def cl_to_term(t):
    if t[0] == "var":
        return Var(t[1])
    if t[0] == "app":
        return App(cl_to_term(t[1]), cl_to_term(t[2]))
    return None


def has_comb(t):
    return t[0] == "comb" or (t[0] == "app" and (has_comb(t[1]) or has_comb(t[2])))


def test_combinator_traces_agree_with_combinatory_reduction():
    checked = 0
    used = set()
    traces = traces_of("combinators")
    for tr in traces:
        tree = decode_tree(parse(tr.terms[0]))
        used |= {name for name, text in fam.COMBINATOR_TEXTS if text in tr.terms[0]}
        for _ in range(500):
            nxt = cl_step(tree)
            if nxt is None:
                break
            tree = nxt
        if not has_comb(tree):
            check_normal_form(tr, cl_to_term(tree))
            checked += 1
    assert used == set(fam.COMBINATORS)
    assert checked > 0.25 * len(traces), checked


def test_lambda_gen_help_lists_the_same_families_and_descriptions():
    exe = find_generator()
    assert exe is not None, "lambda-gen is not built: run `make build`"
    help_text = subprocess.run([str(exe), "generate", "--help"], capture_output=True, text=True,
                               check=True).stdout
    flat = " ".join(help_text.split())
    for name, text in fam.FAMILIES:
        assert f"- {name}: {text}" in flat, name
