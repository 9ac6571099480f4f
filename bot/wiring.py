"""What every entry point builds the same way: the AWS clients, one granter per kind, a usable database."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from botocore.exceptions import NoRegionError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.aws.clients import AwsClients
from bot.aws.granters import (
    Granter,
    GroupGranter,
    KeyGranter,
    PermissionSetGranter,
    Polling,
    RoleGranter,
    SsoGroupGranter,
)
from bot.aws.granters.role import DEFAULT_MARGIN
from bot.aws.identity_center import Center
from bot.catalog import Catalog, Kind
from bot.errors import ConfigError
from bot.store import schema
from bot.store.db import hold_lock, is_sqlite, make_engine


def aws_clients() -> AwsClients:
    """The AWS clients, from boto3's usual configuration chain; ConfigError when no region is set."""
    try:
        return AwsClients.create()
    except NoRegionError:
        raise ConfigError("AWS_REGION: not set (KMS needs a region; set AWS_REGION or AWS_DEFAULT_REGION)") from None


def identity_center(aws: AwsClients, catalog: Catalog | None) -> Center:
    """The Identity Center instance: the catalog's `identity_center`, else ListInstances' (when first needed)."""
    return Center(aws.sso_admin, catalog.identity_center if catalog is not None else None)


def build_granters(
    aws: AwsClients,
    center: Center | None = None,
    *,
    polling: Polling | None = None,
    engine: Engine | None = None,
    margin: timedelta = DEFAULT_MARGIN,
) -> dict[Kind, Granter]:
    """One granter per kind of access, on the given clients (a role's denies locked in `engine`, when given)."""
    center = center or Center(aws.sso_admin, None)
    role_lock = partial(hold_lock, engine) if engine is not None else None
    return {
        Kind.IAM_GROUP: GroupGranter(aws.iam),
        Kind.IAM_ROLE: RoleGranter(aws.iam, margin=margin, lock=role_lock),
        Kind.KMS_KEY: KeyGranter(aws.kms),
        Kind.SSO_PERMISSION_SET: PermissionSetGranter(aws.sso_admin, center, polling=polling),
        Kind.SSO_GROUP: SsoGroupGranter(aws.identitystore, center),
    }


def open_database(url: str, *, migrate: bool = True) -> Engine:
    """An engine on DATABASE_URL whose schema is current (see prepare_schema); disposed again on refusal."""
    engine = make_engine(url)
    try:
        prepare_schema(engine, migrate=migrate)
    except ConfigError:
        engine.dispose()
        raise
    return engine


def prepare_schema(engine: Engine, *, migrate: bool = True) -> None:
    """On SQLite migrate by itself (unless `migrate` is false); elsewhere refuse while the schema is behind."""
    try:
        if migrate and is_sqlite(engine):
            schema.upgrade(engine)
            return
        current, head = schema.pending_revisions(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(f"DATABASE_URL: cannot use the database: {_cause(exc)}") from None
    if head is not None:
        raise ConfigError(
            f"DATABASE_URL: the schema is at {current or 'nothing'} but this version needs {head}; "
            "run `accessbot migrate` first"
        )


def migrate_schema(url: str) -> None:
    """`alembic upgrade head` on DATABASE_URL."""
    engine = make_engine(url)
    try:
        schema.upgrade(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(f"DATABASE_URL: cannot migrate: {_cause(exc)}") from None
    finally:
        engine.dispose()


def _cause(exc: SQLAlchemyError) -> str:
    """The driver's error class (OperationalError, …): names the failure without echoing the URL."""
    return type(getattr(exc, "orig", None) or exc).__name__
