"""Atelier's backend: the FastAPI app that owns all state (DuckDB, media, key, outbox)."""

__version__ = "0.1.0"
