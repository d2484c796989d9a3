"""Escaping, cross-site request refusal, the access token, the Host check, the security
headers, and `lambdascope serve` refusing to expose itself without a token."""

import re

import pytest

from tests.app_store import XSS, client, fresh, fresh_client, make_client, seeded  # noqa: F401

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
    from app.cli import serve_settings
    from lambdascope.cli import UsageError, main

    monkeypatch.delenv("LAMBDASCOPE_TOKEN", raising=False)
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(UsageError, match="token"):
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
    with pytest.raises(UsageError):
        serve_settings("x.db", "0.0.0.0", "short")


def test_worker_processes_share_the_settings(monkeypatch):
    from app.cli import SETTINGS_ENV, serve_settings, settings_from_env, settings_to_env

    s = serve_settings("some.db", "0.0.0.0", "a-long-enough-token")
    monkeypatch.setenv(SETTINGS_ENV, settings_to_env(s))
    again = settings_from_env()
    assert again == s and again.csrf_token == s.csrf_token  # forms work across workers
