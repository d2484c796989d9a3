"""Schema migrations (Alembic) for both engines: `lambdascope db upgrade` and open_store use
these. Revisions live in lambdascope/migrations/versions/.

To add a revision after changing lambdascope/store.py:
    .venv/bin/python -m lambdascope.migrate revision "what changed"
(autogenerates against a scratch SQLite store at head; read and edit the result).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the store's schema to ``revision`` (creating it in an empty store)."""
    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(_config(conn), revision)


def _make_revision(message: str) -> None:
    # a plain engine (not store.make_engine): the store imports this module, not the reverse
    from sqlalchemy import create_engine

    with tempfile.TemporaryDirectory() as d:
        engine = create_engine(f"sqlite:///{d}/scratch.db")
        upgrade(engine)
        with engine.begin() as conn:
            command.revision(_config(conn), message=message, autogenerate=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "revision":
        _make_revision(sys.argv[2])
    else:
        sys.exit("usage: python -m lambdascope.migrate revision MESSAGE")
