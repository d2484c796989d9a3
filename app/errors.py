"""The dashboard's HTTP errors: what a person can fix (or should know) about a request, with a
message for them. Everything in app/ raises these; ``main.create_app`` answers each with its
status, as the error page or, for a ``.json`` twin, as ``{"error": message, "status": …}``."""

from __future__ import annotations


class HTTPError(Exception):
    status_code = 500
    headers: dict[str, str] | None = None  # sent with the answer

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(HTTPError):
    """A parameter that is wrong: the message names it."""

    status_code = 400


class Forbidden(HTTPError):
    """A write refused (another site's page could have sent it, or the form token is stale)."""

    status_code = 403


class NotFound(HTTPError):
    """No such run, checkpoint, trace or label."""

    status_code = 404


class QueryTimeout(HTTPError):
    """A query of the page ran past the server's limit (``serve --query-timeout``) and was
    stopped (``app.query_limit``)."""

    status_code = 503

    def __init__(self, seconds: float):
        super().__init__(f"this page's query ran past the server's limit of {seconds:g} s "
                         "(serve --query-timeout) and was stopped; try again, or ask for less "
                         "(a narrower filter, a smaller page)")
        self.seconds = seconds


class TooManyRequests(HTTPError):
    """The model pool's queue is full (``app.models.ModelPool``): try again after
    ``retry_after`` seconds (the Retry-After header)."""

    status_code = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}
