"""Persistence: SQLAlchemy Core tables, engine set-up, migrations."""
