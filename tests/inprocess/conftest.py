"""The in-process tier: the real workflow on SQLite with the fakes of bot.testing, driven by a clock the
test moves. No HTTP server, moto, fake Slack or sleep: what those prove is the acceptance tier's job."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.testing.inprocess import InProcess, copy_database, migrated_template

CATALOG = """
defaults:
  approval_channel: C0APPROVALS
  min_duration: 5m
  default_duration: 1h
  max_duration: 8h
  warn_before: 10m
identity:
  strategy: email_tag
approver_groups:
  platform: [U0BOB, U0CAROL]
  oncall: [S0ONCALL]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    max_extensions: 1
    audit_channel: C0AUDIT
  self-served:
    kind: iam_group
    group_name: self-served
    approvers: [U0ALICE, U0BOB]
    allow_self_approval: true
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
    max_duration: 4h
  quick-role:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
    auto_approve: {max_duration: 1h}
    auto_approve_limit: 10
  payments-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt, GenerateDataKey]
    approvers: [U0DAVE, U0ERIN]
    approvals_required: 2
  auditors:
    kind: iam_group
    group_name: auditors
    approvers: [oncall]
    requesters: [U0ALICE]
    auto_approve: {max_duration: 30m}
    auto_approve_limit: 1
    break_glass: true
    pending_timeout: 2h
    remind_after: 30m
    max_reminders: 2
    escalate_to: [U0FRANK]
    escalate_after: 1h15m
"""


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database migrated with Alembic for the whole session; each test gets a copy."""
    return migrated_template(tmp_path_factory.mktemp("inprocess") / "template.db")


@pytest.fixture
def make(template: Path, tmp_path: Path) -> Iterator[Callable[..., InProcess]]:
    """Build an InProcess on a fresh copy of the template (catalog: CATALOG unless given)."""
    built: list[InProcess] = []

    def _make(catalog: str = CATALOG, **kw: Any) -> InProcess:
        database = copy_database(template, tmp_path / f"accessbot-{len(built)}.db")
        made = InProcess(database, catalog, groups={"S0ONCALL": ["U0OSCAR"]}, **kw)
        built.append(made)
        return made

    yield _make
    for made in built:
        made.close()


@pytest.fixture
def bot(make: Callable[..., InProcess]) -> InProcess:
    """The workflow with the tier's catalog, at the fake clock's start."""
    return make()
