"""Shared fixtures: settings, a migrated store on SQLite and (under `make test`) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from core import sample
from core.db import Store
from core.settings import Settings, load_settings
from hotline.wiring import ivr_services
from ivr.session import IvrServices

PEPPER = "test-pepper"
SAMPLE_RESIDENTS = 40
PG_URL = os.environ.get("TEST_PG_URL", "")
REQUIRE_PG = os.environ.get("TEST_REQUIRE_PG") == "1"


def make_settings(tmp_path: Path, url: str, **env: str) -> Settings:
    environ = {
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_SECURITY_PIN_PEPPER": PEPPER,
        "HOTLINE_AMI_SECRET": "test-ami-secret-0123456789",
        **env,
    }
    return load_settings(None, environ)


def _fresh_pg_database() -> str:
    """A new database on the test server, so tests never see each other's rows."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", hide_parameters=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


# For what only PostgreSQL has (row locks between two writers, deadlocks, typed columns,
# roles): the test runs on PostgreSQL alone, and `db_url` fails rather than skips when
# TEST_REQUIRE_PG=1 and no server is configured (as under `make test`).
postgres_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hotline.db"
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("TEST_PG_URL is not set but PostgreSQL is required (make test sets it)")
        pytest.skip("PostgreSQL not configured: run through `make test`")
    return _fresh_pg_database()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/hotline.db")
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def sample_data() -> tuple[list[sample.SampleEmployer], list[sample.SampleResident]]:
    return sample.generate(residents=SAMPLE_RESIDENTS)


def load_sample(store: Store) -> None:
    sample.load(store, PEPPER, residents=SAMPLE_RESIDENTS)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def services(settings: Settings, store: Store) -> IvrServices:
    load_sample(store)
    return ivr_services(settings, store)
