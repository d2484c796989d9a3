"""The examples page's filters: URL parameters -> a validated ``ExampleFilter`` -> bound SQL.

Pure functions, no session: ``parse_filter`` turns the query string into a filter (or raises
``BadRequest`` with a message meant for a person), and ``list_sql`` / ``count_sql`` build
parameterised SQL from it. All user input reaches SQL as bound parameters; the only text spliced
into SQL comes from the fixed tables below and ``app.sql``.

Pagination is by keyset (``app.paging``): a page ends with a cursor ``<sort key>,<example id>``
and the next page asks for rows strictly after it, so page 500 costs what page 1 costs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

from lambdascope.vocabulary import ERROR_KIND_TITLES, ERROR_KINDS

from .errors import BadRequest
from .paging import FLOAT_KEY, INT_KEY, Cursor
from .params import MAX_ID, number, opt_suite
from .sql import GOLD_NF_SQL, LABELLED_SQL, PRED_NF_SQL, TOGO_SQL, join_kw

MAX_TERM_QUERY = 200  # characters of a term substring
PAGE_SIZES = (20, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
# the error kind filter's wire format, for the form's help text and the JSON twin
KIND_HELP = ("kind: the prediction's error kind (lambdascope.vocabulary.ERROR_KINDS); repeat the "
             "parameter for several, any of which matches: kind=not_redex&kind=inner_redex")


@dataclass(frozen=True)
class Sort:
    label: str
    expr: str | None  # None: the example id itself
    descending: bool
    kind: type  # of the key in a cursor
    side: str  # "p" or "e": the table the key lives in

    @property
    def cursor(self) -> Cursor:
        if self.expr is None:
            return Cursor(None)
        return Cursor(FLOAT_KEY if self.kind is float else INT_KEY)


SORTS: dict[str, Sort] = {
    "example": Sort("trace order", None, False, int, "p"),
    "iou": Sort("IoU, lowest first", "p.iou", False, float, "p"),
    "-iou": Sort("IoU, highest first", "p.iou", True, float, "p"),
    "conf": Sort("confidence, lowest first", "p.start_conf * p.end_conf", False, float, "p"),
    "-conf": Sort("confidence, highest first", "p.start_conf * p.end_conf", True, float, "p"),
    "len": Sort("term length, shortest first", "e.term_len", False, int, "e"),
    "-len": Sort("term length, longest first", "e.term_len", True, int, "e"),
    "togo": Sort("steps to normal form, fewest first", TOGO_SQL, False, int, "e"),
    "-togo": Sort("steps to normal form, most first", TOGO_SQL, True, int, "e"),
}


@dataclass(frozen=True)
class ExampleFilter:
    ck: int | None = None
    suite: str = ""  # "" the checkpoint itself; a suite's name: its sibling row of that suite
    correct: str = ""  # "" | "right" | "wrong"
    kind: tuple[str, ...] = ()  # error kinds, any of them (in ERROR_KINDS order); () = any kind
    iou_min: float | None = None  # inclusive
    iou_max: float | None = None  # exclusive
    nf: bool | None = None  # the gold span is normal form (the last step of a trace)
    pred_nf: bool | None = None  # the model predicts normal form
    len_min: int | None = None  # term length in code points, inclusive
    len_max: int | None = None
    togo_min: int | None = None  # steps to normal form, inclusive
    togo_max: int | None = None
    labelled: bool | None = None  # the example's trace or step carries a label
    q: str = ""  # a substring of the term
    sort: str = "example"
    after: str | None = None  # cursor: rows strictly after it
    before: str | None = None  # cursor: rows strictly before it (the previous page)
    limit: int = DEFAULT_PAGE_SIZE

    # ----------------------------------------------------------------------------------------
    def params(self, **changes: Any) -> dict[str, str | list[str]]:
        """The query-string parameters of this filter (defaults left out), with ``changes``
        applied; a change to anything but the cursors drops the cursors (a new list). ``kind``
        is a list: the parameter repeated (``rendering.url`` writes it so)."""
        f = self
        if changes:
            if not set(changes) <= {"after", "before"}:
                f = replace(f, after=None, before=None)
            f = replace(f, **changes)
        out: dict[str, str] = {}
        for name, value in asdict(f).items():
            if value is None or value == "" or value == DEFAULTS.get(name):
                continue
            if isinstance(value, bool):
                value = "1" if value else "0"
            elif isinstance(value, float):
                value = _fmt_float(value)
            elif isinstance(value, tuple):  # the parameter repeated (rendering.url writes it so)
                out[name] = list(value)
                continue
            out[name] = str(value)
        return out

    def without_page(self) -> "ExampleFilter":
        return replace(self, after=None, before=None, sort="example", limit=DEFAULT_PAGE_SIZE)

    @property
    def needs_examples(self) -> bool:
        """Whether the WHERE clause touches the examples table."""
        return (self.nf is not None or self.len_min is not None or self.len_max is not None
                or self.togo_min is not None or self.togo_max is not None
                or self.labelled is not None or bool(self.q))

    def active(self) -> list[tuple[str, str]]:
        """(parameter, human description) of each active filter, for the 'remove' chips."""
        out = []
        if self.correct:
            out.append(("correct", "right" if self.correct == "right" else "wrong"))
        if self.kind:
            out.append(("kind", "kind: " + " or ".join(ERROR_KIND_TITLES[k] for k in self.kind)))
        if self.iou_min is not None or self.iou_max is not None:
            lo = _fmt_float(self.iou_min) if self.iou_min is not None else "0"
            hi = f"< {_fmt_float(self.iou_max)}" if self.iou_max is not None else "≤ 1"
            out.append(("iou", f"IoU ≥ {lo}, {hi}"))
        if self.nf is not None:
            out.append(("nf", "gold is normal form" if self.nf else "gold is reducible"))
        if self.pred_nf is not None:
            out.append(("pred_nf", "predicts normal form" if self.pred_nf else "predicts a redex"))
        if self.len_min is not None or self.len_max is not None:
            out.append(("len", f"length {_range_text(self.len_min, self.len_max)}"))
        if self.togo_min is not None or self.togo_max is not None:
            out.append(("togo", f"steps to go {_range_text(self.togo_min, self.togo_max)}"))
        if self.labelled is not None:
            out.append(("labelled", "labelled" if self.labelled else "unlabelled"))
        if self.q:
            out.append(("q", f"term contains “{self.q}”"))
        return out

    def params_without(self, group: str) -> dict[str, str | list[str]]:
        """The parameters with one active filter (as named by ``active``) removed."""
        names = {"iou": ("iou_min", "iou_max"), "len": ("len_min", "len_max"),
                 "togo": ("togo_min", "togo_max")}.get(group, (group,))
        return self.params(**{n: DEFAULTS[n] for n in names})


DEFAULTS: dict[str, Any] = {name: value for name, value in asdict(ExampleFilter()).items()}


def _fmt_float(x: float) -> str:
    return repr(float(x)).removesuffix(".0") if x == int(x) else repr(float(x))


def _range_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return str(lo) if lo == hi else f"{lo}–{hi}"
    return f"≥ {lo}" if lo is not None else f"≤ {hi}"


# ---------------------------------------------------------------------------------------------
# Parsing


def _get(args: Mapping[str, str], name: str, max_len: int = 40) -> str:
    value = args.get(name)
    if value is None:
        return ""
    value = str(value).strip()
    if len(value) > max_len:
        raise BadRequest(f"{name}: at most {max_len} characters")
    return value


def _int(args: Mapping[str, str], name: str, lo: int = 0, hi: int = MAX_ID) -> int | None:
    text = _get(args, name)
    return None if text == "" else number(text, name=name, lo=lo, hi=hi)


def _unit_float(args: Mapping[str, str], name: str) -> float | None:
    text = _get(args, name)
    if text == "":
        return None
    return number(text, name=name, kind=float, lo=0.0, hi=1.0,
                  expected="expected a number between 0 and 1, got {text}",
                  out_of_range="must be between 0 and 1, got {value}")


def _tristate(args: Mapping[str, str], name: str) -> bool | None:
    text = _get(args, name).lower()
    if text in ("", "any"):
        return None
    if text in ("1", "yes", "true"):
        return True
    if text in ("0", "no", "false"):
        return False
    raise BadRequest(f"{name}: expected 1 (yes), 0 (no) or nothing, got {text!r}")


def parse_kinds(value: Any, name: str = "kind") -> tuple[str, ...]:
    """Error kinds from a parameter given once (a string) or repeated (a list of them), blank
    values left out, in ``ERROR_KINDS`` order without repeats; an unknown kind is a 400 that
    names the parameter and lists the valid kinds."""
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else list(value)
    if len(values) > 2 * len(ERROR_KINDS):
        raise BadRequest(f"{name}: at most {len(ERROR_KINDS)} error kinds, got {len(values)} values")
    chosen = set()
    for v in values:
        v = str(v).strip()
        if v == "":
            continue
        if v not in ERROR_KINDS:
            raise BadRequest(f"{name}: unknown error kind {v[:40]!r}; the kinds are "
                             f"{', '.join(ERROR_KINDS)} (repeat the parameter for several: "
                             f"{name}=not_redex&{name}=inner_redex)")
        chosen.add(v)
    return tuple(k for k in ERROR_KINDS if k in chosen)


def parse_filter(args: Mapping[str, Any]) -> ExampleFilter:
    """Validate the examples page's query parameters; unknown parameters are ignored. ``kind``
    may be a string or a list of them (the parameter repeated); every other value is a string."""
    correct = _get(args, "correct").lower()
    if correct not in ("", "right", "wrong", "any"):
        raise BadRequest(f"correct: expected 'right' or 'wrong', got {correct!r}")
    kind = parse_kinds(args.get("kind"))
    iou_min, iou_max = _unit_float(args, "iou_min"), _unit_float(args, "iou_max")
    if iou_min is not None and iou_max is not None and iou_min >= iou_max:
        raise BadRequest(f"iou_min ({_fmt_float(iou_min)}) must be less than iou_max "
                          f"({_fmt_float(iou_max)}): the range is [iou_min, iou_max)")
    len_min, len_max = _int(args, "len_min"), _int(args, "len_max")
    if len_min is not None and len_max is not None and len_min > len_max:
        raise BadRequest(f"len_min ({len_min}) must not exceed len_max ({len_max})")
    togo_min, togo_max = _int(args, "togo_min"), _int(args, "togo_max")
    if togo_min is not None and togo_max is not None and togo_min > togo_max:
        raise BadRequest(f"togo_min ({togo_min}) must not exceed togo_max ({togo_max})")
    q = args.get("q") or ""
    if len(q) > MAX_TERM_QUERY:
        raise BadRequest(f"q: a term substring of at most {MAX_TERM_QUERY} characters, "
                          f"got {len(q)}")
    if "\x00" in q:
        raise BadRequest("q: must not contain a NUL character")
    sort = _get(args, "sort") or "example"
    if sort not in SORTS:
        raise BadRequest(f"sort: expected one of {', '.join(SORTS)}, got {sort!r}")
    after, before = _get(args, "after", 80) or None, _get(args, "before", 80) or None
    if after and before:
        raise BadRequest("after and before cannot both be given")
    for cursor in (after, before):
        if cursor:
            decode_cursor(cursor, SORTS[sort])
    limit = _int(args, "limit", 1, max(PAGE_SIZES))
    return ExampleFilter(
        ck=_int(args, "ck", 1), suite=opt_suite(args.get("suite")) or "", correct="" if correct == "any" else correct, kind=kind,
        iou_min=iou_min, iou_max=iou_max, nf=_tristate(args, "nf"),
        pred_nf=_tristate(args, "pred_nf"), len_min=len_min, len_max=len_max,
        togo_min=togo_min, togo_max=togo_max, labelled=_tristate(args, "labelled"), q=q,
        sort=sort, after=after, before=before,
        limit=limit if limit is not None else DEFAULT_PAGE_SIZE)


# ---------------------------------------------------------------------------------------------
# Cursors


def encode_cursor(sort: Sort, key: Any, example_id: int) -> str:
    return sort.cursor.encode(key, example_id)


def decode_cursor(text: str, sort: Sort) -> tuple[Any, int]:
    """(key, example id) of a cursor; a BadRequest if it does not fit the sort."""
    return sort.cursor.decode(
        text, malformed="cursor {text} does not fit the sort order " + repr(sort.label)
        + "; start from the first page", out_of_range="cursor {text} is out of range")


# ---------------------------------------------------------------------------------------------
# SQL


def where_sql(f: ExampleFilter, dialect: str = "sqlite") -> tuple[list[str], dict[str, Any]]:
    """The WHERE conditions (ANDed) and their parameters, cursors left out. ``p`` is the
    predictions table, ``e`` the examples table."""
    conds = ["p.checkpoint_id = :ck"]
    params: dict[str, Any] = {"ck": f.ck}
    if f.correct:
        conds.append("p.exact = :exact")
        params["exact"] = f.correct == "right"
    if f.kind:  # a bound IN list: kind_0, kind_1, …
        names = [f"kind_{i}" for i in range(len(f.kind))]
        conds.append(f"p.error_kind IN ({', '.join(':' + n for n in names)})")
        params.update(zip(names, f.kind))
    if f.iou_min is not None:
        conds.append("p.iou >= :iou_min")
        params["iou_min"] = f.iou_min
    if f.iou_max is not None:
        conds.append("p.iou < :iou_max")
        params["iou_max"] = f.iou_max
    if f.pred_nf is not None:
        conds.append(PRED_NF_SQL if f.pred_nf else f"NOT {PRED_NF_SQL}")
    more, more_params = example_conds(f, dialect)
    conds += more
    params.update(more_params)
    if f.labelled is not None:
        conds.append(LABELLED_SQL if f.labelled else f"NOT {LABELLED_SQL}")
    return conds, params


def example_conds(f: ExampleFilter, dialect: str = "sqlite") -> tuple[list[str], dict[str, Any]]:
    """The conditions of ``f`` on the examples table ``e`` alone (gold normal form, term length,
    steps to go, the term's substring) and their parameters: the same for every checkpoint of
    an evaluation set (``where_sql`` uses them; ``app.counting.term_mask`` reads ``q`` with them)."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    if f.nf is not None:
        conds.append(GOLD_NF_SQL if f.nf else f"NOT {GOLD_NF_SQL}")
    if f.len_min is not None:
        conds.append("e.term_len >= :len_min")
        params["len_min"] = f.len_min
    if f.len_max is not None:
        conds.append("e.term_len <= :len_max")
        params["len_max"] = f.len_max
    if f.togo_min is not None:
        conds.append(f"{TOGO_SQL} >= :togo_min")
        params["togo_min"] = f.togo_min
    if f.togo_max is not None:
        conds.append(f"{TOGO_SQL} <= :togo_max")
        params["togo_max"] = f.togo_max
    if f.q:
        fn = "instr(e.term, :q)" if dialect == "sqlite" else "strpos(e.term, :q)"
        conds.append(f"{fn} > 0")
        params["q"] = f.q
    return conds, params


def _tie(sort: Sort) -> str:
    """The example id column of the table that leads the join (the last key of the order)."""
    return "e.id" if sort.side == "e" else "p.example_id"


def _keyset(sort: Sort, cursor: str, forward: bool) -> tuple[str, dict[str, Any]]:
    """The condition 'strictly after (forward) or before the cursor in the sort order'."""
    key, eid = decode_cursor(cursor, sort)
    later = (not sort.descending) == forward  # rows with a larger key come later
    op = ">" if later else "<"
    tie = _tie(sort)
    if sort.expr is None:
        return f"{tie} {op} :cur_id", {"cur_id": eid}
    # the redundant first term lets SQLite use an index on the key
    return (f"({sort.expr} {op}= :cur_key AND ({sort.expr} {op} :cur_key "
            f"OR {tie} {op} :cur_id))", {"cur_key": key, "cur_id": eid})


LIST_COLUMNS = (
    "e.id AS example_id, e.trace_identity, e.trace_id, e.step_k, e.steps_total, e.term, "
    "e.gold_start, e.gold_end, e.term_len, p.pred_start, p.pred_end, p.start_conf, p.end_conf, "
    f"p.iou, p.exact, p.error_kind, {LABELLED_SQL} AS labelled"
)


def list_sql(f: ExampleFilter, dialect: str = "sqlite",
             eval_set_id: int | None = None) -> tuple[str, dict[str, Any], bool]:
    """SQL for one page (``limit + 1`` rows, to know whether another page follows), its
    parameters, and whether the rows come in reverse (a ``before`` page, to be flipped).
    ``eval_set_id`` (the checkpoint's) lets a sort on an examples column walk an examples
    index."""
    sort = SORTS[f.sort]
    conds, params = where_sql(f, dialect)
    reverse = f.before is not None
    cursor = f.before or f.after
    if cursor:
        cond, more = _keyset(sort, cursor, forward=not reverse)
        conds.append(cond)
        params.update(more)
    desc = sort.descending != reverse
    direction = " DESC" if desc else ""
    tie = _tie(sort)
    order = f"{tie}{direction}" if sort.expr is None else f"{sort.expr}{direction}, {tie}{direction}"
    # The table holding the sort key leads, walked along its index in key order (CROSS JOIN
    # fixes the join order in SQLite and is a plain join elsewhere); the other is looked up
    # by primary key for each row until the page is full.
    if sort.side == "e" and eval_set_id is not None:
        conds.insert(0, "e.eval_set_id = :es")
        params["es"] = eval_set_id
        join = f"examples e {join_kw(dialect)} predictions p"
    else:
        join = f"predictions p {join_kw(dialect)} examples e"
    sql = (f"SELECT {LIST_COLUMNS} FROM {join} ON e.id = p.example_id "
           f"WHERE {' AND '.join(conds)} ORDER BY {order} LIMIT :limit")
    params["limit"] = f.limit + 1
    return sql, params, reverse


def count_sql(f: ExampleFilter, dialect: str = "sqlite") -> tuple[str, dict[str, Any]]:
    """SQL counting every row of the filter (cursors ignored); joins the examples only when
    a condition needs them, so a predictions-only filter counts along an index."""
    conds, params = where_sql(f, dialect)
    if f.needs_examples:
        return (f"SELECT count(*) FROM predictions p {join_kw(dialect)} examples e ON e.id = p.example_id "
                f"WHERE {' AND '.join(conds)}", params)
    return f"SELECT count(*) FROM predictions p WHERE {' AND '.join(conds)}", params


def sort_key_of(row: Mapping[str, Any], sort: Sort) -> Any:
    """The sort key of a listed row, for its cursor."""
    if sort.expr is None:
        return row["example_id"]
    return {
        "p.iou": lambda r: r["iou"],
        "p.start_conf * p.end_conf": lambda r: r["start_conf"] * r["end_conf"],
        "e.term_len": lambda r: r["term_len"],
        TOGO_SQL: lambda r: r["steps_total"] - r["step_k"],
    }[sort.expr](row)
