"""Resources shared by every stage: settings and the warehouse.

Stage-specific resources (the landing zone, the alert channel, the model registry) live with
their stage and are assembled in ``definitions.py``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from filelock import FileLock
from pydantic import Field

from leadscore_core.settings import Settings, get_settings
from leadscore_core.warehouse import snapshot_dir, snapshot_reader

# Every asset that writes the warehouse runs in this pool; dagster.yaml limits it to 1
# because DuckDB allows one writing process.
WAREHOUSE_POOL = "duckdb_writer"

T = TypeVar("T")


def env_or(name: str, default: T) -> dg.EnvVar | T:
    """``dg.EnvVar(name)`` when the variable is set, else the embedded default.

    A resource field given an ``EnvVar`` is read from the environment when a run starts and
    the Dagster UI shows the variable's name, never its value: secrets and URLs (a webhook, a
    tracking URI with a password) reach resources this way. With the variable unset, the
    default (a local path, nothing secret) is the value.
    """
    return dg.EnvVar(name) if os.environ.get(name) else default


def published_snapshots(warehouse: DuckDBResource):
    """What the feature stage published from this warehouse, read without the warehouse:
    no writer pool, no file lock (``leadscore_core.warehouse.snapshot_reader``)."""
    return snapshot_reader(snapshot_dir(warehouse.database))


LOCK_APPLICATION = "leadscore-warehouse-writer"
_held = threading.local()  # warehouse -> depth of this thread's nested connections


def _advisory_key(database: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``, one per warehouse file."""
    return int.from_bytes(hashlib.sha256(database.encode()).digest()[:8], "big", signed=True)


@contextmanager
def writer_lock(database: str, lock_url: str | None) -> Iterator[None]:
    """Hold the warehouse's one writer lock: a PostgreSQL advisory lock when ``lock_url`` is
    set (every host that reaches the server agrees on it), else a lock file beside the
    warehouse (every process of this host).

    DuckDB lets one process open the file for writing and refuses the others with a lock
    error; Dagster's concurrency pool keeps writers apart only where the executor honours
    pools (dagster-celery's step executor does not), so each connection takes this lock
    first and waits its turn instead. Nested connections of one thread share the lock (DuckDB
    hands them the same database instance).
    """
    depth = getattr(_held, "depth", None)
    if depth is None:
        depth = _held.depth = {}
    if database == ":memory:" or depth.get(database):
        depth[database] = depth.get(database, 0) + 1
        try:
            yield
        finally:
            depth[database] -= 1
        return
    with _acquire(database, lock_url):
        depth[database] = 1
        try:
            yield
        finally:
            depth[database] = 0


@contextmanager
def _acquire(database: str, lock_url: str | None) -> Iterator[None]:
    if not lock_url:
        with FileLock(f"{database}.writer.lock"):
            yield
        return
    import psycopg2  # only where a lock server is configured
    from sqlalchemy.engine import make_url

    # the SQLAlchemy URL the Dagster storage uses (postgresql+psycopg2://) names the server too
    dsn = make_url(lock_url).set(drivername="postgresql").render_as_string(hide_password=False)
    # the holder (or waiter) is named in pg_stat_activity: which process has the warehouse
    conn = psycopg2.connect(dsn, application_name=f"{LOCK_APPLICATION}:{os.getpid()}")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_advisory_key(database),))
        yield
    finally:
        conn.close()  # ends the session: the server releases the lock, also on a crash


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, opened only while holding the writer lock (``writer_lock``)."""

    lock_url: str | None = Field(
        default=None,
        description="PostgreSQL URL whose advisory lock serialises warehouse connections "
                    "across hosts; unset: a lock file beside the warehouse")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with writer_lock(self.database, self.lock_url), super().get_connection() as conn:
            yield conn


def warehouse_resource(settings: Settings | None = None) -> Warehouse:
    settings = settings or get_settings()
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return Warehouse(database=str(settings.warehouse), lock_url=settings.warehouse_lock_url)


class SettingsResource(dg.ConfigurableResource):
    """Project settings as a resource, so tests can point a run at a temporary data folder."""

    data_dir: str = "data"
    lead_profile: str | None = None
    customer_profile: str | None = None

    @classmethod
    def from_env(cls) -> SettingsResource:
        s = get_settings()
        return cls(data_dir=str(s.root), lead_profile=s.lead_profile,
                   customer_profile=s.customer_profile)

    def get(self) -> Settings:
        return Settings(data_dir=self.data_dir, lead_profile=self.lead_profile,
                        customer_profile=self.customer_profile)
