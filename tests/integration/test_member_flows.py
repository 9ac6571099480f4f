"""A role and a key in a second account, through the running bot and `accessbot reconcile`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.aws.granters import RoleGranter
from bot.aws.granters.role_denies import INLINE_NAME
from bot.clock import utcnow
from bot.reconcile import Reconciler
from bot.reconcile.denies import DENY_THING
from bot.reconcile.report import Problem
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from tests.conftest import Bot, wait_until
from tests.integration.flows import approve, catalog_with, file_request
from tests.integration.test_reconcile import drift_rows, reconcile
from tests.support.aws import ACCOUNT, World
from tests.support.member import MEMBER, Member, accounts_yaml, seed_member

ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"


def member_catalog(member: Member) -> str:
    return (
        catalog_with(f"""
  member-deploy:
    kind: iam_role
    role_arn: {member.role_arn}
    approvers: [platform]
  member-key:
    kind: kms_key
    key_id: {member.key_arn}
    operations: [Decrypt]
    approvers: [platform]
""")
        + accounts_yaml()
    )


def test_a_role_in_the_member_account_ends_with_a_session_deny_written_there(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World
) -> None:
    member = seed_member()
    catalog_file.write_text(member_catalog(member))
    bot = make_bot()

    request_id = file_request(bot, "U0ALICE", "request member-deploy 2s deploying the member service")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    name = f"accessbot-{request_id}"
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == [name]
    assert member.iam.list_role_policies(RoleName="deploy")["PolicyNames"] == []

    bot.wait_status(request_id, "expired", timeout=10)

    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []
    deny = member.iam.get_role_policy(RoleName="deploy", PolicyName=INLINE_NAME)["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"]["StringEquals"] == {"aws:SourceIdentity": "alice"}


def test_reconcile_reads_and_repairs_grants_in_the_member_account(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World, database_url: str
) -> None:
    member = seed_member()
    catalog_file.write_text(member_catalog(member))
    bot = make_bot()
    role_id = file_request(bot, "U0ALICE", "request member-deploy 1h deploying the member service")
    approve(bot, role_id)
    key_id = file_request(bot, "U0ALICE", "request member-key 1h reading member payments")
    approve(bot, key_id)
    bot.wait_status(role_id, "active")
    bot.wait_status(key_id, "active")
    assert [g["Name"] for g in member.kms.list_grants(KeyId=member.key_arn)["Grants"]] == [f"accessbot-{key_id}"]

    # Behind the bot's back: the key's grant revoked in the member account, the role's allow deleted here.
    for grant in member.kms.list_grants(KeyId=member.key_arn)["Grants"]:
        member.kms.revoke_grant(KeyId=member.key_arn, GrantId=grant["GrantId"])
    world.iam.delete_user_policy(UserName="alice", PolicyName=f"accessbot-{role_id}")

    found = reconcile([], database_url, catalog_file)
    assert found.returncode == 1, found.stdout + found.stderr
    rows = drift_rows(found.stdout)
    assert ["missing", "kms_key", "alice", member.key_arn, f"accessbot-{key_id}", f"#{key_id}"] in rows
    assert any(row[:3] == ["missing", "iam_role", "alice"] and row[-1] == f"#{role_id}" for row in rows), rows

    fixed = reconcile(["--fix"], database_url, catalog_file)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    held = member.kms.list_grants(KeyId=member.key_arn)["Grants"]
    assert [(g["Name"], g["GranteePrincipal"]) for g in held] == [(f"accessbot-{key_id}", ALICE_ARN)]
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == [f"accessbot-{role_id}"]
    assert MEMBER in member.key_arn


def test_reconcile_puts_back_a_member_roles_deny_there_when_it_was_deleted(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World
) -> None:
    """The owed deny is read and rewritten through the member role (RoleGranter.denied/deny), not at home."""
    member = seed_member()
    catalog_file.write_text(member_catalog(member))
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request member-deploy 1h deploying the member service")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    bot.sender.command("U0ALICE", f"revoke {request_id}")
    ended = bot.wait_status(request_id, "revoked")
    assert ended.sessions_denied_before is not None
    ctx = bot.runtime.workflow.ctx
    reconciler = Reconciler(engine=ctx.engine, catalog=ctx.catalog, granters=ctx.granters, iam=world.iam, kms=world.kms)
    assert reconciler.check().drift == ()  # read in the member account: the deny is there
    member.iam.delete_role_policy(RoleName="deploy", PolicyName=INLINE_NAME)  # a session with IAM rights there

    report = reconciler.check()
    [drift] = report.drift
    assert (drift.problem, drift.thing, drift.request_id, drift.target) == (
        Problem.MISSING, DENY_THING, request_id, member.role_arn,
    )  # fmt: skip
    fixed = reconciler.fix(report)
    assert [f.outcome for f in fixed.fixes] == ["put back"] and fixed.unresolved == 0
    assert RoleGranter(member.iam).denied(member.role_arn) == {"alice": ended.sessions_denied_before}
    for role in world.iam.list_roles()["Roles"]:  # nothing of it written in the bot's own account
        assert INLINE_NAME not in world.iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    assert reconciler.check().drift == ()


def test_a_member_roles_deny_is_lifted_there_when_due(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World
) -> None:
    member = seed_member()
    catalog_file.write_text(member_catalog(member))
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request member-deploy 1h deploying the member service")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    bot.sender.command("U0ALICE", f"revoke {request_id}")
    bot.wait_status(request_id, "revoked")
    assert set(RoleGranter(member.iam).denied(member.role_arn)) == {"alice"}
    with session_scope(bot.runtime.workflow.engine) as db:  # the lift (12 h after the cutoff) falls due now
        row = db.get(AccessRequest, request_id)
        assert row is not None
        row.sessions_denied_until = row.next_due_at = utcnow()
    wait_until(lambda: (r := bot.request(request_id)) is not None and r.sessions_denied_until is None, timeout=15)
    assert RoleGranter(member.iam).denied(member.role_arn) == {}  # lifted through the member role, in its account
