"""What the Identity Center session tests share: moto behind the AWS model, a bot on it, and ways to look."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.store.models import AccessRequest
from tests.conftest import Bot
from tests.integration import test_identity_center as identity_center
from tests.integration.flows import catalog_with
from tests.integration.test_identity_center import PROD, SSO_RESOURCES, Center
from tests.support.aws_model.sso import ENDPOINT_VARIABLE, SsoModel

center = identity_center.center  # an instance, ProdAdmin and ReadOnly, two users, a group


MARGIN = timedelta(seconds=300)
ADMIN = '{"Version":"2012-10-17","Statement":[{"Sid":"Admins","Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
QUIET = f"""
  quiet-sso:
    kind: sso_permission_set
    permission_set: ReadOnly
    accounts: ["{PROD}"]
    approvers: [platform]
    end_sessions: false
"""


@pytest.fixture
def model(moto_url: str) -> Iterator[SsoModel]:
    with SsoModel(moto_url) as proxy:
        os.environ[ENDPOINT_VARIABLE] = proxy.url
        try:
            yield proxy
        finally:
            os.environ.pop(ENDPOINT_VARIABLE, None)


@pytest.fixture
def modelled(make_bot: Callable[..., Bot], catalog_file: Path, center: Center, model: SsoModel) -> Bot:
    center.sso.put_inline_policy_to_permission_set(
        InstanceArn=center.instance_arn, PermissionSetArn=center.permission_set_arn, InlinePolicy=ADMIN
    )
    catalog_file.write_text(catalog_with(SSO_RESOURCES + QUIET))
    return make_bot()


def inline(center: Center, arn: str | None = None) -> str:
    answer = center.sso.get_inline_policy_for_permission_set(
        InstanceArn=center.instance_arn, PermissionSetArn=arn or center.permission_set_arn
    )
    return str(answer.get("InlinePolicy") or "")


def sent(model: SsoModel, account: str, arn: str) -> list[tuple[str, str]]:
    """(what, detail) of the model's provisioning and unassigning events in an account, in order."""
    return [(e[0], e[3]) for e in model.events if e[2] == account and e[1] == arn and e[0] != "assigned"]


def cutoff_of(row: AccessRequest) -> datetime:
    assert row.sessions_denied_until is not None
    return row.sessions_denied_until - timedelta(hours=1) - MARGIN  # ProdAdmin's SessionDuration is PT1H
