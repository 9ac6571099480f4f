"""KMS grants as AWS documents them (the model in tests/support/aws_model/kms.py): a failed CreateGrant that AWS
applied is undone by its GrantId, found by sending the same CreateGrant again, while ListGrants lags."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.aws.clients import RETRIES, AwsClients
from bot.aws.errors import AwsError
from bot.aws.granters import GrantSpec, KeyGranter
from bot.catalog import Kind, load_catalog
from bot.clock import utcnow
from bot.reconcile import Reconciler
from bot.store.db import session_scope
from bot.store.models import AccessRequest, AuditEvent
from bot.wiring import build_granters
from tests.conftest import Bot, wait_until
from tests.integration.flows import approve, catalog_with, file_request
from tests.support.aws import ACCOUNT, World
from tests.support.aws_model.kms import KmsModel
from tests.support.grants import Planned, bot_key_grants, grant_directly

HOUR = 3600.0  # a lag no test outlives: ListGrants never shows the new grant during the test
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ATTEMPTS = 5  # botocore's standard mode, total_max_attempts 5 (bot/aws/clients.py)


@pytest.fixture
def model(moto_url: str, world: World) -> Iterator[KmsModel]:
    with KmsModel(moto_url, list_lag=HOUR) as running:
        yield running


def kms_through(model: KmsModel) -> Any:
    return boto3.client("kms", endpoint_url=model.url, config=RETRIES)


def spec(world: World, request_id: int = 7) -> GrantSpec:
    return GrantSpec(
        request_id=request_id,
        iam_user="alice",
        iam_user_arn=ALICE,
        target="alias/payments",
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        operations=("Decrypt",),
        target_arn=world.key_arn,
    )


def grants_in_moto(world: World) -> list[str]:
    return [g["GrantId"] for g in world.kms.list_grants(KeyId=world.key_arn)["Grants"]]


# -- the model itself ---------------------------------------------------------------------------


def test_moto_alone_makes_a_second_grant_for_a_named_retry(world: World) -> None:
    """Why the model exists: this is what differs from AWS's CreateGrant reference."""
    first = world.kms.create_grant(KeyId=world.key_arn, GranteePrincipal=ALICE, Operations=["Decrypt"], Name="n")
    again = world.kms.create_grant(KeyId=world.key_arn, GranteePrincipal=ALICE, Operations=["Decrypt"], Name="n")
    assert first["GrantId"] != again["GrantId"] and len(grants_in_moto(world)) == 2


def test_model_answers_a_named_identical_retry_with_the_same_grant(model: KmsModel, world: World) -> None:
    kms = kms_through(model)
    asked = {"KeyId": world.key_arn, "GranteePrincipal": ALICE, "Operations": ["Decrypt"], "Name": "accessbot-7"}
    first, again = kms.create_grant(**asked), kms.create_grant(**asked)
    assert again["GrantId"] == first["GrantId"]
    assert again["GrantToken"] != first["GrantToken"]  # "the returned grant token is unique with every request"
    other = kms.create_grant(**{**asked, "Operations": ["Encrypt"]})
    without_name = {k: v for k, v in asked.items() if k != "Name"}
    unnamed = [kms.create_grant(**without_name) for _ in range(2)]
    assert other["GrantId"] != first["GrantId"] and unnamed[0]["GrantId"] != unnamed[1]["GrantId"]
    assert model.grants_made == 4 and len(grants_in_moto(world)) == 4


def test_model_makes_a_new_grant_when_the_named_one_was_revoked(model: KmsModel, world: World) -> None:
    kms = kms_through(model)
    asked = {"KeyId": world.key_arn, "GranteePrincipal": ALICE, "Operations": ["Decrypt"], "Name": "accessbot-7"}
    first = kms.create_grant(**asked)["GrantId"]
    kms.revoke_grant(KeyId=world.key_arn, GrantId=first)
    assert kms.create_grant(**asked)["GrantId"] != first


def test_model_lists_a_new_grant_late_and_a_revoked_one_for_a_while(model: KmsModel, world: World) -> None:
    kms = kms_through(model)
    made = kms.create_grant(KeyId=world.key_arn, GranteePrincipal=ALICE, Operations=["Decrypt"])["GrantId"]
    assert kms.list_grants(KeyId=world.key_arn)["Grants"] == []
    model.settle()
    assert [g["GrantId"] for g in kms.list_grants(KeyId=world.key_arn)["Grants"]] == [made]
    kms.revoke_grant(KeyId=world.key_arn, GrantId=made)
    assert grants_in_moto(world) == []
    assert [g["GrantId"] for g in kms.list_grants(KeyId=world.key_arn)["Grants"]] == [made]


# -- the granter --------------------------------------------------------------------------------


def test_undo_of_a_create_grant_applied_but_answered_with_5xx_leaves_no_grant(model: KmsModel, world: World) -> None:
    model.add_rule("CreateGrant", "applied_then_error", times=ATTEMPTS)
    granter = KeyGranter(kms_through(model))

    with pytest.raises(AwsError, match="KMSInternalException"):
        granter.grant(spec(world))
    assert len(grants_in_moto(world)) == 1 and model.grants_made == 1  # every retry named the same grant

    granter.revoke(spec(world), None)  # the undo of a failed grant: no GrantId was stored

    assert grants_in_moto(world) == []
    assert model.count("CreateGrant") == ATTEMPTS + 1 and model.grants_made == 1


def test_undo_when_aws_never_applied_the_grant_leaves_no_grant(model: KmsModel, world: World) -> None:
    model.add_rule("CreateGrant", "error", times=ATTEMPTS)
    granter = KeyGranter(kms_through(model))
    with pytest.raises(AwsError):
        granter.grant(spec(world))
    assert grants_in_moto(world) == []

    granter.revoke(spec(world), None)  # makes the grant with the same CreateGrant, and revokes it at once

    assert grants_in_moto(world) == [] and model.grants_made == 1


def test_undo_that_cannot_send_create_grant_again_stays_owed(model: KmsModel, world: World) -> None:
    model.add_rule("CreateGrant", "applied_then_error", times=2 * ATTEMPTS)  # the undo's tries too
    granter = KeyGranter(kms_through(model))
    with pytest.raises(AwsError):
        granter.grant(spec(world))
    with pytest.raises(AwsError, match="KMSInternalException"):
        granter.revoke(spec(world), None)  # a transient refusal: the undo is tried again later
    assert len(grants_in_moto(world)) == 1
    granter.revoke(spec(world), None)
    assert grants_in_moto(world) == []


SOLO_KEY = """
  solo-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt]
    approvers: [platform]
"""


def test_bot_undoes_a_grant_aws_applied_but_refused_while_list_grants_lags(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World, model: KmsModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog_file.write_text(catalog_with(SOLO_KEY))
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", model.url)  # the bot's KMS client is built on its first call
    model.add_rule("CreateGrant", "applied_then_error", times=ATTEMPTS)
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request solo-key 1h rotating secrets")
    approve(bot, request_id)

    bot.wait_status(request_id, "failed", timeout=30)  # five tries with botocore's backoff: up to ~15 s
    undone = wait_until(lambda: (row := bot.request(request_id)) is not None and row.ended_at is not None, timeout=30)

    assert undone and grants_in_moto(world) == []
    assert model.grants_made == 1 and model.count("CreateGrant") == ATTEMPTS + 1
    assert "undone" in [e.action for e in bot.audit(request_id)]


# -- reconcile looks again ----------------------------------------------------------------------


class Alerts:
    """The alerter the scheduled check posts to: what it said, per channel."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []

    def channel_alert(self, channel: str, text: str) -> None:
        self.posted.append((channel, text))


@pytest.mark.both_databases
def test_scheduled_reconcile_revokes_a_kms_grant_still_there_ten_minutes_after_its_end(
    engine: Engine, catalog_file: Path, world: World
) -> None:
    carol = str(world.iam.get_user(UserName="carol")["User"]["Arn"])
    plans = [Planned(Kind.KMS_KEY, "carol", carol), Planned(Kind.KMS_KEY, "carol", carol)]
    earlier, recent = grant_directly(engine, world.iam, world.kms, plans, lambda _i: utcnow(), due=False)
    now = utcnow()
    with session_scope(engine) as session:  # both ended; AWS still has both grants (a revoke it did not apply)
        for request_id, ago in ((earlier, timedelta(minutes=11)), (recent, timedelta(minutes=2))):
            row = session.get(AccessRequest, request_id)
            assert row is not None
            row.status, row.ended_at = "expired", now - ago
    clock = [now]
    aws = AwsClients.create()
    reconciler = Reconciler(
        engine=engine, catalog=load_catalog(catalog_file), granters=build_granters(aws), iam=aws.iam,
        kms=aws.kms, clock=lambda: clock[0],
    )  # fmt: skip
    alerts = Alerts()

    reconciler.scheduled(alerts, interval=0)

    assert bot_key_grants(world.kms) == [f"accessbot-{recent}"]  # within the settle time: maybe a stale listing
    assert alerts.posted == []
    with session_scope(engine) as session:
        removed = session.exec(select(AuditEvent).where(col(AuditEvent.action) == "orphan_removed")).all()
        assert [e.request_id for e in removed] == [earlier]

    clock[0] = now + timedelta(minutes=9)  # the recent one has now been ended 11 minutes
    reconciler.scheduled(alerts, interval=0)
    assert bot_key_grants(world.kms) == [] and alerts.posted == []
