"""Escaping, cross-site request refusal, the access token, the Host check, the security
headers, and `lambdascope serve` refusing to expose itself without a token."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.app_store import XSS, make_client

ATTR = '" autofocus onfocus="alert(1)" x="'
PAYLOADS = [XSS, ATTR, "</textarea><script>alert(2)</script>", "' onmouseover='alert(3)"]


def post_label(c, identity, note, step="", category="model_error", **headers):
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', c.get(f"/traces/{identity}").text).group(1)
    return c.post("/labels", data={"csrf": token, "identity": identity, "step": step,
                                   "category": category, "note": note},
                  headers=headers, follow_redirects=False)


def assert_no_raw_payload(html: str) -> None:
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert 'onfocus="alert' not in html and "onmouseover='alert" not in html
    assert "</textarea><script>" not in html


def test_label_notes_are_escaped_everywhere(fresh_client, fresh):
    ident = fresh.traces[0].identity
    for note in PAYLOADS:
        r = post_label(fresh_client, ident, note)
        assert r.status_code == 303, r.text
    for page in (f"/traces/{ident}", f"/traces/{ident}?ck={fresh.ck1}", "/labels",
                 f"/examples?ck={fresh.ck1}&labelled=1"):
        html = fresh_client.get(page).text
        assert_no_raw_payload(html)
    html = fresh_client.get(f"/traces/{ident}").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html  # shown as text
    assert "&#34; autofocus onfocus=&#34;alert(1)&#34;" in html
    notes = [lb["note"] for lb in fresh_client.get("/labels.json").json()["labels"]]
    assert sorted(notes) == sorted(PAYLOADS)  # stored as typed


@pytest.mark.parametrize("payload", PAYLOADS)
def test_filter_text_is_escaped(client, seeded, payload):
    r = client.get("/examples", params={"ck": seeded.ck1, "q": payload})
    assert r.status_code == 200
    assert_no_raw_payload(r.text)
    assert "no example matches" in r.text.lower()
    r = client.get("/playground", params={"term": payload})
    assert r.status_code == 200
    assert_no_raw_payload(r.text)


def test_store_text_is_escaped(client, seeded):
    """Run names, configs and problem details come from files a person may not control."""
    for page in ("/", f"/runs/{seeded.run_a}", f"/runs/{seeded.run_b}"):
        html = client.get(page).text
        assert_no_raw_payload(html)
        assert "<b>live</b>" not in html
    assert "&lt;b&gt;live&lt;/b&gt;" in client.get("/").text


def test_error_messages_are_escaped(client):
    r = client.get("/traces/%3Cscript%3E")
    assert r.status_code == 400 and "<script>" not in r.text
    r = client.get("/examples", params={"ck": "<script>alert(1)</script>"})
    assert r.status_code == 400 and "<script>alert" not in r.text


# ---------------------------------------------------------------------------------------------
# writes: POST only, same origin, with the form token


def test_cross_site_posts_are_refused(fresh_client, fresh):
    ident = fresh.traces[0].identity
    ok = {"identity": ident, "category": "bad_gold", "note": "n", "step": ""}
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', fresh_client.get(f"/traces/{ident}").text).group(1)
    cases = [
        ({}, {}),  # no token
        ({"csrf": "0" * 64}, {}),  # a wrong token
        ({"csrf": token}, {"Origin": "http://evil.example"}),
        ({"csrf": token}, {"Origin": "null"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "same-site"}),
    ]
    for extra, headers in cases:
        r = fresh_client.post("/labels", data={**ok, **extra}, headers=headers, follow_redirects=False)
        assert r.status_code == 403, (extra, headers, r.status_code)
    assert fresh_client.get("/labels.json").json()["total"] == 0
    # the same form from this server's own page is accepted
    r = fresh_client.post("/labels", data={**ok, "csrf": token},
                          headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
                          follow_redirects=False)
    assert r.status_code == 303
    assert fresh_client.get("/labels.json").json()["total"] == 1
    # deleting is a write too
    label_id = fresh_client.get("/labels.json").json()["labels"][0]["id"]
    assert fresh_client.post(f"/labels/{label_id}/delete", data={}).status_code == 403
    assert fresh_client.get(f"/labels/{label_id}/delete").status_code in (404, 405)
    assert fresh_client.post(f"/labels/{label_id}/delete", data={"csrf": token}).status_code in (200, 303)
    assert fresh_client.get("/labels.json").json()["total"] == 0


def test_label_writes_are_not_reachable_by_get(client, seeded):
    r = client.get("/labels", params={"identity": seeded.traces[0].identity, "category": "other"})
    assert r.status_code == 200 and client.get("/labels.json").json()["total"] == 0


def test_no_open_redirect_after_labelling(fresh_client, fresh):
    ident = fresh.traces[0].identity
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', fresh_client.get(f"/traces/{ident}").text).group(1)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = fresh_client.post("/labels", data={"csrf": token, "identity": ident, "category": "other",
                                               "next": target}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/traces/{ident}"


# ---------------------------------------------------------------------------------------------
# exposure


def test_security_headers(client):
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/runs.json").headers["x-frame-options"] == "DENY"


def test_token_is_required_on_every_request(seeded):
    c = make_client(seeded.url, token="s3cret-token-123")
    for path in ("/", "/runs.json", "/static/app.css", "/static/vendor/htmx.min.js", "/labels/export.csv"):
        r = c.get(path)
        assert r.status_code == 401, path
    assert c.get("/", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert c.get("/", headers={"Authorization": "Bearer s3cret-token-123"}).status_code == 200
    r = c.get(f"/checkpoints/{seeded.ck1}?token=s3cret-token-123", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/checkpoints/{seeded.ck1}"
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    assert c.get(f"/checkpoints/{seeded.ck1}").status_code == 200  # the cookie now carries it


def test_host_check_without_token(seeded):
    c = make_client(seeded.url, allowed_hosts=("127.0.0.1", "localhost"))
    assert c.get("/", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert c.get("/", headers={"Host": "localhost:8000"}).status_code == 200
    assert c.get("/", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding


def test_serve_refuses_a_public_host_without_a_token(monkeypatch, capsys):
    from app.settings import SettingsError, serve_settings
    from lambdascope.cli import main

    monkeypatch.delenv("LAMBDASCOPE_TOKEN", raising=False)
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(SettingsError, match="token"):
            serve_settings("x.db", host, None)
    assert main(["serve", "--db", "x.db", "--host", "0.0.0.0"]) == 2
    assert "token" in capsys.readouterr().err
    s = serve_settings("x.db", "0.0.0.0", "a-long-enough-token")
    assert s.token == "a-long-enough-token" and s.allowed_hosts is None
    monkeypatch.setenv("LAMBDASCOPE_TOKEN", "from-the-environment")
    assert serve_settings("x.db", "0.0.0.0", None).token == "from-the-environment"
    monkeypatch.delenv("LAMBDASCOPE_TOKEN")
    local = serve_settings("x.db", "127.0.0.1", None)
    assert local.token is None and "localhost" in local.allowed_hosts
    with pytest.raises(SettingsError):
        serve_settings("x.db", "0.0.0.0", "short")


def test_worker_processes_share_the_settings(monkeypatch):
    from app.settings import SETTINGS_ENV, serve_settings, settings_from_env, settings_to_env

    s = serve_settings("some.db", "0.0.0.0", "a-long-enough-token", threads=5)
    monkeypatch.setenv(SETTINGS_ENV, settings_to_env(s))
    again = settings_from_env()
    assert again == s and again.csrf_token == s.csrf_token  # forms work across workers
    assert again.threads == 5


# ---------------------------------------------------------------------------------------------
# issue 7: every parameter a page echoes, every route behind the token, the real server


EXAMPLE_PARAMS = ("ck", "correct", "iou_min", "iou_max", "nf", "pred_nf", "len_min", "len_max", "togo_min",
                  "togo_max", "labelled", "q", "sort", "after", "before", "limit")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_echoed_parameter_is_escaped(client, seeded, payload):
    """Each parameter of each page, valid or refused (a refused one is quoted in the error
    message), as a full page and as the htmx fragment."""
    ident = seeded.traces[0].identity
    pages = [("/examples", {"ck": seeded.ck1, name: payload}) for name in EXAMPLE_PARAMS if name != "ck"]
    pages += [("/examples", {"ck": payload}),
              (f"/traces/{ident}", {"ck": payload}), (f"/traces/{ident}", {"step": payload}),
              (f"/traces/{ident}", {"queue": payload}), ("/queue", {"ck": payload}),
              ("/queue", {"ck": seeded.ck1, "after": payload}),
              ("/compare", {"a": seeded.ck1, "b": seeded.ck2, "kind": payload}),
              ("/compare", {"a": seeded.ck1, "b": seeded.ck2, "order": payload}),
              ("/compare", {"a": seeded.ck1, "b": seeded.ck2, "after": payload}),
              ("/compare", {"a": payload, "b": seeded.ck2}), ("/labels", {"category": payload}),
              (f"/runs/{seeded.run_a}", {"problems_reason": payload}),
              ("/playground", {"term": payload, "ck": seeded.ck1}), ("/playground", {"ck": payload})]
    for path, params in pages:
        for headers in ({}, {"HX-Request": "true", "HX-Target": "results"}):
            r = client.get(path, params=params, headers=headers, follow_redirects=False)
            assert r.status_code < 500, (path, params)
            assert_no_raw_payload(r.text)
            for name in ("hx-push-url", "location"):  # addresses made from the parameters
                value = r.headers.get(name, "")
                assert not any(c in value for c in '<>"\' '), (path, params, name, value)


def test_label_fragment_for_htmx_is_escaped(fresh_client, fresh):
    ident = fresh.traces[0].identity
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', fresh_client.get(f"/traces/{ident}").text).group(1)
    for note in PAYLOADS:
        r = fresh_client.post("/labels", data={"csrf": token, "identity": ident, "category": "other",
                                               "note": note, "ck": str(fresh.ck1)},
                              headers={"HX-Request": "true", "HX-Target": "labels"})
        assert r.status_code == 200 and r.text.lstrip().startswith('<section id="labels"')
        assert_no_raw_payload(r.text)
    assert "&lt;/textarea&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in r.text


def test_label_redirect_target_is_encoded_for_its_header(fresh_client, fresh):
    """Before: a `next` with a character outside Latin-1 made the HX-Redirect header a 500, after
    the label was written; control characters went into the header as they were."""
    ident = fresh.traces[0].identity
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', fresh_client.get(f"/traces/{ident}").text).group(1)
    for target, want in (("/queue?ck=1&note=λ", "/queue?ck=1&note=%CE%BB"), ("/a b", "/a%20b"),
                         ("/a\x00b", f"/traces/{ident}"), ("/a\tb", f"/traces/{ident}")):
        r = fresh_client.post("/labels", data={"csrf": token, "identity": ident, "category": "other",
                                               "queue": "1", "next": target},
                              headers={"HX-Request": "true", "HX-Target": "labels"})
        assert r.status_code == 204 and r.headers["HX-Redirect"] == want, (target, r.status_code)
        r = fresh_client.post("/labels", data={"csrf": token, "identity": ident, "category": "other",
                                               "next": target}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == want


def test_a_post_from_another_sites_page_is_refused_by_its_referer(fresh_client, fresh):
    ident = fresh.traces[0].identity
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', fresh_client.get(f"/traces/{ident}").text).group(1)
    form = {"csrf": token, "identity": ident, "category": "other"}
    r = fresh_client.post("/labels", data=form, headers={"Referer": "http://evil.example/page"},
                          follow_redirects=False)
    assert r.status_code == 403 and "Referer" in r.text
    r = fresh_client.post("/labels", data=form, headers={"Referer": f"http://testserver/traces/{ident}"},
                          follow_redirects=False)
    assert r.status_code == 303
    assert fresh_client.get("/labels.json").json()["total"] == 1


def all_routes(app):
    """(method, path) of every route of the app, with a sample value for each path parameter."""
    from starlette.routing import Mount

    out = []
    routes = list(app.routes)
    while routes:
        route = routes.pop(0)
        if hasattr(route, "original_router"):  # an included router: its own routes
            routes += list(route.original_router.routes)
            continue
        if isinstance(route, Mount):
            out.append(("GET", route.path + "/app.css"))
            continue
        path = re.sub(r"\{[a-z_]+(:int)?\}", lambda m: "1" if m.group(1) else "jsonl", route.path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                out.append((method, path))
    return out


def test_every_route_needs_the_token(seeded):
    c = make_client(seeded.url, token="s3cret-token-123")
    routes = all_routes(c.app)
    assert ("POST", "/labels") in routes and ("GET", "/api/openapi.json") in routes and len(routes) > 20
    good = "s3cret-token-123"
    for method, path in routes:
        for headers, cookies in (({}, {}), ({"Authorization": "Bearer nope-nope-nope"}, {}),
                                 ({}, {"lambdascope_token": "nope-nope-nope"}),
                                 ({"Authorization": f"Basic {good}"}, {})):
            c.cookies.clear()
            for k, v in cookies.items():
                c.cookies.set(k, v)
            r = c.request(method, path, headers=headers, follow_redirects=False)
            assert r.status_code == 401, (method, path, headers, cookies, r.status_code)
        c.cookies.clear()
        r = c.request(method, path, headers={"Authorization": f"Bearer {good}"}, follow_redirects=False)
        assert r.status_code != 401, (method, path)
    # the ?token= shortcut is for opening a page, not for a write
    assert c.post(f"/labels?token={good}", data={}).status_code == 401


def _serve(args, env_extra=None, port=None):
    import os
    import subprocess
    import sys

    from tests.concurrency_harness import ROOT, free_port

    port = port or free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("LAMBDASCOPE_TOKEN", None)
    env.update(env_extra or {})
    proc = subprocess.Popen([sys.executable, "-m", "lambdascope.cli", "serve", "--port", str(port),
                             "--log-level", "warning", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def test_real_server_refuses_to_expose_itself_without_a_token(tmp_path):
    import socket

    for host in ("0.0.0.0", "::", "192.168.1.5", "myhost.example"):
        proc, port = _serve(["--db", str(tmp_path / "s.db"), "--host", host])
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "token" in err and "--host 127.0.0.1" in err, (host, err)
        with socket.socket() as s:  # it never listened
            assert s.connect_ex(("127.0.0.1", port)) != 0
    # an empty or short token is no token
    proc, _ = _serve(["--db", str(tmp_path / "s.db"), "--host", "0.0.0.0", "--token", "short"])
    assert proc.wait(timeout=60) == 2


def test_real_server_with_a_token_from_the_environment_needs_it_on_every_request(seeded):
    import time

    import httpx

    token = "environment-token-42"
    proc, port = _serve(["--db", seeded.url], {"LAMBDASCOPE_TOKEN": token})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(base + "/runs.json", timeout=5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.1)
        assert r.status_code == 401
        for path in ("/", "/static/app.css", "/api/openapi.json", f"/checkpoints/{seeded.ck1}"):
            assert httpx.get(base + path).status_code == 401, path
            assert httpx.get(base + path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.post(base + "/labels", data={"identity": "x", "category": "other"}).status_code == 401
        # with a token, any Host name is served (it is meant to be reached by name)
        assert httpx.get(base + "/", headers={"Host": "dashboard.internal",
                                              "Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


SQL_PAYLOADS = ["' OR '1'='1", "x'); DROP TABLE labels; --", "%' OR 1=1 --", '" OR ""="', "1; SELECT 1"]


@pytest.mark.parametrize("payload", SQL_PAYLOADS)
def test_sql_is_parameterised(client, seeded, payload):
    """Text from the address reaches SQL only as a bound parameter: an injection attempt is
    a substring that matches nothing, or a refused value, and the tables are all still there."""
    r = client.get("/examples.json", params={"ck": seeded.ck1, "q": payload})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = client.get(f"/runs/{seeded.run_a}.json", params={"problems_reason": payload})
    assert r.status_code == 200 and r.json()["problems"] == []
    for address, params in (("/labels.json", {"category": payload}), ("/examples.json", {"ck": payload}),
                            ("/examples.json", {"ck": seeded.ck1, "sort": payload}),
                            ("/compare.json", {"a": seeded.ck1, "b": seeded.ck2, "after": payload}),
                            (f"/traces/{payload}.json", {})):
        assert client.get(address, params=params).status_code in (400, 404), (address, params)
    assert client.get("/labels.json").status_code == 200
    assert client.get(f"/examples.json?ck={seeded.ck1}").json()["total"] > 0


def test_no_sql_text_is_built_from_request_values():
    """Every f-string that makes SQL text in app/ interpolates only names defined in the code
    (fragments, join keywords, generated placeholder names), never a request value."""
    import ast
    from pathlib import Path

    allowed = {"cases", "TOGO_SQL", "GOLD_NF_SQL", "PRED_NF_SQL", "LABELLED_SQL", "LIST_COLUMNS", "join",
               "conds", "order", "fn", "sort", "op", "tie", "body", "marks", "join_kw", "dialect", "i",
               "direction", "session", "column", "KIND_CASES", "UNJUDGED"}
    sql_words = ("SELECT", "WHERE", "ORDER BY", "FROM", "WHEN", "AND (")
    for path in sorted((Path(__file__).resolve().parent.parent / "app").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if not any(w in literal for w in sql_words):
                    continue
                names = {n.id for v in node.values if isinstance(v, ast.FormattedValue)
                         for n in ast.walk(v.value) if isinstance(n, ast.Name)}
                assert names <= allowed, (f"{path}:{node.lineno}", names - allowed)


def test_list_rows_written_in_python_escape_store_text():
    """The examples and compare rows are built in Python (rendering.example_rows,
    compare_rows), not by an autoescaping template: a store's text must still come out as
    text, and a non-number where a number belongs is refused rather than written."""
    from app.rendering import compare_rows, example_rows

    row = {"trace_identity": XSS, "trace_id": XSS, "example_id": 7, "step_k": 1, "steps_total": 3,
           "term": XSS, "gold_start": 2, "gold_end": 9, "pred_start": 0, "pred_end": 0,
           "iou": 0.0, "exact": False, "labelled": True, "start_conf": 0.5, "end_conf": 0.5,
           "term_len": len(XSS), "steps_to_go": 2}
    html = str(example_rows([row], 3))
    assert_no_raw_payload(html)
    assert html.count("&lt;script&gt;") == 5  # two links, the title twice, the link text
    cmp = {"identity": XSS, "example_id": 7, "step_k": 1, "steps_total": 3, "term": XSS,
           "gold": [2, 9], "a": {"pred": [0, 0], "iou": 0.0, "exact": False},
           "b": {"pred": [2, 9], "iou": 1.0, "exact": True}, "change": 1.0}
    html = str(compare_rows([cmp], 4))
    assert_no_raw_payload(html)
    assert "&lt;script&gt;" in html
    with pytest.raises(ValueError):
        example_rows([row | {"step_k": XSS}], 3)


@given(st.text())
def test_html_text_escapes_as_markupsafe_does(text):
    from markupsafe import escape

    from app.rendering import html_text

    assert html_text(text) == str(escape(text))
