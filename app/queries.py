"""Data functions: one per page, each returning a plain dict that the page's template renders
and its JSON twin returns as it is. They take the session as a keyword and never commit.

Errors a person can fix raise ``BadRequest`` (400) or ``NotFound`` (404) with a message
(``app.errors``).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import replace
from typing import Any, Mapping

from sqlalchemy import and_, bindparam, func, or_, select, text

from lambdascope.store import Checkpoint, DataProblem, Example, Label, MetricPoint, Rollout, Run, utcnow
from lambdascope.terms import ParseError, parse, redex_span
from lambdascope.vocabulary import (ERROR_KINDS, EVAL_CURVES, SPARKLINE_METRICS, SUMMARY_METRICS, RunStatus,
                                    iou_bins, metric_order, metric_title)
from lambdascope.vocabulary import effective_status, last_heard, length_bucket_width

from .cache import Aggregates
from .comparison import COMPARE_KINDS
from .counting import labelled_mask, positions, term_mask, vector_count
from .errors import BadRequest, NotFound
from .filters import (KIND_HELP, SORTS, ExampleFilter, count_sql, encode_cursor, list_sql,
                      parse_kinds, sort_key_of)
from .paging import FLOAT_KEY, TIME_KEY, Cursor
from .params import MAX_ID
from .sql import LABELLED_SQL, join_kw

CURVE_POINTS = 300  # a curve is downsampled to about this many points


def finite(x: Any) -> Any:
    """NaN and infinities as None (JSON has no place for them)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def checkpoint_label(ck: Mapping[str, Any]) -> str:
    base = f"{ck['run_name']} @ step {ck['step']}"
    if ck.get("suite"):
        base += f" · suite {ck['suite']}"
    return f"{ck['name']} ({base})" if ck.get("name") else base


CK_COLUMNS = (Checkpoint.id, Checkpoint.run_id, Checkpoint.eval_set_id, Checkpoint.step,
              Checkpoint.path, Checkpoint.name, Checkpoint.created_at, Checkpoint.metrics,
              Checkpoint.suite, Run.name.label("run_name"), Run.status.label("run_status"))


def _ck_dict(row) -> dict[str, Any]:
    d = dict(row._mapping)
    if "metrics" in d:
        d["metrics"] = finite(d["metrics"] or {})
    d["label"] = checkpoint_label(d)
    return d


def get_checkpoint(ck: int, *, session, metrics: bool = True) -> dict[str, Any]:
    """Checkpoint ``ck`` with its run's name and status (a 404 when there is none).
    ``metrics=False`` leaves out its metrics, whose decoding was most of the lookup's cost, for
    a page that does not show them (the trace page)."""
    if not 1 <= ck <= MAX_ID:
        raise NotFound(f"no checkpoint {ck}")
    row = session.connection().execute(_CK_BY_ID[metrics], {"ck": ck}).first()
    if row is None:
        raise NotFound(f"no checkpoint {ck}")
    return _ck_dict(row)


# the checkpoint columns of a page joined with the run's, with and without the metrics; run on
# the session's Core connection (a row needs no ORM)
_CK_SELECTS = {m: select(*(c for c in CK_COLUMNS if m or c is not Checkpoint.metrics))
               .join(Run, Run.id == Checkpoint.run_id) for m in (True, False)}


_CK_BY_ID = {m: sel.where(Checkpoint.id == bindparam("ck")) for m, sel in _CK_SELECTS.items()}


MAIN = Checkpoint.suite.is_(None)  # a run's own evaluation, not a suite's sibling row


def _same_suite(suite: str | None):
    return MAIN if suite is None else Checkpoint.suite == suite


def resolve_checkpoint(ck_id: int, suite: str | None, *, session, metrics: bool = True) -> dict[str, Any]:
    """Checkpoint ``ck_id``, or with ``suite`` its sibling row evaluated on that suite (the same
    run, step and path; ``store.write_evaluation(suite=…)``): a 404 naming the suites there are
    when it has none of that name. ``metrics``: as in ``get_checkpoint``."""
    ck = get_checkpoint(ck_id, session=session, metrics=metrics)
    if suite is None or suite == ck["suite"]:
        return ck
    row = session.connection().execute(_CK_SELECTS[metrics].where(
        Checkpoint.run_id == ck["run_id"], Checkpoint.step == ck["step"], Checkpoint.path == ck["path"],
        Checkpoint.suite == suite).order_by(Checkpoint.id.desc()).limit(1)).first()
    if row is None:
        names = sorted(n for n in suite_rows(ck, session=session) if n is not None)
        have = f"its suites: {', '.join(names)}" if names else "it was evaluated on no suite"
        raise NotFound(f"checkpoint {ck_id} ({ck['run_name']} @ step {ck['step']}) has no "
                       f"evaluation on suite {suite!r}; {have}")
    return _ck_dict(row)


def suite_rows(ck: Mapping[str, Any], *, session) -> dict[str | None, int]:
    """{suite (None: the run's own set): checkpoint id} of the rows of ``ck``'s run, step and
    path: the checkpoint's evaluations (the newest row of each suite)."""
    rows = session.execute(select(Checkpoint.suite, func.max(Checkpoint.id)).where(
        Checkpoint.run_id == ck["run_id"], Checkpoint.step == ck["step"],
        Checkpoint.path == ck["path"]).group_by(Checkpoint.suite)).all()
    out = {s: i for s, i in rows}
    out.setdefault(ck["suite"], ck["id"])
    out[ck["suite"]] = ck["id"]
    return out


def checkpoints_of_eval_set(eval_set_id: int, *, session, suite: str | None = None) -> list[dict[str, Any]]:
    """Every checkpoint evaluated on an evaluation set, newest first (for pickers): the main
    rows, or with ``suite`` the rows of that suite."""
    rows = session.connection().execute(_OF_EVAL_SET[suite is not None], {"es": eval_set_id, "suite": suite}).all()
    return [{"id": r.id, "label": checkpoint_label(r._mapping)} for r in rows]


def picker(eval_set_id: int, suite: str | None) -> dict[str, Any]:
    """A page's checkpoint picker: the checkpoints of ``eval_set_id`` (main rows, or ``suite``'s).
    The page lists them through a marker filled in as it is served (``app.pickers``); its JSON
    twin lists them (``with_checkpoints``)."""
    return {"eval_set_id": eval_set_id, "suite": suite}


def with_checkpoints(data: dict[str, Any], *, session) -> dict[str, Any]:
    """A page's data for its JSON twin: its picker's checkpoints as ``checkpoints``."""
    p = data.get("picker")
    if p is None:
        return data
    return {k: v for k, v in data.items() if k != "picker"} | {
        "checkpoints": checkpoints_of_eval_set(p["eval_set_id"], session=session, suite=p["suite"])}


_OF_EVAL_SET = {by_suite: select(Checkpoint.id, Checkpoint.step, Checkpoint.name, Checkpoint.suite,
                                 Run.name.label("run_name")).join(Run, Run.id == Checkpoint.run_id)
                .where(Checkpoint.eval_set_id == bindparam("es"),
                       Checkpoint.suite == bindparam("suite") if by_suite else MAIN)
                .order_by(Checkpoint.id.desc()) for by_suite in (False, True)}


def all_checkpoints(*, session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Checkpoint.id, Checkpoint.step, Checkpoint.name, Checkpoint.eval_set_id,
               Run.name.label("run_name")).join(Run, Run.id == Checkpoint.run_id).where(MAIN)
        .order_by(Checkpoint.id.desc())).all()
    return [{"id": r.id, "eval_set_id": r.eval_set_id, "label": checkpoint_label(r._mapping)}
            for r in rows]


def latest_checkpoint_id(*, session) -> int | None:
    return session.scalar(select(func.max(Checkpoint.id)).where(MAIN))


def summary(ck: dict[str, Any], *, session, cache: Aggregates) -> dict[str, Any]:
    return cache.summary(session, ck["id"], ck["created_at"])


# ---------------------------------------------------------------------------------------------
# Curves


def metric_series(run_id: int, name: str, *, session, cache: Aggregates,
                  points: int = CURVE_POINTS, last: int | None = None) -> list[list[float]]:
    """[[step, value], …] of one metric of a run, averaged into at most about ``points``
    buckets of steps. Kept in memory until the metric gets a later step (metric points are
    appended as a run trains), so a finished run's curves are read once. ``last``: the
    metric's latest step when the caller has it (``metric_lasts``)."""
    if last is None:
        last = session.scalar(select(func.max(MetricPoint.step))
                              .where(MetricPoint.run_id == run_id, MetricPoint.name == name))
    if last is None:
        return []

    def compute() -> list[list[float]]:
        lo, hi, n = session.execute(
            select(func.min(MetricPoint.step), func.max(MetricPoint.step), func.count())
            .where(MetricPoint.run_id == run_id, MetricPoint.name == name)).one()
        width = max(1, math.ceil((hi - lo + 1) / points)) if n > points else 1
        rows = session.execute(text(
            "SELECT min(step), avg(value) FROM metric_points WHERE run_id = :r AND name = :n "
            "GROUP BY step / :w ORDER BY 1"), {"r": run_id, "n": name, "w": width}).all()
        return [[s, v] for s, v in rows if v is not None and math.isfinite(v)]

    return cache.curves.get((run_id, name, points, last), compute)


# ---------------------------------------------------------------------------------------------
# Runs

# The names a run has metric points of, in order, each with its latest step: index lookups
# along uq_metric_points_run_name_step (a skip scan for the names), where GROUP BY name read
# every point of the run: 3.4 ms for 40,000 points against 0.03 ms. One statement for all the
# run page's curves, where a max(step) each was a statement a curve.
METRIC_LASTS_SQL = text(
    "WITH RECURSIVE n(name) AS (SELECT min(name) FROM metric_points WHERE run_id = :r "
    "UNION ALL SELECT (SELECT min(name) FROM metric_points WHERE run_id = :r AND name > n.name) "
    "FROM n WHERE n.name IS NOT NULL) SELECT name, (SELECT max(step) FROM metric_points "
    "WHERE run_id = :r AND name = n.name) FROM n WHERE name IS NOT NULL")


def metric_lasts(run_id: int, *, session) -> dict[str, int]:
    """{metric name: its latest step} of a run's metric points, in name order."""
    return {n: last for n, last in session.execute(METRIC_LASTS_SQL, {"r": run_id})}



def _sparkline_metric(run_id: int, session) -> str | None:
    """The first of SPARKLINE_METRICS the run records (a metric, once recorded, stays)."""
    for name in SPARKLINE_METRICS:
        if session.scalar(select(MetricPoint.id).where(MetricPoint.run_id == run_id,
                                                       MetricPoint.name == name).limit(1)):
            return name
    return None


def liveness(run_id: int, status: str, heartbeat_at: dt.datetime | None, times: list[Any],
             metric: str | None, *, session, now: dt.datetime) -> dict[str, Any]:
    """A run's status at ``now`` (``lost`` for a running run not heard from for
    ``vocabulary.LOST_AFTER``: a killed trainer cannot mark its run, ``--resume`` carries it
    on), when it was last heard from and how many seconds before ``now`` (running and lost
    runs; None for the others). Heard from: its heartbeat; for a row from before heartbeats,
    the newest of ``times`` (its row's update, its newest checkpoint) and of its newest point
    of ``metric`` (the loss the trainer writes every few seconds, found along the
    (run, name, step) index)."""
    if status != RunStatus.RUNNING:
        return {"status": status, "last_heard_at": None, "silent_s": None}
    if heartbeat_at is None and metric is not None:
        of_metric = (MetricPoint.run_id == run_id, MetricPoint.name == metric)
        last_step = select(func.max(MetricPoint.step)).where(*of_metric).scalar_subquery()
        times = times + [session.scalar(select(func.max(MetricPoint.time))  # typed: a datetime
                                        .where(*of_metric, MetricPoint.step == last_step))]
    heard = last_heard(heartbeat_at, times)
    return {"status": effective_status(status, heard, now), "last_heard_at": heard,
            "silent_s": None if heard is None else max(0, int((now - heard).total_seconds()))}


def runs_data(*, session, cache: Aggregates, now: dt.datetime | None = None) -> dict[str, Any]:
    """Every run, newest first; ``now`` (default: the clock) decides which are lost."""
    now = now or utcnow()
    runs = session.execute(select(Run.id, Run.name, Run.status, Run.started_at, Run.updated_at,
                                  Run.finished_at, Run.message, Run.eval_set_id, Run.heartbeat_at)
                           .order_by(Run.id.desc())).all()
    counts = dict(session.execute(select(Checkpoint.run_id, func.count()).where(MAIN)
                                  .group_by(Checkpoint.run_id)).all())
    latest_ids = session.scalars(select(func.max(Checkpoint.id)).where(MAIN)
                                 .group_by(Checkpoint.run_id)).all()
    latest = {}
    if latest_ids:
        for row in session.execute(select(*CK_COLUMNS).join(Run, Run.id == Checkpoint.run_id)
                                   .where(Checkpoint.id.in_(latest_ids))):
            latest[row.run_id] = _ck_dict(row)
    out = []
    for r in runs:
        spark_name = cache.sparkline_metric.get(r.id) or _sparkline_metric(r.id, session)
        if spark_name:
            cache.sparkline_metric[r.id] = spark_name
        spark = metric_series(r.id, spark_name, session=session, cache=cache, points=60) \
            if spark_name else []
        ck = latest.get(r.id)
        alive = liveness(r.id, r.status, r.heartbeat_at, [r.started_at, r.updated_at, ck and ck["created_at"]],
                         spark_name, session=session, now=now)
        out.append({
            "id": r.id, "name": r.name, "started_at": r.started_at,
            "updated_at": r.updated_at, "finished_at": r.finished_at, "message": r.message,
            **alive,
            "checkpoints": counts.get(r.id, 0),
            "latest_checkpoint": None if ck is None else {
                "id": ck["id"], "step": ck["step"], "label": ck["label"],
                "metrics": {k: ck["metrics"][k] for k in SUMMARY_METRICS if k in ck["metrics"]}},
            "sparkline": {"metric": spark_name, "title": metric_title(spark_name or ""),
                          "points": spark},
        })
    return {"runs": out}


def run_data(run_id: int, *, session, cache: Aggregates, problems_reason: str | None = None,
             problems_limit: int = 100, now: dt.datetime | None = None) -> dict[str, Any]:
    run = session.get(Run, run_id) if 1 <= run_id <= MAX_ID else None
    if run is None:
        raise NotFound(f"no run {run_id}")
    cks = session.execute(select(*CK_COLUMNS).join(Run, Run.id == Checkpoint.run_id)
                          .where(Checkpoint.run_id == run_id).order_by(Checkpoint.step, Checkpoint.id)).all()
    all_rows = [_ck_dict(r) for r in cks]
    checkpoints = [ck for ck in all_rows if ck["suite"] is None]
    names = metric_lasts(run_id, session=session)
    curves = {name: metric_series(run_id, name, session=session, cache=cache, last=last)
              for name, last in names.items()}
    # evaluation metrics recorded only in the checkpoints' summaries become curves too (the
    # known ones: a summary also holds counts and timings that make no useful curve)
    for ck in checkpoints:
        for key, value in ck["metrics"].items():
            if key in EVAL_CURVES and key not in names and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and math.isfinite(value):
                curves.setdefault(key, []).append([ck["step"], value])
    ordered = sorted(curves, key=metric_order)
    alive = liveness(run.id, run.status, run.heartbeat_at,
                     [run.started_at, run.updated_at] + [ck["created_at"] for ck in checkpoints[-1:]],
                     next((n for n in SPARKLINE_METRICS if n in names), None), session=session,
                     now=now or utcnow())
    problem_counts = session.execute(
        select(DataProblem.reason, func.count()).where(DataProblem.run_id == run_id)
        .group_by(DataProblem.reason).order_by(func.count().desc())).all()
    q = select(DataProblem.file, DataProblem.line, DataProblem.reason, DataProblem.detail) \
        .where(DataProblem.run_id == run_id)
    if problems_reason:
        q = q.where(DataProblem.reason == problems_reason)
    problems = session.execute(q.order_by(DataProblem.id).limit(problems_limit)).all()
    kinds = []  # each checkpoint's predictions by error kind, computed once a checkpoint (cached)
    for ck in checkpoints:
        counts = cache.kind_counts(session, ck["id"], ck["created_at"])
        n = sum(counts.values())
        kinds.append({"id": ck["id"], "step": ck["step"], "label": ck["label"], "n": n, "counts": counts,
                      "shares": {k: (c / n if n else None) for k, c in counts.items()}})
    return {
        "run": {"id": run.id, "name": run.name, "config": finite(run.config),
                "data_files": run.data_files, "data_hash": run.data_hash,
                "started_at": run.started_at, "updated_at": run.updated_at,
                "finished_at": run.finished_at, "message": run.message,
                "eval_set_id": run.eval_set_id} | alive,
        "live": run.status == RunStatus.RUNNING,  # the page polls (lost too: it sees a resume)
        "curves": [{"name": n, "title": metric_title(n), "points": curves[n]} for n in ordered],
        "suite_curves": suite_curves(all_rows),
        "checkpoints": [{k: ck[k] for k in ("id", "step", "name", "created_at", "metrics", "label")}
                        for ck in checkpoints],
        "kinds_by_checkpoint": kinds,
        "validation": finite(run.validation),
        "problem_counts": [{"reason": r, "n": n} for r, n in problem_counts],
        "problems_reason": problems_reason,
        "problems": [dict(p._mapping) for p in problems],
    }


# ---------------------------------------------------------------------------------------------
# Checkpoint


def checkpoint_data(ck_id: int, *, session, cache: Aggregates, suite: str | None = None) -> dict[str, Any]:
    """Checkpoint ``ck_id``'s page, or with ``suite`` its sibling row's of that suite."""
    return checkpoint_view(resolve_checkpoint(ck_id, suite, session=session), session=session, cache=cache)


def suite_picker(ck: Mapping[str, Any], *, session) -> list[dict[str, Any]]:
    """The checkpoint's evaluations (the run's own set first, then each suite by name), each
    with the address that shows it: ``/checkpoints/MAIN?suite=NAME`` (the row itself when the
    run's own row is missing)."""
    rows = suite_rows(ck, session=session)
    base = rows.get(None, ck["id"])
    out = []
    for name in sorted(rows, key=lambda n: (n is not None, n or "")):
        href = f"/checkpoints/{base}" if name is None else (
            f"/checkpoints/{base}?suite={name}" if None in rows else f"/checkpoints/{rows[name]}")
        out.append({"suite": name, "title": name or "main set", "id": rows[name], "href": href,
                    "current": rows[name] == ck["id"]})
    return out


SUITE_CURVES = ("exact", "rollout_success")  # the metrics drawn per suite on a run's page


def suite_curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each of ``SUITE_CURVES``, one series per suite (the run's own set first, as
    ``suite`` None, then the suites by name) of [step, value] from the rows' metrics; empty
    when the run has no suite rows."""
    suites = sorted({r["suite"] for r in rows if r["suite"] is not None})
    if not suites:
        return []
    out = []
    for name in SUITE_CURVES:
        series = []
        for i, suite in enumerate([None] + suites):
            points = [[r["step"], r["metrics"][name]] for r in rows if r["suite"] == suite
                      and isinstance(r["metrics"].get(name), (int, float))
                      and not isinstance(r["metrics"][name], bool) and math.isfinite(r["metrics"][name])]
            series.append({"suite": suite, "title": suite or "main set", "colour": i,
                           "points": sorted(points)})
        out.append({"name": name, "title": metric_title(name), "series": series})
    return out


def checkpoint_view(ck: dict[str, Any], *, session, cache: Aggregates) -> dict[str, Any]:
    """The checkpoint page of a row (a main row or a suite's sibling): its summary, the
    previous and next rows of the same suite in its run, and the suite picker."""
    s = summary(ck, session=session, cache=cache)
    siblings = session.execute(select(Checkpoint.id, Checkpoint.step).where(
        Checkpoint.run_id == ck["run_id"], _same_suite(ck["suite"]))
        .order_by(Checkpoint.step, Checkpoint.id)).all()
    ids = [r.id for r in siblings]
    i = ids.index(ck["id"])
    return {
        "checkpoint": {k: ck[k] for k in ("id", "run_id", "run_name", "eval_set_id", "step", "path",
                                           "name", "created_at", "metrics", "label", "suite")},
        "summary": s,
        "suites": suite_picker(ck, session=session),
        "previous_id": ids[i - 1] if i > 0 else None,
        "next_id": ids[i + 1] if i + 1 < len(ids) else None,
    }


# ---------------------------------------------------------------------------------------------
# Examples


def _labels_version(session) -> tuple[int, int]:
    n, top = session.execute(select(func.count(), func.max(Label.id))).one()
    return int(n or 0), int(top or 0)


def count_examples(f: ExampleFilter, ck: Mapping[str, Any], *, session, cache: Aggregates) -> int:
    """The rows of filter ``f`` (cursors ignored) on checkpoint ``ck`` (a ``_ck_dict``: its id,
    creation time and evaluation set), counted over the arrays ``cache`` keeps (``app.counting``):
    the checkpoint's vector, its set's arrays, and the set's masks for ``labelled`` (by the labels'
    version) and ``q``."""
    base = f.without_page()
    es = ck["eval_set_id"]
    vec = cache.vector(session, (ck["id"], ck["created_at"]))
    sa = cache.set_arrays(session, es)
    at = positions(vec, sa)
    if at is None:  # a prediction of an example outside the checkpoint's set: the store counts
        sql, params = count_sql(replace(base, ck=ck["id"]), session.get_bind().dialect.name)
        return int(session.execute(text(sql), params).scalar_one())
    labelled = term = None
    if base.labelled is not None:
        labelled = cache.mask(("labelled", es, _labels_version(session)), lambda: labelled_mask(session, sa, es))
    if base.q:
        term = cache.mask(("term", es, base.q), lambda: term_mask(session, sa, es, base.q))
    return vector_count(base, vec, sa, at, labelled=labelled, term=term)


def examples_data(f: ExampleFilter, *, session, cache: Aggregates) -> dict[str, Any]:
    if f.ck is None:
        raise BadRequest("ck: choose a checkpoint")
    ck = resolve_checkpoint(f.ck, f.suite or None, session=session)
    if f.suite or ck["id"] != f.ck:  # the suite's own row, named by its id from here on
        f = replace(f, ck=ck["id"], suite="")
    sort = SORTS[f.sort]
    sql, params, reverse = list_sql(f, session.get_bind().dialect.name, ck["eval_set_id"])
    rows = [dict(r._mapping) for r in session.execute(text(sql), params)]
    more = len(rows) > f.limit
    rows = rows[:f.limit]
    if reverse:
        rows.reverse()
    for r in rows:
        r["exact"], r["labelled"] = bool(r["exact"]), bool(r["labelled"])
        r["steps_to_go"] = r["steps_total"] - r["step_k"]
    # a page after a cursor always has a page before it, and vice versa
    has_next = more if not reverse else True
    has_prev = (f.after is not None) if not reverse else more
    cursors = {
        "next": encode_cursor(sort, sort_key_of(rows[-1], sort), rows[-1]["example_id"])
        if rows and has_next else None,
        "prev": encode_cursor(sort, sort_key_of(rows[0], sort), rows[0]["example_id"])
        if rows and has_prev else None,
    }
    total = count_examples(f, ck, session=session, cache=cache)
    all_rows = count_examples(ExampleFilter(ck=ck["id"]), ck, session=session, cache=cache)
    return {
        "checkpoint": {k: ck[k] for k in ("id", "label", "eval_set_id", "step", "run_id", "suite")},
        "filter": f.params(), "sort": f.sort, "kind_help": KIND_HELP, "error_kinds": ERROR_KINDS,
        "total": total, "checkpoint_total": all_rows,
        "rows": rows, "next": cursors["next"], "prev": cursors["prev"],
        "picker": picker(ck["eval_set_id"], ck["suite"]),
    }


# ---------------------------------------------------------------------------------------------
# Trace


@functools.lru_cache(maxsize=16384)
def _true_span(term: str) -> tuple[int, int] | None:
    """The normal-order redex of a term of a model's rollout (None: not a term). Kept: a
    rollout mostly follows its gold trace, so the same terms come back across checkpoints, and
    parsing them was a third of a trace page's queries' time."""
    try:
        return redex_span(parse(term))
    except (ParseError, RecursionError):
        return None


def trace_data(identity: str, *, session, ck_id: int | None = None, suite: str | None = None) -> dict[str, Any]:
    if ck_id is None and suite is not None:
        raise BadRequest("suite: give the checkpoint too (ck), whose suite row to show")
    # the page's six statements on the session's Core connection: its rows need no ORM objects
    conn = session.connection()
    ck = resolve_checkpoint(ck_id, suite, session=session, metrics=False) if ck_id is not None else None
    if ck is not None:
        es = ck["eval_set_id"]
    else:
        es = conn.execute(select(func.min(Example.eval_set_id))
                          .where(Example.trace_identity == identity)).scalar()
    # the trace's steps with the checkpoint's predictions (none without a checkpoint)
    ex_rows = conn.execute(TRACE_STEPS_SQL, {"ck": ck["id"] if ck else -1, "t": identity, "es": es}).all() \
        if es is not None else []
    if not ex_rows:
        where = f" in the evaluation set of checkpoint {ck['id']}" if ck else ""
        raise NotFound(f"no trace {identity}{where}")
    rollout = None
    if ck is not None:
        ro = conn.execute(ROLLOUT_SELECT, {"ck": ck["id"], "t": identity}).first()
        if ro is not None:
            # a rollout mostly follows its gold trace: a term of the trace has its gold span,
            # which the data's validation checked to be its normal-order redex
            gold = {r.term: (r.gold_start, r.gold_end) for r in ex_rows}
            path = []
            for k, item in enumerate(ro.path or []):
                try:
                    term, (s, e) = str(item[0]), item[1]
                    path.append({"k": k, "term": term, "span": [int(s), int(e)],
                                 "true_span": gold[term] if term in gold else _true_span(term)})
                except (TypeError, ValueError, IndexError):
                    path.append({"k": k, "term": repr(item), "span": [0, 0], "true_span": None})
            rollout = {"success": ro.success, "reached_normal_form": ro.reached_normal_form,
                       "steps": ro.steps, "gold_steps": ro.gold_steps,
                       "first_divergent_step": ro.first_divergent_step, "outcome": ro.outcome,
                       "path": path}
    steps = []
    for r in ex_rows:
        has = r.pred_start is not None
        steps.append({
            "example_id": r.id, "step_k": r.step_k, "term": r.term, "term_len": r.term_len,
            "gold": [r.gold_start, r.gold_end],
            "pred": [r.pred_start, r.pred_end] if has else None,
            "start_conf": r.start_conf, "end_conf": r.end_conf,
            "iou": r.iou, "exact": bool(r.exact) if has else None,
            "error_kind": r.error_kind if has else None,
        })
    # an evaluation set's traces are stored one after another (ensure_eval_set writes them in
    # one insert), so the neighbours are the rows just before and after this trace's
    neighbours = dict((side, (t, e)) for side, t, e in conn.execute(
        NEIGHBOURS_SQL, {"first": ex_rows[0].id, "last": ex_rows[-1].id}))
    prev_t, next_t = ((neighbours[i][0] if i in neighbours and neighbours[i][1] == es else None)
                      for i in (0, 1))
    labels = conn.execute(TRACE_LABELS_SELECT, {"t": identity}).all()
    return {
        "identity": identity, "trace_id": ex_rows[0].trace_id, "eval_set_id": es,
        "steps_total": ex_rows[0].steps_total,
        "checkpoint": None if ck is None else {k: ck[k] for k in ("id", "label", "run_id", "step", "suite")},
        "steps": steps, "rollout": rollout,
        "labels": [dict(lb._mapping) for lb in labels],
        "prev_trace": prev_t, "next_trace": next_t,
        "picker": picker(es, ck["suite"] if ck else None),
    }


TRACE_STEPS_SQL = text(
    "SELECT e.id, e.trace_id, e.step_k, e.steps_total, e.term, e.gold_start, e.gold_end, "
    "e.term_len, p.pred_start, p.pred_end, p.start_conf, p.end_conf, p.iou, p.exact, p.error_kind "
    "FROM examples e LEFT JOIN predictions p ON p.checkpoint_id = :ck AND p.example_id = e.id "
    "WHERE e.trace_identity = :t AND e.eval_set_id = :es ORDER BY e.step_k")
NEIGHBOURS_SQL = text(
    "SELECT * FROM (SELECT 0 AS side, trace_identity, eval_set_id FROM examples "
    "WHERE id < :first ORDER BY id DESC LIMIT 1) AS b UNION ALL "
    "SELECT * FROM (SELECT 1 AS side, trace_identity, eval_set_id FROM examples "
    "WHERE id > :last ORDER BY id LIMIT 1) AS a")
ROLLOUT_SELECT = select(Rollout.success, Rollout.reached_normal_form, Rollout.steps, Rollout.gold_steps,
                        Rollout.first_divergent_step, Rollout.outcome, Rollout.path).where(
    Rollout.checkpoint_id == bindparam("ck"), Rollout.trace_identity == bindparam("t"))
TRACE_LABELS_SELECT = select(Label.id, Label.step_k, Label.category, Label.note, Label.created_at).where(
    Label.trace_identity == bindparam("t")).order_by(Label.created_at, Label.id)


# ---------------------------------------------------------------------------------------------
# Label queue: the unlabelled wrong predictions of a checkpoint, in example order


QUEUE_SQL = ("FROM predictions p {join} examples e ON e.id = p.example_id "
             f"WHERE p.checkpoint_id = :ck AND p.exact = :f AND NOT {LABELLED_SQL}")


def queue_data(ck_id: int, *, session, after: int | None = None) -> dict[str, Any]:
    ck = get_checkpoint(ck_id, session=session)
    params = {"ck": ck["id"], "f": False, "after": after or 0}
    body = QUEUE_SQL.format(join=join_kw(session.get_bind().dialect.name))
    row = session.execute(text(
        f"SELECT e.id, e.trace_identity, e.step_k, p.error_kind {body} AND p.example_id > :after "
        "ORDER BY p.example_id LIMIT 1"), params).first()
    remaining = session.execute(text(f"SELECT count(*) {body}"), params).scalar_one()
    return {
        "checkpoint": {k: ck[k] for k in ("id", "label")}, "remaining": remaining,
        "next": None if row is None else {"example_id": row.id, "identity": row.trace_identity,
                                          "step_k": row.step_k, "error_kind": row.error_kind},
    }


# ---------------------------------------------------------------------------------------------
# Compare


COMPARE_CURSOR = Cursor(FLOAT_KEY)  # '<IoU change>,<example id>': the last row's
# made once: a text() with its bind parameters parsed costs more than the query it runs
COMPARE_EXAMPLES_SQL = text(
    "SELECT id, trace_identity, step_k, steps_total, term, gold_start, gold_end, term_len "
    "FROM examples WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
COMPARE_PREDICTIONS_SQL = text(
    "SELECT checkpoint_id, example_id, pred_start, pred_end, error_kind FROM predictions "
    "WHERE checkpoint_id IN (:a, :b) AND example_id IN :ids").bindparams(bindparam("ids", expanding=True))


def _one_kind(value: str | None, name: str) -> str | None:
    """One error kind (a transition matrix cell's row or column), or None for any."""
    kinds = parse_kinds(value, name)
    if len(kinds) > 1:
        raise BadRequest(f"{name}: one error kind, got {len(kinds)}")
    return kinds[0] if kinds else None


def compare_data(a_id: int, b_id: int, *, session, cache: Aggregates, kind: str | None = None,
                 order: str = "change", after: str | None = None, limit: int = 25,
                 kind_a: str | None = None, kind_b: str | None = None,
                 suite: str | None = None) -> dict[str, Any]:
    """The comparison of checkpoints A and B, and one page of the list ``kind`` (of change:
    ``COMPARE_KINDS``; by default the regressions, or every example when an error kind is
    asked for), only the examples of error kind ``kind_a`` at A and ``kind_b`` at B if given
    (a cell of the kind transition matrix)."""
    kind_a, kind_b = _one_kind(kind_a, "kind_a"), _one_kind(kind_b, "kind_b")
    if kind is None:
        kind = "all" if kind_a or kind_b else "regressions"
    if kind not in COMPARE_KINDS:
        raise BadRequest(f"kind: expected one of {', '.join(COMPARE_KINDS)}, got {kind!r}")
    if order not in ("change", "-change"):
        raise BadRequest(f"order: expected 'change' or '-change', got {order!r}")
    a = resolve_checkpoint(a_id, suite, session=session)  # with a suite: both on that suite
    b = resolve_checkpoint(b_id, suite, session=session)
    if a["eval_set_id"] != b["eval_set_id"]:
        raise BadRequest(f"checkpoints {a_id} and {b_id} were evaluated on different evaluation "
                         "sets; pick two of the same set")
    cursor = COMPARE_CURSOR.decode(
        after, malformed="after: expected '<IoU change>,<example id>', got {text}") if after else None
    cmp = cache.comparison(session, (a["id"], a["created_at"]), (b["id"], b["created_at"]))
    page, more = cmp.page(kind, order, cursor, limit, kind_a, kind_b)
    ids = [r[1] for r in page]
    examples = {}
    preds: dict[tuple[int, int], Any] = {}
    if ids:
        for r in session.execute(COMPARE_EXAMPLES_SQL, {"ids": ids}):
            examples[r.id] = r
        for r in session.execute(COMPARE_PREDICTIONS_SQL, {"ids": ids, "a": a["id"], "b": b["id"]}):
            preds[(r.checkpoint_id, r.example_id)] = r
    rows = []
    for delta, eid, ia, ib, ea, eb in page:
        e = examples.get(eid)
        pa, pb = preds.get((a["id"], eid)), preds.get((b["id"], eid))
        if e is None:
            continue
        rows.append({
            "example_id": eid, "identity": e.trace_identity, "step_k": e.step_k,
            "steps_total": e.steps_total, "term": e.term, "gold": [e.gold_start, e.gold_end],
            "a": {"pred": [pa.pred_start, pa.pred_end] if pa else None, "iou": ia, "exact": ea,
                  "error_kind": pa.error_kind if pa else None},
            "b": {"pred": [pb.pred_start, pb.pred_end] if pb else None, "iou": ib, "exact": eb,
                  "error_kind": pb.error_kind if pb else None},
            "change": ib - ia,
        })
    sa = summary(a, session=session, cache=cache)
    sb = summary(b, session=session, cache=cache)
    nxt = COMPARE_CURSOR.encode(page[-1][0], page[-1][1]) if page and more else None
    return {
        "suite": suite,
        "a": {k: a[k] for k in ("id", "label", "step", "suite")} | {"exact_rate": sa["exact_rate"],
                                                           "mean_iou": sa["mean_iou"]},
        "b": {k: b[k] for k in ("id", "label", "step", "suite")} | {"exact_rate": sb["exact_rate"],
                                                           "mean_iou": sb["mean_iou"]},
        "counts": cmp.counts(), "kind": kind, "order": order, "after": after,
        "kind_a": kind_a, "kind_b": kind_b, "listed": len(cmp.positions(kind, kind_a, kind_b)),
        # examples by error kind at A (rows) and at B (columns), both in ERROR_KINDS order
        "kind_transitions": {"kinds": list(ERROR_KINDS), "counts": cmp.transitions},
        "histograms": [{"lo": lo, "hi": hi, "a": ha["n"], "b": hb["n"]}
                       for (lo, hi), ha, hb in zip(iou_bins(), sa["iou_histogram"], sb["iou_histogram"])],
        "rows": rows, "next": nxt,
        "picker": picker(a["eval_set_id"], a["suite"]),
    }


def default_compare_pair(*, session) -> tuple[int, int] | None:
    """The latest checkpoint and the one before it in its run."""
    b = session.execute(select(Checkpoint.id, Checkpoint.run_id, Checkpoint.step).where(MAIN)
                        .order_by(Checkpoint.id.desc()).limit(1)).first()
    if b is None:
        return None
    a = session.scalar(select(Checkpoint.id).where(
        Checkpoint.run_id == b.run_id, Checkpoint.eval_set_id == select(Checkpoint.eval_set_id)
        .where(Checkpoint.id == b.id).scalar_subquery(), Checkpoint.id != b.id, MAIN)
        .order_by(Checkpoint.step.desc(), Checkpoint.id.desc()).limit(1))
    return (a, b.id) if a is not None else None


# ---------------------------------------------------------------------------------------------
# Labels


LABELS_PAGE = 100  # labels a page lists unless ?limit= says otherwise
MAX_LABELS_PAGE = 500


LABELS_CURSOR = Cursor(TIME_KEY, first_id=1)  # '<created_at>,<label id>': the Older link's


def labels_data(*, session, category: str | None = None, after: str | None = None,
                limit: int = LABELS_PAGE) -> dict[str, Any]:
    """The labels, newest first (by the time they were made, then id), a page at a time:
    ``after`` is the cursor of the last label of the page before."""
    q = select(Label.id, Label.trace_identity, Label.step_k, Label.category, Label.note, Label.term,
               Label.created_at)
    if category:
        q = q.where(Label.category == category)
    if after:
        when, label_id = LABELS_CURSOR.decode(
            after, malformed="after: expected '<time>,<label id>' from an Older link, got {text}")
        q = q.where(or_(Label.created_at < when, and_(Label.created_at == when, Label.id < label_id)))
    rows = session.execute(q.order_by(Label.created_at.desc(), Label.id.desc()).limit(limit + 1)).all()
    more, rows = len(rows) > limit, rows[:limit]
    counts = dict(session.execute(select(Label.category, func.count()).group_by(Label.category)).all())
    last = rows[-1] if rows and more else None
    return {"labels": [dict(r._mapping) for r in rows], "counts": counts, "category": category,
            "total": sum(counts.values()), "after": after, "limit": limit,
            "next": LABELS_CURSOR.encode(last.created_at, last.id) if last is not None else None}


# ---------------------------------------------------------------------------------------------
# Generalisation: a checkpoint's suites by term length and trace length, against the training data


NO_TRAIN_SHAPE = ("this run did not record the shape of its training data (run.validation.train_shape), "
                  "so the training histogram and where extrapolation begins are not shown")


def _train_histogram(shape: Any) -> dict[str, Any] | None:
    """One histogram of ``run.validation["train_shape"]`` ({width, counts, max}) checked, or None."""
    if not isinstance(shape, dict):
        return None
    width, counts, top = shape.get("width"), shape.get("counts"), shape.get("max")
    if not (isinstance(width, int) and not isinstance(width, bool) and width >= 1 and isinstance(counts, list)
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)):
        return None
    top = top if isinstance(top, int) and not isinstance(top, bool) and top >= 0 else None
    return {"width": width, "max": top,
            "bins": [{"lo": i * width, "hi": i * width + width - 1, "n": c} for i, c in enumerate(counts)]}


def _bucketed(counts: Mapping[int, tuple[int, int]], width: int) -> list[dict[str, Any]]:
    buckets: dict[int, list[int]] = {}
    for value, (n, hits) in counts.items():
        b = buckets.setdefault(value // width, [0, 0])
        b[0] += n
        b[1] += hits
    return [{"lo": i * width, "hi": i * width + width - 1, "n": n, "hits": hits, "rate": hits / n if n else None}
            for i, (n, hits) in sorted(buckets.items())]


GENERALISATION_PANELS = (  # name, title, counts key, training histogram, x axis, what a hit is
    ("exact_by_length", "exact match by term length", "length", "length", "term length (code points)", "exact"),
    ("exact_by_steps", "exact match by trace length", "steps", "steps", "trace length (steps to normal form)",
     "exact"),
    ("rollout_by_steps", "rollout success by trace length", "rollout_steps", "steps",
     "trace length (steps to normal form)", "success"),
)


def generalisation_data(ck_id: int, *, session, cache: Aggregates, suite: str | None = None) -> dict[str, Any]:
    """The generalisation chart of a checkpoint: for every evaluation of its step (the run's own
    set and each suite, one series each), exact match by term length (bucketed) and by trace
    length (``steps_total``), and rollout success by trace length, each bucket's counts from
    grouped queries over the predictions (``cache.Aggregates.generalisation_counts``); under
    each, the training data's histogram of the same (``run.validation["train_shape"]``) and
    ``unseen_from``, the first value longer than any in training, where the chart shades."""
    ck = resolve_checkpoint(ck_id, suite, session=session)
    rows = suite_rows(ck, session=session)
    names = sorted(rows, key=lambda n: (n is not None, n or ""))
    cks = {n: get_checkpoint(rows[n], session=session) for n in names}
    counts = {n: cache.generalisation_counts(session, c["id"], c["created_at"]) for n, c in cks.items()}
    validation = session.scalar(select(Run.validation).where(Run.id == ck["run_id"]))
    shape = validation.get("train_shape") if isinstance(validation, dict) else None
    train = {k: _train_histogram(shape.get(k)) for k in ("length", "steps")} if isinstance(shape, dict) else {}
    panels = []
    for name, title, key, train_key, axis, hit in GENERALISATION_PANELS:
        hist = train.get(train_key)
        if hist is not None:
            width = hist["width"]
        elif key == "length":
            width = length_bucket_width(max((v for c in counts.values() for v in c["length"]), default=0))
        else:
            width = 1
        top = hist["max"] if hist else None
        panels.append({
            "name": name, "title": title, "axis": axis, "hit": hit, "width": width,
            "train": hist["bins"] if hist else None, "train_max": top,
            "unseen_from": top + 1 if top is not None else None,
            "series": [{"suite": n, "title": n or "main set", "checkpoint_id": cks[n]["id"], "colour": i,
                        "buckets": _bucketed(counts[n][key], width)} for i, n in enumerate(names)],
        })
    return {
        "checkpoint": {k: ck[k] for k in ("id", "label", "run_id", "step", "suite")},
        "train_shape": bool(train) and any(v is not None for v in train.values()),
        "note": None if any(v is not None for v in train.values()) else NO_TRAIN_SHAPE,
        "panels": panels,
    }
