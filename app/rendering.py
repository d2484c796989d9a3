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
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote_plus

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from lambdascope.spans import highlight, is_normal_form

from . import charts
from .aggregates import COMPARE_KINDS
from .labels import CATEGORY_TITLES

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


def term_pieces(term: str, gold: Any, pred: Any, pred_name: str = "pred") -> list[tuple[str, str, str]]:
    """(css class, hover title with the character offsets, text) for each piece of ``term``
    cut by ``lambdascope.spans.highlight`` (the one highlighting function). The template
    writes each of the three out, escaped."""
    g, p = span_label(gold), span_label(pred)
    out = []
    for piece in highlight(term, gold, pred):
        title = f"chars {piece.start}–{piece.start + len(piece.text)}"
        if piece.gold:
            title += f" · gold {g}"
        if piece.pred:
            title += f" · {pred_name} {p}"
        out.append((piece.css_class, title, piece.text))
    return out


def url(path: str, params: Mapping[str, Any] | None = None, **more: Any) -> str:
    """``path`` with the non-empty parameters as a query string (as ``urlencode`` writes it,
    without its cost for the plain numbers most links carry)."""
    merged = dict(params) if params else {}
    merged.update(more)
    query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in merged.items()
                     if v is not None and v != "")
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
        self.env.filters.update(num=fmt_num, pct=fmt_pct, when=fmt_when, fixed=fmt_fixed)
        self.env.globals.update(
            highlight=highlight, is_normal_form=is_normal_form, span_label=span_label,
            term_pieces=term_pieces, url=url, charts=charts,
            category_titles=CATEGORY_TITLES, compare_kinds=COMPARE_KINDS)
        self.env.globals["m"] = self.env.get_template("_macros.html").module

    def render(self, request: Request, name: str, context: Mapping[str, Any], *,
               status_code: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
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
        return response
