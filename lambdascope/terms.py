"""Untyped λ-terms: parse, print canonically, find the normal-order redex, contract it.

This module is the Python side of the data contract in docs/DESIGN.md. The Rust generator in
``lambda_gen_rs/`` implements the same functions independently; ``tests/test_differential.py``
checks that both agree record for record.

Canonical printing::

    term := 'λ' var '.' term | app
    app  := atom (' ' atom)*        -- left-associative
    atom := var | '(' term ')'
    var  := [a-z][0-9]*

Spans are ``[start, end)`` in Unicode code points (Python ``str`` indices).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

LAMBDA = "λ"


@dataclass(frozen=True, slots=True)
class Var:
    name: str


@dataclass(frozen=True, slots=True)
class Lam:
    var: str
    body: "Term"


@dataclass(frozen=True, slots=True)
class App:
    fn: "Term"
    arg: "Term"


Term = Union[Var, Lam, App]


class ParseError(ValueError):
    """A term's text does not follow the grammar; ``position`` is a code-point index."""

    def __init__(self, text: str, position: int, expected: str):
        self.text = text
        self.position = position
        self.expected = expected
        found = repr(text[position]) if position < len(text) else "end of input"
        super().__init__(f"at position {position}: expected {expected}, found {found}")


# ---------------------------------------------------------------------------------------------
# Parsing


class _Parser:
    """Recursive descent over the grammar. Lenient on input (a backslash may stand for λ, any
    run of spaces separates atoms, redundant parentheses are allowed) so that a person can type
    a term; ``is_canonical`` tells whether a text is exactly the canonical printing."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def var(self) -> str:
        start = self.pos
        c = self.peek()
        if not ("a" <= c <= "z"):
            raise ParseError(self.text, self.pos, "a variable [a-z][0-9]*")
        self.pos += 1
        while "0" <= self.peek() <= "9":
            self.pos += 1
        return self.text[start:self.pos]

    def term(self) -> Term:
        self.skip_spaces()
        c = self.peek()
        if c == LAMBDA or c == "\\":
            self.pos += 1
            self.skip_spaces()
            name = self.var()
            self.skip_spaces()
            if self.peek() != ".":
                raise ParseError(self.text, self.pos, "'.'")
            self.pos += 1
            return Lam(name, self.term())
        result = self.atom()
        while True:
            self.skip_spaces()
            c = self.peek()
            if c == "" or c == ")":
                return result
            if c == LAMBDA or c == "\\":
                # an abstraction in argument position extends to the right end
                result = App(result, self.term())
                return result
            result = App(result, self.atom())

    def atom(self) -> Term:
        c = self.peek()
        if c == "(":
            self.pos += 1
            inner = self.term()
            self.skip_spaces()
            if self.peek() != ")":
                raise ParseError(self.text, self.pos, "')'")
            self.pos += 1
            return inner
        if "a" <= c <= "z":
            return Var(self.var())
        raise ParseError(self.text, self.pos, "a variable, '(' or 'λ'")


def parse(text: str) -> Term:
    """Parse a term; raise ``ParseError`` with the position and what was expected."""
    if not isinstance(text, str):
        raise TypeError(f"parse expects str, got {type(text).__name__}")
    p = _Parser(text)
    if text.strip(" ") == "":
        raise ParseError(text, len(text), "a term")
    t = p.term()
    p.skip_spaces()
    if p.pos != len(text):
        raise ParseError(text, p.pos, "end of input")
    return t


# ---------------------------------------------------------------------------------------------
# Printing and the redex span


def _render(t: Term, want_span: bool) -> tuple[str, tuple[int, int] | None]:
    """Print ``t`` canonically; with ``want_span``, also the span of the leftmost-outermost
    redex (the first redex in pre-order), or None at normal form."""
    parts: list[str] = []
    pos = 0
    span_start = -1  # -1: no redex claimed yet
    span_end = -1

    def emit(s: str) -> None:
        nonlocal pos
        parts.append(s)
        pos += len(s)

    def go(t: Term) -> None:
        nonlocal span_start, span_end
        if isinstance(t, Var):
            emit(t.name)
        elif isinstance(t, Lam):
            emit(LAMBDA + t.var + ".")
            go(t.body)
        else:
            claim = want_span and span_start < 0 and isinstance(t.fn, Lam)
            if claim:
                span_start = pos
            if isinstance(t.fn, Lam):
                emit("(")
                go(t.fn)
                emit(")")
            else:
                go(t.fn)
            emit(" ")
            if isinstance(t.arg, Var):
                go(t.arg)
            else:
                emit("(")
                go(t.arg)
                emit(")")
            if claim:
                span_end = pos

    go(t)
    span = (span_start, span_end) if span_start >= 0 else None
    return "".join(parts), span


def print_term(t: Term) -> str:
    """The canonical text of a term."""
    return _render(t, False)[0]


def print_with_span(t: Term) -> tuple[str, tuple[int, int]]:
    """Canonical text and the target span: the normal-order redex, or (0, 0) at normal form."""
    text, span = _render(t, True)
    return text, (span if span is not None else (0, 0))


def redex_span(t: Term) -> tuple[int, int]:
    """``[start, end)`` of the normal-order redex in ``print_term(t)``; (0, 0) at normal form."""
    return print_with_span(t)[1]


def is_canonical(text: str) -> bool:
    try:
        return print_term(parse(text)) == text
    except ParseError:
        return False


# ---------------------------------------------------------------------------------------------
# Substitution and reduction


def free_vars(t: Term) -> frozenset[str]:
    if isinstance(t, Var):
        return frozenset((t.name,))
    if isinstance(t, Lam):
        return free_vars(t.body) - {t.var}
    return free_vars(t.fn) | free_vars(t.arg)


def fresh_name(name: str, avoid: frozenset[str] | set[str]) -> str:
    """The first of ``x1, x2, ...`` (same letter as ``name``) that is not in ``avoid``."""
    base = name[0]
    k = 1
    while f"{base}{k}" in avoid:
        k += 1
    return f"{base}{k}"


class _Counter:
    __slots__ = ("renames",)

    def __init__(self) -> None:
        self.renames = 0


def _subst(t: Term, x: str, n: Term, fv_n: frozenset[str], counter: _Counter) -> Term:
    """``t[x := n]``, capture-avoiding. A binder ``y`` is renamed only when ``x`` is free under
    it and ``y`` is free in ``n``; its new name is ``fresh_name(y, FV(n) ∪ FV(body) ∪ {x})``."""
    if isinstance(t, Var):
        return n if t.name == x else t
    if isinstance(t, App):
        return App(_subst(t.fn, x, n, fv_n, counter), _subst(t.arg, x, n, fv_n, counter))
    y, body = t.var, t.body
    if y == x:
        return t
    fv_body = free_vars(body)
    if x not in fv_body:
        return t
    if y in fv_n:
        y2 = fresh_name(y, fv_n | fv_body | {x})
        counter.renames += 1
        body = _subst(body, y, Var(y2), frozenset((y2,)), counter)
        y = y2
    return Lam(y, _subst(body, x, n, fv_n, counter))


def substitute(t: Term, x: str, n: Term) -> Term:
    """``t[x := n]`` with capture-avoiding renaming."""
    return _subst(t, x, n, free_vars(n), _Counter())


def contract(redex: Term) -> Term:
    """Contract a β-redex ``(λx.b) a`` to ``b[x := a]``."""
    if not (isinstance(redex, App) and isinstance(redex.fn, Lam)):
        raise ValueError("not a redex: " + print_term(redex))
    return substitute(redex.fn.body, redex.fn.var, redex.arg)


def _step(t: Term, counter: _Counter) -> Term | None:
    if isinstance(t, App):
        if isinstance(t.fn, Lam):
            return _subst(t.fn.body, t.fn.var, t.arg, free_vars(t.arg), counter)
        r = _step(t.fn, counter)
        if r is not None:
            return App(r, t.arg)
        r = _step(t.arg, counter)
        if r is not None:
            return App(t.fn, r)
        return None
    if isinstance(t, Lam):
        r = _step(t.body, counter)
        return Lam(t.var, r) if r is not None else None
    return None


def step(t: Term) -> Term | None:
    """One normal-order (leftmost-outermost) β-step, or None at normal form."""
    return _step(t, _Counter())


def step_counting_renames(t: Term) -> tuple[Term | None, int]:
    """Like ``step``, also returning how many binders were α-renamed."""
    c = _Counter()
    r = _step(t, c)
    return r, c.renames


def is_redex(t: Term) -> bool:
    return isinstance(t, App) and isinstance(t.fn, Lam)


def subterms(t: Term) -> list[tuple[tuple[int, int], tuple[int, ...], Term]]:
    """Every node of ``t`` in pre-order: (its span in ``print_term(t)``, its path, the node). A
    node's span is its own text, without the parentheses its parent puts around it (the
    function of ``(λx.x) y`` is ``[1, 5)``; the application's own text starts at the ``(``).
    A path is a tuple of child indices: 0 = a function or a body, 1 = an argument."""
    out: list = []
    pos = 0

    def go(t: Term, path: tuple[int, ...]) -> None:
        nonlocal pos
        slot, start = len(out), pos
        out.append(None)
        if isinstance(t, Var):
            pos += len(t.name)
        elif isinstance(t, Lam):
            pos += len(t.var) + 2
            go(t.body, path + (0,))
        else:
            if isinstance(t.fn, Lam):
                pos += 1
                go(t.fn, path + (0,))
                pos += 1
            else:
                go(t.fn, path + (0,))
            pos += 1
            if isinstance(t.arg, Var):
                go(t.arg, path + (1,))
            else:
                pos += 1
                go(t.arg, path + (1,))
                pos += 1
        out[slot] = ((start, pos), path, t)

    go(t, ())
    return out


def _node_spans(t: Term) -> list[tuple[tuple[int, int], tuple[int, ...]]]:
    """Every redex of ``t`` as (its span in ``print_term(t)``, its path), in pre-order."""
    return [(span, path) for span, path, node in subterms(t) if is_redex(node)]


def redex_spans(t: Term) -> list[tuple[int, int]]:
    """The spans of all redexes of ``t`` in pre-order (the first is the normal-order one)."""
    return [span for span, _ in _node_spans(t)]


def contract_span(t: Term, span: tuple[int, int]) -> Term | None:
    """Contract the redex whose text is exactly ``span`` of ``print_term(t)``: the step a model
    takes when it points there. None when no redex has that span."""
    for sp, path in _node_spans(t):
        if sp == tuple(span):
            return _replace_at(t, path, lambda r: contract(r))
    return None


def _replace_at(t: Term, path: tuple[int, ...], f) -> Term:
    if not path:
        return f(t)
    head, rest = path[0], path[1:]
    if isinstance(t, Lam):
        return Lam(t.var, _replace_at(t.body, rest, f))
    if isinstance(t, App):
        if head == 0:
            return App(_replace_at(t.fn, rest, f), t.arg)
        return App(t.fn, _replace_at(t.arg, rest, f))
    raise ValueError("path leads into a variable")


# ---------------------------------------------------------------------------------------------
# α-equivalence


def _de_bruijn(t: Term, env: tuple[str, ...]) -> tuple:
    if isinstance(t, Var):
        for i in range(len(env) - 1, -1, -1):
            if env[i] == t.name:
                return ("b", len(env) - 1 - i)
        return ("f", t.name)
    if isinstance(t, Lam):
        return ("l", _de_bruijn(t.body, env + (t.var,)))
    return ("a", _de_bruijn(t.fn, env), _de_bruijn(t.arg, env))


def alpha_equivalent(a: Term, b: Term) -> bool:
    """Equal up to the names of bound variables."""
    return _de_bruijn(a, ()) == _de_bruijn(b, ())


def size(t: Term) -> int:
    """Number of nodes."""
    if isinstance(t, Var):
        return 1
    if isinstance(t, Lam):
        return 1 + size(t.body)
    return 1 + size(t.fn) + size(t.arg)
