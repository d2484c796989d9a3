"""The server's settings, in one place: what ``create_app`` takes, how ``serve``'s options
become settings (``serve_settings``), and how they travel to the worker processes of
``serve --workers N`` (``settings_to_env`` / ``settings_from_env``)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass, field

from lambdascope.store import resolve_db_url

TOKEN_ENV = "LAMBDASCOPE_TOKEN"
SETTINGS_ENV = "LAMBDASCOPE_SERVE_SETTINGS"  # serve -> its worker processes
TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]{8,256}")
MAX_THREADS = 64  # threads at most: past a few, threads only wait for the GIL
DEFAULT_THREADS = 4  # see main.create_app for why
DEFAULT_QUERY_TIMEOUT = 2.0  # seconds a page's query may run (app.query_limit)
MAX_QUERY_TIMEOUT = 3600.0
DEFAULT_MODEL_BUDGET = 2.0  # seconds of model time a request may use (app.models)
MAX_MODEL_BUDGET = 600.0
DEFAULT_MODEL_WORKERS = 2  # model requests computed at once, in threads that pages never use
MAX_MODEL_WORKERS = 16
DEFAULT_MODEL_QUEUE = 4  # model requests waiting for a worker; past them a 429
# MB of whole responses kept (app.page_cache): the 10M-prediction benchmark store's distinct pages are
# 78 MB (1,300 addresses), and at 64 MB its least recently used pages went before they were asked again
DEFAULT_PAGE_CACHE_MB = 256
MAX_PAGE_CACHE_MB = 65536


class SettingsError(ValueError):
    """Settings the server cannot start with; the message says how to fix them."""


@dataclass(frozen=True)
class Settings:
    db_url: str
    token: str | None = None  # when set, every request must carry it
    allowed_hosts: tuple[str, ...] | None = None  # Host header names accepted; None: any
    warm_caches: bool = True  # compute new checkpoints' summaries in the background
    query_timeout: float = DEFAULT_QUERY_TIMEOUT  # seconds a query may run (0: no limit); then a 503
    threads: int = DEFAULT_THREADS  # requests handled at once (see main.create_app)
    model_budget: float = DEFAULT_MODEL_BUDGET  # seconds of model time per request (app.models)
    model_workers: int = DEFAULT_MODEL_WORKERS  # model requests computed at once
    model_queue: int = DEFAULT_MODEL_QUEUE  # model requests waiting; one more is answered 429
    page_cache_mb: int = DEFAULT_PAGE_CACHE_MB  # MB of whole responses kept (app.page_cache); 0: off
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def csrf_token(self) -> str:
        """The form token of this server: only a page served by it knows it."""
        return hmac.new(self.secret, b"lambdascope-csrf-v1", hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_settings(db: str | None, host: str, token: str | None,
                   threads: int = DEFAULT_THREADS, *, model_budget: float = DEFAULT_MODEL_BUDGET,
                   model_workers: int = DEFAULT_MODEL_WORKERS,
                   query_timeout: float = DEFAULT_QUERY_TIMEOUT,
                   page_cache_mb: int = DEFAULT_PAGE_CACHE_MB) -> Settings:
    """The server's settings, or a SettingsError: a host other than loopback needs a token."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is not None and not TOKEN_RE.fullmatch(token):
        raise SettingsError("the token must be 8 to 256 characters of letters, digits and ._~+/=-")
    if not is_loopback(host) and token is None:
        raise SettingsError(f"--host {host} exposes the dashboard beyond this machine: give a token "
                            f"with --token or ${TOKEN_ENV} (every request must then carry it), "
                            "or keep the default --host 127.0.0.1")
    # without a token, answer only to loopback names (no DNS rebinding onto the dashboard)
    allowed = None if token else ("127.0.0.1", "localhost", "[::1]", "::1", host)
    return Settings(db_url=resolve_db_url(db), token=token, allowed_hosts=allowed, threads=threads,
                    query_timeout=query_timeout, page_cache_mb=page_cache_mb,
                    model_budget=model_budget, model_workers=model_workers)


def settings_to_env(settings: Settings) -> str:
    return json.dumps({"db_url": settings.db_url, "token": settings.token,
                       "allowed_hosts": settings.allowed_hosts, "secret": settings.secret.hex(),
                       "threads": settings.threads, "query_timeout": settings.query_timeout,
                       "model_budget": settings.model_budget,
                       "model_workers": settings.model_workers, "model_queue": settings.model_queue,
                       "page_cache_mb": settings.page_cache_mb})


def settings_from_env() -> Settings:
    d = json.loads(os.environ[SETTINGS_ENV])
    hosts = d.get("allowed_hosts")
    return Settings(db_url=d["db_url"], token=d.get("token"),
                    allowed_hosts=tuple(hosts) if hosts is not None else None,
                    secret=bytes.fromhex(d["secret"]), threads=d["threads"],
                    query_timeout=d.get("query_timeout", DEFAULT_QUERY_TIMEOUT),
                    model_budget=d.get("model_budget", DEFAULT_MODEL_BUDGET),
                    model_workers=d.get("model_workers", DEFAULT_MODEL_WORKERS),
                    model_queue=d.get("model_queue", DEFAULT_MODEL_QUEUE),
                    page_cache_mb=d.get("page_cache_mb", DEFAULT_PAGE_CACHE_MB))
