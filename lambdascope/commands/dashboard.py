"""``lambdascope serve`` and ``lambdascope labels export|import``: the dashboard over a store.
The dashboard gets its model through the trainer's loader, when torch is installed."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from app.settings import DEFAULT_QUERY_TIMEOUT, DEFAULT_THREADS, MAX_QUERY_TIMEOUT, MAX_THREADS, SETTINGS_ENV, TOKEN_ENV

from .common import UsageError, number_type, port

from app.settings import DEFAULT_MODEL_BUDGET, DEFAULT_MODEL_WORKERS, MAX_MODEL_BUDGET, MAX_MODEL_WORKERS
from app.settings import DEFAULT_PAGE_CACHE_MB, MAX_PAGE_CACHE_MB


def load_model(path: str):
    """The trainer's checkpoint loader (``lambdascope.predictor.ModelLoader``), importing torch
    on the first playground request rather than at every server start."""
    from trainer.predict import load_predictor

    return load_predictor(path)


def model_loader():
    """``load_model``, or None where torch is not installed (the dashboard then says so)."""
    import importlib.util

    return load_model if importlib.util.find_spec("torch") is not None else None


def create_dashboard(settings):
    from app.main import create_app

    return create_app(settings, model_loader=model_loader())


def dashboard_from_environment():
    """The app of one worker process of ``lambdascope serve --workers N``."""
    from app.settings import settings_from_env

    return create_dashboard(settings_from_env())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.settings import serve_settings, settings_to_env

    settings = serve_settings(args.db, args.host, args.token, args.threads, query_timeout=args.query_timeout)
    where = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}/"
    print(f"lambdascope: serving {settings.db_url} at {where}"
          + (f" with {args.workers} worker processes" if args.workers > 1 else "")
          + (" (token required; open it once as ?token=…)" if settings.token else ""),
          file=sys.stderr)
    # model work: its own threads and a budget per request (app/models.py)
    settings = dataclasses.replace(settings, model_budget=args.model_budget, model_workers=args.model_workers,
                                   page_cache_mb=args.page_cache)
    if args.workers > 1:
        # each worker process builds the app from the environment; they share one form secret
        os.environ[SETTINGS_ENV] = settings_to_env(settings)
        uvicorn.run("lambdascope.commands.dashboard:dashboard_from_environment", factory=True, host=args.host,
                    port=args.port, workers=args.workers, log_level=args.log_level)
    else:
        uvicorn.run(create_dashboard(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from lambdascope.store import Label, open_store, resolve_db_url

    from app.labels import LabelError, export_labels, import_labels

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
                    raise UsageError(f"{args.file}: no such file") from None
                except UnicodeDecodeError as e:
                    raise UsageError(f"{args.file}: not UTF-8 text ({e.reason})") from None
                except LabelError as e:
                    raise UsageError(f"{args.file}: {e}") from None
                session.commit()
                print(f"imported {added} labels from {args.file} ({skipped} already present)",
                      file=sys.stderr)
    finally:
        engine.dispose()
    return 0


model_budget = number_type(kind=float, lo=0, lo_open=True, hi=MAX_MODEL_BUDGET,
                           expected="expected a number of seconds, got {text}",
                           out_of_range="expected more than 0 and at most {hi:g} seconds, got {value}")
model_workers = number_type(lo=1, hi=MAX_MODEL_WORKERS, expected="expected a number of threads, got {text}",
                            out_of_range="expected 1 to {hi} threads, got {value}")


page_cache = number_type(lo=0, hi=MAX_PAGE_CACHE_MB, expected="expected a number of megabytes, got {text}",
                         out_of_range="expected 0 to {hi} megabytes, got {value}")
threads = number_type(lo=1, hi=MAX_THREADS, expected="expected a number of threads, got {text}",
                      out_of_range="expected 1 to {hi} threads, got {value}")
seconds = number_type(kind=float, lo=0, hi=MAX_QUERY_TIMEOUT, expected="expected a number of seconds, got {text}",
                      out_of_range="expected 0 to {hi:g} seconds, got {value}")


def register(sub) -> None:
    s = sub.add_parser("serve", help="serve the dashboard over a store",
                       description="Serve the dashboard (runs, checkpoints, examples, traces, "
                       "comparisons, labels, playground) over a store. Binds 127.0.0.1 by "
                       f"default; another host needs a token (--token or ${TOKEN_ENV}).")
    s.add_argument("--db", default=None, help="store URL or SQLite path (default: $LAMBDASCOPE_DB "
                   "or runs/lambdascope.db)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=port, default=8000, help="port (default 8000)")
    s.add_argument("--token", default=None, help=f"access token every request must carry "
                   f"(default: ${TOKEN_ENV}); required off loopback")
    s.add_argument("--workers", type=number_type(lo=1, hi=64, expected="expected a number of processes, got {text}",
                   out_of_range="expected 1 to {hi} processes, got {value}"), default=1, help="server processes (default 1; "
                   "each keeps its own caches)")
    s.add_argument("--threads", type=threads, default=DEFAULT_THREADS,
                   help=f"pages each process makes at once (default {DEFAULT_THREADS}; a page the page "
                   "cache keeps is answered without one). The pages are Python-bound: many more "
                   "threads only take turns on the GIL; raise it for a PostgreSQL store across a "
                   "slow network")
    s.add_argument("--query-timeout", type=seconds, default=DEFAULT_QUERY_TIMEOUT, metavar="SECONDS",
                   help=f"the longest a page's query may run (default {DEFAULT_QUERY_TIMEOUT:g}; 0: no "
                   "limit); the page then answers 503 with a message and the server goes on")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default info)")
    s.add_argument("--model-budget", type=model_budget, default=DEFAULT_MODEL_BUDGET, metavar="SECONDS",
                   help=f"the model time one request may use (default {DEFAULT_MODEL_BUDGET:g}): the "
                   "playground's rollout and the beliefs stop there and say so")
    s.add_argument("--model-workers", type=model_workers, default=DEFAULT_MODEL_WORKERS, metavar="N",
                   help=f"model requests computed at once, in threads the pages never use (default "
                   f"{DEFAULT_MODEL_WORKERS}); a few more wait, and past them a request is answered "
                   "429 with Retry-After")
    s.add_argument("--page-cache", type=page_cache, default=DEFAULT_PAGE_CACHE_MB, metavar="MB",
                   help=f"megabytes of whole pages each process keeps (default {DEFAULT_PAGE_CACHE_MB}; "
                   "0: none). A kept page is served again until the store says it changed: a new "
                   "checkpoint, metric point, label, or a run's update (docs/DESIGN.md, page cache)")
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
