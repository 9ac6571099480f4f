"""Alembic from code: upgrade to head, and tell whether a database is behind."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import bot
from bot.errors import ConfigError


def migrations_dir() -> Path:
    """The Alembic script directory: next to the package in a checkout, else in the working directory."""
    for candidate in (Path(bot.__file__).resolve().parent.parent / "migrations", Path.cwd() / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError(
        "DATABASE_URL: cannot find the migrations/ directory (run from the repository or the image's /app)"
    )


def alembic_config(database_url: str) -> Config:
    """An Alembic Config for the URL, without needing alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision."""
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def pending_revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(current, head) when the database is behind, or (None, None) when it is up to date."""
    script = ScriptDirectory.from_config(alembic_config(""))
    head = script.get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current == head:
        return None, None
    return current, head
