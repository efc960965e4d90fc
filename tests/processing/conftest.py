"""The store fixtures (a migrated, empty database per test on each engine) for processing."""

from tests.store.conftest import db_url, pg_db_url, with_store

__all__ = ["db_url", "pg_db_url", "with_store"]
