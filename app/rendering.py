"""Jinja2 rendering: a whole page, or one of its named blocks for an htmx request.

A fragment is a block of the page's own template (``{% block results %}``) whose name is the id
of the element htmx swaps (``hx-target="#results"``). A request with ``HX-Request`` and an
``HX-Target`` naming a block of the template gets just that block, rendered from the same
context; any other request gets the page. Macros are globals (``m.term(…)``) because a block
rendered alone does not see the template's top-level imports.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote_plus

import jinja2
from markupsafe import Markup
from fastapi import Request
from fastapi.responses import HTMLResponse

from lambdascope.spans import highlight, is_normal_form
from lambdascope.vocabulary import ERROR_KIND_TITLES, ERROR_KINDS, ROLLOUT_OUTCOME_TITLES, ROLLOUT_OUTCOMES

from . import charts
from .comparison import COMPARE_KINDS
from .labels import CATEGORY_TITLES
from .pickers import FILLED_HEADER, marker

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def fmt_num(x: Any, digits: int = 3) -> str:
    if isinstance(x, jinja2.Undefined):
        x = None
    if x is None or isinstance(x, str):
        return "–" if x is None else x
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if not math.isfinite(x):
        return str(x)
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.1f}"
    if a == 0:
        return "0"
    if a < 10 ** -digits:
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def fmt_fixed(x: Any, digits: int = 2) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}f}"


def fmt_pct(x: Any) -> str:
    if isinstance(x, bool) or x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "–"
    return f"{x * 100:.1f}%"


def fmt_when(x: Any) -> str:
    if isinstance(x, dt.datetime):
        return x.strftime("%Y-%m-%d %H:%M:%S")
    return "–" if x is None else str(x)


def fmt_duration(seconds: Any) -> str:
    """A number of seconds as '45 s', '14 min', '3 h 5 min', '2 d 4 h'."""
    if not isinstance(seconds, (int, float)):
        return "–"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def span_label(span: Any) -> str:
    """'[s, e)', 'NF' for normal form, '–' for no span."""
    if span is None or isinstance(span, jinja2.Undefined):
        return "–"
    if is_normal_form(span):
        return "NF"
    return f"[{span[0]}, {span[1]})"


_PLAIN = re.compile(r"[A-Za-z0-9._~,-]*")  # needs no percent-encoding in a query string


def _quote(value: Any) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) else quote_plus(text, safe=",")


def html_text(value: Any) -> str:
    """``value`` as HTML text: markupsafe's escape (``& < > " '``, the same entities) as a plain
    string, for the markup built in Python below, where making a Markup object of every piece
    was a measurable part of a page."""
    return (str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


def term_html(term: str, gold: Any, pred: Any = None, pred_name: str = "pred") -> Markup:
    """``<code class="term">`` with one ``<span class="hl hl-…">`` per piece of ``term`` cut by
    ``lambdascope.spans.highlight`` (the one highlighting function), each titled with its
    character offsets; then a badge for a normal-form (empty) span. Every text is escaped. The
    pieces' text, joined, is ``term``; those tagged gold (pred) are ``term[start:end]``.
    Written in Python rather than as a macro: an examples page draws 50 of these, a compare
    page 50, and the macro was most of their rendering time."""
    g, p = span_label(gold), span_label(pred)
    name = html_text(pred_name)
    gold_note, pred_note = f" · gold {g}", f" · {name} {p}"
    out = ['<code class="term">']
    for piece in highlight(term, gold, pred):
        text, start = piece.text, piece.start
        out.append(f'<span class="hl hl-{piece.css_class}" title="chars {start}–{start + len(text)}'
                   f'{gold_note if piece.gold else ""}{pred_note if piece.pred else ""}">'
                   f'{html_text(text)}</span>')
    out.append("</code>")
    if g == "NF" and p == "NF":
        out.append(f' <span class="badge nf nf-both" title="gold and {name}: normal form">NF ✓</span>')
    else:
        if g == "NF":
            out.append(' <span class="badge nf nf-gold" title="gold: normal form (no redex)">NF</span>')
        if p == "NF":
            out.append(f' <span class="badge nf nf-pred" title="{name}: normal form">{name} NF</span>')
    return Markup("".join(out))


def ok_html(flag: Any) -> Markup:
    """✓ for an exact match, ✗ for a wrong one, – for no prediction."""
    if flag is None or isinstance(flag, jinja2.Undefined):
        return Markup('<span class="muted">–</span>')
    if flag:
        return Markup('<span class="ok" title="exact match">✓</span>')
    return Markup('<span class="bad" title="wrong">✗</span>')


def kind_badge_text(kind: Any) -> str:
    """A wrong prediction's error kind as a badge titled with its one-line explanation
    (``vocabulary.ERROR_KINDS``); nothing for an exact one or none."""
    if kind not in ERROR_KINDS or kind == "exact":
        return ""
    return (f'<span class="badge kind kind-{kind}" data-kind="{kind}" title="{html_text(ERROR_KINDS[kind])}">'
            f'{html_text(ERROR_KIND_TITLES[kind])}</span>')


def kind_badge(kind: Any) -> Markup:
    return Markup(kind_badge_text(kind))


def outcome_badge(outcome: Any) -> Markup:
    """A rollout's outcome (``vocabulary.ROLLOUT_OUTCOMES``) as a badge: its title, and its
    explanation on hover and after it."""
    if outcome not in ROLLOUT_OUTCOMES:
        return Markup("")
    good = "ok" if outcome == "success" else "bad"
    return Markup(f'<span class="badge outcome outcome-{outcome} {good}-outcome" data-outcome="{outcome}" '
                  f'title="{html_text(ROLLOUT_OUTCOMES[outcome])}">{html_text(ROLLOUT_OUTCOME_TITLES[outcome])}</span>')


# The rows of the two long lists (50 examples, 25 comparisons a page) are written here rather
# than in their templates: as Jinja markup a row cost about 40 µs, most of an examples page's
# rendering time. Ints go through int(), every other value through html_text().


def kind_badge_prefixed(kind: Any) -> str:
    badge = kind_badge_text(kind)
    return f" {badge}" if badge else ""


def example_rows(rows: list[dict[str, Any]], ck_id: int) -> Markup:
    """The ``<tr>``s of the examples table (examples.html)."""
    out = []
    ck = int(ck_id)
    for r in rows:
        ident = html_text(r["trace_identity"])
        href = f"/traces/{ident}?ck={ck}&amp;step={int(r['step_k'])}"
        gold, pred = (r["gold_start"], r["gold_end"]), (r["pred_start"], r["pred_end"])
        badge = ' <span class="badge label-badge" title="labelled">label</span>' if r["labelled"] else ""
        out.append(
            f'    <tr data-nav-item data-href="{href}" data-example="{int(r["example_id"])}" '
            f'class="{"right" if r["exact"] else "wrong"}">\n'
            f'      <td class="nowrap"><a href="{href}" class="mono" title="trace {html_text(r["trace_id"])} '
            f'({ident})">{html_text(r["trace_identity"][:8])}</a> · {int(r["step_k"])}/'
            f'{int(r["steps_total"])}{badge}</td>\n'
            f'      <td class="term-cell">{term_html(r["term"], gold, pred)}</td>\n'
            f'      <td class="num mono nowrap">{html_text(span_label(gold))}</td>\n'
            f'      <td class="num mono nowrap">{html_text(span_label(pred))}</td>\n'
            f'      <td class="num iou">{html_text(fmt_fixed(r["iou"]))}</td>\n'
            f'      <td>{ok_html(bool(r["exact"]))}{kind_badge_prefixed(r.get("error_kind"))}</td>\n'
            f'      <td class="num">{html_text(fmt_fixed(r["start_conf"] * r["end_conf"]))}</td>\n'
            f'      <td class="num">{int(r["term_len"])}</td>\n'
            f'      <td class="num">{int(r["steps_to_go"])}</td>\n'
            f'    </tr>\n')
    return Markup("".join(out))


def compare_rows(rows: list[dict[str, Any]], b_id: int) -> Markup:
    """The ``<tr>``s of the comparison list (compare.html): the example under A and under B."""
    out = []
    for r in rows:
        href = html_text(url(f"/traces/{r['identity']}", ck=int(b_id), step=int(r["step_k"])))
        a, b, change = r["a"], r["b"], r["change"]
        out.append(
            f'  <tr data-nav-item data-href="{href}" data-example="{int(r["example_id"])}">\n'
            f'    <td class="nowrap"><a class="mono" href="{href}">{html_text(r["identity"][:8])}</a> · '
            f'{int(r["step_k"])}/{int(r["steps_total"])}</td>\n'
            f'    <td class="term-cell">{term_html(r["term"], r["gold"], a["pred"], "A")} '
            f'{ok_html(a["exact"])}{kind_badge_prefixed(a.get("error_kind"))}</td>\n'
            f'    <td class="term-cell">{term_html(r["term"], r["gold"], b["pred"], "B")} '
            f'{ok_html(b["exact"])}{kind_badge_prefixed(b.get("error_kind"))}</td>\n'
            f'    <td class="num nowrap">{html_text(fmt_fixed(a["iou"]))} → {html_text(fmt_fixed(b["iou"]))}</td>\n'
            f'    <td class="num nowrap {"bad" if change < 0 else "ok"}">{"+" if change > 0 else ""}'
            f'{html_text(fmt_fixed(change))}</td>\n'
            f'  </tr>\n')
    return Markup("".join(out))


def checkpoint_rows(checkpoints: list[Mapping[str, Any]]) -> Markup:
    """The ``<tr>``s of a run's checkpoint table (run.html), newest first: ``checkpoints`` in
    step order (``queries.run_data``), each row linking to its examples, label queue and the
    comparison with the one before it. A run of 100 checkpoints has 100 rows, and as markup
    they were most of its page's rendering. Ids, steps and percentages need no escaping."""
    out = []
    previous = [None] + list(checkpoints[:-1])
    for ck, before in zip(reversed(checkpoints), reversed(previous)):
        i = int(ck["id"])
        mt = ck["metrics"] or {}
        name = f' {html_text(ck["name"])}' if ck.get("name") else ""
        vs = f' · <a href="/compare?a={int(before["id"])}&amp;b={i}">vs previous</a>' if before is not None else ""
        out.append(
            f'    <tr data-nav-item data-href="/checkpoints/{i}">\n'
            f'      <td><a href="/checkpoints/{i}">#{i}{name}</a></td>\n'
            f'      <td class="num">{fmt_num(int(ck["step"]))}</td>\n'
            f'      <td class="nowrap">{html_text(fmt_when(ck["created_at"]))}</td>\n'
            f'      <td class="num">{fmt_pct(mt["exact"] if "exact" in mt else mt.get("exact_match"))}</td>\n'
            f'      <td class="num">{html_text(fmt_num(mt.get("mean_iou")))}</td>\n'
            f'      <td class="num">{html_text(fmt_num(mt.get("nf_f1")))}</td>\n'
            f'      <td class="num">{fmt_pct(mt.get("rollout_success"))}</td>\n'
            f'      <td class="nowrap"><a href="/examples?ck={i}&amp;correct=wrong">wrong</a> · '
            f'<a href="/queue?ck={i}">label queue</a>{vs}</td>\n'
            f'    </tr>\n')
    return Markup("".join(out))


def checkpoint_options(checkpoints: list[Mapping[str, Any]], selected: Any = None) -> Markup:
    """The ``<option>``s of a checkpoint picker (``queries.checkpoints_of_eval_set`` or
    ``all_checkpoints``), ``selected`` (an id, or None) marked: a store of 100 checkpoints has
    100 in every picker."""
    out = []
    for c in checkpoints:
        ck = int(c["id"])
        mark = " selected" if selected is not None and ck == selected else ""
        out.append(f'<option value="{ck}"{mark}>#{ck} {html_text(c["label"])}</option>')
    return Markup("".join(out))


def checkpoint_picker(picker: Mapping[str, Any], selected: Any = None) -> Markup:
    """The ``<option>``s of a page's checkpoint picker (``queries.picker``: an evaluation set and
    a suite), ``selected`` marked, as a marker that the page cache fills in each time it serves
    the page (``app.pickers``): the route renders with ``pickers=True``."""
    return marker(picker["eval_set_id"], picker["suite"], int(selected) if selected is not None else None)


def trace_rows(steps: list[dict[str, Any]], rollout: Mapping[str, Any] | None,
               ck: Mapping[str, Any] | None, focus_step: Any = None) -> Markup:
    """The ``<tr>``s of the trace table (trace.html): step k of the gold trace with the
    checkpoint's prediction, and step k of the model's own rollout beside it. A trace page is
    drawn for nearly every address once (the page cache rarely sees one twice), and as markup
    these rows were most of its time."""
    path = rollout["path"] if rollout else []
    div = rollout["first_divergent_step"] if rollout else None
    out = []
    for k in range(max(len(steps), len(path))):
        s = steps[k] if k < len(steps) else None
        r = path[k] if k < len(path) else None
        cls = "step"
        if div is not None and k == div:
            cls += " diverged"
        elif div is not None and k > div:
            cls += " after-divergence"
        if focus_step is not None and focus_step == k:
            cls += " is-current"
        nav = f' data-nav-item data-step="{k}"' if s else ""
        out.append(f'    <tr id="step-{k}" class="{cls}"{nav}>\n      <td class="num k">{k}</td>\n'
                   f'      <td class="term-cell">\n')
        if s:
            pred = s["pred"]
            spans = f"gold {html_text(span_label(s['gold']))}"
            if pred is not None:
                spans += (f" · pred {html_text(span_label(pred))} · conf {html_text(fmt_fixed(s['start_conf']))}"
                          f"/{html_text(fmt_fixed(s['end_conf']))}")
            if s["term_len"]:
                spans += f" · {int(s['term_len'])} chars"
            out.append(f'          {term_html(s["term"], s["gold"], pred)}\n'
                       f'          <div class="spans small muted">{spans}</div>\n')
            kind = s["error_kind"]
            if kind and kind != "exact":
                shrink = html_text(url("/shrink", ck=ck["id"], term=s["term"]))
                out.append(
                    f'          <div class="why small">{kind_badge_text(kind)} <span class="muted">'
                    f'{html_text(ERROR_KINDS.get(kind, ""))}</span></div>\n'
                    f'          <div class="shrink-row small"><button type="button" class="link-button '
                    f'shrink-button" hx-get="{shrink}" hx-target="next .shrink-panel" hx-swap="innerHTML" '
                    f'title="search for a smaller term the model still gets wrong this way">shrink</button>'
                    f'<div class="shrink-panel" data-model-panel></div></div>\n')
        else:
            out.append('          <span class="muted">(the gold trace ended)</span>\n')
        iou = f"{html_text(fmt_fixed(s['iou']))} {ok_html(s['exact'])}" if s and s["iou"] is not None else ""
        out.append(f'      </td>\n      <td class="num iou">{iou}</td>\n')
        if rollout:
            out.append('      <td class="term-cell rollout-cell">\n')
            if r:
                badge = ('<span class="badge diverge-badge" title="the first step where the model\'s span '
                         'differs from the gold one">first divergence</span> ') if div is not None and k == div else ""
                true = r["true_span"]
                note = f" · true redex {html_text(span_label(true))}" if true is not None else ""
                out.append(f'          {badge}{term_html(r["term"], true, r["span"], "model")}\n'
                           f'          <div class="spans small muted">model {html_text(span_label(r["span"]))}'
                           f'{note}</div>\n')
            elif k == len(path):
                why = ""
                if not rollout["success"]:
                    why = (" (a wrong normal form)" if rollout["reached_normal_form"]
                           else " (it did not reach the normal form)")
                badge = f" {outcome_badge(rollout['outcome'])}" if rollout["outcome"] else ""
                out.append(f'          <span class="muted small rollout-end">the model\'s rollout ends here'
                           f'{html_text(why)}</span>{badge}\n')
            else:
                out.append('          <span class="muted">–</span>\n')
            out.append('      </td>\n')
        out.append('    </tr>\n')
    return Markup("".join(out))


def url(path: str, params: Mapping[str, Any] | None = None, **more: Any) -> str:
    """``path`` with the non-empty parameters as a query string (as ``urlencode`` writes it,
    without its cost for the plain numbers most links carry). A list or tuple value is the
    parameter repeated, once per item (``kind=a&kind=b``), as an HTML form sends several."""
    merged = dict(params) if params else {}
    merged.update(more)
    parts = []
    for k, v in merged.items():
        if v is None or v == "":
            continue
        if isinstance(v, (list, tuple)):
            parts += [f"{_quote(k)}={_quote(x)}" for x in v if x is not None and x != ""]
        else:
            parts.append(f"{_quote(k)}={_quote(v)}")
    query = "&".join(parts)
    return f"{path}?{query}" if query else path


def json_twin(request: Request) -> str:
    """The JSON twin of the page being rendered: its path plus .json, the same query."""
    path = request.url.path
    path = "/runs.json" if path == "/" else path.rstrip("/") + ".json"
    return f"{path}?{request.url.query}" if request.url.query else path


class _Environment(jinja2.Environment):
    """``x.key`` on a plain dict looks the key up first (the data functions return dicts);
    Jinja's default tries an attribute first and pays for the AttributeError every time."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        try:  # as jinja2.Environment.getattr does, without a second call
            return getattr(obj, attribute)
        except AttributeError:
            pass
        try:
            return obj[attribute]
        except (TypeError, LookupError, AttributeError):
            return self.undefined(obj=obj, name=attribute)


class Renderer:
    def __init__(self, directory: Path = TEMPLATES):
        self.env = _Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            autoescape=True, trim_blocks=True, lstrip_blocks=True, auto_reload=False,
            undefined=jinja2.Undefined)
        self.env.filters.update(num=fmt_num, pct=fmt_pct, when=fmt_when, fixed=fmt_fixed,
                                duration=fmt_duration)
        self.env.globals.update(
            highlight=highlight, is_normal_form=is_normal_form, span_label=span_label,
            term_html=term_html, ok_html=ok_html, example_rows=example_rows,
            compare_rows=compare_rows, trace_rows=trace_rows, checkpoint_rows=checkpoint_rows, checkpoint_options=checkpoint_options, checkpoint_picker=checkpoint_picker, url=url, charts=charts,
            category_titles=CATEGORY_TITLES, compare_kinds=COMPARE_KINDS,
            kind_badge=kind_badge, outcome_badge=outcome_badge, error_kinds=ERROR_KINDS,
            error_kind_titles=ERROR_KIND_TITLES, rollout_outcomes=ROLLOUT_OUTCOMES,
            rollout_outcome_titles=ROLLOUT_OUTCOME_TITLES)
        self.env.globals["m"] = self.env.get_template("_macros.html").module
        self.env.globals.update(line_chart=self.line_chart, kind_chart=self.kind_chart)
        self._charts: "OrderedDict[tuple, Markup]" = OrderedDict()
        self._charts_lock = threading.Lock()

    CHARTS_KEPT = 512

    def _kept(self, key: tuple, draw) -> Markup:
        """A drawn chart by its data: a run's charts change only when a curve gets a point or
        a checkpoint comes, and drawing them (ticks, a titled dot or segment per value, every
        attribute escaped) was most of a run page's rendering."""
        with self._charts_lock:
            html = self._charts.get(key)
            if html is not None:
                self._charts.move_to_end(key)
                return html
        html = Markup(draw())
        with self._charts_lock:
            self._charts[key] = html
            while len(self._charts) > self.CHARTS_KEPT:
                self._charts.popitem(last=False)
        return html

    def line_chart(self, curve: Mapping[str, Any]) -> Markup:
        """``m.line_chart(curve)``, kept by its title and points."""
        key = ("line", curve["title"], tuple(tuple(p) for p in curve["points"]))
        return self._kept(key, lambda: self.env.globals["m"].line_chart(curve))

    def kind_chart(self, rows: list[Mapping[str, Any]]) -> Markup:
        """``m.kind_chart(rows)`` (the run page's error kinds per checkpoint), kept by its rows."""
        key = ("kinds",) + tuple((r["id"], r["step"], tuple(r["counts"].items())) for r in rows)
        return self._kept(key, lambda: self.env.globals["m"].kind_chart(rows))

    def load_all(self) -> None:
        """Compile every template now rather than on its first request."""
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)

    def render(self, request: Request, name: str, context: Mapping[str, Any], *,
               status_code: int = 200, headers: Mapping[str, str] | None = None,
               pickers: bool = False) -> HTMLResponse:
        template = self.env.get_template(name)
        settings = request.app.state.settings
        ctx = {"request": request, "csrf_token": settings.csrf_token,
               "json_href": json_twin(request), "path": request.url.path, **context}
        target = request.headers.get("hx-target")
        if (request.headers.get("hx-request") == "true" and target in template.blocks
                and not request.headers.get("hx-history-restore-request")):
            body = "".join(template.blocks[target](template.new_context(ctx)))
        else:
            body = template.render(ctx)
        response = HTMLResponse(body, status_code=status_code, headers=dict(headers or {}))
        response.headers["Vary"] = "HX-Request, HX-Target"
        if pickers:  # the page shows the store's checkpoints in picker markers only (app.pickers)
            response.headers[FILLED_HEADER.decode()] = "1"
        return response
