"""Alembic migrations, installed as ``inbox_daemon.migrations`` (found by ``inbox_daemon.store.migrate``)."""
