"""Exposure: the Host check, the access token and the security headers, as one ASGI middleware.

- ``allowed_hosts``: on loopback without a token, only ``localhost``-like Host headers are
  served, so a page of another site cannot reach the dashboard through DNS rebinding.
- ``token``: when set (required off loopback), every request carries it, as
  ``Authorization: Bearer T``, the cookie ``lambdascope_token``, or once as ``?token=T``, which
  sets the cookie and redirects to the same address without it.
- An address holding a NUL character (``%00``) is refused with a 400: no page takes one, and
  PostgreSQL cannot bind one as text (it would be a 500 deep in a query).
- Every response gets a strict Content-Security-Policy (scripts and styles only from this
  server), ``nosniff``, no framing and a same-origin referrer policy.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

TOKEN_COOKIE = "lambdascope_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    def __init__(self, app, *, token: str | None = None,
                 allowed_hosts: tuple[str, ...] | None = None):
        self.app = app
        self.token = token
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.allowed is not None and _host_name(headers.get("host", "")) not in self.allowed:
            return await _plain(send, 400, "this server answers only to its own host name "
                                           "(start it with --token to serve other names)")
        if self.token is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            pairs = parse_qsl(query, keep_blank_values=True)
            given = dict(pairs).get("token")
            if given is not None and self._ok(given) and scope["method"] in ("GET", "HEAD"):
                rest = urlencode([(k, v) for k, v in pairs if k != "token"])
                location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
                cookie = (f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict")
                return await _plain(send, 303, "see other", [(b"location", location.encode()),
                                                             (b"set-cookie", cookie.encode())])
            if not self._authorised(headers):
                return await _plain(send, 401, "this dashboard needs its access token: open it "
                                               "once as /?token=…, or send Authorization: Bearer …")

        raw_query = scope.get("query_string", b"")
        if "\x00" in scope["path"] or b"%00" in raw_query or b"\x00" in raw_query:
            return await _plain(send, 400, "the address holds a NUL character (%00), which no "
                                           "parameter accepts")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self._ok(auth[7:].strip()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            return False
        morsel = cookie.get(TOKEN_COOKIE)
        return morsel is not None and self._ok(morsel.value)


async def _plain(send, status: int, text: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *extra,
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
