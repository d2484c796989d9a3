"""Alembic environment: the schema is lambdascope.store's metadata; the connection is handed
in by lambdascope.migrate (no alembic.ini needed)."""

from alembic import context

from lambdascope.store import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; use `lambdascope db upgrade`")
run_migrations_online()
