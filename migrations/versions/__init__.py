"""Alembic revision scripts, one per schema step; Alembic loads them by file, not by import."""
