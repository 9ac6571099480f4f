"""IAM Identity Center: a permission set in two accounts goes from Approve to active in about one assignment's time.

moto answers an account assignment at once; real AWS takes seconds. So the bot's own sso-admin client is
given a fixed latency on CreateAccountAssignment (a botocore before-send hook that sleeps, then lets the call
through to moto), and the same request is timed with one account and with two.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3

from benchmarks.bench_slack import _posted_for_approval
from benchmarks.harness import SECRET, Servers, fresh_database, percentile, start_bot
from bot.aws.granters import PermissionSetGranter
from bot.catalog import Kind
from bot.runtime import Runtime
from bot.slack.messages import ACTION_APPROVE
from bot.testing.signing import SlackSender

ACCOUNTS = ("111111111111", "222222222222")
PEOPLE = 20
CATALOG = """
defaults:
  approval_channel: C0APPROVALS
  min_duration: 1s
  max_duration: 8h
  rate_limit: {requests: 10000, per: 1h}
  max_open_requests: 1000
identity:
  strategy: static
  static:
STATIC
approver_groups:
  platform: [U0BOB, U0CAROL]
resources:
  one-account:
    kind: sso_permission_set
    permission_set: ProdAdmin
    accounts: ["111111111111"]
    approvers: [platform]
  two-accounts:
    kind: sso_permission_set
    permission_set: ProdAdmin
    accounts: ["111111111111", "222222222222"]
    approvers: [platform]
"""


def _seed() -> tuple[Any, str, str]:
    """A permission set and the identity store users sso001.. (static identity maps U0S<n> to them)."""
    sso, store = boto3.client("sso-admin"), boto3.client("identitystore")
    instance = sso.list_instances()["Instances"][0]
    ps = sso.create_permission_set(InstanceArn=instance["InstanceArn"], Name="ProdAdmin")["PermissionSet"]
    for n in range(1, PEOPLE * 2 + 1):
        name = f"sso{n:03d}"
        store.create_user(
            IdentityStoreId=instance["IdentityStoreId"],
            UserName=name,
            DisplayName=name,
            Name={"GivenName": name, "FamilyName": "Bench"},
            Emails=[{"Value": f"{name}@example.com", "Type": "work", "Primary": True}],
        )
    return sso, str(instance["InstanceArn"]), str(ps["PermissionSetArn"])


def _slow_assignments(runtime: Runtime, seconds: float) -> None:
    """Every CreateAccountAssignment of the bot takes `seconds` longer, as real AWS's do."""
    granter = runtime.workflow.ctx.granters[Kind.SSO_PERMISSION_SET]
    assert isinstance(granter, PermissionSetGranter)
    granter._sso.meta.events.register(
        "before-send.sso-admin.CreateAccountAssignment", lambda **_kw: time.sleep(seconds), unique_id="bench-latency"
    )


def approve_to_active(srv: Servers, workdir: Path, *, latency: float = 0.5) -> dict[str, float]:
    """p50 (ms) from the Approve click until AWS lists every assignment, for one account and for two."""
    fresh_database()
    srv.reset_aws()
    sso, instance, ps = _seed()
    catalog = workdir / "catalog-sso.yaml"
    static = "\n".join(f"    U0S{n:03d}: sso{n:03d}" for n in range(1, PEOPLE * 2 + 1))
    catalog.write_text(CATALOG.replace("STATIC", static))
    runtime = start_bot(srv, workdir, accessbot_catalog=catalog)
    _slow_assignments(runtime, latency)
    found: dict[str, float] = {"assignment_latency_ms": latency * 1000}
    try:
        assert runtime.http is not None
        sender = SlackSender(runtime.http.url, SECRET, srv.slack.removesuffix("/api/") + "/response/")
        for offset, resource in ((0, "one-account"), (PEOPLE, "two-accounts")):
            accounts = ACCOUNTS[:1] if resource == "one-account" else ACCOUNTS
            took: list[float] = []
            for n in range(offset + 1, offset + PEOPLE + 1):
                user, principal = f"U0S{n:03d}", None
                sender.command(user, f"request {resource} 1h benchmark")
                request_id = str(_posted_for_approval(runtime, user, timeout=30))
                began = time.perf_counter()
                sender.click("U0BOB", ACTION_APPROVE, request_id)
                while True:
                    row = runtime.workflow.ctx.load(int(request_id))
                    principal = row.iam_user_arn
                    if all(_assigned(sso, instance, ps, account, principal) for account in accounts):
                        break
                    if time.perf_counter() - began > 30:
                        raise RuntimeError(f"request #{request_id} was never granted")
                took.append(time.perf_counter() - began)
            found[f"{resource}_p50_ms"] = percentile(took, 50) * 1000
    finally:
        runtime.stop()
    found["two_over_one"] = found["two-accounts_p50_ms"] / found["one-account_p50_ms"]
    return found


def _assigned(sso: Any, instance: str, ps: str, account: str, principal: str) -> bool:
    listed = sso.list_account_assignments(InstanceArn=instance, AccountId=account, PermissionSetArn=ps)
    return any(a["PrincipalId"] == principal for a in listed["AccountAssignments"])
