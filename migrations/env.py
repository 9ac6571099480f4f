"""Alembic environment: the target is SQLModel.metadata; SQLite uses batch mode."""

from __future__ import annotations

import os

from alembic import context
from sqlmodel import SQLModel

import bot.store.activity_tables
import bot.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bot.store.db import make_engine

config = context.config
url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL", "sqlite:///./accessbot.db")


def run_migrations_offline() -> None:
    """Emit SQL without a database connection."""
    context.configure(
        url=url, target_metadata=SQLModel.metadata, literal_binds=True, render_as_batch=url.startswith("sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live connection."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
