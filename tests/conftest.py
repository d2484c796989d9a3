"""The fixtures tests share, each defined once (tests/test_test_layout.py checks that).

PostgreSQL: ``pg_cluster`` is one throwaway cluster (tests/pgcluster.py) for the whole session,
started by the first test that asks for it and only then; where tests/pgcluster.py says none can
run here, every test asking for it is skipped with that reason. ``pg_url`` is a fresh database of
its own in that cluster; ``pg_url_or_none`` is the same but None instead of a skip, for a test
that does less without PostgreSQL rather than nothing (the README test). ``pg_seeded`` and
``pg_client``: the small seeded store (tests/app_store.py) in a database of its own, and a
dashboard over it.

The dashboard over SQLite: ``seeded`` is the small seeded store that tests only read, ``client`` a
dashboard over it (both once a session); ``fresh`` is a store of a test's own, for a test that
writes, and ``fresh_client`` a dashboard over it.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

import pytest

# the shared dashboard checks (they were in a test module): pytest's detailed assertion messages
pytest.register_assert_rewrite("tests.app_helpers")

from tests import pgcluster  # noqa: E402

if TYPE_CHECKING:
    from tests.app_store import Seeded

# tests/app_store.py (and through it lambdascope and app) is imported by the fixtures that need it,
# not here: a conftest that cannot be imported would stop every test, not only the dashboard's.

_database_numbers = itertools.count(1)


def _new_database(cluster: pgcluster.PgCluster, hint: str) -> str:
    """A new, empty database in the cluster (a name no other test has); its SQLAlchemy URL."""
    name = f"{re.sub(r'[^a-z0-9]+', '_', hint.lower())[:40]}_{next(_database_numbers)}"
    return cluster.create_database(name)


# ---------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the session; a skip where none can run here."""
    reason = pgcluster.unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = pgcluster.PgCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster, request) -> str:
    """A fresh database of this test's own in the one cluster: its SQLAlchemy URL."""
    return _new_database(pg_cluster, request.node.name)


@pytest.fixture
def pg_url_or_none(request) -> str | None:
    """``pg_url``, or None where PostgreSQL cannot run here (no skip: the test does less)."""
    if pgcluster.unavailable_reason():
        return None
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module")
def pg_seeded(pg_cluster) -> Seeded:
    """The small seeded store in a PostgreSQL database of its own (one per module using it)."""
    from tests.app_store import build_small_store

    return build_small_store(_new_database(pg_cluster, "dashboard"))


@pytest.fixture(scope="module")
def pg_client(pg_seeded):
    from tests.app_store import make_client

    return make_client(pg_seeded.url)


# ---------------------------------------------------------------------------------------------
# the dashboard over SQLite


@pytest.fixture(scope="session")
def seeded(tmp_path_factory) -> Seeded:
    """A store that tests only read."""
    from tests.app_store import build_small_store

    return build_small_store(f"sqlite:///{tmp_path_factory.mktemp('store')}/store.db")


@pytest.fixture(scope="session")
def client(seeded):
    from tests.app_store import make_client

    return make_client(seeded.url)


@pytest.fixture
def fresh(tmp_path) -> Seeded:
    """A store of its own, for a test that writes labels."""
    from tests.app_store import build_small_store

    return build_small_store(f"sqlite:///{tmp_path}/store.db")


@pytest.fixture
def fresh_client(fresh):
    from tests.app_store import make_client

    return make_client(fresh.url)


@pytest.fixture(scope="module")
def suite_store():
    """A store with evaluation suites (tests/app_store.py's build_suite_store) and a dashboard
    over it: (SuiteSeeded, client)."""
    import tempfile

    from tests.app_store import build_suite_store, make_client

    with tempfile.TemporaryDirectory() as tmp:
        seeded = build_suite_store(f"sqlite:///{tmp}/suites.db")
        yield seeded, make_client(seeded.url)
