"""``lambdascope serve`` and ``lambdascope labels export|import``: registered into the main
command line by ``register(sub)``."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys

TOKEN_ENV = "LAMBDASCOPE_TOKEN"
SETTINGS_ENV = "LAMBDASCOPE_SERVE_SETTINGS"  # serve -> its worker processes
TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]{8,256}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def settings_to_env(settings) -> str:
    import json

    return json.dumps({"db_url": settings.db_url, "token": settings.token,
                       "allowed_hosts": settings.allowed_hosts, "secret": settings.secret.hex(),
                       "threads": settings.threads})


def settings_from_env():
    import json

    from .deps import Settings

    d = json.loads(os.environ[SETTINGS_ENV])
    hosts = d.get("allowed_hosts")
    return Settings(db_url=d["db_url"], token=d.get("token"),
                    allowed_hosts=tuple(hosts) if hosts is not None else None,
                    secret=bytes.fromhex(d["secret"]), threads=d["threads"])


def _usage_error(message: str):
    from lambdascope.cli import UsageError

    return UsageError(message)


def serve_settings(db: str | None, host: str, token: str | None, threads: int = 2):
    """The server's settings, or a UsageError: a host other than loopback needs a token."""
    from lambdascope.store import resolve_db_url

    from .deps import Settings

    token = token or os.environ.get(TOKEN_ENV) or None
    if token is not None and not TOKEN_RE.fullmatch(token):
        raise _usage_error("the token must be 8 to 256 characters of letters, digits and ._~+/=-")
    if not is_loopback(host) and token is None:
        raise _usage_error(f"--host {host} exposes the dashboard beyond this machine: give a token "
                           f"with --token or ${TOKEN_ENV} (every request must then carry it), "
                           "or keep the default --host 127.0.0.1")
    # without a token, answer only to loopback names (no DNS rebinding onto the dashboard)
    allowed = None if token else ("127.0.0.1", "localhost", "[::1]", "::1", host)
    return Settings(db_url=resolve_db_url(db), token=token, allowed_hosts=allowed, threads=threads)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .main import create_app

    settings = serve_settings(args.db, args.host, args.token, args.threads)
    where = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}/"
    print(f"lambdascope: serving {settings.db_url} at {where}"
          + (f" with {args.workers} worker processes" if args.workers > 1 else "")
          + (" (token required; open it once as ?token=…)" if settings.token else ""),
          file=sys.stderr)
    if args.workers > 1:
        # each worker process builds the app from the environment; they share one form secret
        os.environ[SETTINGS_ENV] = settings_to_env(settings)
        uvicorn.run("app.main:app_from_environment", factory=True, host=args.host,
                    port=args.port, workers=args.workers, log_level=args.log_level)
    else:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from lambdascope.store import Label, open_store, resolve_db_url

    from .labels import LabelError, export_labels, import_labels

    fmt = args.format or ("csv" if args.file.lower().endswith(".csv") else "jsonl")
    engine, Session = open_store(resolve_db_url(args.db))
    try:
        with Session() as session:
            if args.action == "export":
                chunks = export_labels(session, fmt)
                if args.file == "-":
                    sys.stdout.writelines(chunks)
                else:
                    tmp = args.file + ".tmp"
                    with open(tmp, "w", encoding="utf-8", newline="") as f:
                        f.writelines(chunks)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, args.file)
                n = session.scalar(select(func.count()).select_from(Label))
                print(f"exported {n} labels to {args.file}", file=sys.stderr)
            else:
                try:
                    if args.file == "-":
                        added, skipped = import_labels(session, sys.stdin, fmt)
                    else:
                        with open(args.file, encoding="utf-8", newline="") as f:
                            added, skipped = import_labels(session, f, fmt)
                except FileNotFoundError:
                    raise _usage_error(f"{args.file}: no such file") from None
                except UnicodeDecodeError as e:
                    raise _usage_error(f"{args.file}: not UTF-8 text ({e.reason})") from None
                except LabelError as e:
                    raise _usage_error(f"{args.file}: {e}") from None
                session.commit()
                print(f"imported {added} labels from {args.file} ({skipped} already present)",
                      file=sys.stderr)
    finally:
        engine.dispose()
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}")
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"expected a port between 1 and 65535, got {value}")
    return value


def _threads(text: str) -> int:
    from .main import MAX_THREADS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of threads, got {text!r}")
    if not 1 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_THREADS} threads, got {value}")
    return value


def register(sub) -> None:
    s = sub.add_parser("serve", help="serve the dashboard over a store",
                       description="Serve the dashboard (runs, checkpoints, examples, traces, "
                       "comparisons, labels, playground) over a store. Binds 127.0.0.1 by "
                       f"default; another host needs a token (--token or ${TOKEN_ENV}).")
    s.add_argument("--db", default=None, help="store URL or SQLite path (default: $LAMBDASCOPE_DB "
                   "or runs/lambdascope.db)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    s.add_argument("--token", default=None, help=f"access token every request must carry "
                   f"(default: ${TOKEN_ENV}); required off loopback")
    s.add_argument("--workers", type=_port, default=1, help="server processes (default 1; "
                   "each keeps its own caches)")
    s.add_argument("--threads", type=_threads, default=2,
                   help="requests each process handles at once (default 2). The pages are "
                   "Python-bound: more threads only take turns on the GIL and make every "
                   "request slower; raise it for a PostgreSQL store across a slow network")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default info)")
    s.set_defaults(func=cmd_serve)

    lb = sub.add_parser("labels", help="export or import labels (JSONL or CSV)",
                        description="Export every label of a store to a file, or import labels "
                        "from one (labels already present are skipped; a bad line imports nothing).")
    lb.add_argument("action", choices=["export", "import"])
    lb.add_argument("file", metavar="FILE", help="the file ('-' for stdout/stdin)")
    lb.add_argument("--db", default=None, help="store URL or SQLite path")
    lb.add_argument("--format", choices=["jsonl", "csv"], default=None,
                    help="file format (default: from the file name, else jsonl)")
    lb.set_defaults(func=cmd_labels)
